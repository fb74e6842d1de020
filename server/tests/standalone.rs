//! The server binary alone: copied to an empty directory (no repository folders beside it), it
//! serves the widget, the console, the SDK and the demo page from the copy built into it, with
//! ETags, revalidation, caching by URL and precompressed bodies, and logs plain text to a pipe.
//!
//! Needs the web assets built before the server (`scripts/build-web`, which `scripts/test-all`
//! runs first); without `widget/dist` in the checkout there is nothing to embed and the test
//! says so and passes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn get(port: u16, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    // A header sent more than once (Vary) reads as one list.
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let e = headers.entry(k.trim().to_ascii_lowercase()).or_default();
        if !e.is_empty() {
            e.push_str(", ");
        }
        e.push_str(v.trim());
    }
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test]
async fn a_binary_alone_serves_the_widget_console_sdk_and_demo_from_itself() {
    let root = repo();
    if !root.join("widget/dist/widget.js").is_file() || !root.join("console/dist").is_dir() {
        eprintln!(
            "SKIPPED: no widget/dist or console/dist in this checkout (run scripts/build-web)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("wsmschat");
    std::fs::copy(env!("CARGO_BIN_EXE_wsmschat"), &bin).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WSMSCHAT_DATA_DIR", dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "WSMSCHAT_WIDGET_DIR",
        "WSMSCHAT_CONSOLE_DIR",
        "WSMSCHAT_SDK_DIR",
        "WSMSCHAT_DEMO_DIR",
        "WSMSCHAT_DATABASE_URL",
        "WSMSCHAT_REDIS_URL",
        "WSMSCHAT_LISTEN",
        "WSMSCHAT_DEMO_LISTEN",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _ = child.stderr.take();
    let _guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let (mut port, mut demo_port) = (0u16, 0u16);
    while port == 0 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address printed; so far: {printed:#?}"));
        if let Some(url) = line.strip_prefix("wsmschat listening on http://localhost:") {
            port = url.parse().unwrap();
        }
        if let Some(url) = line.strip_prefix("wsmschat demo page on http://localhost:") {
            demo_port = url.trim_end_matches('/').parse().unwrap();
        }
        printed.push(line);
    }
    let all = printed.join("\n");
    assert!(
        !all.contains('\u{1b}'),
        "colour codes in a piped log:\n{all}"
    );
    assert!(!all.contains("Not served"), "{all}");
    assert!(all.contains("built into the binary"), "{all}");
    assert!(demo_port != 0, "no demo page: {all}");

    // The loader: the build's bytes, a strong ETag, fresh for 5 minutes, then a 304.
    let js = get(port, "/widget.js", &[]).await;
    assert_eq!(js.status, 200);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.headers["cache-control"], "public, max-age=300");
    assert_eq!(js.headers["x-content-type-options"], "nosniff");
    assert_eq!(js.headers["cross-origin-resource-policy"], "cross-origin");
    assert_eq!(
        js.body,
        std::fs::read(root.join("widget/dist/widget.js")).unwrap()
    );
    let etag = js.headers["etag"].clone();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let again = get(port, "/widget.js", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["etag"], etag);
    let other = get(port, "/widget.js", &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(other.status, 200);

    // A versioned module: immutable, and brotli (the copy written at build time) when accepted.
    let ui = get(
        port,
        "/widget/ui.js?v=0123abcd",
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(ui.status, 200);
    assert_eq!(
        ui.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(ui.headers["content-encoding"], "br");
    assert!(
        ui.headers["vary"].contains("accept-encoding"),
        "{:?}",
        ui.headers
    );
    assert_eq!(
        ui.body,
        std::fs::read(root.join("widget/dist/ui.js.br")).unwrap()
    );
    let plain = get(
        port,
        "/widget/ui.js?v=0123abcd",
        &[("accept-encoding", "br;q=0")],
    )
    .await;
    assert!(!plain.headers.contains_key("content-encoding"));
    assert_eq!(
        plain.body,
        std::fs::read(root.join("widget/dist/ui.js")).unwrap()
    );

    // The SDK's wasm, gzip for a client without brotli.
    let wasm = get(
        port,
        "/sdk/wsmschat_sdk_bg.wasm",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(wasm.status, 200);
    assert_eq!(wasm.headers["content-type"], "application/wasm");
    assert_eq!(wasm.headers["content-encoding"], "gzip");
    assert_eq!(
        wasm.body,
        std::fs::read(root.join("sdk-wasm/dist/wsmschat_sdk_bg.wasm.gz")).unwrap()
    );

    // The console: its page with the app's security headers, revalidated on every use.
    let console = get(port, "/console/", &[]).await;
    assert_eq!(console.status, 200);
    assert_eq!(console.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(console.headers["cache-control"], "no-cache");
    assert!(console.headers["content-security-policy"].contains("frame-ancestors 'none'"));
    assert_eq!(
        console.body,
        std::fs::read(root.join("console/dist/index.html")).unwrap()
    );
    let app = get(port, "/console/app.js", &[]).await;
    assert_eq!(app.status, 200);

    // The demo shop on its own port, with the generated config naming this server.
    let shop = get(demo_port, "/", &[]).await;
    assert_eq!(shop.status, 200);
    assert_eq!(
        shop.body,
        std::fs::read(root.join("examples/embed/index.html")).unwrap()
    );
    let config = get(demo_port, "/config.js", &[]).await;
    assert!(String::from_utf8_lossy(&config.body).contains(&format!(":{port}'")));

    // Nothing else is there.
    assert_eq!(get(port, "/widget/nope.js", &[]).await.status, 404);
    assert_eq!(get(port, "/console/../Cargo.toml", &[]).await.status, 404);
}
