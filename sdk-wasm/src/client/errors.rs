//! JS errors from gRPC statuses, and the server URL a client may talk to.

use js_sys::Reflect;
use tonic::{Code, Status};
use wasm_bindgen::prelude::*;

pub(crate) fn normalize_server(raw: &str) -> Result<String, JsValue> {
    let s = raw.trim().trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(error(
            Code::InvalidArgument,
            &format!("wsmschat: `server` must be an http(s) URL, got {raw:?}"),
        ));
    }
    Ok(s.to_owned())
}

/// A JS `Error` with the gRPC status `code` and `codeName`.
pub(crate) fn error(code: Code, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = Reflect::set(&e, &"code".into(), &JsValue::from_f64(code as i32 as f64));
    let _ = Reflect::set(&e, &"codeName".into(), &format!("{code:?}").into());
    e.into()
}

/// [`error`], with the server's machine-readable `reason` (e.g. "CHAT_UNAVAILABLE") when the
/// status carries one, and `retryAfterS` for quotas.
pub(crate) fn status_error(code: Code, message: &str, s: &Status) -> JsValue {
    let e = error(code, message);
    if let Some(info) = wsmschat::errors::error_info(s.details()) {
        let _ = Reflect::set(&e, &"reason".into(), &JsValue::from_str(&info.reason));
        if let Some(secs) = info
            .get("retry_after_s")
            .and_then(|v| v.parse::<u32>().ok())
        {
            let _ = Reflect::set(&e, &"retryAfterS".into(), &JsValue::from_f64(secs as f64));
        }
    }
    e
}

/// The server's reason, when the status carries one. A refusal with a reason is final for
/// automatic retries: quotas last minutes to an hour, a block until it is lifted.
pub(super) fn reason(s: &Status) -> Option<String> {
    wsmschat::errors::error_info(s.details()).map(|i| i.reason)
}

/// Transport failures surface as `Unknown` with a fetch message: call them `Unavailable`.
pub(super) fn classify(server: &str, s: &Status) -> (Code, String) {
    let msg = s.message();
    if s.code() == Code::Unknown && (msg.contains("fetch") || msg.contains("JS API error")) {
        return (
            Code::Unavailable,
            format!(
                "cannot reach the chat server at {server} (it is down, the network is offline, or \
                 this page's origin is not allowed by the server's CORS settings)"
            ),
        );
    }
    let text = if msg.is_empty() {
        format!("{:?}", s.code())
    } else {
        msg.to_owned()
    };
    (s.code(), text)
}
