//! gRPC handlers: thin adapters from tonic requests to the core. Each one authenticates,
//! calls the core and maps errors to statuses; no rule of the chat lives here.

pub mod admin;
pub mod chat;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::Principal;
use crate::core::Core;

/// The TCP peer of a request, put into request extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

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

/// Authenticates a request and checks a visitor's origin.
pub async fn caller<T>(core: &Arc<Core>, req: &Request<T>) -> Result<Caller, Status> {
    let token = bearer(req)?;
    let ip = peer_ip(req);
    // A token not in the cache costs a store read: charged to the address, so a flood of
    // made-up tokens is refused before it reaches the store.
    if !core.auth.is_cached(&token) {
        core.charge_ip(ip)?;
    }
    let principal = core.authenticate(&token).await?;
    core.check_origin(&principal, origin(req).as_deref())
        .await?;
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
