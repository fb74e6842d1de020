//! Blocking (issue #15, safety): staff hold a visitor, an email or an IP range off a site's
//! chat, with a reason; each block and unblock is audited.
//!
//! Where a block bites:
//! - A blocked visitor's token stops resolving ([`crate::auth`] reads `visitors.blocked_by`
//!   with the token): every call is refused with CHAT_UNAVAILABLE, and their open streams end
//!   on every node at once (a [`Revoked::Visitor`] per visitor, over the bus).
//! - A session start is refused when its visitor is blocked, or its email or address is
//!   ([`Core::refuse_blocked`]); so is a new conversation from a blocked address.
//! - An IP block also holds off the visitors seen from the range in the last day.
//!
//! The refusal is neutral ("the chat is not available"): the widget shows no more.

use std::net::IpAddr;

use ipnet::IpNet;
use wsmschat::v1;

use super::access::AdminGrant;
use super::{Core, Revoked, check_no_nul};
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};
use crate::store::blocks::{Actor, MIN_PREFIX_V4, MIN_PREFIX_V6};
use crate::util::{new_id, now_ms};

/// Longest block value (an email's limit) and reason, bytes.
pub const MAX_BLOCK_VALUE_BYTES: usize = 320;
pub const MAX_BLOCK_REASON_BYTES: usize = 500;

/// A block's value as stored: the visitor id, the email in lower case, or the canonical network
/// (an address is a /32 or /128); and the network of an IP block.
fn normalize(kind: v1::BlockKind, value: &str) -> CoreResult<(String, Option<IpNet>)> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_BLOCK_VALUE_BYTES {
        return Err(CoreError::InvalidArgument(format!(
            "value must be 1 to {MAX_BLOCK_VALUE_BYTES} bytes"
        )));
    }
    check_no_nul(value, "value")?;
    match kind {
        v1::BlockKind::Visitor => {
            if !value.starts_with("v_") || value.len() > 64 {
                return Err(CoreError::InvalidArgument(
                    "a visitor block's value is a visitor id (v_...)".into(),
                ));
            }
            Ok((value.to_owned(), None))
        }
        v1::BlockKind::Email => {
            let email = value.to_lowercase();
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
            });
            if !valid {
                return Err(CoreError::InvalidArgument(format!(
                    "{value:?} is not an email address"
                )));
            }
            Ok((email, None))
        }
        v1::BlockKind::Ip => {
            let net = match value.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match value.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(CoreError::InvalidArgument(format!(
                            "{value:?} is not an IP address or CIDR range (e.g. 198.51.100.0/24)"
                        )));
                    }
                },
            };
            // An IPv4-mapped IPv6 address is its IPv4 address.
            let net = match net {
                IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                    Some(v4) if v6.prefix_len() >= 96 => {
                        IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                            .expect("a mapped prefix fits IPv4")
                    }
                    _ => net,
                },
                IpNet::V4(_) => net,
            };
            let (len, min) = match net {
                IpNet::V4(n) => (n.prefix_len(), MIN_PREFIX_V4),
                IpNet::V6(n) => (n.prefix_len(), MIN_PREFIX_V6),
            };
            if len < min {
                return Err(CoreError::InvalidArgument(format!(
                    "/{len} is too wide to block (at most /{MIN_PREFIX_V4} for IPv4, /{MIN_PREFIX_V6} for IPv6)"
                )));
            }
            let net = net.trunc();
            Ok((net.to_string(), Some(net)))
        }
        v1::BlockKind::Unspecified => Err(CoreError::InvalidArgument(
            "kind is required (visitor, email or ip)".into(),
        )),
    }
}

fn actor(principal: &Principal) -> Actor {
    let (_, _, name) = principal.author();
    Actor {
        key: principal.author_key(),
        name,
    }
}

impl Core {
    /// Staff of a site (agents who may see it, admins, chat keys of it) may block and unblock.
    fn require_site_staff(&self, principal: &Principal, site_id: &str) -> CoreResult<()> {
        Self::require_staff(principal)?;
        check_no_nul(site_id, "site_id")?;
        if !self.may_see_site(principal, site_id) {
            return Err(CoreError::NotFound("site not found".into()));
        }
        Ok(())
    }

    /// Blocks a visitor, an email or a network on a site; the visitors it holds off lose their
    /// sessions on every node. (The RPC layer charged the caller's rate limits.)
    pub async fn create_block(
        &self,
        principal: &Principal,
        r: v1::CreateBlockRequest,
    ) -> CoreResult<v1::CreateBlockResponse> {
        Self::require_staff(principal)?;
        check_no_nul(&r.site_id, "site_id")?;
        let kind = v1::BlockKind::try_from(r.kind).unwrap_or_default();
        let (value, network) = normalize(kind, &r.value)?;
        let reason = r.reason.trim().to_owned();
        if reason.is_empty() || reason.len() > MAX_BLOCK_REASON_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "reason is required, at most {MAX_BLOCK_REASON_BYTES} bytes"
            )));
        }
        check_no_nul(&reason, "reason")?;
        let site_id = if kind == v1::BlockKind::Visitor {
            // The visitor names the site; a site id given must be theirs.
            let visitor = self
                .store
                .visitor_by_id(&value)
                .await
                .map_err(|_| CoreError::NotFound("visitor not found".into()))?;
            if !r.site_id.is_empty() && r.site_id != visitor.site_id {
                return Err(CoreError::NotFound("visitor not found".into()));
            }
            if !self.may_see_site(principal, &visitor.site_id) {
                return Err(CoreError::NotFound("visitor not found".into()));
            }
            visitor.site_id
        } else {
            if r.site_id.is_empty() {
                return Err(CoreError::InvalidArgument("site_id is required".into()));
            }
            self.require_site_staff(principal, &r.site_id)?;
            self.site(&r.site_id).await?;
            r.site_id
        };
        let by = actor(principal);
        let block = v1::Block {
            id: new_id("bl_"),
            site_id,
            kind: kind as i32,
            value,
            reason,
            created_by: by.key,
            created_by_name: by.name,
            created_at_ms: now_ms(),
        };
        let (block, visitors) = self.store.create_block(block, network).await?;
        for id in &visitors {
            self.revoke(Revoked::Visitor(id.clone()));
        }
        tracing::info!(block = %block.id, site = %block.site_id, kind = ?kind, visitors = visitors.len(), by = %block.created_by, "Blocked");
        Ok(v1::CreateBlockResponse {
            block: Some(block),
            visitors_blocked: visitors.len() as u32,
        })
    }

    /// Lifts a block.
    pub async fn delete_block(&self, principal: &Principal, block_id: String) -> CoreResult<()> {
        Self::require_staff(principal)?;
        check_no_nul(&block_id, "block_id")?;
        let block = self
            .store
            .block_by_id(&block_id)
            .await
            .map_err(|_| CoreError::NotFound("block not found".into()))?;
        if !self.may_see_site(principal, &block.site_id) {
            return Err(CoreError::NotFound("block not found".into()));
        }
        let (_, freed) = self.store.delete_block(block_id, actor(principal)).await?;
        // Cached principals of the freed visitors said "blocked": forget them everywhere.
        for id in freed {
            self.revoke(Revoked::Visitor(id));
        }
        Ok(())
    }

    /// A site's blocks, newest first.
    pub async fn list_blocks(
        &self,
        principal: &Principal,
        site_id: String,
    ) -> CoreResult<Vec<v1::Block>> {
        self.require_site_staff(principal, &site_id)?;
        Ok(self.store.list_blocks(&site_id).await?)
    }

    /// A site's audit log, newest first.
    pub async fn audit_log(
        &self,
        _: AdminGrant,
        r: v1::ListAuditLogRequest,
    ) -> CoreResult<Vec<v1::AuditEntry>> {
        check_no_nul(&r.site_id, "site_id")?;
        let limit = match r.limit {
            0 => 100,
            n => n.min(500),
        };
        Ok(self.store.audit_log(&r.site_id, r.before_ms, limit).await?)
    }

    /// Refuses (CHAT_UNAVAILABLE) a session or a new conversation whose email or address a
    /// block of the site names.
    pub(super) async fn refuse_blocked(
        &self,
        site_id: &str,
        email: &str,
        ip: Option<IpAddr>,
    ) -> CoreResult<()> {
        match self.store.matching_block(site_id, email, ip).await? {
            Some(block) => {
                tracing::info!(block = %block.id, site = %site_id, "Refused by a block");
                Err(CoreError::chat_unavailable())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_normalized_and_wide_ranges_refused() {
        let ip = |v: &str| normalize(v1::BlockKind::Ip, v).map(|(s, _)| s);
        assert_eq!(ip("198.51.100.7").unwrap(), "198.51.100.7/32");
        assert_eq!(ip(" 198.51.100.77/24 ").unwrap(), "198.51.100.0/24");
        assert_eq!(ip("::ffff:198.51.100.7").unwrap(), "198.51.100.7/32");
        assert_eq!(ip("2001:db8:1:2::9/48").unwrap(), "2001:db8:1::/48");
        assert!(ip("10.0.0.0/7").is_err());
        assert!(ip("2001:db8::/31").is_err());
        assert!(ip("0.0.0.0/0").is_err());
        assert!(ip("not an ip").is_err());
        let email = |v: &str| normalize(v1::BlockKind::Email, v).map(|(s, _)| s);
        assert_eq!(email(" Spam@Example.COM ").unwrap(), "spam@example.com");
        assert!(email("nobody").is_err());
        assert!(email("a b@example.com").is_err());
        assert!(normalize(v1::BlockKind::Visitor, "c_123").is_err());
        assert!(normalize(v1::BlockKind::Unspecified, "x").is_err());
        assert!(normalize(v1::BlockKind::Email, &"a".repeat(400)).is_err());
    }
}
