//! A webhook receiver for tests: axum on a loopback port, recording every request (headers,
//! raw body, parsed JSON, arrival time); it can answer an error status or hang.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub at: Instant,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
}

#[derive(Clone, Default)]
pub struct Inbox {
    pub got: Arc<Mutex<Vec<Got>>>,
    /// The status to answer (0: 200).
    pub status: Arc<AtomicU16>,
    /// Never answer.
    pub hang: Arc<AtomicBool>,
}

/// An HTTP receiver on a loopback port.
pub struct Receiver {
    pub url: String,
    pub inbox: Inbox,
}

async fn receive(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    inbox.got.lock().unwrap().push(Got {
        at: Instant::now(),
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        body: body.to_vec(),
    });
    if inbox.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    match inbox.status.load(Ordering::SeqCst) {
        0 => (StatusCode::OK, "ok"),
        s => (
            StatusCode::from_u16(s).unwrap(),
            "boom: the receiver is down",
        ),
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let inbox = Inbox::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inbox }
    }

    pub fn got(&self) -> Vec<Got> {
        self.inbox.got.lock().unwrap().clone()
    }

    /// Waits until `f` holds for what arrived.
    pub async fn wait(&self, what: &str, f: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if f(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}",
                got.iter()
                    .map(|g| (g.id.clone(), g.json["type"].clone()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
