//! Conversions between the generated protobuf types and plain JS objects (camelCase fields,
//! enums as lowercase strings, seqs and times as numbers). Hand-written rather than serde: it
//! keeps the wasm small, and the shapes are declared once in `types.rs` for TypeScript.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wsmschat::v1;

/// Builds a JS object field by field.
pub struct O(Object);

impl O {
    pub fn new() -> Self {
        O(Object::new())
    }
    pub fn v(self, key: &str, value: impl Into<JsValue>) -> Self {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }
    pub fn s(self, key: &str, value: &str) -> Self {
        self.v(key, JsValue::from_str(value))
    }
    pub fn n(self, key: &str, value: f64) -> Self {
        self.v(key, JsValue::from_f64(value))
    }
    pub fn b(self, key: &str, value: bool) -> Self {
        self.v(key, JsValue::from_bool(value))
    }
    pub fn strs(self, key: &str, values: &[String]) -> Self {
        let a: Array = values.iter().map(|s| JsValue::from_str(s)).collect();
        self.v(key, a)
    }
    pub fn done(self) -> JsValue {
        self.0.into()
    }
}

/// A field of a JS object (undefined when the object is not one).
pub fn get(o: &JsValue, key: &str) -> JsValue {
    if o.is_object() {
        Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// A string field, "" when missing or not a string.
pub fn get_str(o: &JsValue, key: &str) -> String {
    get(o, key).as_string().unwrap_or_default()
}

/// An optional string field.
pub fn get_opt_str(o: &JsValue, key: &str) -> Option<String> {
    get(o, key).as_string()
}

/// A number field, 0 when missing.
pub fn get_num(o: &JsValue, key: &str) -> f64 {
    get(o, key).as_f64().unwrap_or(0.0)
}

/// A boolean field, false when missing.
pub fn get_bool(o: &JsValue, key: &str) -> bool {
    get(o, key).as_bool().unwrap_or(false)
}

/// A string-array field.
pub fn get_strs(o: &JsValue, key: &str) -> Vec<String> {
    let v = get(o, key);
    if !Array::is_array(&v) {
        return Vec::new();
    }
    v.unchecked_into::<Array>()
        .iter()
        .filter_map(|x| x.as_string())
        .collect()
}

/// A JS array from converted items.
pub fn array<T>(items: &[T], f: impl Fn(&T) -> JsValue) -> JsValue {
    items.iter().map(f).collect::<Array>().into()
}

// ---- enums -----------------------------------------------------------------------------

pub fn author_kind(k: i32) -> &'static str {
    match v1::AuthorKind::try_from(k).unwrap_or_default() {
        v1::AuthorKind::Visitor => "visitor",
        v1::AuthorKind::Agent => "agent",
        v1::AuthorKind::Service => "service",
        v1::AuthorKind::System => "system",
        v1::AuthorKind::Unspecified => "",
    }
}

pub fn message_kind(k: i32) -> &'static str {
    match v1::MessageKind::try_from(k).unwrap_or_default() {
        v1::MessageKind::Note => "note",
        v1::MessageKind::System => "system",
        _ => "text",
    }
}

pub fn status(k: i32) -> &'static str {
    match v1::ConversationStatus::try_from(k).unwrap_or_default() {
        v1::ConversationStatus::Queued => "queued",
        v1::ConversationStatus::Open => "open",
        v1::ConversationStatus::Resolved => "resolved",
        v1::ConversationStatus::Unspecified => "",
    }
}

pub fn status_from(s: &str) -> v1::ConversationStatus {
    match s {
        "queued" => v1::ConversationStatus::Queued,
        "open" => v1::ConversationStatus::Open,
        "resolved" => v1::ConversationStatus::Resolved,
        _ => v1::ConversationStatus::Unspecified,
    }
}

pub fn presence(k: i32) -> &'static str {
    match v1::PresenceStatus::try_from(k).unwrap_or_default() {
        v1::PresenceStatus::Online => "online",
        v1::PresenceStatus::Away => "away",
        _ => "offline",
    }
}

pub fn presence_from(s: &str) -> v1::PresenceStatus {
    match s {
        "online" => v1::PresenceStatus::Online,
        "away" => v1::PresenceStatus::Away,
        "offline" => v1::PresenceStatus::Offline,
        _ => v1::PresenceStatus::Unspecified,
    }
}

fn system_kind(k: i32) -> &'static str {
    match v1::SystemEventKind::try_from(k).unwrap_or_default() {
        v1::SystemEventKind::Assigned => "assigned",
        v1::SystemEventKind::Joined => "joined",
        v1::SystemEventKind::Transferred => "transferred",
        v1::SystemEventKind::Resolved => "resolved",
        v1::SystemEventKind::Reopened => "reopened",
        v1::SystemEventKind::Rated => "rated",
        v1::SystemEventKind::Away => "away",
        v1::SystemEventKind::Unspecified => "",
    }
}

fn role(k: i32) -> &'static str {
    match v1::AgentRole::try_from(k).unwrap_or_default() {
        v1::AgentRole::Admin => "admin",
        _ => "agent",
    }
}

fn role_from(s: &str) -> v1::AgentRole {
    if s == "admin" {
        v1::AgentRole::Admin
    } else {
        v1::AgentRole::Agent
    }
}

fn scope(k: i32) -> &'static str {
    match v1::ApiKeyScope::try_from(k).unwrap_or_default() {
        v1::ApiKeyScope::Chat => "chat",
        v1::ApiKeyScope::Admin => "admin",
        v1::ApiKeyScope::Unspecified => "",
    }
}

pub fn scope_from(s: &str) -> v1::ApiKeyScope {
    match s {
        "chat" => v1::ApiKeyScope::Chat,
        "admin" => v1::ApiKeyScope::Admin,
        _ => v1::ApiKeyScope::Unspecified,
    }
}

// ---- messages to JS --------------------------------------------------------------------

pub fn message(m: &v1::Message) -> JsValue {
    let mut o = O::new()
        .s("conversationId", &m.conversation_id)
        .n("seq", m.seq as f64)
        .s("clientMsgId", &m.client_msg_id)
        .s("kind", message_kind(m.kind))
        .s("authorKind", author_kind(m.author_kind))
        .s("authorId", &m.author_id)
        .s("authorName", &m.author_name)
        .s("text", &m.text)
        .n("createdAt", m.created_at_ms as f64);
    o = o.v("attachments", array(&m.attachments, attachment));
    if let Some(s) = &m.system {
        o = o.v(
            "system",
            O::new()
                .s("kind", system_kind(s.kind))
                .s("agentId", &s.agent_id)
                .s("agentName", &s.agent_name)
                .n("score", s.score as f64)
                .done(),
        );
    }
    o.done()
}

/// An attachment; its links are absolute (the SDK prefixes the server's URL on arrival).
pub fn attachment(a: &v1::Attachment) -> JsValue {
    O::new()
        .s("id", &a.id)
        .s("name", &a.name)
        .s("contentType", &a.content_type)
        .n("size", a.size as f64)
        .n("width", a.width as f64)
        .n("height", a.height as f64)
        .b("hasThumbnail", a.has_thumbnail)
        .s("url", &a.url)
        .s("thumbnailUrl", &a.thumbnail_url)
        .n("urlsExpireAt", a.urls_expire_at_ms as f64)
        .b("deleted", a.deleted)
        .done()
}

pub fn file_kinds(k: i32) -> &'static str {
    match v1::FileKinds::try_from(k).unwrap_or_default() {
        v1::FileKinds::None => "none",
        v1::FileKinds::Images => "images",
        v1::FileKinds::Any => "any",
        v1::FileKinds::Documents | v1::FileKinds::Unspecified => "documents",
    }
}

pub fn file_kinds_from(s: &str) -> v1::FileKinds {
    match s {
        "none" => v1::FileKinds::None,
        "images" => v1::FileKinds::Images,
        "documents" => v1::FileKinds::Documents,
        "any" => v1::FileKinds::Any,
        _ => v1::FileKinds::Unspecified,
    }
}

pub fn conversation(c: &v1::Conversation) -> JsValue {
    let o = O::new()
        .s("id", &c.id)
        .s("siteId", &c.site_id)
        .s("visitorId", &c.visitor_id)
        .s("visitorName", &c.visitor_name)
        .s("topic", &c.topic)
        .s("status", status(c.status))
        .s("assigneeId", &c.assignee_id)
        .s("assigneeName", &c.assignee_name)
        .n("queuePosition", c.queue_position as f64)
        .n("lastSeq", c.last_seq as f64)
        .s("lastMessagePreview", &c.last_message_preview)
        .n("visitorReadSeq", c.visitor_read_seq as f64)
        .n("agentReadSeq", c.agent_read_seq as f64)
        .n("createdAt", c.created_at_ms as f64)
        .n("updatedAt", c.updated_at_ms as f64)
        .n("rating", c.rating as f64)
        .s("ratingComment", &c.rating_comment)
        .n("agentsOnline", c.agents_online as f64);
    // Labels are staff business: the widget's build leaves them out (and their bytes).
    #[cfg(feature = "agent")]
    let o = o
        .strs("labelIds", &c.label_ids)
        .b("snoozed", c.snoozed)
        .n("snoozedUntil", c.snoozed_until_ms as f64)
        .v("attributes", attribute_values(&c.attributes));
    o.done()
}

/// Attribute values as `{ key: value }`.
pub fn attribute_values(values: &[v1::AttributeValue]) -> JsValue {
    let o = js_sys::Object::new();
    for a in values {
        let _ = Reflect::set(&o, &JsValue::from_str(&a.key), &JsValue::from_str(&a.value));
    }
    o.into()
}

const ATTRIBUTE_TYPES: [&str; 5] = ["text", "text", "number", "date", "link"];

pub fn ack(a: &v1::Ack) -> JsValue {
    O::new()
        .s("requestId", &a.request_id)
        .s("conversationId", &a.conversation_id)
        .n("seq", a.seq as f64)
        .s("clientMsgId", &a.client_msg_id)
        .b("duplicate", a.duplicate)
        .n("createdAt", a.created_at_ms as f64)
        .done()
}

/// The site's widget texts as `{ key: text }` (later keys win).
fn widget_texts(texts: &[v1::WidgetText]) -> JsValue {
    let o = js_sys::Object::new();
    for t in texts {
        let _ = Reflect::set(&o, &JsValue::from_str(&t.key), &JsValue::from_str(&t.text));
    }
    o.into()
}

pub fn site_info(s: &v1::SiteInfo) -> JsValue {
    let online: Array = s
        .agents_online
        .iter()
        .map(|n| JsValue::from_f64(*n as f64))
        .collect();
    O::new()
        .s("id", &s.id)
        .s("name", &s.name)
        .strs("topics", &s.topics)
        .s("color", &s.color)
        .s("greeting", &s.greeting)
        .v("agentsOnline", online)
        .n("maxFileBytes", s.max_file_bytes as f64)
        .s("fileKinds", file_kinds(s.file_kinds))
        .n("maxFilesPerMessage", s.max_files_per_message as f64)
        .b("emailEnabled", s.email_enabled)
        .b("closed", s.closed)
        .n("opensAt", s.opens_at_ms as f64)
        .n("closesAt", s.closes_at_ms as f64)
        .n("typicalReplyS", s.typical_reply_s as f64)
        .v("texts", widget_texts(&s.texts))
        .done()
}

pub fn typing(t: &v1::TypingChanged) -> JsValue {
    O::new()
        .s("conversationId", &t.conversation_id)
        .s("authorKind", author_kind(t.author_kind))
        .s("authorId", &t.author_id)
        .s("authorName", &t.author_name)
        .b("on", t.on)
        .done()
}

pub fn read(r: &v1::ReadChanged) -> JsValue {
    O::new()
        .s("conversationId", &r.conversation_id)
        .s("readerKind", author_kind(r.reader_kind))
        .n("seq", r.seq as f64)
        .done()
}

pub fn presence_changed(p: &v1::PresenceChanged) -> JsValue {
    O::new()
        .s("agentId", &p.agent_id)
        .s("agentName", &p.agent_name)
        .s("status", presence(p.status))
        .done()
}

pub fn agent(a: &v1::Agent) -> JsValue {
    O::new()
        .s("id", &a.id)
        .s("email", &a.email)
        .s("name", &a.name)
        .s("role", role(a.role))
        .strs("topics", &a.topics)
        .n("capacity", a.capacity as f64)
        .b("active", a.active)
        .strs("siteIds", &a.site_ids)
        .b("emailAlertsOff", a.email_alerts_off)
        .done()
}

pub fn site(s: &v1::Site) -> JsValue {
    O::new()
        .s("id", &s.id)
        .s("siteKey", &s.site_key)
        .s("name", &s.name)
        .strs("allowedOrigins", &s.allowed_origins)
        .strs("topics", &s.topics)
        .s("color", &s.color)
        .s("greeting", &s.greeting)
        .s("identitySecret", &s.identity_secret)
        .b("identityRequired", s.identity_required)
        .b("restrictAgentsToTopics", s.restrict_agents_to_topics)
        .n("maxFileBytes", s.max_file_bytes as f64)
        .s("fileKinds", file_kinds(s.file_kinds))
        .n("fileRetentionDays", s.file_retention_days as f64)
        .n("emailDelayMinutes", s.email_delay_minutes as f64)
        .s("notifyEmail", &s.notify_email)
        .n(
            "newConversationsPerIpHour",
            s.new_conversations_per_ip_hour as f64,
        )
        .n("autoResolveHours", s.auto_resolve_hours as f64)
        .s("timeZone", &s.time_zone)
        .v(
            "openingHours",
            array(&s.opening_hours, |h| {
                O::new()
                    .n("weekday", h.weekday as f64)
                    .n("openMinute", h.open_minute as f64)
                    .n("closeMinute", h.close_minute as f64)
                    .done()
            }),
        )
        .strs("closedDates", &s.closed_dates)
        .s("awayMessage", &s.away_message)
        .v("widgetTexts", widget_texts(&s.widget_texts))
        .v("attributes", attribute_definitions(&s.attributes))
        .done()
}

/// A site's attribute declarations as `AttributeDefinition[]`.
pub fn attribute_definitions(defs: &[v1::AttributeDefinition]) -> JsValue {
    array(defs, |d| {
        O::new()
            .s("key", &d.key)
            .s("name", &d.name)
            .s(
                "type",
                ATTRIBUTE_TYPES
                    .get(d.r#type as usize)
                    .copied()
                    .unwrap_or("text"),
            )
            .s(
                "target",
                if d.target == v1::AttributeTarget::Conversation as i32 {
                    "conversation"
                } else {
                    "visitor"
                },
            )
            .b("pageWritable", d.page_writable)
            .done()
    })
}

pub fn api_key(k: &v1::ApiKey) -> JsValue {
    let scopes: Vec<String> = k.scopes.iter().map(|s| scope(*s).to_owned()).collect();
    O::new()
        .s("id", &k.id)
        .s("name", &k.name)
        .strs("scopes", &scopes)
        .n("createdAt", k.created_at_ms as f64)
        .b("active", k.active)
        .strs("siteIds", &k.site_ids)
        .done()
}

pub fn canned_reply(c: &v1::CannedReply) -> JsValue {
    O::new()
        .s("id", &c.id)
        .s("siteId", &c.site_id)
        .s("shortcut", &c.shortcut)
        .s("text", &c.text)
        .done()
}

pub fn visitor(v: &v1::Visitor) -> JsValue {
    O::new()
        .s("id", &v.id)
        .s("siteId", &v.site_id)
        .s("name", &v.name)
        .s("email", &v.email)
        .s("userId", &v.user_id)
        .b("verified", v.verified)
        .s("pageUrl", &v.page_url)
        .s("userAgent", &v.user_agent)
        .s("locale", &v.locale)
        .n("firstSeen", v.first_seen_ms as f64)
        .n("lastSeen", v.last_seen_ms as f64)
        .s("lastIp", &v.last_ip)
        .b("blocked", v.blocked)
        .v("attributes", attribute_values(&v.attributes))
        .v(
            "pages",
            array(&v.pages, |p| {
                O::new()
                    .s("url", &p.url)
                    .s("title", &p.title)
                    .s("referrer", &p.referrer)
                    .n("at", p.at_ms as f64)
                    .done()
            }),
        )
        .done()
}

pub fn agent_presence(a: &v1::AgentPresence) -> JsValue {
    O::new()
        .s("agentId", &a.agent_id)
        .s("name", &a.name)
        .s("status", presence(a.status))
        .strs("topics", &a.topics)
        .n("load", a.load as f64)
        .n("capacity", a.capacity as f64)
        .done()
}

pub fn report(r: &v1::GetSiteReportResponse) -> JsValue {
    O::new()
        .v(
            "perDay",
            array(&r.per_day, |d| {
                O::new()
                    .s("day", &d.day)
                    .n("conversations", d.conversations as f64)
                    .done()
            }),
        )
        .n("conversations", r.conversations as f64)
        .n("medianFirstResponseMs", r.median_first_response_ms as f64)
        .n("medianResolutionMs", r.median_resolution_ms as f64)
        .n("satisfactionAverage", r.satisfaction_average)
        .n("ratings", r.ratings as f64)
        .n("resolved", r.resolved as f64)
        .v(
            "perLabel",
            array(&r.per_label, |l| {
                O::new()
                    .s("labelId", &l.label_id)
                    .s("name", &l.name)
                    .n("conversations", l.conversations as f64)
                    .done()
            }),
        )
        .done()
}

// ---- JS to messages --------------------------------------------------------------------

pub fn site_from(o: &JsValue) -> v1::Site {
    v1::Site {
        id: get_str(o, "id"),
        site_key: get_str(o, "siteKey"),
        name: get_str(o, "name"),
        allowed_origins: get_strs(o, "allowedOrigins"),
        topics: get_strs(o, "topics"),
        color: get_str(o, "color"),
        greeting: get_str(o, "greeting"),
        identity_secret: get_str(o, "identitySecret"),
        identity_required: get_bool(o, "identityRequired"),
        restrict_agents_to_topics: get_bool(o, "restrictAgentsToTopics"),
        max_file_bytes: get_num(o, "maxFileBytes").max(0.0) as u64,
        file_kinds: file_kinds_from(&get_str(o, "fileKinds")) as i32,
        file_retention_days: get_num(o, "fileRetentionDays").max(0.0) as u32,
        email_delay_minutes: get_num(o, "emailDelayMinutes").max(0.0) as u32,
        notify_email: get_str(o, "notifyEmail"),
        new_conversations_per_ip_hour: get_num(o, "newConversationsPerIpHour").max(0.0) as u32,
        auto_resolve_hours: get_num(o, "autoResolveHours").max(0.0) as u32,
        time_zone: get_str(o, "timeZone"),
        opening_hours: {
            let v = get(o, "openingHours");
            if Array::is_array(&v) {
                v.unchecked_into::<Array>()
                    .iter()
                    .map(|h| v1::OpeningHours {
                        weekday: get_num(&h, "weekday").max(0.0) as u32,
                        open_minute: get_num(&h, "openMinute").max(0.0) as u32,
                        close_minute: get_num(&h, "closeMinute").max(0.0) as u32,
                    })
                    .collect()
            } else {
                Vec::new()
            }
        },
        closed_dates: get_strs(o, "closedDates"),
        away_message: get_str(o, "awayMessage"),
        widget_texts: {
            let v = get(o, "widgetTexts");
            if v.is_object() {
                js_sys::Object::entries(v.unchecked_ref())
                    .iter()
                    .filter_map(|e| {
                        let e: Array = e.unchecked_into();
                        Some(v1::WidgetText {
                            key: e.get(0).as_string()?,
                            text: e.get(1).as_string()?,
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            }
        },
        attributes: {
            let v = get(o, "attributes");
            if Array::is_array(&v) {
                v.unchecked_into::<Array>()
                    .iter()
                    .map(|d| v1::AttributeDefinition {
                        key: get_str(&d, "key"),
                        name: get_str(&d, "name"),
                        r#type: ATTRIBUTE_TYPES
                            .iter()
                            .skip(1)
                            .position(|t| *t == get_str(&d, "type"))
                            .map(|i| i as i32 + 1)
                            .unwrap_or(v1::AttributeType::Unspecified as i32),
                        target: if get_str(&d, "target") == "conversation" {
                            v1::AttributeTarget::Conversation as i32
                        } else {
                            v1::AttributeTarget::Visitor as i32
                        },
                        page_writable: get_bool(&d, "pageWritable"),
                    })
                    .collect()
            } else {
                Vec::new()
            }
        },
    }
}

pub fn agent_from(o: &JsValue) -> v1::Agent {
    v1::Agent {
        id: get_str(o, "id"),
        email: get_str(o, "email"),
        name: get_str(o, "name"),
        role: role_from(&get_str(o, "role")) as i32,
        topics: get_strs(o, "topics"),
        capacity: get_num(o, "capacity") as u32,
        active: get(o, "active").as_bool().unwrap_or(true),
        site_ids: get_strs(o, "siteIds"),
        email_alerts_off: get_bool(o, "emailAlertsOff"),
    }
}

pub fn canned_reply_from(o: &JsValue) -> v1::CannedReply {
    v1::CannedReply {
        id: get_str(o, "id"),
        site_id: get_str(o, "siteId"),
        shortcut: get_str(o, "shortcut"),
        text: get_str(o, "text"),
    }
}

pub fn list_filter_from(o: &JsValue) -> v1::ListConversationsRequest {
    v1::ListConversationsRequest {
        status: status_from(&get_str(o, "status")) as i32,
        topic: get_str(o, "topic"),
        assignee_id: get_str(o, "assigneeId"),
        unassigned: get_bool(o, "unassigned"),
        site_id: get_str(o, "siteId"),
        query: get_str(o, "query"),
        page_size: get_num(o, "pageSize") as u32,
        page_token: get_str(o, "pageToken"),
        label_id: get_str(o, "labelId"),
        snooze: match get_str(o, "snooze").as_str() {
            "awake" => v1::SnoozeFilter::Awake,
            "snoozed" => v1::SnoozeFilter::Snoozed,
            _ => v1::SnoozeFilter::Unspecified,
        } as i32,
        attribute: {
            let a = get(o, "attribute");
            a.is_object().then(|| v1::AttributeValue {
                key: get_str(&a, "key"),
                value: get_str(&a, "value"),
            })
        },
    }
}
