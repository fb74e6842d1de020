//! Chaos under load: writers publish (retrying unacknowledged sends with the same
//! `client_msg_id`, as the SDK does) while the server is SIGKILLed and restarted over and over;
//! afterwards every acknowledged message exists exactly once, with its acked seq, seqs dense.
//! The cluster variant kills nodes of a two-node PostgreSQL + Redis cluster and restarts Redis.
//!
//! CI runs a few cycles; `scripts/chaos` runs many (`CHAOS_CYCLES`, default here 4).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tonic::transport::Endpoint;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat_server::Database;

fn cycles() -> usize {
    std::env::var("CHAOS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// The URLs of the nodes now up (writers pick one; empty while all are down).
type Nodes = Arc<Mutex<Vec<String>>>;

#[derive(Default, Clone)]
struct Tally {
    /// (conversation, client_msg_id) -> acked seq.
    acked: HashMap<(String, String), u64>,
    failed_attempts: u64,
}

/// Writers running against `nodes` until finished.
struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// One writer per (visitor token, conversation).
    fn start(nodes: &Nodes, writers: &[(String, String)]) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = writers
            .iter()
            .enumerate()
            .map(|(w, (token, conv))| {
                tokio::spawn(writer(
                    w,
                    nodes.clone(),
                    token.clone(),
                    conv.clone(),
                    tally.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Load { tally, stop, tasks }
    }

    /// Stops the writers; what they counted.
    async fn finish(self) -> Tally {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            t.await.unwrap();
        }
        self.tally.lock().unwrap().clone()
    }
}

async fn connect(url: &str) -> Option<ChatServiceClient<tonic::transport::Channel>> {
    let ep = Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3));
    Some(ChatServiceClient::new(ep.connect().await.ok()?))
}

/// One writer: its own conversation, messages sent in order, each retried (same id) until
/// acked, until `stop`.
async fn writer(
    w: usize,
    nodes: Nodes,
    token: String,
    conv: String,
    tally: Arc<Mutex<Tally>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut i = 0u64;
    let mut client: Option<(String, ChatServiceClient<tonic::transport::Channel>)> = None;
    while !*stop.borrow() {
        let id = format!("w{w}-{i}");
        let url = {
            let n = nodes.lock().unwrap();
            if n.is_empty() {
                None
            } else {
                Some(n[(w + i as usize) % n.len()].clone())
            }
        };
        let Some(url) = url else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if client.as_ref().is_none_or(|(u, _)| *u != url) {
            client = connect(&url).await.map(|c| (url.clone(), c));
        }
        let Some((_, chat)) = client.as_mut() else {
            tally.lock().unwrap().failed_attempts += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match publish(chat, &token, send(&conv, "", &id, &id)).await {
            Ok(ack) => {
                let prev = tally
                    .lock()
                    .unwrap()
                    .acked
                    .insert((conv.clone(), id.clone()), ack.seq);
                assert!(
                    prev.is_none_or(|p| p == ack.seq),
                    "a retry of {id} got another seq"
                );
                i += 1;
            }
            Err(_) => {
                tally.lock().unwrap().failed_attempts += 1;
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Checks the store against the acks; returns (acked, lost, duplicated).
async fn verify(url: &str, admin: &str, tally: &Tally, convs: &[String]) -> (usize, usize, usize) {
    let mut chat = connect(url).await.unwrap();
    let (mut lost, mut duplicated) = (0, 0);
    for conv in convs {
        let h = history_all(&mut chat, admin, conv).await;
        let seqs: Vec<u64> = h.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "seqs of {conv} are dense"
        );
        let mut by_id: HashMap<&str, Vec<u64>> = HashMap::new();
        for m in &h {
            by_id
                .entry(m.client_msg_id.as_str())
                .or_default()
                .push(m.seq);
        }
        for ((c, id), seq) in &tally.acked {
            if c != conv {
                continue;
            }
            match by_id.get(id.as_str()).map(Vec::as_slice) {
                Some([s]) => assert_eq!(s, seq, "{id} stored with its acked seq"),
                Some(_) => duplicated += 1,
                None => lost += 1,
            }
        }
        duplicated += by_id
            .iter()
            .filter(|(id, seqs)| !id.is_empty() && seqs.len() > 1)
            .count();
    }
    (tally.acked.len(), lost, duplicated)
}

async fn history_all(
    chat: &mut ChatServiceClient<tonic::transport::Channel>,
    token: &str,
    conv: &str,
) -> Vec<v1::Message> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let r = chat
            .get_history(authed(
                token,
                v1::GetHistoryRequest {
                    conversation_id: conv.into(),
                    before_seq: before,
                    limit: 500,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        before = r.messages.first().map(|m| m.seq).unwrap_or(0);
        all.extend(r.messages);
        if !r.has_more {
            break;
        }
    }
    all.sort_by_key(|m| m.seq);
    all
}

async fn setup(url: &str, writers: usize) -> (String, Vec<(String, String)>) {
    let mut s = wsmschat::v1::session_service_client::SessionServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    let admin = s
        .login(v1::LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut chat = connect(url).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..writers {
        let token = visitor_at(url).await;
        let (conv, _) = start_conversation(&mut chat, &token, "Order", "start").await;
        out.push((token, conv));
    }
    (admin, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_over_and_over_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(&dir).await;
    let mut server = spawn(&database, &[]);
    let (admin, writers) = setup(&server.url, 8).await;
    let nodes: Nodes = Arc::new(Mutex::new(vec![server.url.clone()]));
    let load = Load::start(&nodes, &writers);
    let n = cycles();
    for cycle in 0..n {
        // 0.4 to 1.5 s of load, then SIGKILL, then a restart on the same database.
        tokio::time::sleep(Duration::from_millis(400 + (cycle as u64 * 373) % 1100)).await;
        nodes.lock().unwrap().clear();
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        server = spawn(&database, &[]);
        nodes.lock().unwrap().push(server.url.clone());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = load.finish().await;
    let convs: Vec<String> = writers.iter().map(|(_, c)| c.clone()).collect();
    let (acked, lost, duplicated) = verify(&server.url, &admin, &tally, &convs).await;
    eprintln!(
        "chaos (single node): {n} SIGKILL cycles, {acked} acked, {lost} lost, {duplicated} duplicated, {} failed attempts retried",
        tally.failed_attempts
    );
    assert!(acked > n * 10, "load ran ({acked} acked)");
    assert_eq!((lost, duplicated), (0, 0));
    drop(server);
    drop_database(&database).await;
}

/// A Redis server of the test's own on a given port.
fn redis_on(port: u16) -> std::process::Child {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_node_kills_and_redis_restarts_lose_and_duplicate_nothing() {
    // A cluster shares one PostgreSQL, whatever engine the rest of the suite runs on.
    let database = postgres_database(&postgres_base()).await;
    assert!(matches!(database, Database::Postgres { .. }));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = redis_on(port);
    let redis_url = format!("redis://127.0.0.1:{port}");
    let args = ["--redis-url", redis_url.as_str(), "--heartbeat-secs", "2"];
    let mut procs = vec![spawn(&database, &args), spawn(&database, &args)];
    let (admin, writers) = setup(&procs[0].url, 8).await;
    let nodes: Nodes = Arc::new(Mutex::new(procs.iter().map(|p| p.url.clone()).collect()));
    let load = Load::start(&nodes, &writers);
    let n = cycles();
    for cycle in 0..n {
        tokio::time::sleep(Duration::from_millis(500 + (cycle as u64 * 373) % 1000)).await;
        let victim = cycle % 2;
        if cycle % 3 == 2 {
            // Redis away for a moment, nodes stay up.
            let _ = redis.kill();
            let _ = redis.wait();
            tokio::time::sleep(Duration::from_millis(300)).await;
            redis = redis_on(port);
        } else {
            let url = procs[victim].url.clone();
            nodes.lock().unwrap().retain(|u| *u != url);
            procs[victim].child.kill().unwrap();
            procs[victim].child.wait().unwrap();
            procs[victim] = spawn(&database, &args);
            nodes.lock().unwrap().push(procs[victim].url.clone());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = load.finish().await;
    let convs: Vec<String> = writers.iter().map(|(_, c)| c.clone()).collect();
    let (acked, lost, duplicated) = verify(&procs[0].url, &admin, &tally, &convs).await;
    eprintln!(
        "chaos (cluster): {n} cycles of node kills / Redis restarts, {acked} acked, {lost} lost, {duplicated} duplicated, {} failed attempts retried",
        tally.failed_attempts
    );
    assert!(acked > n * 10, "load ran ({acked} acked)");
    assert_eq!((lost, duplicated), (0, 0));
    drop(procs);
    let _ = redis.kill();
    let _ = redis.wait();
    drop_database(&database).await;
}
