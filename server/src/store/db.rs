//! The small database interface the store logic is written against, so SQLite and PostgreSQL
//! run the very same statements and the very same code: values in, rows of values out.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use super::{Committed, StoreError, StoreResult};

/// A SQL value. Integers are 64-bit everywhere (BIGINT columns); booleans are 0/1.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// Builds a `&[Value]` argument list.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::store::db::Value::from($v)),*] };
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn int(&self, i: usize) -> i64 {
        match &self.0[i] {
            Value::Int(v) => *v,
            Value::Text(t) => t.parse().unwrap_or(0),
            Value::Null => 0,
        }
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match &self.0[i] {
            Value::Null => None,
            _ => Some(self.int(i)),
        }
    }

    pub fn u64(&self, i: usize) -> u64 {
        self.int(i).max(0) as u64
    }

    pub fn u32(&self, i: usize) -> u32 {
        self.int(i).clamp(0, u32::MAX as i64) as u32
    }

    pub fn i32(&self, i: usize) -> i32 {
        self.int(i) as i32
    }

    pub fn bool(&self, i: usize) -> bool {
        self.int(i) != 0
    }

    pub fn text(&self, i: usize) -> String {
        match &self.0[i] {
            Value::Text(t) => t.clone(),
            Value::Int(v) => v.to_string(),
            Value::Null => String::new(),
        }
    }
}

/// Which engine runs the statements (for the few places that differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sqlite,
    Postgres,
}

/// A connection (inside a transaction for writes).
#[async_trait]
pub trait Db: Send {
    /// Runs a statement; returns the number of rows changed.
    async fn exec(&mut self, sql: &str, args: &[Value]) -> StoreResult<u64>;
    /// Runs a query; returns all rows.
    async fn query(&mut self, sql: &str, args: &[Value]) -> StoreResult<Vec<Row>>;
    /// Runs a query planned for these arguments, not from a statement cache. PostgreSQL
    /// switches a cached statement to a generic plan after five runs, and a generic plan of
    /// `name ILIKE $1` guesses a selectivity without the pattern and seq-scans (a last-name
    /// search: ~450 ms against ~40 ms planned with the pattern); searches are planned each
    /// time (a parse costs ~1-3 ms, small next to what a search reads). SQLite plans alike for
    /// any argument, so this is [`Db::query`] there.
    async fn query_planned(&mut self, sql: &str, args: &[Value]) -> StoreResult<Vec<Row>> {
        self.query(sql, args).await
    }
    /// Runs several statements without arguments (migrations, savepoints).
    async fn batch(&mut self, sql: &str) -> StoreResult<()>;
    /// The engine.
    fn engine(&self) -> EngineKind;

    /// The first row, if any.
    async fn query_opt(&mut self, sql: &str, args: &[Value]) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, args).await?.into_iter().next())
    }

    /// The first row, or `NotFound(what)`.
    async fn query_one(
        &mut self,
        sql: &str,
        args: &[Value],
        what: &'static str,
    ) -> StoreResult<Row> {
        self.query_opt(sql, args)
            .await?
            .ok_or(StoreError::NotFound(what))
    }

    /// `" FOR UPDATE"` where the engine has row locks (PostgreSQL); SQLite has one writer.
    fn for_update(&self) -> &'static str {
        match self.engine() {
            EngineKind::Postgres => " FOR UPDATE",
            EngineKind::Sqlite => "",
        }
    }
}

/// What a write job sees: the transaction, and the messages written so far in the batch.
pub struct WriteCtx<'c> {
    pub db: &'c mut (dyn Db + 'c),
    /// Messages written by the batch, fanned out after commit in this order.
    pub emitted: Vec<Committed>,
}

/// A boxed future borrowing the connection.
pub type DbFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// Runs after the batch commits (or fails) to answer the caller.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send + Sync>;

/// The body of a write job: runs in the batch transaction, says whether it succeeded.
pub type JobRun = Box<
    dyn for<'a, 'c> Fn(&'a mut WriteCtx<'c>) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>
        + Send
        + Sync,
>;

/// A write as the engines see it: re-runnable (a batch that hits a deadlock is retried job by
/// job), says whether it succeeded (failed jobs are rolled back to their savepoint), and
/// answers its caller once the batch is durable.
pub struct Job {
    pub run: JobRun,
    pub complete: Completion,
}

/// Opens the transaction with `begin` and runs each job of the batch inside its own savepoint;
/// an error means the batch must be abandoned (the transaction is broken).
///
/// Statements that answer nothing ride with the next one, as each `batch` is a round trip on
/// PostgreSQL (its writer waits on it, so round trips per job set the ceiling): `begin` goes
/// with the first job's `SAVEPOINT`, a job's `RELEASE` with the next job's `SAVEPOINT`, and the
/// last job's savepoint is released by the caller's `COMMIT`. A failed job is rolled back and
/// released at once, before the next job reuses the name.
pub async fn run_jobs(ctx: &mut WriteCtx<'_>, begin: &str, jobs: &[Job]) -> StoreResult<()> {
    if jobs.is_empty() {
        return ctx.db.batch(begin).await;
    }
    let mut lead = format!("{begin}; ");
    for job in jobs {
        let mark = ctx.emitted.len();
        lead.push_str("SAVEPOINT job");
        ctx.db.batch(&lead).await?;
        lead.clear();
        if (job.run)(ctx).await {
            lead.push_str("RELEASE SAVEPOINT job; ");
        } else {
            ctx.emitted.truncate(mark);
            ctx.db
                .batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")
                .await?;
        }
    }
    Ok(())
}
