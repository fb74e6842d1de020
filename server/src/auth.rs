//! Who is calling: bearer tokens to principals, password hashing, identity verification and
//! the `Origin` allowlist. Secrets are stored only as hashes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
// tokio's clock (the system's unless a test pauses it): the cache's TTL is tested on a paused
// clock.
use tokio::time::Instant;
use wsmschat::ids::{AGENT_TOKEN_PREFIX, API_KEY_PREFIX, VISITOR_TOKEN_PREFIX};
use wsmschat::v1;

use crate::error::CoreError;
use crate::store::{Store, StoreError};
use crate::util::now_ms;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A website visitor: sees only their own conversations.
    Visitor {
        /// Visitor id.
        visitor_id: String,
        /// Their site.
        site_id: String,
        /// Display name (may be empty).
        name: String,
    },
    /// A support agent.
    Agent {
        /// The agent.
        agent: v1::Agent,
    },
    /// A backend service.
    Service {
        /// Key id.
        key_id: String,
        /// Key name (author name of its messages).
        name: String,
        /// Scopes granted.
        scopes: Vec<i32>,
        /// Sites it may act on; empty: all.
        site_ids: Vec<String>,
    },
}

impl Principal {
    /// "v:<id>" / "a:<id>" / "k:<id>": the idempotency scope of this caller's sends.
    pub fn author_key(&self) -> String {
        match self {
            Principal::Visitor { visitor_id, .. } => format!("v:{visitor_id}"),
            Principal::Agent { agent } => format!("a:{}", agent.id),
            Principal::Service { key_id, .. } => format!("k:{key_id}"),
        }
    }

    /// "visitor", "agent" or "service": what kind of caller this is (logs, spans).
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Visitor { .. } => "visitor",
            Principal::Agent { .. } => "agent",
            Principal::Service { .. } => "service",
        }
    }

    /// The visitor id, agent id or API key id: who this is in logs and spans (never a token
    /// or a secret).
    pub fn id(&self) -> &str {
        match self {
            Principal::Visitor { visitor_id, .. } => visitor_id,
            Principal::Agent { agent } => &agent.id,
            Principal::Service { key_id, .. } => key_id,
        }
    }

    /// Agents and chat-scoped services see every conversation.
    pub fn is_staff(&self) -> bool {
        match self {
            Principal::Visitor { .. } => false,
            Principal::Agent { .. } => true,
            Principal::Service { scopes, .. } => scopes.contains(&(v1::ApiKeyScope::Chat as i32)),
        }
    }

    /// Admin agents and admin-scoped services.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Agent { agent } => agent.role == v1::AgentRole::Admin as i32,
            Principal::Service { scopes, .. } => scopes.contains(&(v1::ApiKeyScope::Admin as i32)),
            Principal::Visitor { .. } => false,
        }
    }

    /// Who this is, for messages.
    pub fn author(&self) -> (v1::AuthorKind, String, String) {
        match self {
            Principal::Visitor {
                visitor_id, name, ..
            } => (v1::AuthorKind::Visitor, visitor_id.clone(), name.clone()),
            Principal::Agent { agent } => {
                (v1::AuthorKind::Agent, agent.id.clone(), agent.name.clone())
            }
            Principal::Service { key_id, name, .. } => {
                (v1::AuthorKind::Service, key_id.clone(), name.clone())
            }
        }
    }
}

/// SHA-256 of a token, hex: how tokens are stored and looked up. Tokens are 256-bit random,
/// so a fast hash is enough (no brute force to slow down).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id PHC string of a password.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::util::random_bytes::<16>())
        .expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// Checks a password against its argon2 hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// `hex(HMAC-SHA256(secret, user_id))`: what a site's backend computes for a logged-in user.
pub fn identity_hash(secret: &str, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a `user_hash`.
pub fn verify_identity(secret: &str, user_id: &str, user_hash: &str) -> bool {
    let expected = identity_hash(secret, user_id);
    let given = user_hash.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// Does `origin` (e.g. "http://localhost:5173") match an allowlist pattern? Patterns are exact
/// origins, "*" (anything), a "*" port ("http://localhost:*") or a "*." subdomain wildcard
/// ("https://*.example.com").
pub fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    patterns.iter().any(|p| {
        let p = p.trim().trim_end_matches('/');
        if p == "*" || p.eq_ignore_ascii_case(origin) {
            return true;
        }
        if let Some(prefix) = p.strip_suffix(":*") {
            // Scheme and host must match; any port (or none).
            if let Some(rest) = origin.strip_prefix(prefix) {
                return rest.is_empty()
                    || (rest.starts_with(':') && rest[1..].bytes().all(|b| b.is_ascii_digit()));
            }
            return false;
        }
        if let Some((scheme, host)) = p.split_once("://*.") {
            if let Some((o_scheme, o_host)) = origin.split_once("://") {
                // Only a host (and port) may follow the scheme (fuzzing found
                // "https://evil.com/.example.com" and "https://a.e://a.example.com").
                let o_host = match o_host.rsplit_once(':') {
                    Some((h, port))
                        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        h
                    }
                    _ => o_host,
                };
                if o_host.is_empty()
                    || !o_host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                {
                    return false;
                }
                return scheme.eq_ignore_ascii_case(o_scheme)
                    && o_host.len() > host.len()
                    && o_host
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", host.to_ascii_lowercase()));
            }
        }
        false
    })
}

/// How long a resolved token is trusted without asking the store again. Short, so a logout or
/// a deactivation on another node takes effect quickly.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(30);
/// Largest number of cached tokens before the cache is cleared.
const CACHE_MAX: usize = 100_000;

/// Resolves bearer tokens, with a small cache so a publish does not read the database.
pub struct Authenticator {
    /// Token hash -> (principal, cached at, token expiry ms).
    cache: Mutex<HashMap<String, (Principal, Instant, i64)>>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a bearer token, or UNAUTHENTICATED.
    pub async fn resolve(&self, store: &dyn Store, token: &str) -> Result<Principal, CoreError> {
        self.resolve_full(store, token).await.map(|(p, _)| p)
    }

    /// Is this token's principal cached (no store read needed)?
    pub fn is_cached(&self, token: &str) -> bool {
        let hash = token_hash(token);
        self.cache
            .lock()
            .unwrap()
            .get(&hash)
            .is_some_and(|(_, at, expires)| at.elapsed() < CACHE_TTL && *expires > now_ms())
    }

    /// The principal of a bearer token and when the token expires (ms; `i64::MAX`: never).
    pub async fn resolve_full(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<(Principal, i64), CoreError> {
        let hash = token_hash(token);
        if let Some((p, at, expires)) = self.cache.lock().unwrap().get(&hash) {
            if at.elapsed() < CACHE_TTL && *expires > now_ms() {
                return Ok((p.clone(), *expires));
            }
        }
        let unauthenticated = |e: StoreError| match e {
            StoreError::NotFound(_) => {
                CoreError::Unauthenticated("invalid or expired token".into())
            }
            other => other.into(),
        };
        let (principal, expires) = if token.starts_with(VISITOR_TOKEN_PREFIX) {
            let v = store
                .visitor_by_token(&hash)
                .await
                .map_err(unauthenticated)?;
            if v.blocked {
                // Not cached: lifting the block needs no cache flush to take effect.
                return Err(CoreError::chat_unavailable());
            }
            (
                Principal::Visitor {
                    visitor_id: v.id,
                    site_id: v.site_id,
                    name: v.name,
                },
                i64::MAX,
            )
        } else if token.starts_with(AGENT_TOKEN_PREFIX) {
            let (agent, expires) = store
                .agent_by_session(&hash, now_ms())
                .await
                .map_err(unauthenticated)?;
            (Principal::Agent { agent }, expires)
        } else if token.starts_with(API_KEY_PREFIX) {
            let k = store
                .api_key_by_secret_hash(&hash)
                .await
                .map_err(unauthenticated)?
                .key;
            (
                Principal::Service {
                    key_id: k.id,
                    name: k.name,
                    scopes: k.scopes,
                    site_ids: k.site_ids,
                },
                i64::MAX,
            )
        } else {
            return Err(CoreError::Unauthenticated(
                "malformed token: expected a visitor token, agent token or API key".into(),
            ));
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (principal.clone(), Instant::now(), expires));
        Ok((principal, expires))
    }

    /// Forgets a token at once (logout, on this node; other nodes within CACHE_TTL).
    pub fn forget(&self, token: &str) {
        self.cache.lock().unwrap().remove(&token_hash(token));
    }

    /// Forgets every cached token (agents or keys changed).
    pub fn clear(&self) {
        self.cache.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let p = vec![
            "http://localhost:*".to_string(),
            "https://shop.example.com".to_string(),
            "https://*.example.org".to_string(),
        ];
        assert!(origin_allowed(&p, "http://localhost:5173"));
        assert!(origin_allowed(&p, "http://localhost"));
        assert!(!origin_allowed(&p, "http://localhost.evil.com"));
        assert!(!origin_allowed(&p, "https://localhost:5173"));
        assert!(origin_allowed(&p, "https://shop.example.com"));
        assert!(!origin_allowed(&p, "https://shop.example.com.evil.com"));
        assert!(origin_allowed(&p, "https://a.example.org"));
        assert!(!origin_allowed(&p, "https://example.org"));
        assert!(!origin_allowed(&p, "https://evilexample.org"));
        // Found by fuzzing: only a host may follow the scheme.
        assert!(!origin_allowed(&p, "https://evil.com/.example.org"));
        assert!(!origin_allowed(&p, "https://a.e://a.example.org"));
        assert!(!origin_allowed(&p, "https://evil.com#.example.org"));
        assert!(origin_allowed(&p, "https://a.example.org:8443"));
    }

    #[test]
    fn identity_hash_is_checked_in_full() {
        let h = identity_hash("secret", "user-1");
        assert!(verify_identity("secret", "user-1", &h));
        assert!(verify_identity("secret", "user-1", &h.to_uppercase()));
        assert!(!verify_identity("secret", "user-2", &h));
        assert!(!verify_identity("secret", "user-1", &h[..10]));
        assert!(!verify_identity("other", "user-1", &h));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
