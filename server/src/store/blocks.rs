//! Blocks and the audit log (migration 0008), written once for both engines.
//!
//! A block names a visitor, an email (lower case) or a network (canonical CIDR text). The
//! visitors it holds off carry its id in `visitors.blocked_by`, so a token check reads one row
//! it reads anyway; a session start or a new conversation looks up the networks that contain
//! the client's address ([`networks_of`]) in one indexed `IN`, whatever the number of blocks.

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use wsmschat::v1;

use super::db::{Db, Row, Value};
use super::sql_store::{Engine, SqlStore};
use super::{StoreError, StoreResult};
use crate::args;
use crate::util::now_ms;

/// Blocks one site may hold.
pub const MAX_BLOCKS_PER_SITE: i64 = 10_000;
/// Blocks listed at once.
pub const LIST_LIMIT: i64 = 1_000;
/// An IP block also holds off the visitors seen from it this recently (ms).
pub const RECENT_VISITORS_MS: i64 = 86_400_000;
/// At most this many recent visitors are looked at when an IP block is made.
const RECENT_VISITORS_SCAN: i64 = 50_000;

/// The narrowest prefix that may be blocked is a host; the widest a /8 (IPv4) or /32 (IPv6):
/// wider ranges would take whole providers off the chat.
pub const MIN_PREFIX_V4: u8 = 8;
pub const MIN_PREFIX_V6: u8 = 32;

const BLOCK_COLUMNS: &str =
    "id, site_id, kind, value, reason, created_by, created_by_name, created_at";

fn block_from_row(r: &Row) -> v1::Block {
    v1::Block {
        id: r.text(0),
        site_id: r.text(1),
        kind: r.i32(2),
        value: r.text(3),
        reason: r.text(4),
        created_by: r.text(5),
        created_by_name: r.text(6),
        created_at_ms: r.int(7),
    }
}

fn audit_from_row(r: &Row) -> v1::AuditEntry {
    v1::AuditEntry {
        id: r.text(0),
        site_id: r.text(1),
        actor: r.text(2),
        actor_name: r.text(3),
        action: r.text(4),
        target: r.text(5),
        detail: r.text(6),
        created_at_ms: r.int(7),
    }
}

/// The canonical text of every blockable network that contains `ip` (IPv4-mapped IPv6
/// addresses count as IPv4): 25 for IPv4, 97 for IPv6.
pub fn networks_of(ip: IpAddr) -> Vec<String> {
    let ip = ip.to_canonical();
    let (min, max) = match ip {
        IpAddr::V4(_) => (MIN_PREFIX_V4, 32),
        IpAddr::V6(_) => (MIN_PREFIX_V6, 128),
    };
    (min..=max)
        .filter_map(|len| IpNet::new(ip, len).ok())
        .map(|n| n.trunc().to_string())
        .collect()
}

/// Who did it, for the block row and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// "a:<agent id>" or "k:<key id>".
    pub key: String,
    pub name: String,
}

/// Stores a block (the caller checked and normalized it) and holds off the visitors it names:
/// the visitor, the site's visitors with the email, or those seen from the network in the last
/// day. Returns the block and the ids of the visitors it now holds off. With an audit entry.
pub async fn create(
    db: &mut dyn Db,
    block: &v1::Block,
    network: Option<IpNet>,
) -> StoreResult<(v1::Block, Vec<String>)> {
    let count = db
        .query_one(
            "SELECT COUNT(*) FROM blocks WHERE site_id = $1",
            args![&block.site_id],
            "count",
        )
        .await?
        .int(0);
    if count >= MAX_BLOCKS_PER_SITE {
        return Err(StoreError::Exhausted(format!(
            "this site has {count} blocks (at most {MAX_BLOCKS_PER_SITE}); lift some first"
        )));
    }
    if let Some(row) = db
        .query_opt(
            &format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE site_id = $1 AND kind = $2 AND value = $3"
            ),
            args![&block.site_id, block.kind, &block.value],
        )
        .await?
    {
        let existing = block_from_row(&row);
        return Err(StoreError::Conflict(format!(
            "already blocked (block {}, since {})",
            existing.id, existing.created_at_ms
        )));
    }
    let kind = v1::BlockKind::try_from(block.kind).unwrap_or_default();
    let matched: Vec<String> = match kind {
        v1::BlockKind::Visitor => db
            .query(
                "SELECT id FROM visitors WHERE id = $1 AND site_id = $2",
                args![&block.value, &block.site_id],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect(),
        v1::BlockKind::Email => db
            .query(
                "SELECT id FROM visitors WHERE site_id = $1 AND email <> '' AND LOWER(email) = $2",
                args![&block.site_id, &block.value],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect(),
        v1::BlockKind::Ip => {
            let rows = db
                .query(
                    "SELECT id, last_ip FROM visitors WHERE site_id = $1 AND last_seen > $2 \
                     AND last_ip <> '' ORDER BY last_seen DESC LIMIT $3",
                    args![
                        &block.site_id,
                        now_ms() - RECENT_VISITORS_MS,
                        RECENT_VISITORS_SCAN
                    ],
                )
                .await?;
            rows.iter()
                .filter(|r| {
                    let ip = r.text(1).parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
                    matches!((ip, network), (Some(ip), Some(net)) if net.contains(&ip))
                })
                .map(|r| r.text(0))
                .collect()
        }
        v1::BlockKind::Unspecified => {
            return Err(StoreError::Precondition("a block needs a kind".into()));
        }
    };
    if kind == v1::BlockKind::Visitor && matched.is_empty() {
        return Err(StoreError::NotFound("visitor"));
    }
    db.exec(
        &format!("INSERT INTO blocks ({BLOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
        args![
            &block.id,
            &block.site_id,
            block.kind,
            &block.value,
            &block.reason,
            &block.created_by,
            &block.created_by_name,
            block.created_at_ms
        ],
    )
    .await?;
    for id in &matched {
        db.exec(
            "UPDATE visitors SET blocked_by = $2 WHERE id = $1 AND blocked_by IS NULL",
            args![id, &block.id],
        )
        .await?;
    }
    audit(
        db,
        &block.site_id,
        &Actor {
            key: block.created_by.clone(),
            name: block.created_by_name.clone(),
        },
        "block",
        &target(block),
        &block.reason,
    )
    .await?;
    Ok((block.clone(), matched))
}

/// "visitor v_...", "email a@b", "ip 198.51.100.0/24".
fn target(b: &v1::Block) -> String {
    let kind = match v1::BlockKind::try_from(b.kind).unwrap_or_default() {
        v1::BlockKind::Visitor => "visitor",
        v1::BlockKind::Email => "email",
        v1::BlockKind::Ip => "ip",
        v1::BlockKind::Unspecified => "?",
    };
    format!("{kind} {}", b.value)
}

pub async fn load(db: &mut dyn Db, id: &str) -> StoreResult<v1::Block> {
    let row = db
        .query_one(
            &format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE id = $1"),
            args![id],
            "block",
        )
        .await?;
    Ok(block_from_row(&row))
}

/// Lifts a block: the visitors it held are free again (other blocks still apply at their next
/// session start). Returns the block and those visitors. With an audit entry.
pub async fn delete(
    db: &mut dyn Db,
    id: &str,
    actor: &Actor,
) -> StoreResult<(v1::Block, Vec<String>)> {
    let block = load(db, id).await?;
    let freed: Vec<String> = db
        .query("SELECT id FROM visitors WHERE blocked_by = $1", args![id])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect();
    db.exec(
        "UPDATE visitors SET blocked_by = NULL WHERE blocked_by = $1",
        args![id],
    )
    .await?;
    db.exec("DELETE FROM blocks WHERE id = $1", args![id])
        .await?;
    audit(db, &block.site_id, actor, "unblock", &target(&block), "").await?;
    Ok((block, freed))
}

pub async fn list(db: &mut dyn Db, site_id: &str) -> StoreResult<Vec<v1::Block>> {
    Ok(db
        .query(
            &format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE site_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2"
            ),
            args![site_id, LIST_LIMIT],
        )
        .await?
        .iter()
        .map(block_from_row)
        .collect())
}

/// The block (if any) of the site on `email` or on a network containing the address.
pub async fn matching(
    db: &mut dyn Db,
    site_id: &str,
    email: &str,
    ip: Option<IpAddr>,
) -> StoreResult<Option<v1::Block>> {
    let mut args: Vec<Value> = vec![site_id.into()];
    let mut alternatives = Vec::new();
    let email = email.trim().to_lowercase();
    if !email.is_empty() {
        args.push(email.into());
        alternatives.push(format!(
            "(kind = {} AND value = ${})",
            v1::BlockKind::Email as i32,
            args.len()
        ));
    }
    if let Some(ip) = ip {
        let first = args.len() + 1;
        let nets = networks_of(ip);
        let n = nets.len();
        args.extend(nets.into_iter().map(Value::from));
        let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
        alternatives.push(format!(
            "(kind = {} AND value IN ({}))",
            v1::BlockKind::Ip as i32,
            list.join(", ")
        ));
    }
    if alternatives.is_empty() {
        return Ok(None);
    }
    let row = db
        .query_opt(
            &format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE site_id = $1 AND ({}) LIMIT 1",
                alternatives.join(" OR ")
            ),
            &args,
        )
        .await?;
    Ok(row.as_ref().map(block_from_row))
}

/// Records who did what on a site.
pub async fn audit(
    db: &mut dyn Db,
    site_id: &str,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: &str,
) -> StoreResult<()> {
    db.exec(
        "INSERT INTO audit_log (id, site_id, actor, actor_name, action, target, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            crate::util::new_id("au_"),
            site_id,
            &actor.key,
            &actor.name,
            action,
            target,
            detail,
            now_ms()
        ],
    )
    .await?;
    Ok(())
}

/// A site's audit entries before `before_ms` (0: all), newest first.
pub async fn audit_log(
    db: &mut dyn Db,
    site_id: &str,
    before_ms: i64,
    limit: u32,
) -> StoreResult<Vec<v1::AuditEntry>> {
    let before = if before_ms <= 0 { i64::MAX } else { before_ms };
    Ok(db
        .query(
            "SELECT id, site_id, actor, actor_name, action, target, detail, created_at FROM audit_log \
             WHERE site_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
            args![site_id, before, limit as i64],
        )
        .await?
        .iter()
        .map(audit_from_row)
        .collect())
}

// ---------------------------------------------------------------- the store's side

/// Blocks on emails and networks, and the audit log.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// Stores a block and holds off the visitors it names; the block and those visitors.
    async fn create_block(
        &self,
        block: v1::Block,
        network: Option<ipnet::IpNet>,
    ) -> StoreResult<(v1::Block, Vec<String>)>;
    /// Lifts a block; the block and the visitors it held.
    async fn delete_block(&self, id: String, actor: Actor)
    -> StoreResult<(v1::Block, Vec<String>)>;
    async fn block_by_id(&self, id: &str) -> StoreResult<v1::Block>;
    async fn list_blocks(&self, site_id: &str) -> StoreResult<Vec<v1::Block>>;
    /// A block of the site on the email or a network containing the address.
    async fn matching_block(
        &self,
        site_id: &str,
        email: &str,
        ip: Option<std::net::IpAddr>,
    ) -> StoreResult<Option<v1::Block>>;
    async fn audit_log(
        &self,
        site_id: &str,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<v1::AuditEntry>>;
}

#[async_trait]
impl<E: Engine> BlockStore for SqlStore<E> {
    async fn create_block(
        &self,
        block: v1::Block,
        network: Option<ipnet::IpNet>,
    ) -> StoreResult<(v1::Block, Vec<String>)> {
        self.write(move |ctx| {
            let block = block.clone();
            Box::pin(async move { create(ctx.db, &block, network).await })
        })
        .await
    }

    async fn delete_block(
        &self,
        id: String,
        actor: Actor,
    ) -> StoreResult<(v1::Block, Vec<String>)> {
        self.write(move |ctx| {
            let (id, actor) = (id.clone(), actor.clone());
            Box::pin(async move { delete(ctx.db, &id, &actor).await })
        })
        .await
    }

    async fn block_by_id(&self, id: &str) -> StoreResult<v1::Block> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { load(db, &id).await }))
            .await
    }

    async fn list_blocks(&self, site_id: &str) -> StoreResult<Vec<v1::Block>> {
        let site_id = site_id.to_owned();
        self.read(move |db| Box::pin(async move { list(db, &site_id).await }))
            .await
    }

    async fn matching_block(
        &self,
        site_id: &str,
        email: &str,
        ip: Option<std::net::IpAddr>,
    ) -> StoreResult<Option<v1::Block>> {
        let (site_id, email) = (site_id.to_owned(), email.to_owned());
        self.read(move |db| Box::pin(async move { matching(db, &site_id, &email, ip).await }))
            .await
    }

    async fn audit_log(
        &self,
        site_id: &str,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<v1::AuditEntry>> {
        let site_id = site_id.to_owned();
        self.read(move |db| {
            Box::pin(async move { audit_log(db, &site_id, before_ms, limit).await })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_lies_in_each_network_that_may_be_blocked() {
        let v4 = networks_of("198.51.100.7".parse().unwrap());
        assert_eq!(v4.len(), 25);
        assert_eq!(v4.first().unwrap(), "198.0.0.0/8");
        assert!(v4.contains(&"198.51.100.0/24".to_owned()));
        assert_eq!(v4.last().unwrap(), "198.51.100.7/32");
        // An IPv4-mapped IPv6 address is its IPv4 address.
        assert_eq!(networks_of("::ffff:198.51.100.7".parse().unwrap()), v4);
        let v6 = networks_of("2001:db8:1:2::9".parse().unwrap());
        assert_eq!(v6.len(), 97);
        assert!(v6.contains(&"2001:db8::/32".to_owned()));
        assert!(v6.contains(&"2001:db8:1::/48".to_owned()));
    }
}
