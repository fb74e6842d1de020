//! SQLite's message search index (the FTS5 trigram table of migration 0015) filled in batches
//! by the writer, off the append path (migration 0018).
//!
//! A trigger used to index each message as it was written: every job's savepoint then flushed a
//! one-row FTS5 segment, which FTS5 kept merging, ~20% of the writer thread at 1,000 msg/s.
//! Now the writer adds an [`index_pending`] job to a batch at most every [`INDEX_EVERY`] (and
//! runs one by itself when it falls idle with messages left to index), so FTS5 writes one
//! segment per run. Until a message is indexed, searches find it by scanning the unindexed tail
//! ([`UNINDEXED_TEXT`]): a search sees every acknowledged message, as with the trigger.
//!
//! Correctness rests on `messages` rowids only growing (no message is ever deleted; should they
//! go back, e.g. renumbered by a manual VACUUM, the index is rebuilt) and on the index and
//! `search_progress` changing in one transaction: a crash between two runs leaves the
//! progress where the index is, and the next run (the writer's first, after a restart) indexes
//! the rest. PostgreSQL needs none of this: its GIN index defers its own work.

use std::time::Duration;

use super::StoreResult;
use super::db::Db;
use crate::args;

/// Longest time between two index runs while messages are written. At 10,000 msg/s that
/// leaves at most ~2,000 rows for a search to scan unindexed.
pub const INDEX_EVERY: Duration = Duration::from_millis(200);

/// Most messages one run indexes (a backlog, e.g. after a bulk import, is taken in steps so
/// no batch of live messages waits behind one long statement).
pub const INDEX_CHUNK: i64 = 20_000;

/// The text messages a search must scan because they are not indexed yet (an SQL fragment:
/// `rowid` of `messages` past the stored progress). Newest first, like the index's matches.
pub const UNINDEXED_TEXT: &str =
    "rowid > (SELECT messages_rowid FROM search_progress) AND kind = 1";

/// Indexes up to `limit` messages written since the last run; how many rowids it advanced
/// over (0: nothing was pending). Runs inside the caller's transaction.
pub async fn index_pending(db: &mut dyn Db, limit: i64) -> StoreResult<u64> {
    let mut from = db
        .query_one(
            "SELECT messages_rowid FROM search_progress",
            &[],
            "search progress",
        )
        .await?
        .int(0);
    let newest = db
        .query_one(
            "SELECT COALESCE(MAX(rowid), 0) FROM messages",
            &[],
            "messages",
        )
        .await?
        .int(0);
    if newest < from {
        // Rowids went back (a VACUUM renumbered them, or the file was restored from an older
        // copy of the messages): the progress means nothing any more; rebuild the index.
        tracing::warn!(
            from,
            newest,
            "Message rowids went back; rebuilding the search index"
        );
        db.exec(
            "INSERT INTO message_search (message_search) VALUES ('delete-all')",
            &[],
        )
        .await?;
        from = 0;
    }
    let Some(to) = db
        .query_one(
            "SELECT MAX(rowid) FROM (SELECT rowid FROM messages WHERE rowid > $1 \
             ORDER BY rowid LIMIT $2)",
            args![from, limit],
            "search progress",
        )
        .await?
        .opt_int(0)
    else {
        return Ok(0);
    };
    // In rowid order, so the index's own rowids keep growing with the messages' (a search
    // reads its newest matches as the highest rowids).
    db.exec(
        "INSERT INTO message_search (text, conversation_id) SELECT text, conversation_id \
         FROM messages WHERE rowid > $1 AND rowid <= $2 AND kind = 1 ORDER BY rowid",
        args![from, to],
    )
    .await?;
    db.exec("UPDATE search_progress SET messages_rowid = $1", args![to])
        .await?;
    Ok((to - from) as u64)
}
