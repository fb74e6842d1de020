//! `/email/unsubscribe`: the link at the foot of every email. A GET shows a confirmation page
//! with a button (link scanners that prefetch must not unsubscribe anyone); the POST, from that
//! button or a mail client's RFC 8058 one-click `List-Unsubscribe-Post`, unsubscribes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::core::Core;

/// The longest token accepted, bytes.
const MAX_TOKEN_BYTES: usize = 512;

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:32em;margin:3em auto\">\
         <h1 style=\"font-size:1.3em\">{title}</h1>{body}</body></html>"
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No script, no framing, forms only to ourselves.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn query(raw: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn token(q: &HashMap<String, String>) -> Option<&str> {
    q.get("t").map(String::as_str).filter(|t| {
        !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && t.bytes().all(|b| b.is_ascii_graphic())
    })
}

/// The confirmation page.
pub async fn unsubscribe_page(RawQuery(q): RawQuery) -> Response {
    let q = query(q);
    let Some(t) = token(&q) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "<p>This unsubscribe link is not complete.</p>",
        );
    };
    // The token is URL-safe base64 and '.', nothing to escape; checked above.
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop emails about your chat conversations?</p>\
             <form method=\"post\" action=\"?t={t}\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}

/// Unsubscribes (the page's button, or one-click from a mail client).
pub async fn unsubscribe(State(core): State<Arc<Core>>, RawQuery(q): RawQuery) -> Response {
    let q = query(q);
    let Some(t) = token(&q) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "<p>This unsubscribe link is not complete.</p>",
        );
    };
    match core.unsubscribe(t).await {
        Ok(()) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You will get no more emails about your chat conversations.</p>",
        ),
        Err(crate::error::CoreError::InvalidArgument(_))
        | Err(crate::error::CoreError::NotFound(_)) => page(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "<p>This unsubscribe link is not valid.</p>",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Unsubscribe failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<p>Something went wrong on our side. Please try again in a minute.</p>",
            )
        }
    }
}
