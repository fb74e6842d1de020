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

/// What a search reads: `messages` (the body of a `m(id)` CTE: the newest matching messages'
/// conversations, or `None` for a query too short for the text index), and two sets of ids:
/// `conversations` (through `m`, and attribute values of a conversation) and `visitors` (names
/// and emails, and attribute values of a visitor), each the conversations are reached from by
/// their own index (by id, by `conversations_by_visitor`). Each part is served by an index
/// (trigram indexes for text, names, emails and, on PostgreSQL, attribute values: migrations
/// 0015, 0016 and 0019); the found set then drives the count and the page, so a search costs
/// what it finds, not the size of the store. A case-insensitive substring on both engines.
pub struct Search {
    messages: Option<String>,
    conversations: String,
    visitors: String,
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
        .query_planned(
            &format!(
                "SELECT COUNT(*) FROM (SELECT text FROM messages WHERE kind = 1 \
                 ORDER BY created_at DESC LIMIT {DENSITY_SAMPLE}) t WHERE text ILIKE $1"
            ),
            &[Value::Text(like_pattern(q))],
        )
        .await?
        .first()
        .map_or(0, |r| r.int(0));
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
    let mut conversations = Vec::new();
    let mut messages = None;
    if indexed {
        let cap = SEARCH_MESSAGES + 1;
        let body = match engine {
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
        messages = Some(body);
        conversations.push("SELECT id FROM m".to_owned());
    }
    let visitors = match (engine, indexed) {
        // Candidates from the trigram table, re-checked against the visitor's current row
        // (the table keeps old names: 0016).
        (EngineKind::Sqlite, true) => format!(
            "SELECT sv.id FROM visitor_search vs CROSS JOIN visitors sv ON sv.id = vs.visitor_id \
             WHERE visitor_search MATCH {phrase} \
             AND (sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\')"
        ),
        // SQLite's LIKE ignores ASCII case, as LOWER() folds only ASCII.
        (EngineKind::Sqlite, false) => format!(
            "SELECT sv.id FROM visitors sv \
             WHERE sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\'"
        ),
        // ILIKE (backslash is its default escape) is what the pg_trgm indexes serve (one
        // heap pass over both indexes' bitmaps: PG_SEARCH_SETTINGS keeps the planner on them).
        (EngineKind::Postgres, _) => {
            format!("SELECT sv.id FROM visitors sv WHERE sv.name ILIKE {p} OR sv.email ILIKE {p}")
        }
    };
    // Attribute values belong to a visitor or a conversation (ids `v_...` / `c_...`), so one
    // lookup serves both sets.
    let attributes =
        format!("SELECT av.owner_id FROM attribute_values av WHERE av.folded LIKE {p} ESCAPE '\\'");
    conversations.push(attributes.clone());
    Search {
        messages,
        conversations: conversations.join(" UNION "),
        visitors: format!("{visitors} UNION {attributes}"),
    }
}

/// PostgreSQL's planner options for a search, set for its transaction only. Every part of a
/// search is served by an index (`search_sets`; the trigram indexes of 0015, 0016 and 0019),
/// but the planner prices a row's `ILIKE` like an integer comparison, so for a pattern in a
/// few percent of the visitors it prefers reading all of them (67 ms of `ILIKE` over 100,000
/// emails against 6 ms through the trigram index): `enable_seqscan = off`. Only where those
/// indexes exist (pg_trgm, 0015): a scan the plan cannot avoid would carry the setting's 1e10
/// cost, which drowns every other cost difference (0019's comment). And the nested lookups'
/// estimated cost passes `jit_above_cost`, so each search was compiled (~20 ms, more than
/// running it): `jit = off`.
const PG_SEARCH_SETTINGS: &str = "BEGIN READ ONLY; \
     SELECT set_config('enable_seqscan', \
     CASE WHEN to_regclass('attribute_values_folded_trgm') IS NULL THEN 'on' ELSE 'off' END, true); \
     SET LOCAL jit = off";

pub async fn list_conversations_in(
    db: &mut dyn Db,
    f: &ConversationFilter,
) -> StoreResult<(Vec<v1::Conversation>, Total)> {
    if f.query.is_none() || db.engine() != EngineKind::Postgres {
        return list_in(db, f).await;
    }
    // The read runs to completion in its own task (`PostgresEngine::read`), so the transaction
    // always ends here.
    db.batch(PG_SEARCH_SETTINGS).await?;
    let listed = list_in(db, f).await;
    db.batch(if listed.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await?;
    listed
}

async fn list_in(
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
    let where_ = where_of(&clauses);
    let from = "FROM conversations c";
    let mut page_args = args.clone();
    let mut after = None;
    if let Some((updated, id)) = &f.after {
        page_args.push(Value::Int(*updated));
        let a = page_args.len();
        page_args.push(id.into());
        let b = page_args.len();
        after = Some((a, b));
    }
    page_args.push(Value::Int(f.limit as i64));
    let limit_p = page_args.len();
    let Some(search) = &search else {
        let counted = db
            .query_one(&format!("SELECT COUNT(*) {from}{where_}"), &args, "count")
            .await?;
        if let Some((a, b)) = after {
            clauses.push(format!(
                "(c.updated_at < ${a} OR (c.updated_at = ${a} AND c.id < ${b}))"
            ));
        }
        let sql = format!(
            "{CONVERSATION_SELECT}{} ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}",
            where_of(&clauses)
        );
        let rows = query_rows(db, &sql, &page_args, conversation_from_row).await?;
        return Ok((
            rows,
            Total {
                count: counted.u32(0),
                capped: false,
            },
        ));
    };
    // A search finds its set once (`found`: the ids and sort keys of every match the filters
    // keep) and answers the count and the page from it in one statement: the page's rows, then
    // one summary row (the count and whether the message part was capped) whose conversation
    // columns are NULL. The page sorts the found ids alone and reads the columns (and the
    // joined names) of its rows only. Planned for its pattern ([`Db::query_planned`]).
    let (with, capped) = match &search.messages {
        Some(m) => (
            format!("WITH m(id) AS ({m}), "),
            format!("(SELECT COUNT(*) FROM m) > {SEARCH_MESSAGES}"),
        ),
        None => ("WITH ".to_owned(), "0 = 1".to_owned()),
    };
    let cursor = match after {
        Some((a, b)) => format!(" WHERE updated_at < ${a} OR (updated_at = ${a} AND id < ${b})"),
        None => String::new(),
    };
    // The found set reads the ids first and looks each conversation up by id (or by visitor),
    // with the filters, so it costs what it found, not the size of the store: SQLite's CROSS
    // JOIN keeps that order; on PostgreSQL a LATERAL subquery with `OFFSET 0` (never flattened
    // into a join), as the planner would otherwise hash the whole conversations table for a
    // few thousand ids (52-68 ms against 28 ms at 100,000 conversations, and growing with
    // them). A conversation found both ways is one row of the UNION (same id, same time).
    let engine = db.engine();
    let reach = |ids: &str, key: &str| match engine {
        EngineKind::Sqlite => format!(
            "SELECT c.id, c.updated_at FROM ({ids}) f CROSS JOIN conversations c \
             ON c.{key} = f.id{where_}"
        ),
        EngineKind::Postgres => format!(
            "SELECT c.id, c.updated_at FROM ({ids}) f CROSS JOIN LATERAL \
             (SELECT * FROM conversations lc WHERE lc.{key} = f.id OFFSET 0) c{where_}"
        ),
    };
    let found = format!(
        "{} UNION {}",
        reach(&search.conversations, "id"),
        reach(&search.visitors, "visitor_id")
    );
    let nulls = vec!["NULL"; CONVERSATION_COLUMNS].join(", ");
    let sql = format!(
        "{with}found AS MATERIALIZED ({found}) \
         SELECT p.*, NULL, NULL FROM ({CONVERSATION_SELECT} WHERE c.id IN \
         (SELECT id FROM found{cursor} ORDER BY updated_at DESC, id DESC LIMIT ${limit_p})) p \
         UNION ALL SELECT {nulls}, COUNT(*), {capped} FROM found"
    );
    let mut rows = db.query_planned(&sql, &page_args).await?;
    let summary = rows
        .iter()
        .position(|r| r.opt_int(CONVERSATION_COLUMNS).is_some())
        .map(|i| rows.remove(i))
        .ok_or(StoreError::NotFound("count"))?;
    let total = Total {
        count: summary.u32(CONVERSATION_COLUMNS),
        capped: summary.bool(CONVERSATION_COLUMNS + 1),
    };
    let mut rows: Vec<v1::Conversation> = rows.iter().map(conversation_from_row).collect();
    // UNION ALL keeps no order: the page's, newest activity first.
    rows.sort_by(|a, b| (b.updated_at_ms, &b.id).cmp(&(a.updated_at_ms, &a.id)));
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
