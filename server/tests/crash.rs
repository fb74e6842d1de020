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

#[tokio::test]
async fn a_server_killed_mid_upload_leaves_no_partial_file() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // SQLite and the directory store: the files are on this disk to look at.
    let dir = tempfile::tempdir().unwrap();
    let database = wsmschat_server::Database::Sqlite(dir.path().join("wsmschat.db"));
    let mut server = spawn(&database, &[]);
    let visitor = visitor_at(&server.url).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    // 1 MB of a 5 MB upload is sent, then the server is killed.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
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
    let spool = dir.path().join("files/tmp");
    let objects = dir.path().join("files/objects");
    for _ in 0..100 {
        if !files_in(&spool).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files_in(&spool).len(), 1, "the upload is being spooled");
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest).await;
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
    let mut chat = connect(&server.url).await;
    let visitor = visitor_at(&server.url).await;
    let body = b"%PDF-1.4\nsmall but whole\n".to_vec();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let res = client
        .request(
            http::Request::post(format!("{}/uploads?name=ok.pdf", server.url))
                .header("authorization", format!("Bearer {visitor}"))
                .body(http_body_util::Full::new(body.clone().into()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let json = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
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
    assert_eq!(page[0].attachments[0].size, body.len() as u64);
    assert_eq!(
        files_in(&objects),
        vec![id],
        "one whole file, named by its row"
    );
}
