//! wsmschat browser SDK: the `ChatClient` JS class (wasm-bindgen) over gRPC-web.
//!
//! To its user a `ChatClient` is one duplex connection: it hides the browser transport split
//! (one `ChatService.Subscribe` server stream + unary `ChatService.Publish` calls, because
//! gRPC-web cannot stream from the browser). It
//!
//! - opens exactly one stream per client (a page should have one client: HTTP/1.1 allows six
//!   connections per host and every open stream holds one);
//! - reconnects with jittered exponential backoff (0.5 s doubling to 30 s, reset by the stream's
//!   `ready`), immediately when the browser comes back online, and when the server stops sending
//!   heartbeats for 2.5 intervals;
//! - resumes every conversation it has seen from the last `seq` it delivered (the server replays
//!   the gap; the client drops anything at or below that seq: no gap, no duplicate);
//! - keeps unacknowledged sends in an ordered outbox (persisted with the visitor token, so a
//!   reload does not lose them) and retries them with their original `client_msg_id` (the server
//!   answers a retry of a stored message with the original seq, so nothing is stored twice);
//! - reports `connecting` / `online` / `offline` / `closed` as `state` events;
//! - owns the chat state a UI renders: `view(conversationId)` merges history pages, live
//!   messages (each once, by seq) and this client's sends not stored yet (sending, waiting,
//!   failed) with the read marks, and a `view` event says when it changed.
//!
//! Feature `agent` (default) adds the agent, service and admin calls the console needs; the
//! widget is built without it (smaller wasm).
//!
//! Everything but [`state`] is compiled for `wasm32` only. [`state`] (cursors, the outbox,
//! retry and reconnect decisions, the merged conversation views) is plain Rust, built and
//! unit-tested on the host too. Build with `scripts/build-web`.

pub mod state;

#[cfg(all(target_arch = "wasm32", feature = "agent"))]
mod agent;
#[cfg(target_arch = "wasm32")]
#[cfg_attr(not(feature = "agent"), allow(dead_code))]
mod client;
#[cfg(target_arch = "wasm32")]
#[cfg_attr(not(feature = "agent"), allow(dead_code))]
mod js;
#[cfg(target_arch = "wasm32")]
mod raw;
#[cfg(target_arch = "wasm32")]
mod rt;
#[cfg(target_arch = "wasm32")]
mod types;

#[cfg(target_arch = "wasm32")]
pub use client::ChatClient;
