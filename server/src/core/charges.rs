//! What each call costs, and the limits that refuse it: per-token and per-address event rates,
//! new visitors and conversations per address, login failure throttles, and the slots that
//! bound expensive work (password hashing, searches).

use std::time::Duration;

use super::{Core, MAX_SEARCH_BYTES, check_no_nul, limits};
use crate::error::{CoreError, CoreResult};
use limits::RateLimiter;

impl Core {
    /// Runs `f` (an argon2 hash or verify) on the hash pool, at most `hash_concurrency` at
    /// once; waits at most 5 s for a slot (UNAVAILABLE then), so a login flood costs bounded
    /// memory and never takes the threads store reads run on.
    pub(super) async fn with_hash_slot<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> CoreResult<T> {
        let permit = tokio::time::timeout(Duration::from_secs(5), self.hash_permits.acquire())
            .await
            .map_err(|_| {
                CoreError::Unavailable("the server is busy with logins; try again shortly".into())
            })?
            .map_err(|_| CoreError::Unavailable("shutting down".into()))?;
        let out = self
            .hash_pool
            .run(f)
            .await
            .ok_or_else(|| CoreError::internal("password hashing failed"))?;
        drop(permit);
        Ok(out)
    }

    /// Refuses a login attempt while its account or address is locked out.
    pub(super) fn login_allowed(
        &self,
        email: &str,
        ip: Option<std::net::IpAddr>,
    ) -> CoreResult<()> {
        let account = email.trim().to_lowercase();
        let wait = [
            self.login_by_account.locked_for(&account),
            ip.and_then(|ip| self.login_by_ip.locked_for(&limits::ip_key(ip))),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(d) => Err(CoreError::ResourceExhausted(format!(
                "too many failed logins; try again in {} s",
                d.as_secs().max(1)
            ))),
            None => Ok(()),
        }
    }

    /// Records a login outcome for the throttles.
    pub(super) fn login_result(&self, email: &str, ip: Option<std::net::IpAddr>, ok: bool) {
        let account = email.trim().to_lowercase();
        if ok {
            self.login_by_account.succeeded(&account);
        } else {
            self.login_by_account.failed(&account);
            if let Some(ip) = ip {
                self.login_by_ip.failed(&limits::ip_key(ip));
            }
        }
    }

    /// Checks a search query and takes a search slot (held while the search runs).
    pub(super) async fn search_slot(
        &self,
        query: &str,
    ) -> CoreResult<tokio::sync::SemaphorePermit<'_>> {
        if query.len() > MAX_SEARCH_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "query is {} bytes; the limit is {MAX_SEARCH_BYTES}",
                query.len()
            )));
        }
        check_no_nul(query, "query")?;
        tokio::time::timeout(Duration::from_secs(10), self.search_permits.acquire())
            .await
            .map_err(|_| CoreError::Unavailable("too many searches at once; try again".into()))?
            .map_err(|_| CoreError::Unavailable("shutting down".into()))
    }

    /// Charges one event to the caller's and the IP's rate limits.
    pub fn charge(&self, principal_key: &str, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        if !self.token_limiter.check(principal_key) {
            return Err(CoreError::ResourceExhausted(format!(
                "too many events: at most {}/s per token (burst {})",
                self.config.events_per_second, self.config.events_burst
            )));
        }
        if let Some(ip) = ip {
            if !self.ip_limiter.check(&limits::ip_key(ip)) {
                return Err(CoreError::ResourceExhausted(format!(
                    "too many events from {ip}: at most {}/s per address",
                    self.config.ip_events_per_second
                )));
            }
        }
        Ok(())
    }

    /// A new visitor from `ip` (flood of fresh visitor tokens).
    pub(super) fn charge_new_visitor(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        Self::charge_per_minute(
            &self.new_visitor_limiter,
            ip,
            "new visitors",
            self.config.new_visitors_per_minute,
        )
    }

    /// A new conversation from `ip`.
    pub(super) fn charge_new_conversation(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        Self::charge_per_minute(
            &self.new_conversation_limiter,
            ip,
            "new conversations",
            self.config.new_conversations_per_minute,
        )
    }

    fn charge_per_minute(
        limiter: &RateLimiter,
        ip: Option<std::net::IpAddr>,
        what: &str,
        per_minute: u32,
    ) -> CoreResult<()> {
        match ip {
            Some(ip) if !limiter.check(&limits::ip_key(ip)) => Err(CoreError::ResourceExhausted(
                format!("too many {what} from {ip}: at most {per_minute}/min"),
            )),
            _ => Ok(()),
        }
    }

    /// Charges the IP limiter alone (session starts, logins).
    pub(super) fn charge_ip(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        match ip {
            Some(ip) if !self.ip_limiter.check(&limits::ip_key(ip)) => Err(
                CoreError::ResourceExhausted(format!("too many requests from {ip}")),
            ),
            _ => Ok(()),
        }
    }
}
