//! Row decoders and the loads every aggregate shares (a conversation, a message, a page of rows).

use wsmschat::v1;

use super::db::{Db, Row, Value};
use super::sql::*;
use super::*;
use crate::args;

pub fn conversation_from_row(r: &Row) -> v1::Conversation {
    v1::Conversation {
        id: r.text(0),
        site_id: r.text(1),
        visitor_id: r.text(2),
        visitor_name: r.text(3),
        topic: r.text(4),
        status: r.i32(5),
        assignee_id: r.text(6),
        assignee_name: r.text(7),
        queue_position: 0,
        queued_at_ms: r.int(8),
        last_seq: r.u64(9),
        last_message_preview: r.text(10),
        visitor_read_seq: r.u64(11),
        agent_read_seq: r.u64(12),
        created_at_ms: r.int(13),
        updated_at_ms: r.int(14),
        rating: r.u32(15),
        rating_comment: r.text(16),
        agents_online: 0,
        label_ids: split_list(&r.text(17)),
        snoozed: r.opt_int(18).is_some(),
        snoozed_until_ms: r.opt_int(18).unwrap_or(0),
        attributes: super::context::decode_values(&r.text(19)),
    }
}

pub fn message_from_row(r: &Row) -> v1::Message {
    let sys_kind = r.i32(9);
    v1::Message {
        conversation_id: r.text(0),
        seq: r.u64(1),
        client_msg_id: r.text(2),
        kind: r.i32(3),
        author_kind: r.i32(4),
        author_id: r.text(5),
        author_name: r.text(6),
        text: r.text(7),
        created_at_ms: r.int(8),
        system: (sys_kind != 0).then(|| v1::SystemEvent {
            kind: sys_kind,
            agent_id: r.text(10),
            agent_name: r.text(11),
            score: r.u32(12),
        }),
        attachments: decode_attachments(&r.text(13)),
    }
}

/// How a message row keeps its files' metadata: the protobuf list, base64 in a TEXT column.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredAttachments {
    #[prost(message, repeated, tag = "1")]
    items: Vec<v1::Attachment>,
}

pub fn encode_attachments(items: &[v1::Attachment]) -> String {
    use base64::Engine as _;
    use prost::Message as _;
    if items.is_empty() {
        return String::new();
    }
    let list = StoredAttachments {
        items: items.to_vec(),
    };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(list.encode_to_vec())
}

pub fn decode_attachments(text: &str) -> Vec<v1::Attachment> {
    use base64::Engine as _;
    use prost::Message as _;
    if text.is_empty() {
        return Vec::new();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| StoredAttachments::decode(b.as_slice()).ok())
        .map(|l| l.items)
        .unwrap_or_default()
}

pub fn upload_from_row(r: &Row) -> UploadRecord {
    UploadRecord {
        id: r.text(0),
        site_id: r.text(1),
        owner_key: r.text(2),
        name: r.text(3),
        content_type: r.text(4),
        size: r.u64(5),
        width: r.u32(6),
        height: r.u32(7),
        thumb_size: r.u64(8),
        created_at: r.int(9),
        conversation_id: r.opt_int(11).map(|_| r.text(10)),
        seq: r.opt_int(11).map(|v| v.max(0) as u64),
        note: r.bool(12),
        deleted_at: r.opt_int(13),
    }
}

pub fn site_from_row(r: &Row) -> v1::Site {
    v1::Site {
        id: r.text(0),
        site_key: r.text(1),
        name: r.text(2),
        allowed_origins: split_list(&r.text(3)),
        topics: split_list(&r.text(4)),
        color: r.text(5),
        greeting: r.text(6),
        identity_secret: r.text(7),
        identity_required: r.bool(8),
        restrict_agents_to_topics: r.bool(9),
        max_file_bytes: r.u64(10),
        file_kinds: r.i32(11),
        file_retention_days: r.u32(12),
        email_delay_minutes: r.u32(13),
        notify_email: r.text(14),
        new_conversations_per_ip_hour: r.u32(15),
        auto_resolve_hours: r.u32(16),
        time_zone: r.text(17),
        opening_hours: decode_hours(&r.text(18)),
        closed_dates: split_list(&r.text(19)),
        away_message: r.text(20),
        widget_texts: decode_texts(&r.text(21)),
        attributes: super::context::decode_definitions(&r.text(22)),
    }
}

/// `Site.widget_texts` as a TEXT column: a JSON array of [key, text].
pub fn encode_texts(texts: &[v1::WidgetText]) -> String {
    if texts.is_empty() {
        return String::new();
    }
    let pairs: Vec<[&str; 2]> = texts
        .iter()
        .map(|t| [t.key.as_str(), t.text.as_str()])
        .collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

pub fn decode_texts(json: &str) -> Vec<v1::WidgetText> {
    serde_json::from_str::<Vec<[String; 2]>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|[key, text]| v1::WidgetText { key, text })
        .collect()
}

/// `Site.opening_hours` as a TEXT column: "<weekday>:<open>-<close>" per line.
pub fn encode_hours(hours: &[v1::OpeningHours]) -> String {
    hours
        .iter()
        .map(|h| format!("{}:{}-{}", h.weekday, h.open_minute, h.close_minute))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn decode_hours(text: &str) -> Vec<v1::OpeningHours> {
    split_list(text)
        .iter()
        .filter_map(|line| {
            let (weekday, span) = line.split_once(':')?;
            let (open, close) = span.split_once('-')?;
            Some(v1::OpeningHours {
                weekday: weekday.parse().ok()?,
                open_minute: open.parse().ok()?,
                close_minute: close.parse().ok()?,
            })
        })
        .collect()
}

pub fn agent_from_row(r: &Row) -> v1::Agent {
    v1::Agent {
        id: r.text(0),
        email: r.text(1),
        name: r.text(2),
        role: r.i32(3),
        topics: split_list(&r.text(4)),
        capacity: r.u32(5),
        active: r.bool(6),
        site_ids: split_list(&r.text(7)),
        email_alerts_off: r.bool(8),
    }
}

pub fn visitor_from_row(r: &Row) -> v1::Visitor {
    let user_id = r.text(4);
    v1::Visitor {
        id: r.text(0),
        site_id: r.text(1),
        name: r.text(2),
        email: r.text(3),
        verified: !user_id.is_empty(),
        user_id,
        page_url: r.text(5),
        user_agent: r.text(6),
        locale: r.text(7),
        first_seen_ms: r.int(8),
        last_seen_ms: r.int(9),
        last_ip: r.text(10),
        blocked: r.bool(11),
        attributes: super::context::decode_values(&r.text(12)),
        pages: super::context::decode_pages(&r.text(13)),
    }
}

pub fn api_key_from_row(r: &Row) -> v1::ApiKey {
    v1::ApiKey {
        id: r.text(0),
        name: r.text(1),
        scopes: split_list(&r.text(2))
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        created_at_ms: r.int(3),
        active: r.bool(4),
        site_ids: split_list(&r.text(5)),
    }
}

pub fn canned_from_row(r: &Row) -> v1::CannedReply {
    v1::CannedReply {
        id: r.text(0),
        site_id: r.text(1),
        shortcut: r.text(2),
        text: r.text(3),
    }
}

pub async fn load_conversation(db: &mut dyn Db, id: &str) -> StoreResult<v1::Conversation> {
    let row = db
        .query_one(
            &format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
            args![id],
            "conversation",
        )
        .await?;
    Ok(conversation_from_row(&row))
}

pub async fn load_message(
    db: &mut dyn Db,
    conversation_id: &str,
    seq: u64,
) -> StoreResult<v1::Message> {
    let row = db
        .query_one(
            &format!("{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq = $2"),
            args![conversation_id, seq],
            "message",
        )
        .await?;
    Ok(message_from_row(&row))
}

pub async fn query_rows<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Value],
    decode: fn(&Row) -> T,
) -> StoreResult<Vec<T>> {
    Ok(db.query(sql, args).await?.iter().map(decode).collect())
}
