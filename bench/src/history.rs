//! The "big history" shape (issue #14): a store holding a million messages over 100,000
//! conversations (`wsmschat seed-history`, written before the server starts), then, one call
//! at a time as an agent's console makes them:
//!
//! - **inbox search** (`ListConversations.query`, first page of 50 with its total) for five
//!   kinds of query: an order number (one conversation), a visitor's last name (one in 20
//!   visitors), a product (a word in about 1 in 25 conversations' messages), a word in about a
//!   third of all messages ("order"), and a string nowhere;
//! - **history paging** of the 10,000-message conversation (`GetHistory`, 50 before a random
//!   seq);
//! - **resume** of that conversation: a `Chat` stream with a cursor `--resume-behind`
//!   messages back, timed until the newest message arrives.
//!
//! Every answer is checked (the order number finds its conversation and only it, pages are 50
//! consecutive seqs, a resume replays every missed seq in order); a wrong answer is an error.
//! Latency percentiles per kind and the server's CPU per call are reported.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::server_event::Event as Se;

use crate::hist::Hist;
use crate::procfs;

type Auth = MetadataValue<tonic::metadata::Ascii>;

pub struct HistoryParams {
    pub url: String,
    pub pid: Option<u32>,
    pub api_key: String,
    pub label: String,
    pub conversations: u64,
    pub messages: u64,
    pub big: u64,
    /// Calls of each kind measured (after a few unmeasured warm-up calls).
    pub calls: usize,
    pub resume_behind: u64,
    /// How long seeding took (measured by the caller), in seconds.
    pub seed_secs: f64,
    /// The database's size on disk after seeding, if known (SQLite), in bytes.
    pub db_bytes: Option<u64>,
    pub engine: String,
}

/// The query of a search kind for call `k` (order numbers change each time).
fn query(kind: &str, k: usize, conversations: u64) -> String {
    match kind {
        // Not conversation 0: its number appears in every tenth message of the big one only.
        "order" => format!(
            "W{:07}",
            1_000_000 + 1 + (k as u64 * 7_919) % (conversations - 1)
        ),
        "name" => ["Tanaka", "Garcia", "Kowalski", "Okafor"][k % 4].to_owned(),
        "product" => ["headphones", "kettle", "scooter", "umbrella"][k % 4].to_owned(),
        "common" => "order".to_owned(),
        _ => format!("zq{k}xv"),
    }
}

const KINDS: &[&str] = &["order", "name", "product", "common", "none"];
const WARMUP: usize = 5;

fn authed<T>(msg: T, auth: &Auth) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", auth.clone());
    r
}

struct Measured {
    hist: Hist,
    cpu_ticks: u64,
    errors: Vec<String>,
    /// What the answers held (totals for searches), summed.
    found: u64,
}

impl Measured {
    fn new() -> Self {
        Self {
            hist: Hist::default(),
            cpu_ticks: 0,
            errors: Vec::new(),
            found: 0,
        }
    }

    fn json(&self, calls: usize) -> Value {
        let us_per_call = self.cpu_ticks as f64 / procfs::clk_tck() * 1e6 / calls.max(1) as f64;
        json!({
            "latencyMs": self.hist.summary_ms(),
            "serverCpuUsPerCall": us_per_call.round(),
            "meanFound": self.found as f64 / calls.max(1) as f64,
            "errors": self.errors.len(),
            "firstErrors": self.errors.iter().take(3).collect::<Vec<_>>(),
        })
    }
}

async fn timed<F, Fut>(pid: Option<u32>, calls: usize, mut call: F) -> Measured
where
    F: FnMut(usize, bool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut m = Measured::new();
    for k in 0..WARMUP {
        let _ = call(k, true).await;
    }
    let before = pid.and_then(procfs::sample);
    for k in 0..calls {
        let t = Instant::now();
        match call(WARMUP + k, false).await {
            Ok(found) => {
                m.hist.record_ns(t.elapsed().as_nanos() as u64);
                m.found += found;
            }
            Err(e) => m.errors.push(e.to_string()),
        }
    }
    if let (Some(a), Some(b)) = (before, pid.and_then(procfs::sample)) {
        m.cpu_ticks = b.ticks.saturating_sub(a.ticks);
    }
    m
}

async fn search(
    ch: &Channel,
    auth: &Auth,
    kind: &str,
    k: usize,
    conversations: u64,
) -> anyhow::Result<u64> {
    let q = query(kind, k, conversations);
    let page = ChatServiceClient::new(ch.clone())
        .list_conversations(authed(
            v1::ListConversationsRequest {
                query: q.clone(),
                page_size: 50,
                ..Default::default()
            },
            auth,
        ))
        .await
        .map_err(|s| anyhow!("search {q:?}: {:?} {}", s.code(), s.message()))?
        .into_inner();
    match kind {
        "order" => {
            let want = format!("c_seed{}", q[1..].parse::<u64>()? - 1_000_000);
            if page.total != 1 || page.conversations.first().map(|c| &c.id) != Some(&want) {
                bail!(
                    "search {q:?}: want only {want}, got {} ({:?})",
                    page.total,
                    page.conversations.iter().map(|c| &c.id).collect::<Vec<_>>()
                );
            }
        }
        "none" if page.total != 0 => bail!("search {q:?} found {}", page.total),
        "none" => {}
        // One visitor in 20 has each last name (exactly so for a multiple of 400
        // conversations): a full count (names are not capped).
        "name" if (page.total as u64).abs_diff(conversations / 20) > 20 || page.total_capped => {
            bail!(
                "search {q:?}: want {} conversations, got {} (capped: {})",
                conversations / 20,
                page.total,
                page.total_capped
            )
        }
        // In every conversation: more messages than a search reads, so a capped total and a
        // full first page.
        "common" if !page.total_capped || page.conversations.len() != 50 => bail!(
            "search {q:?}: want a capped total and 50 conversations, got {} (capped: {}), {}",
            page.total,
            page.total_capped,
            page.conversations.len()
        ),
        _ if page.total == 0 => bail!("search {q:?} found nothing"),
        _ => {}
    }
    Ok(page.total as u64)
}

async fn page(ch: &Channel, auth: &Auth, big: u64, k: usize) -> anyhow::Result<u64> {
    let before = 2 + (k as u64 * 104_729) % big.saturating_sub(1).max(1);
    let r = ChatServiceClient::new(ch.clone())
        .get_history(authed(
            v1::GetHistoryRequest {
                conversation_id: "c_seed0".into(),
                before_seq: before,
                limit: 50,
            },
            auth,
        ))
        .await
        .map_err(|s| anyhow!("history before {before}: {:?}", s.code()))?
        .into_inner();
    let want = (before - 1).min(50);
    let seqs: Vec<u64> = r.messages.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (before - want..before).collect();
    if seqs != expected {
        bail!(
            "history before {before}: {} messages, seqs {:?}..",
            seqs.len(),
            seqs.first()
        );
    }
    Ok(seqs.len() as u64)
}

async fn resume(ch: &Channel, auth: &Auth, big: u64, behind: u64) -> anyhow::Result<u64> {
    let after = big.saturating_sub(behind);
    let (tx, rx) = mpsc::unbounded_channel::<v1::ChatRequest>();
    tx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: vec![v1::ConversationCursor {
                conversation_id: "c_seed0".into(),
                after_seq: after,
            }],
            inbox: false,
        }),
        event: None,
    })?;
    let mut s = ChatServiceClient::new(ch.clone())
        .chat(authed(UnboundedReceiverStream::new(rx), auth))
        .await
        .map_err(|s| anyhow!("resume: {:?}", s.code()))?
        .into_inner();
    let mut next = after + 1;
    let deadline = Duration::from_secs(10);
    while next <= big {
        let msg = tokio::time::timeout(deadline, s.message())
            .await
            .map_err(|_| anyhow!("resume: seq {next} never came"))?
            .map_err(|s| anyhow!("resume: {:?}", s.code()))?
            .ok_or_else(|| anyhow!("resume: the stream ended before seq {next}"))?;
        if let Some(Se::Message(m)) = msg.event.and_then(|e| e.event) {
            if m.conversation_id == "c_seed0" {
                if m.seq != next {
                    bail!("resume: seq {} where {next} was due", m.seq);
                }
                next += 1;
            }
        }
    }
    drop(tx);
    Ok(behind)
}

pub async fn run(p: &HistoryParams) -> anyhow::Result<Value> {
    let addr = crate::net::loopback_addr(&p.url)?;
    let ch = crate::net::native_channel(addr, None).await?;
    let auth = crate::net::bearer(&p.api_key);
    let mut searches = serde_json::Map::new();
    let mut errors = 0;
    for kind in KINDS {
        crate::log(format!("history: {} searches of kind {kind}", p.calls));
        let m = timed(p.pid, p.calls, |k, _| {
            let (ch, auth) = (ch.clone(), auth.clone());
            async move { search(&ch, &auth, kind, k, p.conversations).await }
        })
        .await;
        errors += m.errors.len();
        let mut v = m.json(p.calls);
        v["example"] = json!(query(kind, WARMUP, p.conversations));
        searches.insert((*kind).to_owned(), v);
    }
    crate::log(format!("history: {} pages of c_seed0", p.calls));
    let paging = timed(p.pid, p.calls, |k, _| {
        let (ch, auth) = (ch.clone(), auth.clone());
        async move { page(&ch, &auth, p.big, k).await }
    })
    .await;
    errors += paging.errors.len();
    crate::log(format!(
        "history: {} resumes of c_seed0, {} behind",
        p.calls, p.resume_behind
    ));
    let resumes = timed(p.pid, p.calls, |_, _| {
        let (ch, auth) = (ch.clone(), auth.clone());
        async move { resume(&ch, &auth, p.big, p.resume_behind).await }
    })
    .await;
    errors += resumes.errors.len();
    let rss = p.pid.and_then(procfs::sample).map(|s| s.rss_kb);
    Ok(json!({
        "shape": "history",
        "label": p.label,
        "engine": p.engine,
        "conversations": p.conversations,
        "messages": p.messages,
        "big": p.big,
        "seedSecs": (p.seed_secs * 10.0).round() / 10.0,
        "dbBytes": p.db_bytes,
        "calls": p.calls,
        "search": searches,
        "paging": paging.json(p.calls),
        "resume": { "behind": p.resume_behind, "result": resumes.json(p.calls) },
        "serverRssKb": rss,
        "errorsTotal": errors,
    }))
}

pub fn print_table(v: &Value) {
    println!(
        "big history on {}: {} conversations, {} messages (one of {}), seeded in {} s{}",
        v["engine"].as_str().unwrap_or("?"),
        v["conversations"],
        v["messages"],
        v["big"],
        v["seedSecs"],
        match v["dbBytes"].as_u64() {
            Some(b) => format!(", database {:.0} MB", b as f64 / 1e6),
            None => String::new(),
        }
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>6}",
        "call", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu us", "found", "errors"
    );
    let row = |name: String, r: &Value| {
        let l = &r["latencyMs"];
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10.1} {:>6}",
            name,
            l["p50"],
            l["p90"],
            l["p99"],
            l["max"],
            r["serverCpuUsPerCall"],
            r["meanFound"].as_f64().unwrap_or(0.0),
            r["errors"]
        );
    };
    if let Some(s) = v["search"].as_object() {
        for (kind, r) in s {
            row(
                format!("search {kind} ({})", r["example"].as_str().unwrap_or("")),
                r,
            );
        }
    }
    row("history page (50)".into(), &v["paging"]);
    row(
        format!("resume ({} behind)", v["resume"]["behind"]),
        &v["resume"]["result"],
    );
    println!("errors: {}", v["errorsTotal"]);
}
