//! Floods with bounded loops against the server binary (its own process, jemalloc as in
//! production, memory read from /proc): the server stays responsive and its memory bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wsmschat::v1;
use wsmschat::v1::session_service_client::SessionServiceClient;

/// Peak resident memory of a process so far, KiB (Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_keeps_memory_bounded_and_other_calls_fast() {
    let dir = tempfile::tempdir().unwrap();
    let db = test_database(&dir).await;
    let server = spawn(&db, &[]);
    let pid = server.child.id();
    let token = visitor_at(&server.url).await;
    let mut chat =
        wsmschat::v1::chat_service_client::ChatServiceClient::connect(server.url.clone())
            .await
            .unwrap();
    let (conv, _) = start_conversation(&mut chat, &token, "Order", "hi").await;
    // 150 logins at once, each a different unknown email (so no per-account lockout helps):
    // unbounded, every one would hash at once, 19 MiB each (the review saw 1.5 GiB).
    let mut clients = Vec::new();
    for _ in 0..150 {
        clients.push(
            SessionServiceClient::connect(server.url.clone())
                .await
                .unwrap(),
        );
    }
    let before = peak_rss_kib(pid);
    let mut flood = Vec::new();
    for (i, mut sessions) in clients.into_iter().enumerate() {
        flood.push(tokio::spawn(async move {
            sessions
                .login(v1::LoginRequest {
                    email: format!("nobody-{i}@example.com"),
                    password: "guess".into(),
                })
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        }));
    }
    // An unrelated visitor's read during the flood.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let h = history(&mut chat, &token, &conv).await;
    let read_took = started.elapsed();
    assert_eq!(h.len(), 1);
    let mut codes = std::collections::HashMap::new();
    for f in flood {
        let code = f.await.unwrap().unwrap_err();
        *codes.entry(code).or_insert(0) += 1;
    }
    let grew_mib = peak_rss_kib(pid).saturating_sub(before) / 1024;
    eprintln!(
        "login flood: {codes:?}, server peak RSS +{grew_mib} MiB, bystander read {read_took:?}"
    );
    assert!(
        codes.keys().all(|c| matches!(
            c,
            tonic::Code::Unauthenticated
                | tonic::Code::ResourceExhausted
                | tonic::Code::Unavailable
        )),
        "{codes:?}"
    );
    assert!(grew_mib < 120, "server peak RSS grew {grew_mib} MiB");
    assert!(read_took < Duration::from_secs(1), "{read_took:?}");
    drop(server);
    drop_database(&db).await;
}
