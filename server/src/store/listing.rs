//! The inbox list with its filters and search (trigram-indexed, capped), and reports.

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, EngineKind, Value};
use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;

/// Shortest query (in characters) searched for in message text: the trigram indexes on both
/// engines (migration 0015) need three characters to look anything up, and a shorter one
/// would read every message. Names, emails and attribute values are searched at any length.
pub const MIN_TEXT_QUERY_CHARS: usize = 3;

/// Whether a query is long enough for the text indexes (message text, names and emails).
fn text_indexed(q: &str) -> bool {
    q.chars().count() >= MIN_TEXT_QUERY_CHARS
}

/// Most messages a search reads from the text index: a query matching more (a common word)
/// lists and counts the conversations of the newest this many matches, and says its total is
/// a lower bound ([`Total::capped`]). Reading every match of a word in a third of a million
/// messages costs a third of a second; this many cost a few milliseconds.
pub const SEARCH_MESSAGES: u32 = 5_000;

/// What a search reads: `with` (a `WITH m(id) AS (...)` of the newest matching messages'
/// conversations, or empty for a query too short for the text index) and `set`, a `SELECT` of
/// the ids of every conversation found: message text (through `m`), visitor names and emails,
/// attribute values of the conversation or its visitor. Each part is served by an index
/// (trigram indexes for text, names and emails: migrations 0015 and 0016); the set then drives
/// the count and the page, so a search costs what it finds, not the size of the store. A
/// case-insensitive substring on both engines.
pub struct Search {
    with: String,
    set: String,
}

/// The `ILIKE`/`LIKE` pattern of a substring search: `%q%`, case-folded, wildcards escaped.
fn like_pattern(q: &str) -> String {
    format!(
        "%{}%",
        q.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// PostgreSQL: the newest text messages a search samples to learn how common its word is
/// lately ([`DENSITY_SAMPLE`]), and the matches among them ([`DENSE_MATCHES`]) from which it
/// walks messages newest first.
///
/// The newest [`SEARCH_MESSAGES`] matches can be read two ways: the trigram index's bitmap of
/// every match, sorted by time (costs what the word matches: 17,000 rows ~35-80 ms, 345,000
/// rows ~1.2 s), or a walk of `messages_text_by_time` (0017) backwards, testing each message,
/// until enough matched (costs `SEARCH_MESSAGES` / density rows: a word in a third of the
/// messages ~15-30 ms, one in 1.7% ~350-550 ms). The planner misjudges the walk (it prices the
/// `ILIKE` of each row as nearly free), so the choice is made here from the word's density in
/// the newest messages, which is exactly what the walk's cost depends on: at 5% both ways read
/// about the same number of rows of a 1,000,000-message store. The sample costs ~2-3 ms.
const DENSITY_SAMPLE: u32 = 1_000;
/// 5% of [`DENSITY_SAMPLE`] (see there).
const DENSE_MATCHES: i64 = 50;

/// Whether a PostgreSQL search for `q` should walk messages newest first (see [`DENSITY_SAMPLE`]).
pub async fn dense_lately(db: &mut dyn Db, q: &str) -> StoreResult<bool> {
    if db.engine() != EngineKind::Postgres || !text_indexed(q) {
        return Ok(false);
    }
    // The inner LIMIT keeps the sample a walk of the newest rows, whatever the pattern.
    let found = db
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM (SELECT text FROM messages WHERE kind = 1 \
                 ORDER BY created_at DESC LIMIT {DENSITY_SAMPLE}) t WHERE text ILIKE $1"
            ),
            &[Value::Text(like_pattern(q))],
            "count",
        )
        .await?
        .int(0);
    Ok(found >= DENSE_MATCHES)
}

/// `dense` (PostgreSQL only, from [`dense_lately`]): read the newest matching messages by
/// walking them in time order rather than through the trigram index.
pub fn search_sets(
    engine: EngineKind,
    q: &str,
    dense: bool,
    arg: &mut impl FnMut(Value) -> String,
) -> Search {
    let p = arg(Value::Text(like_pattern(q)));
    let indexed = text_indexed(q);
    // SQLite's MATCH argument: one phrase of the query's trigrams, in order (the substring,
    // case-folded), bound once for the message and the visitor table.
    let phrase = match (engine, indexed) {
        (EngineKind::Sqlite, true) => arg(Value::Text(format!("\"{}\"", q.replace('"', "\"\"")))),
        _ => String::new(),
    };
    let mut sets = Vec::new();
    let mut with = String::new();
    if indexed {
        let cap = SEARCH_MESSAGES + 1;
        let messages = match engine {
            // Rowids grow with insertion, so the newest matches come first: those not indexed
            // yet (0018: scanned, at most a few hundred rows), then the index's.
            EngineKind::Sqlite => format!(
                "SELECT conversation_id FROM (\
                 SELECT * FROM (SELECT conversation_id FROM messages WHERE {unindexed} \
                 AND text LIKE {p} ESCAPE '\\' ORDER BY rowid DESC) \
                 UNION ALL \
                 SELECT * FROM (SELECT conversation_id FROM message_search \
                 WHERE message_search MATCH {phrase} ORDER BY rowid DESC LIMIT {cap})) \
                 LIMIT {cap}",
                unindexed = super::search_index::UNINDEXED_TEXT,
            ),
            // A common word: walk `messages_text_by_time` backwards (the planner's own choice
            // for such a word, also with a cached statement's generic plan)...
            EngineKind::Postgres if dense => format!(
                "SELECT conversation_id FROM messages WHERE kind = 1 AND text ILIKE {p} \
                 ORDER BY created_at DESC LIMIT {cap}"
            ),
            // ...any other: the trigram index's matches, sorted (`+ 0`: never the time index's
            // walk, which the planner would pick for a word in 1 message of 60).
            EngineKind::Postgres => format!(
                "SELECT conversation_id FROM messages WHERE kind = 1 AND text ILIKE {p} \
                 ORDER BY created_at + 0 DESC LIMIT {cap}"
            ),
        };
        with = format!("WITH m(id) AS ({messages}) ");
        sets.push("SELECT id FROM m".to_owned());
    }
    sets.push(match (engine, indexed) {
        // Candidates from the trigram table, re-checked against the visitor's current row
        // (the table keeps old names: 0016).
        (EngineKind::Sqlite, true) => format!(
            "SELECT sc.id FROM visitor_search vs CROSS JOIN visitors sv ON sv.id = vs.visitor_id \
             CROSS JOIN conversations sc ON sc.visitor_id = sv.id \
             WHERE visitor_search MATCH {phrase} \
             AND (sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\')"
        ),
        // SQLite's LIKE ignores ASCII case, as LOWER() folds only ASCII.
        (EngineKind::Sqlite, false) => format!(
            "SELECT sc.id FROM conversations sc JOIN visitors sv ON sv.id = sc.visitor_id \
             WHERE sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\'"
        ),
        // ILIKE (backslash is its default escape) is what the pg_trgm indexes serve.
        (EngineKind::Postgres, _) => format!(
            "SELECT sc.id FROM conversations sc JOIN visitors sv ON sv.id = sc.visitor_id \
             WHERE sv.name ILIKE {p} OR sv.email ILIKE {p}"
        ),
    });
    sets.push(format!(
        "SELECT av.owner_id FROM attribute_values av WHERE av.folded LIKE {p} ESCAPE '\\'"
    ));
    sets.push(format!(
        "SELECT sc.id FROM conversations sc JOIN attribute_values av ON av.owner_id = sc.visitor_id \
         WHERE av.folded LIKE {p} ESCAPE '\\'"
    ));
    Search {
        with,
        set: sets.join(" UNION "),
    }
}

pub async fn list_conversations_in(
    db: &mut dyn Db,
    f: &ConversationFilter,
) -> StoreResult<(Vec<v1::Conversation>, Total)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(status) = f.status {
        let p = arg(Value::Int(status as i64));
        clauses.push(format!("c.status = {p}"));
    }
    if let Some(topic) = &f.topic {
        let p = arg(topic.into());
        clauses.push(format!("c.topic = {p}"));
    }
    if let Some(assignee) = &f.assignee_id {
        let p = arg(assignee.into());
        clauses.push(format!("c.assignee_id = {p}"));
    }
    if f.unassigned {
        clauses.push("c.assignee_id IS NULL".into());
    }
    if let Some(site) = &f.site_id {
        let p = arg(site.into());
        clauses.push(format!("c.site_id = {p}"));
    }
    if let Some(visitor) = &f.visitor_id {
        let p = arg(visitor.into());
        clauses.push(format!("c.visitor_id = {p}"));
    }
    match f.snoozed {
        Some(true) => clauses.push("c.snoozed_until IS NOT NULL".into()),
        Some(false) => clauses.push("c.snoozed_until IS NULL".into()),
        None => {}
    }
    if let Some(label) = &f.label_id {
        let p = arg(label.into());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM conversation_labels cl WHERE cl.conversation_id = c.id AND cl.label_id = {p})"
        ));
    }
    if let Some((key, value)) = &f.attribute {
        clauses.push(super::context::filter_clause(key.clone(), value, &mut arg));
    }
    if let Some(scope) = &f.scope {
        let mut any = Vec::new();
        for s in scope {
            let site = arg(s.site_id.as_str().into());
            match &s.topics {
                None => any.push(format!("c.site_id = {site}")),
                Some(topics) if topics.is_empty() => {}
                Some(topics) => {
                    let list: Vec<String> = topics
                        .iter()
                        .map(|t| arg(Value::Text(t.to_lowercase())))
                        .collect();
                    any.push(format!(
                        "(c.site_id = {site} AND LOWER(c.topic) IN ({}))",
                        list.join(", ")
                    ));
                }
            }
        }
        if any.is_empty() {
            clauses.push("1 = 0".into());
        } else {
            clauses.push(format!("({})", any.join(" OR ")));
        }
    }
    let dense = match &f.query {
        Some(q) => dense_lately(db, q).await?,
        None => false,
    };
    let search = f
        .query
        .as_deref()
        .map(|q| search_sets(db.engine(), q, dense, &mut arg));
    let where_of = |clauses: &[String]| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        }
    };
    // A search reads the found set first and looks each conversation up by id, so it costs
    // what it found, not the size of the store: SQLite's CROSS JOIN keeps that order; on
    // PostgreSQL a LATERAL subquery with `OFFSET 0` (never flattened into a join), as the
    // planner would otherwise hash the whole conversations table for a few thousand ids
    // (52-68 ms against 28 ms at 100,000 conversations, and growing with them). A list without
    // a search reads conversations by its filters' indexes.
    let (with, from) = match &search {
        Some(s) => (
            s.with.as_str(),
            match db.engine() {
                EngineKind::Sqlite => format!(
                    "FROM ({}) found CROSS JOIN conversations c ON c.id = found.id",
                    s.set
                ),
                EngineKind::Postgres => format!(
                    "FROM ({}) found CROSS JOIN LATERAL \
                     (SELECT * FROM conversations lc WHERE lc.id = found.id OFFSET 0) c",
                    s.set
                ),
            },
        ),
        None => ("", "FROM conversations c".to_owned()),
    };
    let capped_column = match &search {
        Some(s) if !s.with.is_empty() => format!(", (SELECT COUNT(*) FROM m) > {SEARCH_MESSAGES}"),
        _ => ", 0 = 1".to_owned(),
    };
    let counted = db
        .query_one(
            &format!(
                "{with}SELECT COUNT(*){capped_column} {from}{}",
                where_of(&clauses)
            ),
            &args,
            "count",
        )
        .await?;
    let total = Total {
        count: counted.u32(0),
        capped: counted.bool(1),
    };
    let mut page_args = args.clone();
    if let Some((updated, id)) = &f.after {
        page_args.push(Value::Int(*updated));
        let a = page_args.len();
        page_args.push(id.into());
        let b = page_args.len();
        clauses.push(format!(
            "(c.updated_at < ${a} OR (c.updated_at = ${a} AND c.id < ${b}))"
        ));
    }
    page_args.push(Value::Int(f.limit as i64));
    let limit_p = page_args.len();
    // A search sorts the found ids alone and reads the columns (and the joined names) of the
    // page's rows only.
    let sql = match &search {
        Some(_) => format!(
            "{with}{CONVERSATION_SELECT} WHERE c.id IN (SELECT c.id {from}{} \
             ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}) \
             ORDER BY c.updated_at DESC, c.id DESC",
            where_of(&clauses)
        ),
        None => format!(
            "{CONVERSATION_SELECT}{} ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}",
            where_of(&clauses)
        ),
    };
    let rows = query_rows(db, &sql, &page_args, conversation_from_row).await?;
    Ok((rows, total))
}

/// The inbox list and search, and reports.
#[async_trait]
pub trait ListingStore: Send + Sync {
    /// Conversations newest activity first, and the number matching the filter.
    async fn list_conversations(
        &self,
        filter: ConversationFilter,
    ) -> StoreResult<(Vec<v1::Conversation>, Total)>;
    async fn report_rows(&self, site_id: String, since: i64) -> StoreResult<ReportRows>;
}

#[async_trait]
impl<E: Engine> ListingStore for SqlStore<E> {
    async fn list_conversations(
        &self,
        filter: ConversationFilter,
    ) -> StoreResult<(Vec<v1::Conversation>, Total)> {
        self.read(move |db| Box::pin(async move { list_conversations_in(db, &filter).await }))
            .await
    }

    async fn report_rows(&self, site_id: String, since: i64) -> StoreResult<ReportRows> {
        self.read(move |db| {
            Box::pin(async move {
                let conversations = db
                    .query(
                        "SELECT created_at, first_message_at, first_response_at, resolved_at, rating FROM conversations \
                         WHERE site_id = $1 AND created_at >= $2 ORDER BY created_at",
                        args![site_id, since],
                    )
                    .await?
                    .iter()
                    .map(|r| ReportRow {
                        created_at: r.int(0),
                        first_message_at: r.opt_int(1),
                        first_response_at: r.opt_int(2),
                        resolved_at: r.opt_int(3),
                        rating: r.u32(4),
                    })
                    .collect();
                Ok(ReportRows { conversations })
            })
        })
        .await
    }
}
