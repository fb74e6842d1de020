//! [`SqlStore`]: the [`Store`] written once against [`Db`] and run by both engines (SQLite,
//! PostgreSQL). This file holds the plumbing (writes through the engine's group commit
//! ([`Engine::write`]), reads on a reader connection) and the migrations; each aggregate's
//! statements and its part of the store live in its own file: `directory.rs` (sites, agents,
//! sessions, API keys, canned replies), `visitors.rs`, `messages.rs`, `workflow.rs` (assignment,
//! status, queue), `listing.rs` (inbox list, search, reports), `uploads.rs`, `labels.rs`,
//! `blocks.rs`, `webhooks.rs`, `email.rs`, `context.rs`, `seed.rs`; row decoders in `rows.rs`.
//!
//! Concurrency rules that must hold across several server nodes on PostgreSQL use the
//! database's row locks (see `messages.rs` and `workflow.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::db::{Db, DbFuture, Job, Row, Value, WriteCtx};
use super::rows::query_rows;
use super::sql::MIGRATIONS;
use super::*;
use crate::args;
use crate::util::now_ms;

/// A read job: runs on a reader connection.
pub type ReadJob =
    Box<dyn for<'a> FnOnce(&'a mut dyn Db) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> + Send>;

/// What an engine provides: group-committed writes and pooled reads.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Queues a write for the next batch.
    fn write(&self, job: Job) -> StoreResult<()>;
    /// Runs a read on a reader connection.
    async fn read(&self, job: ReadJob) -> StoreResult<()>;
    /// Stops taking writes and commits what is queued.
    fn close(&self);
}

/// The [`Store`] over an engine.
pub struct SqlStore<E> {
    engine: E,
}

impl<E: Engine> SqlStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    pub(super) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a, 'c> Fn(&'a mut WriteCtx<'c>) -> DbFuture<'a, R> + Send + Sync + 'static,
    {
        // A job that lost a lock conflict against another node was rolled back to its
        // savepoint: run it again, a few times, before giving up.
        let f = Arc::new(f);
        let mut attempt = 0;
        loop {
            let f = f.clone();
            let result = self.write_once(move |ctx| f(ctx)).await;
            match result {
                Err(StoreError::Busy(_)) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn write_once<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a, 'c> Fn(&'a mut WriteCtx<'c>) -> DbFuture<'a, R> + Send + Sync + 'static,
    {
        let slot: Arc<Mutex<Option<StoreResult<R>>>> = Arc::new(Mutex::new(None));
        let (tx, rx) = oneshot::channel();
        let run_slot = slot.clone();
        let job = Job {
            run: Box::new(move |ctx| {
                let slot = run_slot.clone();
                let fut = f(ctx);
                Box::pin(async move {
                    let result = fut.await;
                    let ok = result.is_ok();
                    *slot.lock().unwrap() = Some(result);
                    ok
                })
            }),
            complete: Box::new(move |commit| {
                let result = slot
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap_or_else(|| Err(StoreError::internal("write did not run")));
                let _ = tx.send(commit.and(result));
            }),
        };
        self.engine.write(job)?;
        rx.await
            .map_err(|_| StoreError::internal("the writer dropped the write"))?
    }

    /// One row decoded, or `NotFound(what)`.
    pub(super) async fn read_one<T: Send + 'static>(
        &self,
        sql: String,
        args: Vec<Value>,
        what: &'static str,
        decode: fn(&Row) -> T,
    ) -> StoreResult<T> {
        self.read(move |db| {
            Box::pin(async move { Ok(decode(&db.query_one(&sql, &args, what).await?)) })
        })
        .await
    }

    /// All rows decoded.
    pub(super) async fn read_rows<T: Send + 'static>(
        &self,
        sql: String,
        args: Vec<Value>,
        decode: fn(&Row) -> T,
    ) -> StoreResult<Vec<T>> {
        self.read(move |db| Box::pin(async move { query_rows(db, &sql, &args, decode).await }))
            .await
    }

    /// One statement in the next batch; `NotFound(what)` if it changed nothing and `what` is set.
    pub(super) async fn write_exec(
        &self,
        sql: &'static str,
        args: Vec<Value>,
        what: Option<&'static str>,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let args = args.clone();
            Box::pin(async move {
                let n = ctx.db.exec(sql, &args).await?;
                match what {
                    Some(what) if n == 0 => Err(StoreError::NotFound(what)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    pub(super) async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a mut dyn Db) -> DbFuture<'a, R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.engine
            .read(Box::new(move |db| {
                Box::pin(async move {
                    let _ = tx.send(f(db).await);
                })
            }))
            .await?;
        rx.await
            .map_err(|_| StoreError::internal("the read was dropped"))?
    }
}

/// Applies the embedded migrations not yet applied.
pub async fn migrate(db: &mut dyn Db) -> StoreResult<()> {
    db.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await?;
    let current = db
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
            "version",
        )
        .await?
        .int(0);
    for (i, migration) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        db.batch("BEGIN").await?;
        let applied = async {
            db.batch(migration.sql(db.engine())).await?;
            db.exec(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                args![version, now_ms()],
            )
            .await
        }
        .await;
        match applied {
            Ok(_) => db.batch("COMMIT").await?,
            Err(e) => {
                let _ = db.batch("ROLLBACK").await;
                // Another node may have applied it at the same moment.
                let now = db
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                        &[],
                        "version",
                    )
                    .await?
                    .int(0);
                if now < version {
                    return Err(e);
                }
            }
        }
        tracing::info!(version, "Applied migration");
    }
    Ok(())
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| {
            Box::pin(async move {
                db.query_one("SELECT 1", &[], "ping").await?;
                Ok(())
            })
        })
        .await
    }

    fn close(&self) {
        self.engine.close();
    }
}
