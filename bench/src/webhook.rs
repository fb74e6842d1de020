//! `--webhook dead|live`: the started server gets a webhook endpoint (every message) pointing
//! at a receiver in this process, so a run measures the chat with webhooks configured:
//! `dead` accepts connections and never answers (each delivery waits for the server's
//! time-out), `live` answers 200 and records each delivery's latency from the message's commit
//! time (`data.message.createdAtMs`) to its arrival.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, anyhow};
use wsmschat::v1;
use wsmschat::v1::admin_service_client::AdminServiceClient;

/// What the receiver saw.
#[derive(Default)]
pub struct Stats {
    pub mode: String,
    /// Deliveries received (live) or connections held (dead).
    pub received: u64,
    /// Latency of each live delivery, ms.
    pub latencies_ms: Vec<f64>,
}

pub static STATS: OnceLock<Arc<Mutex<Stats>>> = OnceLock::new();

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn serve_live(stream: TcpStream, stats: Arc<Mutex<Stats>>) -> std::io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
            {
                len = v.parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let arrived = now_ms();
        let created = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["data"]["message"]["createdAtMs"]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
            });
        {
            let mut s = stats.lock().unwrap();
            s.received += 1;
            if let Some(c) = created {
                s.latencies_ms.push(arrived - c);
            }
        }
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

/// Starts the receiver; its URL.
fn start_receiver(mode: &str) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let stats = Arc::new(Mutex::new(Stats {
        mode: mode.to_owned(),
        ..Default::default()
    }));
    let _ = STATS.set(stats.clone());
    let live = mode == "live";
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            if live {
                let stats = stats.clone();
                std::thread::spawn(move || serve_live(stream, stats));
            } else {
                stats.lock().unwrap().received += 1;
                held.push(stream); // never answered
            }
        }
    });
    Ok(url)
}

fn authed<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ASCII"),
    );
    r
}

/// Creates an admin key with the server's CLI and the endpoint through AdminService.
pub fn configure(bin: &Path, data_dir: &Path, server_url: &str, mode: &str) -> anyhow::Result<()> {
    let hook_url = start_receiver(mode)?;
    let key = crate::server::create_api_key(bin, data_dir, &[], "bench-admin", "admin")?;
    let server_url = server_url.to_owned();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut admin = AdminServiceClient::connect(server_url).await?;
            let site = admin
                .list_sites(authed(&key, v1::ListSitesRequest {}))
                .await?
                .into_inner()
                .sites
                .into_iter()
                .next()
                .context("no site")?;
            admin
                .create_webhook(authed(
                    &key,
                    v1::CreateWebhookRequest {
                        site_id: site.id,
                        url: hook_url,
                        events: vec![v1::WebhookEventType::MessageCreated as i32],
                        description: "bench".into(),
                    },
                ))
                .await?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow!("webhook setup panicked"))??;
    Ok(())
}

/// The receiver's figures, for the report.
pub fn report() -> Option<String> {
    let stats = STATS.get()?.lock().unwrap();
    if stats.mode == "dead" {
        return Some(format!(
            "webhook endpoint (dead, never answers): {} connections held",
            stats.received
        ));
    }
    let mut l = stats.latencies_ms.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Some(format!(
        "webhook endpoint (live): {} deliveries, latency from commit p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        stats.received,
        q(0.5),
        q(0.99),
        l.last().copied().unwrap_or(0.0)
    ))
}
