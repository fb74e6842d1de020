//! Static web apps: the widget, the full SDK, the console and the demo page, from the copy
//! embedded in the binary at build time (`server/build.rs`) or from a folder on disk (an
//! override: `--widget-dir` and friends, or the repository's build output when the server runs
//! from a checkout).
//!
//! Both ways answer alike: a strong ETag and `304 Not Modified` on `If-None-Match`, brotli or
//! gzip when the client accepts it and a precompressed copy exists (`scripts/build-web` writes
//! them; nothing is compressed per request), and one caching rule ([`cache_control`]): a URL
//! carrying the build's version (`?v=...`, which the widget loader puts on everything it loads)
//! is immutable for a year, the loader itself is fresh for 5 minutes, everything else is
//! revalidated on every use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    tree: &'static str,
    path: &'static str,
    body: &'static [u8],
    br: Option<&'static [u8]>,
    gzip: Option<&'static [u8]>,
    /// Quoted, as sent.
    etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Where one static tree comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A folder on disk (served as it is at each request).
    Dir(PathBuf),
    /// The copy built into this binary.
    Embedded,
}

/// The trees built into this binary: "widget", "sdk", "console", "demo".
pub fn embedded(tree: &str) -> bool {
    ASSETS.iter().any(|a| a.tree == tree)
}

/// The number of files and bytes embedded for `tree` (for the start-up log).
pub fn embedded_size(tree: &str) -> (usize, usize) {
    ASSETS
        .iter()
        .filter(|a| a.tree == tree)
        .fold((0, 0), |(n, b), a| (n + 1, b + a.body.len()))
}

fn find(tree: &str, path: &str) -> Option<&'static Asset> {
    static INDEX: OnceLock<HashMap<(&'static str, &'static str), &'static Asset>> = OnceLock::new();
    INDEX
        .get_or_init(|| ASSETS.iter().map(|a| ((a.tree, a.path), a)).collect())
        .get(&(tree, path))
        .copied()
}

/// A service answering GET/HEAD for `tree` from `source`, the request path relative to the
/// tree (nested routers strip their prefix). `index`: a path ending in `/` serves its
/// `index.html`.
pub fn service(tree: &'static str, source: Source, index: bool) -> axum::routing::MethodRouter {
    match source {
        Source::Dir(dir) => {
            let dir = ServeDir::new(dir)
                .append_index_html_on_directories(index)
                .precompressed_br()
                .precompressed_gzip();
            axum::routing::get_service(dir)
        }
        // `get` answers HEAD too, without the body.
        Source::Embedded => axum::routing::get(move |req: Request| async move {
            serve_embedded(tree, index, req.uri().path(), req.headers())
        }),
    }
}

/// One embedded file for one request.
fn serve_embedded(tree: &str, index: bool, path: &str, headers: &HeaderMap) -> Response {
    let mut rel = path.trim_start_matches('/').to_string();
    if index && (rel.is_empty() || rel.ends_with('/')) {
        rel.push_str("index.html");
    }
    let Some(asset) = find(tree, &rel) else {
        // A folder without its slash: as ServeDir does, send the browser to the slash form so
        // the page's relative URLs resolve.
        if index && find(tree, &format!("{rel}/index.html")).is_some() {
            let last = rel.rsplit('/').next().unwrap_or_default();
            return (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, format!("{last}/"))],
            )
                .into_response();
        }
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mime = mime_guess::from_path(asset.path).first_or_octet_stream();
    let etag = HeaderValue::from_static(asset.etag);
    let mut res = Response::builder()
        .header(header::ETAG, etag.clone())
        .header(header::VARY, "accept-encoding");
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == "javascript" {
        res = res.header(
            header::CONTENT_TYPE,
            format!("{}; charset=utf-8", mime.essence_str()),
        );
    } else {
        res = res.header(header::CONTENT_TYPE, mime.essence_str());
    }
    if if_none_match(headers, asset.etag) {
        return res
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    let accept = accepted(headers);
    let (body, encoding) = match (
        asset.br.filter(|_| accept.br),
        asset.gzip.filter(|_| accept.gzip),
    ) {
        (Some(br), _) => (br, Some("br")),
        (None, Some(gz)) => (gz, Some("gzip")),
        (None, None) => (asset.body, None),
    };
    if let Some(e) = encoding {
        res = res.header(header::CONTENT_ENCODING, e);
    }
    res = res.header(header::CONTENT_LENGTH, body.len());
    let body = Body::from(body);
    res.body(body).expect("valid response")
}

/// Whether `If-None-Match` names this ETag (or `*`); weak forms compare equal (RFC 9110 13.1.2).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

#[derive(Debug, Default, Clone, Copy)]
struct Accept {
    br: bool,
    gzip: bool,
}

/// The codings `Accept-Encoding` allows (a `q=0` refuses one).
fn accepted(headers: &HeaderMap) -> Accept {
    let mut a = Accept::default();
    for v in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            match coding.as_str() {
                "br" => a.br = !refused,
                "gzip" | "x-gzip" => a.gzip = !refused,
                "*" if !refused => {
                    a.br = true;
                    a.gzip = true;
                }
                _ => {}
            }
        }
    }
    a
}

/// `Cache-Control` for a static file, by its URL: one carrying the build's version
/// (`?v=...`) never changes; the loader (`/widget.js`), which every customer page fetches and
/// which names that version, stays fresh for 5 minutes so a release reaches every site soon;
/// everything else (the console's modules, the demo) is revalidated each time (a 304).
pub fn cache_control(path: &str, query: Option<&str>) -> &'static str {
    let versioned = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("v=")));
    if versioned {
        "public, max-age=31536000, immutable"
    } else if path == "/widget.js" {
        "public, max-age=300"
    } else {
        "no-cache"
    }
}

/// Middleware: adds [`cache_control`] to successful static responses that have none.
pub async fn caching(req: Request, next: axum::middleware::Next) -> Response {
    let rule = cache_control(req.uri().path(), req.uri().query());
    let mut res = next.run(req).await;
    if res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED {
        res.headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static(rule));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn codings_follow_accept_encoding() {
        let a = accepted(&h(&[("accept-encoding", "gzip, deflate, br, zstd")]));
        assert!(a.br && a.gzip);
        let a = accepted(&h(&[("accept-encoding", "br;q=0, gzip;q=0.5")]));
        assert!(!a.br && a.gzip);
        let a = accepted(&h(&[]));
        assert!(!a.br && !a.gzip);
        let a = accepted(&h(&[("accept-encoding", "*")]));
        assert!(a.br && a.gzip);
    }

    #[test]
    fn etags_match_strong_weak_and_star() {
        let e = "\"abc\"";
        assert!(if_none_match(&h(&[("if-none-match", "\"abc\"")]), e));
        assert!(if_none_match(
            &h(&[("if-none-match", "\"x\", W/\"abc\"")]),
            e
        ));
        assert!(if_none_match(&h(&[("if-none-match", "*")]), e));
        assert!(!if_none_match(&h(&[("if-none-match", "\"abd\"")]), e));
        assert!(!if_none_match(&h(&[]), e));
    }

    #[test]
    fn caching_by_url() {
        assert_eq!(
            cache_control("/widget/ui.js", Some("v=0123abcd")),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("/widget.js", None), "public, max-age=300");
        assert_eq!(cache_control("/console/app.js", None), "no-cache");
        assert_eq!(cache_control("/console/app.js", Some("vv=1")), "no-cache");
    }
}
