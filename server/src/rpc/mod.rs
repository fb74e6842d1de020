//! gRPC handlers: thin adapters from tonic requests to the core. Each one reads the request's
//! metadata (bearer token, client address, `Origin`), calls one core use case and maps its
//! `CoreError` to a status; no rule of the chat lives here, and no handler touches the store.
//!
//! Each handler runs in an `rpc` span (`#[tracing::instrument]`) named by its `method`; once
//! the caller is identified the span gets `principal` (visitor, agent, service) and
//! `principal_id` (never a token). Streams run in their RPC's span too, with the `stream` id
//! the core records; an event's `conversation` is recorded by the core (on the span of a
//! Publish, on an `event` span per Chat event). Whatever is logged inside carries them.

pub mod admin;
pub mod chat;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::Principal;
use crate::core::Core;
use crate::server::PeerAddr;

/// What every handler needs to know about the caller.
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<IpAddr>,
    /// The bearer token (for logout, and for streams to re-check).
    pub token: String,
}

/// The bearer token of a request (metadata `authorization: Bearer <token>`).
pub fn bearer<T>(req: &Request<T>) -> Result<String, Status> {
    let value = req.metadata().get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
    })?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not ASCII"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?
        .trim();
    if token.is_empty() {
        return Err(Status::unauthenticated("empty bearer token"));
    }
    Ok(token.to_owned())
}

/// The client IP of a request.
pub fn peer_ip<T>(req: &Request<T>) -> Option<IpAddr> {
    req.extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .or_else(|| req.remote_addr().map(|a| a.ip()))
}

/// The browser `Origin` of a request, if any.
pub fn origin<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Authenticates a request (see [`Core::identify`]).
pub async fn caller<T>(core: &Arc<Core>, req: &Request<T>) -> Result<Caller, Status> {
    let token = bearer(req)?;
    let ip = peer_ip(req);
    let principal = core.identify(&token, ip, origin(req).as_deref()).await?;
    record_principal(&principal);
    Ok(Caller {
        principal,
        ip,
        token,
    })
}

/// [`caller`], with the call charged to the caller's and the address's rate limits (reads and
/// stream opens; `Publish` is charged per event in the core).
pub async fn charged_caller<T>(core: &Arc<Core>, req: &Request<T>) -> Result<Caller, Status> {
    let who = caller(core, req).await?;
    core.charge(&who.principal.author_key(), who.ip)?;
    Ok(who)
}

/// Records who the caller is on the current span (the RPC's).
fn record_principal(principal: &Principal) {
    let span = tracing::Span::current();
    span.record("principal", principal.kind());
    span.record("principal_id", principal.id());
}
