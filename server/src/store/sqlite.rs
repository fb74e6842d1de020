//! The embedded SQLite engine: one file in WAL mode, one writer thread that group-commits, and
//! a small pool of reader connections.
//!
//! Group commit: every write is a job sent to the writer thread. The thread takes all jobs that
//! are waiting (up to `MAX_BATCH`), runs each inside a SAVEPOINT (one failing job does not undo
//! the others), commits once with `synchronous=FULL` (one fsync for the whole batch), then hands
//! the batch's messages to the [`CommitSink`] in commit order and answers the jobs. So a publish
//! is acknowledged only once it is on disk, and N concurrent publishes cost one fsync.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio::sync::Semaphore;

use super::db::{Db, EngineKind, Job, Row, Value};
use super::group_commit::{self, GroupCommit, Transactions};
use super::search_index;
use super::sql_store::{Engine, ReadJob, SqlStore, migrate};
use super::{CommitSink, Committed, StoreError, StoreResult};
use crate::metrics::Metrics;

/// Largest number of jobs in one transaction.
const MAX_BATCH: usize = 1024;
/// Reader connections.
const READERS: usize = 4;
/// Longest wait for more jobs before a commit (see [`GroupCommit`]).
const MAX_LINGER: Duration = Duration::from_micros(500);
/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// The writer checkpoints by itself only if the WAL grows past this many pages (the
/// checkpointer thread fell behind): a safety net, not the normal path.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The SQLite [`Store`](super::Store).
pub type SqliteStore = SqlStore<SqliteEngine>;

/// A rusqlite connection seen through [`Db`]. Its futures complete at once (rusqlite is
/// synchronous); they run on the writer thread or a blocking-pool thread.
pub struct SqliteDb<'a>(pub &'a mut Connection);

/// The shared SQL uses PostgreSQL's `$N` placeholders. SQLite reads `$N` as a *named*
/// parameter numbered by first appearance, so it is rewritten to SQLite's positional `?N`.
/// (`$` appears in the statements only as a placeholder prefix.)
fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

fn db_err(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, msg) = &error {
        if e.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Conflict(msg.clone().unwrap_or_else(|| "already exists".into()));
        }
        if matches!(
            e.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return StoreError::Busy(error.to_string());
        }
    }
    StoreError::internal(error)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn to_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

#[async_trait]
impl Db for SqliteDb<'_> {
    async fn exec(&mut self, sql: &str, args: &[Value]) -> StoreResult<u64> {
        let mut stmt = self
            .0
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(db_err)?;
        if stmt.readonly() || stmt.column_count() > 0 {
            // A statement with RETURNING: run it as a query.
            let mut rows = stmt
                .query(rusqlite::params_from_iter(args.iter()))
                .map_err(db_err)?;
            let mut n = 0;
            while rows.next().map_err(db_err)?.is_some() {
                n += 1;
            }
            return Ok(n);
        }
        Ok(stmt
            .execute(rusqlite::params_from_iter(args.iter()))
            .map_err(db_err)? as u64)
    }

    async fn query(&mut self, sql: &str, args: &[Value]) -> StoreResult<Vec<Row>> {
        let mut stmt = self
            .0
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(db_err)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_err)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(to_value(r.get_ref(i).map_err(db_err)?));
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.0.execute_batch(sql).map_err(db_err)
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Sqlite
    }
}

/// Writer thread + readers.
pub struct SqliteEngine {
    /// Jobs for the writer thread; dropped on close so the thread drains and exits.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on close so the last batch is committed before exit.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropped on close: the checkpointer thread stops.
    checkpointer: Mutex<Option<mpsc::Sender<()>>>,
    /// Reader connections (WAL lets them read while the writer writes).
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Bounds concurrent reads to the number of reader connections.
    reader_permits: Semaphore,
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: the WAL is fsynced at every commit, so an ack survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, migrates it and starts the writer.
    pub fn open(
        path: &Path,
        sink: Arc<dyn CommitSink>,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::internal)?;
        }
        let mut writer_conn = open_connection(path).map_err(db_err)?;
        futures_executor::block_on(migrate(&mut SqliteDb(&mut writer_conn)))?;
        // Checkpoints (copying WAL pages back into the database file) run on their own thread
        // and connection: in the writer they took ~11% of its time at saturation, serially
        // with every commit. PASSIVE checkpoints never block the writer or the readers.
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .map_err(db_err)?;
        let checkpoint_conn = open_connection(path).map_err(db_err)?;
        let (checkpoint_tx, checkpoint_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, checkpoint_rx))
            .map_err(StoreError::internal)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, sink, metrics))
            .map_err(StoreError::internal)?;
        Ok(SqlStore::new(SqliteEngine {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpoint_tx)),
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Semaphore::new(READERS),
        }))
    }
}

#[async_trait]
impl Engine for SqliteEngine {
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
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::internal("store closed"))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = readers.lock().unwrap().pop().expect("a reader per permit");
            futures_executor::block_on(job(&mut SqliteDb(&mut conn)));
            readers.lock().unwrap().push(conn);
        })
        .await
        .map_err(StoreError::internal)
    }

    fn close(&self) {
        self.checkpointer.lock().unwrap().take();
        self.writer.lock().unwrap().take();
        if let Some(thread) = self.writer_thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SqliteEngine {
    fn drop(&mut self) {
        self.close();
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until the engine closes.
fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

/// The writer thread's connection, for the shared [`GroupCommit`].
struct SqliteWriter(Connection);

#[async_trait]
impl Transactions for SqliteWriter {
    async fn transaction(&mut self, jobs: &[Job]) -> StoreResult<Vec<Committed>> {
        // IMMEDIATE: take the write lock at BEGIN (the checkpointer and readers never write).
        group_commit::transaction(&mut SqliteDb(&mut self.0), "BEGIN IMMEDIATE", jobs).await
    }

    async fn pause(&mut self, pause: Duration) {
        std::thread::sleep(pause);
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    sink: Arc<dyn CommitSink>,
    metrics: Arc<Metrics>,
) {
    let mut writer = SqliteWriter(conn);
    let mut commits = GroupCommit::new(sink, metrics, MAX_BATCH, MAX_LINGER);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH + 1);
    // Search indexing (see `search_index`): at start (a crash may have left messages
    // unindexed), then at most every INDEX_EVERY while anything is written.
    let mut index = SearchIndexing {
        pending: true,
        next: Instant::now(),
        more: Arc::new(AtomicBool::new(false)),
    };
    loop {
        let first = if index.pending {
            // Falling idle with messages to index: index them when due.
            match rx.recv_timeout(index.next.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            }
        };
        if let Some(first) = first {
            batch.push(first);
            let linger_until = commits.linger_until();
            while batch.len() < commits.max_batch() {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(mpsc::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= linger_until {
                            break;
                        }
                        match rx.recv_timeout(linger_until - now) {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            }
        }
        let writes = !batch.is_empty();
        // Last in the batch: FTS5 then writes its one segment at COMMIT.
        let indexing = index.pending && Instant::now() >= index.next;
        if indexing {
            batch.push(index.job());
        }
        if batch.is_empty() {
            continue;
        }
        futures_executor::block_on(commits.commit(&mut writer, &mut batch));
        if indexing {
            index.next = Instant::now() + search_index::INDEX_EVERY;
            index.pending = index.more.swap(false, Ordering::Relaxed);
        }
        index.pending |= writes;
    }
    // Closing: index what is left, so a clean restart starts with an up-to-date index.
    if index.pending {
        batch.push(index.job());
        futures_executor::block_on(commits.commit(&mut writer, &mut batch));
    }
    tracing::debug!("SQLite writer stopped");
}

/// When the writer next indexes messages for search.
struct SearchIndexing {
    /// Messages may have been written since the last run.
    pending: bool,
    /// Not before then.
    next: Instant,
    /// The last run stopped at its chunk limit: more are waiting.
    more: Arc<AtomicBool>,
}

impl SearchIndexing {
    fn job(&self) -> Job {
        let more = self.more.clone();
        Job {
            run: Box::new(move |ctx| {
                let more = more.clone();
                Box::pin(async move {
                    let result =
                        search_index::index_pending(ctx.db, search_index::INDEX_CHUNK).await;
                    // A failed run is tried again next time; searches still see the messages,
                    // by scanning them.
                    if let Err(error) = &result {
                        tracing::warn!(%error, "Indexing messages for search failed");
                    }
                    let n = result.as_ref().map_or(u64::MAX, |n| *n);
                    more.store(n >= search_index::INDEX_CHUNK as u64, Ordering::Relaxed);
                    result.is_ok()
                })
            }),
            // A batch that fails to commit is logged (and its jobs re-run) by the group commit.
            complete: Box::new(|_| {}),
        }
    }
}
