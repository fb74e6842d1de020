//! The PostgreSQL engine, for several server nodes sharing one database: a connection pool for
//! reads, and a writer task per node that group-commits like the SQLite one.
//!
//! Correctness across nodes comes from the database's row locks (see `store/messages.rs` and `store/workflow.rs`), not from
//! anything in this process. A batch that loses a deadlock or serialization race against
//! another node is rolled back and its jobs are re-run one transaction each (the shared
//! writer in `group_commit.rs`), so one conflict does not fail the other jobs of the batch.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::db::{Db, EngineKind, Job, Row, Value};
use super::group_commit::{self, GroupCommit, Transactions};
use super::sql_store::{Engine, ReadJob, SqlStore, migrate};
use super::{CommitSink, Committed, StoreError, StoreResult};
use crate::metrics::Metrics;

/// Largest number of jobs in one transaction.
const MAX_BATCH: usize = 512;
/// Longest wait for more jobs before a commit (see [`GroupCommit`]).
const MAX_LINGER: Duration = Duration::ZERO;
/// Lock id that serialises migrations between nodes starting together.
const MIGRATION_LOCK: i64 = 0x7773_6d73_6368_6174; // "wsmschat"

/// The PostgreSQL [`Store`](super::Store).
pub type PostgresStore = SqlStore<PostgresEngine>;

fn pg_err(error: tokio_postgres::Error) -> StoreError {
    match error.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(
            error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_else(|| "already exists".into()),
        ),
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Busy(error.to_string())
        }
        _ => StoreError::internal(
            error
                .as_db_error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| error.to_string()),
        ),
    }
}

fn pool_err(error: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("database connection: {error}"))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // Convert to whatever type PostgreSQL inferred for the parameter.
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    v.to_string().to_sql(ty, out)
                }
                _ => v.to_sql(ty, out),
            },
            Value::Text(t) => match *ty {
                Type::INT2 | Type::INT4 | Type::INT8 => Value::Int(t.parse()?).to_sql(ty, out),
                _ => t.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn to_row(row: &tokio_postgres::Row) -> StoreResult<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let bad = |e: tokio_postgres::Error| {
            StoreError::internal(format!("column {}: {e}", column.name()))
        };
        let v = match *column.type_() {
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map_err(bad)?
                .map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v as i64)),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v as i64)),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v as i64)),
            _ => row
                .try_get::<_, Option<String>>(i)
                .map_err(bad)?
                .map(Value::Text),
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// A pooled connection seen through [`Db`].
pub struct PgDb<'a>(pub &'a deadpool_postgres::Client);

fn params(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

#[async_trait]
impl Db for PgDb<'_> {
    async fn exec(&mut self, sql: &str, args: &[Value]) -> StoreResult<u64> {
        let stmt = self.0.prepare_cached(sql).await.map_err(pg_err)?;
        self.0.execute(&stmt, &params(args)).await.map_err(pg_err)
    }

    async fn query(&mut self, sql: &str, args: &[Value]) -> StoreResult<Vec<Row>> {
        let stmt = self.0.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = self.0.query(&stmt, &params(args)).await.map_err(pg_err)?;
        rows.iter().map(to_row).collect()
    }

    async fn query_planned(&mut self, sql: &str, args: &[Value]) -> StoreResult<Vec<Row>> {
        // Prepared for this call only (closed when dropped), so its first and only execution
        // gets a plan for these arguments.
        let stmt = self.0.prepare(sql).await.map_err(pg_err)?;
        let rows = self.0.query(&stmt, &params(args)).await.map_err(pg_err)?;
        rows.iter().map(to_row).collect()
    }

    async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.0.batch_execute(sql).await.map_err(pg_err)
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Postgres
    }
}

/// Connection pool + writer task.
pub struct PostgresEngine {
    pool: Pool,
    /// Jobs for the writer task; dropped on close so it drains and exits.
    writer: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// Signals when the writer has committed its last batch.
    writer_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl PostgresStore {
    /// Connects (pool of `pool_size`), migrates and starts the writer.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        sink: Arc<dyn CommitSink>,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::internal(format!("bad database URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pool_err)?;
        {
            let client = pool.get().await.map_err(pool_err)?;
            let mut db = PgDb(&client);
            db.exec("SELECT pg_advisory_lock($1)", crate::args![MIGRATION_LOCK])
                .await?;
            let migrated = migrate(&mut db).await;
            db.exec(
                "SELECT pg_advisory_unlock($1)",
                crate::args![MIGRATION_LOCK],
            )
            .await?;
            migrated?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        tokio::spawn(writer_loop(pool.clone(), rx, sink, metrics, done_tx));
        Ok(SqlStore::new(PostgresEngine {
            pool,
            writer: Mutex::new(Some(tx)),
            writer_done: Mutex::new(Some(done_rx)),
        }))
    }
}

#[async_trait]
impl Engine for PostgresEngine {
    fn write(&self, job: Job) -> StoreResult<()> {
        let sender = self.writer.lock().unwrap().clone();
        let Some(sender) = sender else {
            return Err(StoreError::internal("store is closed"));
        };
        sender
            .send(job)
            .map_err(|_| StoreError::internal("store writer stopped"))
    }

    async fn read(&self, job: ReadJob) -> StoreResult<()> {
        let client = ReadConnection(Some(self.pool.get().await.map_err(pool_err)?));
        // In its own task: a caller that goes away (a cancelled RPC) cannot cut a read off
        // between two statements, so a read that opens a transaction (a search sets its
        // planner options in one: `listing.rs`) always ends it before the connection goes
        // back to the pool.
        tokio::spawn(async move {
            let client = client;
            if let Some(c) = &client.0 {
                job(&mut PgDb(c)).await;
            }
        })
        .await
        .map_err(|e| StoreError::internal(format!("read task: {e}")))
    }

    fn close(&self) {
        self.writer.lock().unwrap().take();
        if let Some(done) = self.writer_done.lock().unwrap().take() {
            // The writer answers once its queue is drained (bounded wait: never hang shutdown).
            let _ = done.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// A reader's pooled connection. One dropped by a panic (which may have left a transaction
/// open) is closed instead of going back to the pool.
struct ReadConnection(Option<deadpool_postgres::Object>);

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(object) = self.0.take() {
                drop(deadpool_postgres::Object::take(object));
            }
        }
    }
}

/// The writer task's side: a pooled connection per transaction, for the shared [`GroupCommit`].
struct PgWriter(Pool);

#[async_trait]
impl Transactions for PgWriter {
    async fn transaction(&mut self, jobs: &[Job]) -> StoreResult<Vec<Committed>> {
        let client = self.0.get().await.map_err(pool_err)?;
        group_commit::transaction(&mut PgDb(&client), "BEGIN", jobs).await
    }

    async fn pause(&mut self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }
}

async fn writer_loop(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Job>,
    sink: Arc<dyn CommitSink>,
    metrics: Arc<Metrics>,
    done: std::sync::mpsc::Sender<()>,
) {
    let mut writer = PgWriter(pool);
    let mut commits = GroupCommit::new(sink, metrics, MAX_BATCH, MAX_LINGER);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let linger_until = tokio::time::Instant::from_std(commits.linger_until());
        while batch.len() < commits.max_batch() {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(linger_until, rx.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        _ => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        commits.commit(&mut writer, &mut batch).await;
    }
    let _ = done.send(());
    tracing::debug!("PostgreSQL writer stopped");
}
