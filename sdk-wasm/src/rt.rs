//! Small browser runtime helpers: timers, randomness, storage with an in-memory fallback.

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: i32) -> JsValue;
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms.min(i32::MAX as u32) as i32);
    });
    let _ = JsFuture::from(p).await;
}

/// Milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A random id for idempotency keys (`client_msg_id`): time + 106 random bits, base 36.
pub fn new_id() -> String {
    let r = || (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let mut out = String::with_capacity(32);
    push_base36(&mut out, now_ms() as u64);
    out.push('-');
    push_base36(&mut out, r());
    push_base36(&mut out, r());
    out
}

fn push_base36(out: &mut String, mut n: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Backoff before reconnect attempt `attempt` (1-based): 500 ms doubling up to 30 s, with
/// "equal jitter" (half fixed, half random) so clients of a restarted server spread out.
pub fn backoff_ms(attempt: u32) -> u32 {
    let cap = 500u32
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(30_000);
    cap / 2 + (js_sys::Math::random() * f64::from(cap / 2)) as u32
}

thread_local! {
    static MEMORY: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Where the SDK keeps the visitor token and the outbox: localStorage when the page may use
/// it, else memory for the page's lifetime (private mode, sandboxed iframes, blocked storage).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Local,
    Memory,
}

fn local() -> Option<web_sys::Storage> {
    // Reading `window.localStorage` itself throws when storage is blocked.
    web_sys::window()?.local_storage().ok().flatten()
}

impl Store {
    pub fn get(self, key: &str) -> Option<String> {
        if self == Store::Local {
            if let Some(s) = local() {
                if let Ok(v) = s.get_item(key) {
                    return v;
                }
            }
        }
        MEMORY.with(|m| m.borrow().get(key).cloned())
    }

    pub fn set(self, key: &str, value: &str) {
        if self == Store::Local {
            if let Some(s) = local() {
                if s.set_item(key, value).is_ok() {
                    return;
                }
            }
        }
        MEMORY.with(|m| m.borrow_mut().insert(key.to_owned(), value.to_owned()));
    }

    pub fn remove(self, key: &str) {
        if self == Store::Local {
            if let Some(s) = local() {
                let _ = s.remove_item(key);
            }
        }
        MEMORY.with(|m| m.borrow_mut().remove(key));
    }
}

/// Logs an error to the console.
pub fn error(msg: &str) {
    web_sys::console::error_1(&JsValue::from_str(msg));
}
