//! A server killed mid-stream (SIGKILL, no graceful shutdown) loses no acknowledged message:
//! after a restart on the same database every acked message is there exactly once, seqs are
//! dense, and a stream resumes from its cursor.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use tonic::transport::Endpoint;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;

async fn connect(url: &str) -> ChatServiceClient<tonic::transport::Channel> {
    ChatServiceClient::new(
        Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(&dir).await;
    let mut server = spawn(&database, &[]);
    let visitor = visitor_at(&server.url).await;
    let mut chat = connect(&server.url).await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "first").await;
    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    assert_eq!(sub.next_message().await.text, "first");

    // Four writers publish as fast as they can; the server is killed while they do.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, u64)>();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (mut chat, visitor, conv, tx) =
            (chat.clone(), visitor.clone(), conv.clone(), tx.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("w{w}-{i}");
                match publish(&mut chat, &visitor, send(&conv, "", &id, &id)).await {
                    Ok(ack) => tx.send((id, ack.seq)).unwrap(),
                    Err(_) => break,
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let mut acked = Vec::new();
    while let Some(a) = rx.recv().await {
        acked.push(a);
    }
    assert!(
        acked.len() > 10,
        "some messages were acked before the kill ({})",
        acked.len()
    );
    // The visitor's stream ends with an error, not silently with success.
    let mut ended = false;
    for _ in 0..100_000 {
        match tokio::time::timeout(WAIT, sub.stream.message())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended);

    // Restart on the same database.
    let mut server = spawn(&database, &[]);
    let mut chat = connect(&server.url).await;
    let h = history(&mut chat, &visitor, &conv).await;
    let mut all = h.clone();
    let mut before = h.first().map(|m| m.seq).unwrap_or(0);
    while before > 1 {
        let page = chat
            .get_history(authed(
                &visitor,
                v1::GetHistoryRequest {
                    conversation_id: conv.clone(),
                    before_seq: before,
                    limit: 500,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .messages;
        before = page.first().map(|m| m.seq).unwrap_or(0);
        all.splice(0..0, page);
    }
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "dense, no duplicate"
    );
    for (id, seq) in &acked {
        let m = all
            .iter()
            .find(|m| m.seq == *seq)
            .unwrap_or_else(|| panic!("acked {id} seq {seq} lost"));
        assert_eq!(&m.client_msg_id, id);
    }
    // Resume from the last acked seq the client saw: the rest arrives, then live.
    let last_acked = acked.iter().map(|(_, s)| *s).max().unwrap();
    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), last_acked)], false)
        .await
        .unwrap();
    let newest = *seqs.last().unwrap();
    let mut expect = last_acked + 1;
    while expect <= newest {
        assert_eq!(sub.next_message().await.seq, expect);
        expect += 1;
    }
    let ack = publish(&mut chat, &visitor, send(&conv, "", "after-crash", "back"))
        .await
        .unwrap();
    assert_eq!(ack.seq, newest + 1);
    assert_eq!(sub.next_message().await.seq, newest + 1);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop_database(&database).await;
}

#[tokio::test]
async fn sigterm_closes_streams_cleanly_and_keeps_every_ack() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(&dir).await;
    let mut server = spawn(&database, &[]);
    let visitor = visitor_at(&server.url).await;
    let mut chat = connect(&server.url).await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "hello").await;
    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    sub.next_message().await;
    let (mut c2, v2, conv2) = (chat.clone(), visitor.clone(), conv.clone());
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0.. {
            match publish(&mut c2, &v2, send(&conv2, "", &format!("t{i}"), "x")).await {
                Ok(a) => acked.push(a.seq),
                Err(_) => break,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The stream ends with OK (a clean end), not an error.
    loop {
        match tokio::time::timeout(WAIT, sub.stream.message())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(status) => panic!("expected a clean end of stream, got {status:?}"),
        }
    }
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "graceful exit, got {exit:?}");
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty());
    let mut server = spawn(&database, &[]);
    let mut chat = connect(&server.url).await;
    let last = conversation(&mut chat, &visitor, &conv).await.last_seq;
    assert!(
        last >= *acked.iter().max().unwrap(),
        "every ack survived the shutdown"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop_database(&database).await;
}

/// Files in a directory (none if it does not exist).
fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a 5 MB upload on a raw connection and sends its first MB (the rest never comes).
async fn start_partial_upload(url: &str, visitor: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!(
            "POST /uploads?name=big.pdf HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {visitor}\r\n\
             content-length: 5242880\r\n\r\n%PDF-1.4\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    c.write_all(&vec![b' '; 1024 * 1024]).await.unwrap();
    c
}

/// Waits until the spool holds one file with most of the first MB in it; its path.
async fn wait_spooled(spool: &std::path::Path) -> std::path::PathBuf {
    for _ in 0..250 {
        if let [name] = files_in(spool).as_slice() {
            let path = spool.join(name);
            if std::fs::metadata(&path).is_ok_and(|m| m.len() >= 512 * 1024) {
                return path;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upload is not being spooled: {:?}", files_in(spool));
}

/// SIGKILL, then the client sees its connection end (no answer).
async fn kill_mid_upload(server: &mut Proc, mut c: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut rest)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains(" 201 "),
        "the partial upload was not accepted"
    );
}

/// A whole 2 MB upload on a restarted server, sent in a message and downloaded by its link:
/// the same bytes. Returns the upload id.
async fn upload_send_download(url: &str) -> String {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut chat = connect(url).await;
    let visitor = visitor_at(url).await;
    let mut body = b"%PDF-1.4\n".to_vec();
    body.extend((0..2 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let res = client
        .request(
            http::Request::post(format!("{url}/uploads?name=ok.pdf"))
                .header("authorization", format!("Bearer {visitor}"))
                .body(Full::new(body.clone().into()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let json = res.into_body().collect().await.unwrap().to_bytes();
    let up: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let id = up["id"].as_str().unwrap().to_owned();
    let ack = publish(
        &mut chat,
        &visitor,
        ev(wsmschat::v1::client_event::Event::SendMessage(
            v1::SendMessage {
                topic: "Order".into(),
                client_msg_id: "after-crash".into(),
                attachment_ids: vec![id.clone()],
                ..Default::default()
            },
        )),
    )
    .await
    .unwrap();
    let page = history(&mut chat, &visitor, &ack.conversation_id).await;
    let a = &page[0].attachments[0];
    assert_eq!((a.id.as_str(), a.size), (id.as_str(), body.len() as u64));
    let res = client
        .request(
            http::Request::get(format!("{url}{}", a.url))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = res.into_body().collect().await.unwrap().to_bytes();
    assert!(got == body, "the file downloads intact");
    id
}

#[tokio::test]
async fn a_server_killed_mid_upload_leaves_no_partial_file() {
    // SQLite and the directory store: the files are on this disk to look at.
    let dir = tempfile::tempdir().unwrap();
    let database = wsmschat_server::Database::Sqlite(dir.path().join("wsmschat.db"));
    let mut server = spawn(&database, &[]);
    let visitor = visitor_at(&server.url).await;
    // 1 MB of a 5 MB upload is sent, then the server is killed.
    let c = start_partial_upload(&server.url, &visitor).await;
    let spool = dir.path().join("files/tmp");
    let objects = dir.path().join("files/objects");
    wait_spooled(&spool).await;
    kill_mid_upload(&mut server, c).await;
    assert!(
        files_in(&objects).is_empty(),
        "nothing half-written is stored"
    );

    // After a restart: the spool is swept, nothing names a partial file, uploads work.
    let server = spawn(&database, &[]);
    assert!(
        files_in(&spool).is_empty(),
        "the spool file was swept at start"
    );
    assert!(files_in(&objects).is_empty());
    let id = upload_send_download(&server.url).await;
    assert_eq!(
        files_in(&objects),
        vec![id],
        "one whole file, named by its row"
    );
}

/// Rows of a table in the database at `url`.
async fn count_rows(url: &str, table: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_server_killed_mid_upload_on_postgresql_leaves_no_partial_file() {
    // PostgreSQL keeps the files (table file_chunks); the spool is in the files directory.
    let dir = tempfile::tempdir().unwrap();
    let database = postgres_database(&postgres_base()).await;
    let wsmschat_server::Database::Postgres { url, .. } = &database else {
        unreachable!()
    };
    let files_dir = dir.path().to_str().unwrap().to_owned();
    let args = ["--files-dir", files_dir.as_str()];
    let mut server = spawn(&database, &args);
    let visitor = visitor_at(&server.url).await;
    let c = start_partial_upload(&server.url, &visitor).await;
    let spool = dir.path().join("tmp");
    let partial = wait_spooled(&spool).await;
    kill_mid_upload(&mut server, c).await;
    assert_eq!(count_rows(url, "file_chunks").await, 0, "no byte stored");
    assert_eq!(count_rows(url, "uploads").await, 0, "no row names it");

    let server = spawn(&database, &args);
    assert!(
        !partial.exists() && files_in(&spool).is_empty(),
        "the spool file was swept at start: {:?}",
        files_in(&spool)
    );
    let id = upload_send_download(&server.url).await;
    assert_eq!(count_rows(url, "uploads").await, 1);
    assert!(
        count_rows(url, "file_chunks").await >= 8,
        "2 MB in 256 KiB rows"
    );
    assert!(
        files_in(&spool).is_empty(),
        "the spool file went into the database"
    );
    assert!(id.starts_with("f_"));
    drop(server);
    drop_database(&database).await;
}

#[tokio::test]
async fn a_webhook_in_flight_when_the_server_is_killed_goes_out_after_the_restart() {
    use common::receiver::Receiver;
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(&dir).await;
    let args = ["--webhooks-allow-private", "--webhook-timeout-secs", "1"];
    let r = Receiver::start().await;
    r.inbox.hang.store(true, Ordering::SeqCst);
    let mut server = spawn(&database, &args);
    webhook_at(&server.url, &r.url).await;
    let visitor = visitor_at(&server.url).await;
    let mut chat = connect(&server.url).await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "in flight").await;
    // The delivery is on the wire (the receiver holds it) when the server dies.
    r.wait("the first attempt", |g| !g.is_empty()).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    r.inbox.hang.store(false, Ordering::SeqCst);

    let server = spawn(&database, &args);
    // And a message sent after the restart follows it.
    let mut chat = connect(&server.url).await;
    publish(&mut chat, &visitor, send(&conv, "", &uuid(), "after"))
        .await
        .unwrap();
    let got = r
        .wait("the resend and the next message", |g| g.len() >= 3)
        .await;
    assert_eq!(
        got[1].id, got[0].id,
        "the one in flight is sent again, same id"
    );
    assert_eq!(got[1].json["data"]["message"]["text"], "in flight");
    assert_eq!(
        got[2].json["data"]["message"]["text"], "after",
        "then, in order, the next"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.got().len(), 3, "nothing else twice");
    drop(server);
    drop_database(&database).await;
}

#[tokio::test]
async fn an_email_committed_before_a_sigkill_still_goes_out_once() {
    use common::smtp::SmtpServer;
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(&dir).await;
    let smtp = SmtpServer::start().await;
    let smtp_url = smtp.url();
    let args = [
        "--smtp-url",
        &smtp_url,
        "--mail-from",
        "support@shop.test",
        "--public-url",
        "https://chat.test",
        "--email-minute-ms",
        "300",
    ];
    let mut server = spawn(&database, &args);
    let visitor =
        wsmschat::v1::session_service_client::SessionServiceClient::connect(server.url.clone())
            .await
            .unwrap()
            .start_visitor_session(v1::StartVisitorSessionRequest {
                site_key: "demo".into(),
                email: "vera@example.com".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .visitor_token;
    let mut chat = connect(&server.url).await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "hi").await;
    let admin =
        wsmschat::v1::session_service_client::SessionServiceClient::connect(server.url.clone())
            .await
            .unwrap()
            .login(v1::LoginRequest {
                email: ADMIN_EMAIL.into(),
                password: ADMIN_PASSWORD.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
    // The reply is acked (committed with its pending email), then the server dies at once,
    // well before the 900 ms delay.
    publish(
        &mut chat,
        &admin,
        send(&conv, "", &uuid(), "before the crash"),
    )
    .await
    .unwrap();
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(smtp.mails().is_empty());
    let server = spawn(&database, &args);
    let mails = smtp.wait(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails().len(), 1, "once");
    let text = mails[0].parsed().body_text(0).unwrap().into_owned();
    assert!(text.contains("before the crash"), "{text}");
    drop(server);
    drop_database(&database).await;
}
