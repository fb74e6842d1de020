//! Synthetic history for benchmarks (`wsmschat seed-history`, `wsmschat-bench history`):
//! visitors, resolved conversations and their messages written with multi-row INSERTs, many
//! per transaction, so a million messages take seconds instead of a million group commits.
//! The rows are what the normal write path leaves (seqs from 1 without gaps, `last_seq`,
//! `last_preview`, read marks, first-response times), and the search index fills as for live
//! messages (SQLite's batch indexer, run at the end of each seed transaction; PostgreSQL's index). Never called by a server.

use std::sync::Arc;

use async_trait::async_trait;
use wsmschat::v1;

use super::StoreResult;
use super::db::{Db, Value};
use super::sql::PREVIEW_CHARS;
use super::sql_store::{Engine, SqlStore};

/// One visitor with one resolved conversation.
pub struct SeedConversation {
    pub conversation_id: String,
    pub visitor_id: String,
    pub visitor_name: String,
    pub visitor_email: String,
    pub topic: String,
    /// The agent who answered (author id and name of the agent's messages).
    pub agent_id: String,
    pub agent_name: String,
    pub messages: Vec<SeedMessage>,
}

/// One message; `from_visitor` or else the agent's.
pub struct SeedMessage {
    pub from_visitor: bool,
    pub text: String,
    pub created_at: i64,
}

/// Rows per INSERT statement (SQLite allows 32,766 bound values: 500 x 15 columns fit).
const ROWS_PER_STATEMENT: usize = 500;

/// Writes `convs` of `site_id` in the current transaction.
pub async fn write(db: &mut dyn Db, site_id: &str, convs: &[SeedConversation]) -> StoreResult<()> {
    let mut visitors = Vec::new();
    let mut conversations = Vec::new();
    let mut messages = Vec::new();
    for c in convs {
        let first = c.messages.first().map(|m| m.created_at).unwrap_or(0);
        let last = c.messages.last().map(|m| m.created_at).unwrap_or(first);
        let first_response = c
            .messages
            .iter()
            .find(|m| !m.from_visitor)
            .map(|m| Value::Int(m.created_at))
            .unwrap_or(Value::Null);
        let preview: String = c
            .messages
            .last()
            .map(|m| m.text.chars().take(PREVIEW_CHARS).collect())
            .unwrap_or_default();
        let n = c.messages.len() as i64;
        visitors.push(vec![
            c.visitor_id.as_str().into(),
            site_id.into(),
            c.visitor_name.as_str().into(),
            c.visitor_email.as_str().into(),
            "".into(),
            "".into(),
            "en".into(),
            Value::Int(first),
            Value::Int(last),
        ]);
        conversations.push(vec![
            c.conversation_id.as_str().into(),
            site_id.into(),
            c.visitor_id.as_str().into(),
            c.topic.as_str().into(),
            Value::Int(v1::ConversationStatus::Resolved as i64),
            c.agent_id.as_str().into(),
            Value::Int(n),
            preview.into(),
            Value::Int(n),
            Value::Int(n),
            Value::Int(first),
            Value::Int(last),
            Value::Int(first),
            Value::Int(first),
            first_response,
            Value::Int(last),
        ]);
        for (i, m) in c.messages.iter().enumerate() {
            let (kind, id, name, key) = if m.from_visitor {
                (
                    v1::AuthorKind::Visitor,
                    c.visitor_id.as_str(),
                    c.visitor_name.as_str(),
                    format!("v:{}", c.visitor_id),
                )
            } else {
                (
                    v1::AuthorKind::Agent,
                    c.agent_id.as_str(),
                    c.agent_name.as_str(),
                    format!("a:{}", c.agent_id),
                )
            };
            messages.push(vec![
                c.conversation_id.as_str().into(),
                Value::Int(i as i64 + 1),
                key.into(),
                Value::Text(format!("{}-{}", c.conversation_id, i + 1)),
                Value::Int(v1::MessageKind::Text as i64),
                Value::Int(kind as i64),
                id.into(),
                name.into(),
                m.text.as_str().into(),
                Value::Int(m.created_at),
            ]);
        }
    }
    insert(
        db,
        "visitors (id, site_id, name, email, page_url, user_agent, locale, first_seen, last_seen)",
        visitors,
    )
    .await?;
    insert(
        db,
        "conversations (id, site_id, visitor_id, topic, status, assignee_id, last_seq, last_preview, \
         visitor_read_seq, agent_read_seq, created_at, updated_at, queued_at, first_message_at, \
         first_response_at, resolved_at)",
        conversations,
    )
    .await?;
    insert(
        db,
        "messages (conversation_id, seq, author_key, client_msg_id, kind, author_kind, author_id, \
         author_name, text, created_at)",
        messages,
    )
    .await?;
    // SQLite indexes messages for search in batches (`search_index`); a seed is one batch.
    if db.engine() == super::db::EngineKind::Sqlite {
        super::search_index::index_pending(db, i64::MAX).await?;
    }
    Ok(())
}

/// `INSERT INTO table_and_columns VALUES (...), (...)`, `ROWS_PER_STATEMENT` rows at a time.
async fn insert(db: &mut dyn Db, into: &str, rows: Vec<Vec<Value>>) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let width = chunk[0].len();
        let mut sql = format!("INSERT INTO {into} VALUES ");
        let mut args = Vec::with_capacity(chunk.len() * width);
        for (r, row) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", r * width + c + 1));
            }
            sql.push(')');
            args.extend(row.iter().cloned());
        }
        db.exec(&sql, &args).await?;
    }
    Ok(())
}

/// What `wsmschat seed-history` writes.
#[derive(Clone, Copy, Debug)]
pub struct HistorySpec {
    /// Conversations (one visitor each).
    pub conversations: u64,
    /// Messages in all.
    pub messages: u64,
    /// Messages of the first conversation (the "big" one); the others share the rest.
    pub big: u64,
    /// The newest message's time (ms); the history spans the 90 days before it.
    pub now_ms: i64,
}

const FIRST: &[&str] = &[
    "Maria", "Jonas", "Aiko", "Lucas", "Fatima", "Noah", "Emma", "Mateo", "Olga", "Yusuf", "Chloe",
    "Liam", "Sofia", "Arjun", "Ines", "Tomasz", "Hana", "Pierre", "Zeynep", "Diego",
];
const LAST: &[&str] = &[
    "Garcia", "Schmidt", "Tanaka", "Rossi", "Kowalski", "Dubois", "Yilmaz", "Silva", "Jansen",
    "Novak", "Haddad", "Okafor", "Larsen", "Moreau", "Fischer", "Costa", "Ivanova", "Berg",
    "Suzuki", "Lopez",
];
const TOPICS: &[&str] = &["Product", "Order", "Delivery", "Payment", "Other"];
const PRODUCTS: &[&str] = &[
    "headphones",
    "kettle",
    "backpack",
    "lamp",
    "keyboard",
    "blender",
    "jacket",
    "router",
    "camera",
    "sneakers",
    "monitor",
    "toaster",
    "tent",
    "watch",
    "speaker",
    "mattress",
    "drill",
    "scooter",
    "printer",
    "umbrella",
    "charger",
    "vacuum",
    "guitar",
    "sofa",
    "bike",
];
const VISITOR_LINES: &[&str] = &[
    "Hi, my order {order} has not arrived yet, can you check where the {product} is?",
    "The {product} I received does not turn on. What can I do?",
    "Can I still change the delivery address for order {order}?",
    "I was charged twice for the {product}, please refund one payment.",
    "Is the {product} available in another colour?",
    "Thanks, that helps a lot.",
    "When will it ship? I need the {product} before Friday.",
    "The tracking page says delivered but I have nothing.",
    "Could you send me an invoice for order {order}?",
    "OK, I will wait then.",
];
const AGENT_LINES: &[&str] = &[
    "Hello {name}, thanks for writing! Let me look at order {order}.",
    "I am sorry about the {product}. I have started a replacement for you.",
    "The parcel is with the carrier and should arrive within two days.",
    "I have refunded the duplicate payment; it shows on your statement in 3-5 days.",
    "Yes, the {product} also comes in black and in green.",
    "You are welcome! Is there anything else I can help with?",
    "I changed the address on order {order}; the label is updated.",
    "I have opened a claim with the carrier and will write back tomorrow.",
];

/// A small deterministic generator (xorshift64*), so every run seeds the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// The order number conversation `i` is about (its first message names it): a search for
/// it finds exactly that conversation.
pub fn order_number(i: u64) -> String {
    format!("W{:07}", 1_000_000 + i)
}

/// Conversation `i` of the history `spec` describes (ids `c_seed<i>`, `v_seed<i>`).
pub fn generate(spec: &HistorySpec, i: u64, agent_id: &str, agent_name: &str) -> SeedConversation {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let count = if i == 0 {
        spec.big.min(spec.messages)
    } else {
        let others = spec.conversations.saturating_sub(1).max(1);
        let rest = spec.messages.saturating_sub(spec.big.min(spec.messages));
        rest / others + u64::from(i - 1 < rest % others)
    };
    let first = FIRST[(i % FIRST.len() as u64) as usize];
    let last = LAST[((i / FIRST.len() as u64) % LAST.len() as u64) as usize];
    let span = 90 * 24 * 3_600_000i64;
    let start = spec.now_ms - span + (span / spec.conversations.max(1) as i64) * i as i64
        - count as i64 * 30_000;
    let order = order_number(i);
    let product = rng.pick(PRODUCTS);
    let messages = (0..count)
        .map(|k| {
            let from_visitor = k % 2 == 0;
            let line = if k == 0 {
                VISITOR_LINES[0]
            } else if from_visitor {
                rng.pick(VISITOR_LINES)
            } else {
                rng.pick(AGENT_LINES)
            };
            SeedMessage {
                from_visitor,
                text: line
                    .replace("{order}", &order)
                    .replace("{product}", product)
                    .replace("{name}", first),
                created_at: start + k as i64 * 30_000,
            }
        })
        .collect();
    SeedConversation {
        conversation_id: format!("c_seed{i}"),
        visitor_id: format!("v_seed{i}"),
        visitor_name: format!("{first} {last}"),
        visitor_email: format!(
            "{}.{}{i}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        topic: TOPICS[(i % TOPICS.len() as u64) as usize].to_owned(),
        agent_id: agent_id.to_owned(),
        agent_name: agent_name.to_owned(),
        messages,
    }
}

#[test]
fn the_history_has_the_asked_for_size_and_one_big_conversation() {
    let spec = HistorySpec {
        conversations: 7,
        messages: 100,
        big: 40,
        now_ms: 1_000_000_000_000,
    };
    let convs: Vec<_> = (0..7).map(|i| generate(&spec, i, "a", "A")).collect();
    assert_eq!(convs[0].messages.len(), 40);
    assert_eq!(convs.iter().map(|c| c.messages.len()).sum::<usize>(), 100);
    assert!(convs[3].messages[0].text.contains(&order_number(3)));
    assert!(convs.iter().all(|c| {
        c.messages
            .windows(2)
            .all(|w| w[0].created_at < w[1].created_at)
    }));
}

// ---------------------------------------------------------------- the store's side

/// Synthetic history for benchmarks.
#[async_trait]
pub trait SeedStore: Send + Sync {
    /// Writes synthetic visitors, conversations and messages in one transaction.
    async fn seed_history(
        &self,
        site_id: String,
        conversations: Vec<SeedConversation>,
    ) -> StoreResult<()>;
    /// After a seed: PostgreSQL gathers the planner's statistics (`ANALYZE`), as autovacuum
    /// would some time after a bulk load; without them it guesses a few rows for any search
    /// and reads a common word through the trigram index (docs/performance.md). SQLite keeps
    /// no statistics unless asked, and a real SQLite store has none: nothing.
    async fn analyze_seeded(&self) -> StoreResult<()>;
}

#[async_trait]
impl<E: Engine> SeedStore for SqlStore<E> {
    async fn seed_history(
        &self,
        site_id: String,
        conversations: Vec<SeedConversation>,
    ) -> StoreResult<()> {
        let conversations = Arc::new(conversations);
        self.write(move |ctx| {
            let (site_id, conversations) = (site_id.clone(), conversations.clone());
            Box::pin(async move { write(ctx.db, &site_id, &conversations).await })
        })
        .await
    }

    async fn analyze_seeded(&self) -> StoreResult<()> {
        self.write(|ctx| {
            Box::pin(async move {
                if ctx.db.engine() == super::db::EngineKind::Postgres {
                    ctx.db.batch("ANALYZE").await?;
                }
                Ok(())
            })
        })
        .await
    }
}
