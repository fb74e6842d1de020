//! The embedded SQLite store: one file in WAL mode, one writer thread that group-commits, and a
//! small pool of reader connections.
//!
//! Group commit: every write is a job sent to the writer thread. The thread takes all jobs that
//! are waiting (up to `MAX_BATCH`), runs each inside a SAVEPOINT (one failing job does not undo
//! the others), commits once with `synchronous=FULL` (one fsync for the whole batch), then
//! answers the jobs and hands the batch's messages to the [`CommitSink`] in commit order. So a
//! publish is acknowledged only once it is on disk, and N concurrent publishes cost one fsync.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::{Semaphore, oneshot};
use wsmschat::v1;

use super::sql::{self, *};
use super::*;
use crate::metrics::Metrics;
use crate::util::now_ms;

/// Largest number of jobs in one transaction.
const MAX_BATCH: usize = 1024;
/// Reader connections.
const READERS: usize = 4;

/// What a job sees inside the batch transaction.
pub struct TxCtx<'a> {
    /// The writer connection, inside the batch transaction.
    conn: &'a Connection,
    /// Messages written by the batch so far, fanned out after commit.
    emitted: Vec<Committed>,
}

/// Runs after commit (or after a failed commit) to answer the job's caller.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: runs inside the batch, says whether it succeeded, and how to answer afterwards.
type Job = Box<dyn FnOnce(&mut TxCtx<'_>) -> (bool, Completion) + Send>;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    /// Jobs for the writer thread; dropped on close so the thread drains and exits.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on close so the last batch is committed before exit.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Reader connections (WAL lets them read while the writer writes).
    readers: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads to the number of reader connections.
    reader_permits: Semaphore,
}

/// The shared SQL uses PostgreSQL's `$N` placeholders. SQLite reads `$N` as a *named*
/// parameter numbered by first appearance, so it is rewritten to SQLite's positional `?N`.
/// (`$` appears in the statements only as a placeholder prefix.)
fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// `execute` and `query_row` with `$N` placeholders.
trait PgStyle {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl PgStyle for Connection {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(&sqlite_placeholders(sql))?
            .execute(params)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(&sqlite_placeholders(sql))?
            .query_row(params, f)
    }
}

fn db_err(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, msg) = &error {
        if e.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Conflict(msg.clone().unwrap_or_else(|| "already exists".into()));
        }
    }
    if matches!(error, rusqlite::Error::QueryReturnedNoRows) {
        return StoreError::NotFound("record");
    }
    StoreError::Internal(error.to_string())
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

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let current: i64 = conn.row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (i, migration) in sql::MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.exec(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            params![version, now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, "Applied migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, migrates it and starts the writer.
    pub fn open(
        path: &Path,
        sink: Arc<dyn CommitSink>,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Internal(e.to_string()))?;
        }
        let mut writer_conn = open_connection(path).map_err(db_err)?;
        migrate(&mut writer_conn).map_err(db_err)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, sink, metrics))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Mutex::new(readers),
            reader_permits: Semaphore::new(READERS),
        })
    }

    /// Stops taking writes, commits what is queued and waits for the writer thread.
    pub fn close(&self) {
        self.writer.lock().unwrap().take();
        if let Some(thread) = self.writer_thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }

    /// Runs `f` in the next batch transaction; resolves after the batch is committed.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut TxCtx<'_>) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = f(ctx);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        });
        let sender = self.writer.lock().unwrap().clone();
        let Some(sender) = sender else {
            return Err(StoreError::Internal("store is closed".into()));
        };
        sender
            .send(job)
            .map_err(|_| StoreError::Internal("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Internal("store writer dropped the write".into()))?
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Internal("store closed".into()))?;
        let conn = self
            .readers
            .lock()
            .unwrap()
            .pop()
            .expect("a reader per permit");
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.readers.lock().unwrap().push(conn);
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    sink: Arc<dyn CommitSink>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let jobs = batch.len();
        let mut ctx = TxCtx {
            conn: &conn,
            emitted: Vec::new(),
        };
        let mut completions = Vec::with_capacity(jobs);
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err);
        if let Err(error) = begun {
            tracing::error!(%error, "Cannot begin a write batch");
            for job in batch.drain(..) {
                // Run nothing: answer every job with the error.
                let _ = job;
            }
            continue;
        }
        for job in batch.drain(..) {
            let mark = ctx.emitted.len();
            if let Err(error) = conn.execute_batch("SAVEPOINT job") {
                tracing::error!(%error, "Cannot open a savepoint");
            }
            let (ok, completion) = job(&mut ctx);
            let end = if ok {
                "RELEASE job"
            } else {
                ctx.emitted.truncate(mark);
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(error) = conn.execute_batch(end) {
                tracing::error!(%error, "Cannot close a savepoint");
            }
            completions.push(completion);
        }
        let committed = conn.execute_batch("COMMIT").map_err(db_err);
        if let Err(error) = &committed {
            tracing::error!(%error, "Write batch failed to commit");
            let _ = conn.execute_batch("ROLLBACK");
        }
        let emitted = std::mem::take(&mut ctx.emitted);
        metrics.observe_batch(jobs, started.elapsed());
        if committed.is_ok() && !emitted.is_empty() {
            sink.committed(&emitted);
        }
        for completion in completions {
            completion(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Internal(e.to_string())),
            });
        }
    }
    tracing::debug!("SQLite writer stopped");
}

// ---------------------------------------------------------------- row decoding

fn conversation_from_row(r: &Row<'_>) -> rusqlite::Result<v1::Conversation> {
    Ok(v1::Conversation {
        id: r.get(0)?,
        site_id: r.get(1)?,
        visitor_id: r.get(2)?,
        visitor_name: r.get(3)?,
        topic: r.get(4)?,
        status: r.get(5)?,
        assignee_id: r.get(6)?,
        assignee_name: r.get(7)?,
        queue_position: r.get::<_, i64>(8)? as u32,
        last_seq: r.get::<_, i64>(9)? as u64,
        last_message_preview: r.get(10)?,
        visitor_read_seq: r.get::<_, i64>(11)? as u64,
        agent_read_seq: r.get::<_, i64>(12)? as u64,
        created_at_ms: r.get(13)?,
        updated_at_ms: r.get(14)?,
        rating: r.get::<_, i64>(15)? as u32,
        rating_comment: r.get(16)?,
        agents_online: 0,
    })
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<v1::Message> {
    let sys_kind: i32 = r.get(9)?;
    Ok(v1::Message {
        conversation_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        client_msg_id: r.get(2)?,
        kind: r.get(3)?,
        author_kind: r.get(4)?,
        author_id: r.get(5)?,
        author_name: r.get(6)?,
        text: r.get(7)?,
        created_at_ms: r.get(8)?,
        system: (sys_kind != 0)
            .then(|| -> rusqlite::Result<_> {
                Ok(v1::SystemEvent {
                    kind: sys_kind,
                    agent_id: r.get(10)?,
                    agent_name: r.get(11)?,
                    score: r.get::<_, i64>(12)? as u32,
                })
            })
            .transpose()?,
    })
}

fn site_from_row(r: &Row<'_>) -> rusqlite::Result<v1::Site> {
    Ok(v1::Site {
        id: r.get(0)?,
        site_key: r.get(1)?,
        name: r.get(2)?,
        allowed_origins: split_list(&r.get::<_, String>(3)?),
        topics: split_list(&r.get::<_, String>(4)?),
        color: r.get(5)?,
        greeting: r.get(6)?,
        identity_secret: r.get(7)?,
        identity_required: r.get::<_, i64>(8)? != 0,
    })
}

fn agent_from_row(r: &Row<'_>) -> rusqlite::Result<v1::Agent> {
    Ok(v1::Agent {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        topics: split_list(&r.get::<_, String>(4)?),
        capacity: r.get::<_, i64>(5)? as u32,
        active: r.get::<_, i64>(6)? != 0,
    })
}

fn visitor_from_row(r: &Row<'_>) -> rusqlite::Result<v1::Visitor> {
    let user_id: String = r.get(4)?;
    Ok(v1::Visitor {
        id: r.get(0)?,
        site_id: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        verified: !user_id.is_empty(),
        user_id,
        page_url: r.get(5)?,
        user_agent: r.get(6)?,
        locale: r.get(7)?,
        first_seen_ms: r.get(8)?,
        last_seen_ms: r.get(9)?,
    })
}

fn api_key_from_row(r: &Row<'_>) -> rusqlite::Result<v1::ApiKey> {
    Ok(v1::ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes: split_list(&r.get::<_, String>(2)?)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        created_at_ms: r.get(3)?,
        active: r.get::<_, i64>(4)? != 0,
    })
}

fn canned_from_row(r: &Row<'_>) -> rusqlite::Result<v1::CannedReply> {
    Ok(v1::CannedReply {
        id: r.get(0)?,
        site_id: r.get(1)?,
        shortcut: r.get(2)?,
        text: r.get(3)?,
    })
}

// ---------------------------------------------------------------- statements used in jobs

fn load_conversation(conn: &Connection, id: &str) -> StoreResult<v1::Conversation> {
    conn.row(
        &format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
        params![id],
        conversation_from_row,
    )
    .optional()
    .map_err(db_err)?
    .ok_or(StoreError::NotFound("conversation"))
}

fn load_message(conn: &Connection, conversation_id: &str, seq: u64) -> StoreResult<v1::Message> {
    conn.row(
        &format!("{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq = $2"),
        params![conversation_id, seq as i64],
        message_from_row,
    )
    .map_err(db_err)
}

fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// Appends one message to an existing conversation inside the current transaction: takes the
/// next seq, updates the conversation's activity and queues the message for fan-out.
fn insert_message(
    ctx: &mut TxCtx<'_>,
    m: &NewMessage,
    conversation_id: &str,
    visitor_id: &str,
) -> StoreResult<v1::Message> {
    let now = now_ms();
    let is_text = m.kind == v1::MessageKind::Text;
    let by_visitor = m.author_kind == v1::AuthorKind::Visitor;
    let by_staff = matches!(
        m.author_kind,
        v1::AuthorKind::Agent | v1::AuthorKind::Service
    );
    let seq: i64 = ctx
        .conn
        .row(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2, \
             last_preview = CASE WHEN $3 = 1 THEN $4 ELSE last_preview END, \
             first_message_at = CASE WHEN $5 = 1 AND first_message_at IS NULL THEN $2 ELSE first_message_at END, \
             first_response_at = CASE WHEN $6 = 1 AND first_response_at IS NULL THEN $2 ELSE first_response_at END \
             WHERE id = $1 RETURNING last_seq",
            params![
                conversation_id,
                now,
                is_text as i64,
                preview(&m.text),
                (is_text && by_visitor) as i64,
                (is_text && by_staff) as i64,
            ],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let sys = m.system.clone().unwrap_or_default();
    ctx.conn
        .exec(
            "INSERT INTO messages (conversation_id, seq, author_key, client_msg_id, kind, author_kind, \
             author_id, author_name, text, created_at, sys_kind, sys_agent_id, sys_agent_name, sys_score) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            params![
                conversation_id,
                seq,
                m.author_key,
                m.client_msg_id,
                m.kind as i32,
                m.author_kind as i32,
                m.author_id,
                m.author_name,
                m.text,
                now,
                sys.kind,
                sys.agent_id,
                sys.agent_name,
                sys.score as i64,
            ],
        )
        .map_err(db_err)?;
    let message = v1::Message {
        conversation_id: conversation_id.to_owned(),
        seq: seq as u64,
        client_msg_id: m.client_msg_id.clone().unwrap_or_default(),
        kind: m.kind as i32,
        author_kind: m.author_kind as i32,
        author_id: m.author_id.clone(),
        author_name: m.author_name.clone(),
        text: m.text.clone(),
        created_at_ms: now,
        system: m.system.clone(),
    };
    ctx.emitted.push(Committed {
        message: message.clone(),
        visitor_id: visitor_id.to_owned(),
    });
    Ok(message)
}

/// Writes a system message about the conversation.
fn insert_system(
    ctx: &mut TxCtx<'_>,
    conversation: &v1::Conversation,
    system: v1::SystemEvent,
) -> StoreResult<v1::Message> {
    let m = NewMessage {
        conversation_id: Some(conversation.id.clone()),
        new_conversation: None,
        client_msg_id: None,
        author_key: "s:".into(),
        kind: v1::MessageKind::System,
        author_kind: v1::AuthorKind::System,
        author_id: String::new(),
        author_name: String::new(),
        text: String::new(),
        system: Some(system),
        require_visitor: None,
    };
    insert_message(ctx, &m, &conversation.id, &conversation.visitor_id)
}

fn append_in_tx(ctx: &mut TxCtx<'_>, m: NewMessage) -> StoreResult<Appended> {
    let conn = ctx.conn;
    if let Some(client_msg_id) = &m.client_msg_id {
        let existing: Option<(String, i64)> = conn
            .row(
                "SELECT conversation_id, seq FROM messages WHERE author_key = $1 AND client_msg_id = $2",
                params![m.author_key, client_msg_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        if let Some((conversation_id, seq)) = existing {
            return Ok(Appended {
                message: load_message(conn, &conversation_id, seq as u64)?,
                duplicate: true,
                conversation: load_conversation(conn, &conversation_id)?,
                created: false,
                reopened: false,
            });
        }
    }
    let now = now_ms();
    let (conversation_id, created) = match (&m.conversation_id, &m.new_conversation) {
        (Some(id), _) => (id.clone(), false),
        (None, Some(new)) => {
            conn.exec(
                "INSERT INTO conversations (id, site_id, visitor_id, topic, status, created_at, updated_at, queued_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
                params![
                    new.id,
                    new.site_id,
                    new.visitor_id,
                    new.topic,
                    v1::ConversationStatus::Queued as i32,
                    now
                ],
            )
            .map_err(db_err)?;
            (new.id.clone(), true)
        }
        (None, None) => return Err(StoreError::NotFound("conversation")),
    };
    let (visitor_id, status): (String, i32) = conn
        .row(
            "SELECT visitor_id, status FROM conversations WHERE id = $1",
            params![conversation_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err)?
        .ok_or(StoreError::NotFound("conversation"))?;
    if let Some(owner) = &m.require_visitor {
        if *owner != visitor_id {
            // Same answer as a missing conversation: ids of others' conversations leak nothing.
            return Err(StoreError::NotFound("conversation"));
        }
    }
    let mut reopened = false;
    if status == v1::ConversationStatus::Resolved as i32
        && m.author_kind == v1::AuthorKind::Visitor
        && m.kind == v1::MessageKind::Text
    {
        conn.exec(
            "UPDATE conversations SET status = $2, assignee_id = NULL, queued_at = $3, resolved_at = NULL \
             WHERE id = $1",
            params![conversation_id, v1::ConversationStatus::Queued as i32, now],
        )
        .map_err(db_err)?;
        reopened = true;
    }
    let message = insert_message(ctx, &m, &conversation_id, &visitor_id)?;
    Ok(Appended {
        message,
        duplicate: false,
        conversation: load_conversation(ctx.conn, &conversation_id)?,
        created,
        reopened,
    })
}

fn agent_name(conn: &Connection, agent_id: &str) -> StoreResult<String> {
    conn.row(
        "SELECT name FROM agents WHERE id = $1 AND active = 1",
        params![agent_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)?
    .ok_or(StoreError::NotFound("agent"))
}

fn assign_in_tx(
    ctx: &mut TxCtx<'_>,
    conversation_id: &str,
    target: AssignTarget,
) -> StoreResult<Option<Changed>> {
    let conn = ctx.conn;
    let before = load_conversation(conn, conversation_id)?;
    let previous = (!before.assignee_id.is_empty()).then(|| before.assignee_id.clone());
    let (agent_id, kind) = match target {
        AssignTarget::LeastLoaded(candidates) => {
            if before.status != v1::ConversationStatus::Queued as i32 {
                return Ok(None);
            }
            // Load = open conversations assigned. The writer runs one job at a time, so the
            // check and the update below cannot interleave with another assignment.
            let mut best: Option<(i64, i64, String)> = None;
            for candidate in candidates {
                let row: Option<(i64, i64)> = conn
                    .row(
                        "SELECT a.capacity, a.last_assigned_at FROM agents a WHERE a.id = $1 AND a.active = 1",
                        params![candidate],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_err)?;
                let Some((capacity, last_assigned)) = row else {
                    continue;
                };
                let load: i64 = conn
                    .row(
                        "SELECT COUNT(*) FROM conversations WHERE assignee_id = $1 AND status = $2",
                        params![candidate, v1::ConversationStatus::Open as i32],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if load >= capacity {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((l, t, _)) => (load, last_assigned) < (*l, *t),
                };
                if better {
                    best = Some((load, last_assigned, candidate));
                }
            }
            match best {
                Some((_, _, id)) => (id, v1::SystemEventKind::Assigned),
                None => return Ok(None),
            }
        }
        AssignTarget::Agent {
            agent_id,
            system_kind,
        } => (agent_id, system_kind),
    };
    let name = agent_name(conn, &agent_id)?;
    let now = now_ms();
    conn.exec(
        "UPDATE conversations SET status = $2, assignee_id = $3, updated_at = $4 WHERE id = $1",
        params![
            conversation_id,
            v1::ConversationStatus::Open as i32,
            agent_id,
            now
        ],
    )
    .map_err(db_err)?;
    conn.exec(
        "UPDATE agents SET last_assigned_at = $2 WHERE id = $1",
        params![agent_id, now],
    )
    .map_err(db_err)?;
    let after = load_conversation(conn, conversation_id)?;
    insert_system(
        ctx,
        &after,
        v1::SystemEvent {
            kind: kind as i32,
            agent_id: agent_id.clone(),
            agent_name: name,
            score: 0,
        },
    )?;
    Ok(Some(Changed {
        conversation: load_conversation(ctx.conn, conversation_id)?,
        previous_assignee: previous,
    }))
}

fn set_status_in_tx(
    ctx: &mut TxCtx<'_>,
    conversation_id: &str,
    resolve: bool,
) -> StoreResult<Changed> {
    let conn = ctx.conn;
    let before = load_conversation(conn, conversation_id)?;
    let previous = (!before.assignee_id.is_empty()).then(|| before.assignee_id.clone());
    let now = now_ms();
    let kind = if resolve {
        if before.status == v1::ConversationStatus::Resolved as i32 {
            return Err(StoreError::Precondition(
                "conversation is already resolved".into(),
            ));
        }
        conn.exec(
            "UPDATE conversations SET status = $2, resolved_at = $3, updated_at = $3 WHERE id = $1",
            params![
                conversation_id,
                v1::ConversationStatus::Resolved as i32,
                now
            ],
        )
        .map_err(db_err)?;
        v1::SystemEventKind::Resolved
    } else {
        if before.status != v1::ConversationStatus::Resolved as i32 {
            return Err(StoreError::Precondition(
                "only a resolved conversation can be reopened".into(),
            ));
        }
        // Back to the queue; the core assigns it again (preferring the last agent).
        conn.exec(
            "UPDATE conversations SET status = $2, assignee_id = NULL, resolved_at = NULL, queued_at = $3, \
             updated_at = $3 WHERE id = $1",
            params![conversation_id, v1::ConversationStatus::Queued as i32, now],
        )
        .map_err(db_err)?;
        v1::SystemEventKind::Reopened
    };
    let after = load_conversation(conn, conversation_id)?;
    insert_system(
        ctx,
        &after,
        v1::SystemEvent {
            kind: kind as i32,
            ..Default::default()
        },
    )?;
    Ok(Changed {
        conversation: load_conversation(ctx.conn, conversation_id)?,
        previous_assignee: previous,
    })
}

fn upsert_visitor_in_tx(conn: &Connection, u: VisitorUpsert) -> StoreResult<v1::Visitor> {
    let now = now_ms();
    let by_user = match &u.verified_user_id {
        Some(user_id) => conn
            .row(
                "SELECT id FROM visitors WHERE site_id = $1 AND user_id = $2",
                params![u.site_id, user_id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db_err)?,
        None => None,
    };
    let by_token = match (&by_user, &u.token_hash) {
        (None, Some(hash)) => conn
            .row(
                "SELECT v.id, COALESCE(v.user_id, '') FROM visitor_tokens t JOIN visitors v ON v.id = t.visitor_id \
                 WHERE t.token_hash = $1 AND v.site_id = $2",
                params![hash, u.site_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db_err)?
            // A token of a verified user does not carry over to another identity.
            .filter(|(_, user)| {
                u.verified_user_id.is_none()
                    || user.is_empty()
                    || u.verified_user_id.as_deref() == Some(user)
            })
            .map(|(id, _)| id),
        _ => None,
    };
    let id = match by_user.or(by_token) {
        Some(id) => {
            conn.exec(
                "UPDATE visitors SET \
                 name = CASE WHEN $2 = '' THEN name ELSE $2 END, \
                 email = CASE WHEN $3 = '' THEN email ELSE $3 END, \
                 page_url = CASE WHEN $4 = '' THEN page_url ELSE $4 END, \
                 user_agent = CASE WHEN $5 = '' THEN user_agent ELSE $5 END, \
                 locale = CASE WHEN $6 = '' THEN locale ELSE $6 END, \
                 user_id = COALESCE(user_id, $7), last_seen = $8 WHERE id = $1",
                params![
                    id,
                    u.name,
                    u.email,
                    u.page_url,
                    u.user_agent,
                    u.locale,
                    u.verified_user_id,
                    now
                ],
            )
            .map_err(db_err)?;
            id
        }
        None => {
            conn.exec(
                "INSERT INTO visitors (id, site_id, user_id, name, email, page_url, user_agent, locale, first_seen, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                params![
                    u.new_visitor_id,
                    u.site_id,
                    u.verified_user_id,
                    u.name,
                    u.email,
                    u.page_url,
                    u.user_agent,
                    u.locale,
                    now
                ],
            )
            .map_err(db_err)?;
            u.new_visitor_id.clone()
        }
    };
    if !u.new_token_hash.is_empty() {
        conn.exec(
            "INSERT INTO visitor_tokens (token_hash, visitor_id, created_at) VALUES ($1, $2, $3)",
            params![u.new_token_hash, id, now],
        )
        .map_err(db_err)?;
    }
    conn.row(
        &format!("{VISITOR_SELECT} WHERE id = $1"),
        params![id],
        visitor_from_row,
    )
    .map_err(db_err)
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn
        .prepare_cached(&sqlite_placeholders(sql))
        .map_err(db_err)?;
    let rows = stmt.query_map(params, f).map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db_err)
}

fn list_conversations_in(
    conn: &Connection,
    f: &ConversationFilter,
) -> StoreResult<(Vec<v1::Conversation>, u32)> {
    use rusqlite::types::Value;
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(status) = f.status {
        let p = arg(Value::Integer(status as i64));
        clauses.push(format!("c.status = {p}"));
    }
    if let Some(topic) = &f.topic {
        let p = arg(Value::Text(topic.clone()));
        clauses.push(format!("c.topic = {p}"));
    }
    if let Some(assignee) = &f.assignee_id {
        let p = arg(Value::Text(assignee.clone()));
        clauses.push(format!("c.assignee_id = {p}"));
    }
    if f.unassigned {
        clauses.push("c.assignee_id IS NULL".into());
    }
    if let Some(site) = &f.site_id {
        let p = arg(Value::Text(site.clone()));
        clauses.push(format!("c.site_id = {p}"));
    }
    if let Some(visitor) = &f.visitor_id {
        let p = arg(Value::Text(visitor.clone()));
        clauses.push(format!("c.visitor_id = {p}"));
    }
    if let Some(q) = &f.query {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = arg(Value::Text(format!("%{escaped}%")));
        clauses.push(format!(
            "(LOWER(v.name) LIKE {p} ESCAPE '\\' OR LOWER(v.email) LIKE {p} ESCAPE '\\' OR EXISTS \
             (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.kind = 1 AND LOWER(m.text) LIKE {p} ESCAPE '\\'))"
        ));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = conn
        .row(
            &format!(
                "SELECT COUNT(*) FROM conversations c JOIN visitors v ON v.id = c.visitor_id{filter_sql}"
            ),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let mut page_clauses = clauses.clone();
    let mut page_args = args.clone();
    if let Some((updated, id)) = &f.after {
        page_args.push(Value::Integer(*updated));
        let a = page_args.len();
        page_args.push(Value::Text(id.clone()));
        let b = page_args.len();
        page_clauses.push(format!(
            "(c.updated_at < ${a} OR (c.updated_at = ${a} AND c.id < ${b}))"
        ));
    }
    page_args.push(Value::Integer(f.limit as i64));
    let limit_p = page_args.len();
    let where_sql = if page_clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", page_clauses.join(" AND "))
    };
    let rows = query_all(
        conn,
        &format!(
            "{CONVERSATION_SELECT}{where_sql} ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}"
        ),
        rusqlite::params_from_iter(page_args.iter()),
        conversation_from_row,
    )?;
    Ok((rows, total as u32))
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            ctx.conn
                .exec(
                    "INSERT INTO sites (id, site_key, name, allowed_origins, topics, color, greeting, \
                     identity_secret, identity_required, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    params![
                        site.id,
                        site.site_key,
                        site.name,
                        join_list(&site.allowed_origins),
                        join_list(&site.topics),
                        site.color,
                        site.greeting,
                        site.identity_secret,
                        site.identity_required as i64,
                        now_ms()
                    ],
                )
                .map_err(db_err)?;
            Ok(site)
        })
        .await
    }

    async fn update_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .exec(
                    "UPDATE sites SET name = $2, allowed_origins = $3, topics = $4, color = $5, greeting = $6, \
                     identity_secret = $7, identity_required = $8 WHERE id = $1",
                    params![
                        site.id,
                        site.name,
                        join_list(&site.allowed_origins),
                        join_list(&site.topics),
                        site.color,
                        site.greeting,
                        site.identity_secret,
                        site.identity_required as i64
                    ],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("site"));
            }
            ctx.conn
                .row(
                    &format!("{SITE_SELECT} WHERE id = $1"),
                    params![site.id],
                    site_from_row,
                )
                .map_err(db_err)
        })
        .await
    }

    async fn list_sites(&self) -> StoreResult<Vec<v1::Site>> {
        self.read(|c| {
            query_all(
                c,
                &format!("{SITE_SELECT} ORDER BY name, id"),
                [],
                site_from_row,
            )
        })
        .await
    }

    async fn site_by_key(&self, site_key: &str) -> StoreResult<v1::Site> {
        let key = site_key.to_owned();
        self.read(move |c| {
            c.row(
                &format!("{SITE_SELECT} WHERE site_key = $1"),
                params![key],
                site_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("site"))
        })
        .await
    }

    async fn site_by_id(&self, id: &str) -> StoreResult<v1::Site> {
        let id = id.to_owned();
        self.read(move |c| {
            c.row(
                &format!("{SITE_SELECT} WHERE id = $1"),
                params![id],
                site_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("site"))
        })
        .await
    }

    async fn create_agent(
        &self,
        agent: v1::Agent,
        password_hash: String,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            ctx.conn
                .exec(
                    "INSERT INTO agents (id, email, name, password_hash, role, topics, capacity, active, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    params![
                        agent.id,
                        agent.email,
                        agent.name,
                        password_hash,
                        agent.role,
                        join_list(&agent.topics),
                        agent.capacity as i64,
                        agent.active as i64,
                        now_ms()
                    ],
                )
                .map_err(db_err)?;
            Ok(agent)
        })
        .await
    }

    async fn update_agent(
        &self,
        agent: v1::Agent,
        password_hash: Option<String>,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .exec(
                    "UPDATE agents SET name = $2, role = $3, topics = $4, capacity = $5, active = $6, \
                     password_hash = COALESCE($7, password_hash) WHERE id = $1",
                    params![
                        agent.id,
                        agent.name,
                        agent.role,
                        join_list(&agent.topics),
                        agent.capacity as i64,
                        agent.active as i64,
                        password_hash
                    ],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("agent"));
            }
            if !agent.active {
                ctx.conn
                    .exec("DELETE FROM agent_sessions WHERE agent_id = $1", params![agent.id])
                    .map_err(db_err)?;
            }
            ctx.conn
                .row(
                    &format!("{AGENT_SELECT} WHERE id = $1"),
                    params![agent.id],
                    agent_from_row,
                )
                .map_err(db_err)
        })
        .await
    }

    async fn list_agents(&self) -> StoreResult<Vec<v1::Agent>> {
        self.read(|c| {
            query_all(
                c,
                &format!("{AGENT_SELECT} ORDER BY name, id"),
                [],
                agent_from_row,
            )
        })
        .await
    }

    async fn agent_by_email(&self, email: &str) -> StoreResult<AgentRecord> {
        let email = email.to_owned();
        self.read(move |c| {
            c.row(
                "SELECT id, email, name, role, topics, capacity, active, password_hash FROM agents \
                 WHERE LOWER(email) = LOWER($1)",
                params![email],
                |r| {
                    Ok(AgentRecord {
                        agent: agent_from_row(r)?,
                        password_hash: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("agent"))
        })
        .await
    }

    async fn agent_by_id(&self, id: &str) -> StoreResult<v1::Agent> {
        let id = id.to_owned();
        self.read(move |c| {
            c.row(
                &format!("{AGENT_SELECT} WHERE id = $1"),
                params![id],
                agent_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("agent"))
        })
        .await
    }

    async fn create_agent_session(
        &self,
        token_hash: String,
        agent_id: String,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let now = now_ms();
            // Expired sessions are swept when new ones are made.
            ctx.conn
                .exec("DELETE FROM agent_sessions WHERE expires_at < $1", params![now])
                .map_err(db_err)?;
            ctx.conn
                .exec(
                    "INSERT INTO agent_sessions (token_hash, agent_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
                    params![token_hash, agent_id, expires_at, now],
                )
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn agent_by_session(&self, token_hash: &str, now: i64) -> StoreResult<(v1::Agent, i64)> {
        let hash = token_hash.to_owned();
        self.read(move |c| {
            c.row(
                "SELECT a.id, a.email, a.name, a.role, a.topics, a.capacity, a.active, s.expires_at \
                 FROM agent_sessions s JOIN agents a ON a.id = s.agent_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.active = 1",
                params![hash, now],
                |r| Ok((agent_from_row(r)?, r.get(7)?)),
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("session"))
        })
        .await
    }

    async fn delete_agent_session(&self, token_hash: String) -> StoreResult<()> {
        self.write(move |ctx| {
            ctx.conn
                .exec(
                    "DELETE FROM agent_sessions WHERE token_hash = $1",
                    params![token_hash],
                )
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn create_api_key(
        &self,
        key: v1::ApiKey,
        secret_hash: String,
    ) -> StoreResult<v1::ApiKey> {
        self.write(move |ctx| {
            let scopes: Vec<String> = key.scopes.iter().map(|s| s.to_string()).collect();
            ctx.conn
                .exec(
                    "INSERT INTO api_keys (id, name, secret_hash, scopes, active, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
                    params![key.id, key.name, secret_hash, join_list(&scopes), key.created_at_ms],
                )
                .map_err(db_err)?;
            Ok(key)
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<v1::ApiKey>> {
        self.read(|c| {
            query_all(
                c,
                &format!("{API_KEY_SELECT} ORDER BY created_at DESC, id"),
                [],
                api_key_from_row,
            )
        })
        .await
    }

    async fn revoke_api_key(&self, id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .exec("UPDATE api_keys SET active = 0 WHERE id = $1", params![id])
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("API key"));
            }
            Ok(())
        })
        .await
    }

    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<ApiKeyRecord> {
        let hash = secret_hash.to_owned();
        self.read(move |c| {
            c.row(
                &format!("{API_KEY_SELECT} WHERE secret_hash = $1 AND active = 1"),
                params![hash],
                api_key_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(|key| ApiKeyRecord { key })
            .ok_or(StoreError::NotFound("API key"))
        })
        .await
    }

    async fn upsert_visitor(&self, upsert: VisitorUpsert) -> StoreResult<v1::Visitor> {
        self.write(move |ctx| upsert_visitor_in_tx(ctx.conn, upsert))
            .await
    }

    async fn visitor_by_token(&self, token_hash: &str) -> StoreResult<v1::Visitor> {
        let hash = token_hash.to_owned();
        self.read(move |c| {
            c.row(
                &format!(
                    "{VISITOR_SELECT} WHERE id = (SELECT visitor_id FROM visitor_tokens WHERE token_hash = $1)"
                ),
                params![hash],
                visitor_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("visitor"))
        })
        .await
    }

    async fn visitor_by_id(&self, id: &str) -> StoreResult<v1::Visitor> {
        let id = id.to_owned();
        self.read(move |c| {
            c.row(
                &format!("{VISITOR_SELECT} WHERE id = $1"),
                params![id],
                visitor_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or(StoreError::NotFound("visitor"))
        })
        .await
    }

    async fn delete_visitor_token(&self, token_hash: String) -> StoreResult<()> {
        self.write(move |ctx| {
            ctx.conn
                .exec(
                    "DELETE FROM visitor_tokens WHERE token_hash = $1",
                    params![token_hash],
                )
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended> {
        self.write(move |ctx| append_in_tx(ctx, message)).await
    }

    async fn conversation(&self, id: &str) -> StoreResult<v1::Conversation> {
        let id = id.to_owned();
        self.read(move |c| load_conversation(c, &id)).await
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
    ) -> StoreResult<(Vec<v1::Conversation>, u32)> {
        self.read(move |c| list_conversations_in(c, &filter)).await
    }

    async fn history(
        &self,
        conversation_id: &str,
        before_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<(Vec<v1::Message>, bool)> {
        let id = conversation_id.to_owned();
        self.read(move |c| {
            let before = if before_seq == 0 { i64::MAX } else { before_seq as i64 };
            let mut rows = query_all(
                c,
                &format!(
                    "{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq < $2 AND ($3 = 1 OR kind <> 2) \
                     ORDER BY seq DESC LIMIT $4"
                ),
                params![id, before, with_notes as i64, limit as i64 + 1],
                message_from_row,
            )?;
            let has_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            rows.reverse();
            Ok((rows, has_more))
        })
        .await
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<Vec<v1::Message>> {
        let id = conversation_id.to_owned();
        self.read(move |c| {
            query_all(
                c,
                &format!(
                    "{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq > $2 AND ($3 = 1 OR kind <> 2) \
                     ORDER BY seq LIMIT $4"
                ),
                params![id, after_seq as i64, with_notes as i64, limit as i64],
                message_from_row,
            )
        })
        .await
    }

    async fn assign(
        &self,
        conversation_id: String,
        target: AssignTarget,
    ) -> StoreResult<Option<Changed>> {
        self.write(move |ctx| assign_in_tx(ctx, &conversation_id, target))
            .await
    }

    async fn resolve(&self, conversation_id: String) -> StoreResult<Changed> {
        self.write(move |ctx| set_status_in_tx(ctx, &conversation_id, true))
            .await
    }

    async fn reopen(&self, conversation_id: String) -> StoreResult<Changed> {
        self.write(move |ctx| set_status_in_tx(ctx, &conversation_id, false))
            .await
    }

    async fn rate(
        &self,
        conversation_id: String,
        score: u32,
        comment: String,
    ) -> StoreResult<Changed> {
        self.write(move |ctx| {
            let before = load_conversation(ctx.conn, &conversation_id)?;
            if before.status != v1::ConversationStatus::Resolved as i32 {
                return Err(StoreError::Precondition(
                    "only a resolved conversation can be rated".into(),
                ));
            }
            ctx.conn
                .exec(
                    "UPDATE conversations SET rating = $2, rating_comment = $3, updated_at = $4 WHERE id = $1",
                    params![conversation_id, score as i64, comment, now_ms()],
                )
                .map_err(db_err)?;
            let after = load_conversation(ctx.conn, &conversation_id)?;
            insert_system(
                ctx,
                &after,
                v1::SystemEvent {
                    kind: v1::SystemEventKind::Rated as i32,
                    score,
                    ..Default::default()
                },
            )?;
            Ok(Changed {
                conversation: load_conversation(ctx.conn, &conversation_id)?,
                previous_assignee: None,
            })
        })
        .await
    }

    async fn mark_read(
        &self,
        conversation_id: String,
        by_visitor: bool,
        seq: u64,
    ) -> StoreResult<v1::Conversation> {
        self.write(move |ctx| {
            let sql = if by_visitor {
                "UPDATE conversations SET visitor_read_seq = $2 WHERE id = $1 AND visitor_read_seq < $2 AND last_seq >= $2"
            } else {
                "UPDATE conversations SET agent_read_seq = $2 WHERE id = $1 AND agent_read_seq < $2 AND last_seq >= $2"
            };
            ctx.conn
                .exec(sql, params![conversation_id, seq as i64])
                .map_err(db_err)?;
            load_conversation(ctx.conn, &conversation_id)
        })
        .await
    }

    async fn queued(&self, topics: Vec<String>, limit: u32) -> StoreResult<Vec<v1::Conversation>> {
        self.read(move |c| {
            let mut out = Vec::new();
            for topic in topics {
                out.extend(query_all(
                    c,
                    &format!(
                        "{CONVERSATION_SELECT} WHERE c.status = 1 AND c.topic = $1 ORDER BY c.queued_at, c.id LIMIT $2"
                    ),
                    params![topic, limit as i64],
                    conversation_from_row,
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn agent_loads(&self) -> StoreResult<Vec<(String, u32)>> {
        self.read(|c| {
            query_all(
                c,
                "SELECT assignee_id, COUNT(*) FROM conversations WHERE status = 2 AND assignee_id IS NOT NULL \
                 GROUP BY assignee_id",
                [],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32)),
            )
        })
        .await
    }

    async fn put_canned_reply(&self, reply: v1::CannedReply) -> StoreResult<v1::CannedReply> {
        self.write(move |ctx| {
            ctx.conn
                .exec(
                    "INSERT INTO canned_replies (id, site_id, shortcut, text) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (site_id, shortcut) DO UPDATE SET text = excluded.text",
                    params![reply.id, reply.site_id, reply.shortcut, reply.text],
                )
                .map_err(db_err)?;
            ctx.conn
                .row(
                    &format!("{CANNED_SELECT} WHERE site_id = $1 AND shortcut = $2"),
                    params![reply.site_id, reply.shortcut],
                    canned_from_row,
                )
                .map_err(db_err)
        })
        .await
    }

    async fn delete_canned_reply(&self, id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .exec("DELETE FROM canned_replies WHERE id = $1", params![id])
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("canned reply"));
            }
            Ok(())
        })
        .await
    }

    async fn list_canned_replies(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::CannedReply>> {
        self.read(move |c| match site_id {
            Some(site) => query_all(
                c,
                &format!("{CANNED_SELECT} WHERE site_id = $1 OR site_id = '' ORDER BY shortcut"),
                params![site],
                canned_from_row,
            ),
            None => query_all(
                c,
                &format!("{CANNED_SELECT} ORDER BY shortcut"),
                [],
                canned_from_row,
            ),
        })
        .await
    }

    async fn report_rows(&self, site_id: String, since: i64) -> StoreResult<ReportRows> {
        self.read(move |c| {
            let conversations = query_all(
                c,
                "SELECT created_at, first_message_at, first_response_at, resolved_at, rating FROM conversations \
                 WHERE site_id = $1 AND created_at >= $2 ORDER BY created_at",
                params![site_id, since],
                |r| {
                    Ok(ReportRow {
                        created_at: r.get(0)?,
                        first_message_at: r.get(1)?,
                        first_response_at: r.get(2)?,
                        resolved_at: r.get(3)?,
                        rating: r.get::<_, i64>(4)? as u32,
                    })
                },
            )?;
            Ok(ReportRows { conversations })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
