//! The TypeScript shapes of everything the SDK takes and gives (emitted into the generated
//! `.d.ts`), and the typed JS values the methods accept.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = r#"
/** Options of `ChatClient.connect` (a visitor on a site). */
export interface ConnectOptions {
  /** Chat server base URL, e.g. "https://chat.example.com" (a trailing slash is fine). */
  server: string;
  /** The site's public key (`data-site`). */
  siteKey: string;
  /** The site's id of a logged-in user, with `userHash` = hex(HMAC-SHA256(identity secret, userId)). */
  userId?: string;
  userHash?: string;
  name?: string;
  email?: string;
  /** Browser locale sent to agents; defaults to navigator.language. */
  locale?: string;
  /** Page URL sent to agents; defaults to location.href. */
  pageUrl?: string;
  /** The token of an email's "continue the conversation" link (`#wsmschat-continue=...`): the
   *  session becomes that visitor and their conversation comes first in `openConversations`. */
  continuation?: string;
  /** "local" (default: localStorage, falling back to memory when blocked) or "memory". */
  storage?: "local" | "memory";
}

/** Options of `ChatClient.login` (an agent). */
export interface LoginOptions { server: string; email: string; password: string; }

/** Options of `ChatClient.withToken` (an agent token or API key kept by the caller). */
export interface TokenOptions { server: string; token: string; }

export type ConnectionState = "idle" | "connecting" | "online" | "offline" | "closed";
export type AuthorKind = "visitor" | "agent" | "service" | "system";
export type ConversationStatus = "queued" | "open" | "resolved";
export type Presence = "online" | "away" | "offline";

export interface SystemEvent {
  kind: "assigned" | "joined" | "transferred" | "resolved" | "reopened" | "rated" | "away";
  agentId: string; agentName: string; score: number;
}

/** A stored message; `(conversationId, seq)` identifies it. Render `text` as text, never HTML. */
export interface Message {
  conversationId: string; seq: number; clientMsgId: string;
  kind: "text" | "note" | "system"; authorKind: AuthorKind; authorId: string; authorName: string;
  text: string; createdAt: number; system?: SystemEvent;
  /** Files sent with it (a message is text, files, or both). */
  attachments: Attachment[];
}

/** A file of a message. Its type was decided by the server from the bytes. `url` and
 *  `thumbnailUrl` are signed links valid until `urlsExpireAt` (`ChatClient.attachment(id)`
 *  gives fresh ones); raster images are served inline, everything else as a download named
 *  `name`. `width`/`height` (images) let a UI reserve the space before the image loads. */
export interface Attachment {
  id: string; name: string; contentType: string; size: number; width: number; height: number;
  hasThumbnail: boolean; url: string; thumbnailUrl: string; urlsExpireAt: number;
  /** Deleted after the site's retention: the metadata stays, the links are empty. */
  deleted: boolean;
}
/** A file listed with the message that carried it (`ChatClient.attachments`). */
export interface ConversationFile {
  attachment: Attachment; seq: number; authorKind: AuthorKind; authorName: string; note: boolean;
  createdAt: number;
}
export type FileKinds = "none" | "images" | "documents" | "any";

export interface Conversation {
  id: string; siteId: string; visitorId: string; visitorName: string; topic: string;
  status: ConversationStatus; assigneeId: string; assigneeName: string; queuePosition: number;
  lastSeq: number; lastMessagePreview: string; visitorReadSeq: number; agentReadSeq: number;
  createdAt: number; updatedAt: number; rating: number; ratingComment: string; agentsOnline: number;
  /** Ids of the site's labels on it (the full SDK only; names from `listLabels`). */
  labelIds?: string[];
  /** Snoozed by staff (the full SDK only): until `snoozedUntil` (ms), or the customer's next
   *  message when that is 0. */
  snoozed?: boolean; snoozedUntil?: number;
  /** The conversation's custom attributes, by key (staff only; the full SDK only). */
  attributes?: Record<string, string>;
}

export interface Ack {
  requestId: string; conversationId: string; seq: number; clientMsgId: string;
  duplicate: boolean; createdAt: number;
}

export interface SiteInfo {
  id: string; name: string; topics: string[]; color: string; greeting: string;
  /** Agents online per topic, same order as `topics`. */
  agentsOnline: number[];
  /** Largest file, bytes; the kinds accepted; files per message at most. */
  maxFileBytes: number; fileKinds: FileKinds; maxFilesPerMessage: number;
  /** The server sends email: a visitor who leaves an address gets unseen replies by email. */
  emailEnabled: boolean;
  /** Outside the site's opening hours now; `opensAt` (ms, 0: not within two weeks) is when the
   *  team is back. Open with declared hours: `closesAt` (ms) is when it closes (0: no hours). */
  closed: boolean; opensAt: number; closesAt: number;
  /** Median first-response time of the last 14 days, seconds (0: too few to tell). */
  typicalReplyS: number;
  /** The site's own words for the widget in this session's language, by string key. */
  texts: Record<string, string>;
}

export interface Agent {
  id: string; email: string; name: string; role: "agent" | "admin"; topics: string[];
  capacity: number; active: boolean;
  /** The sites this agent works for; empty: every site (admins: always every site). */
  siteIds: string[];
  /** No alert emails (waiting customers, the daily digest). */
  emailAlertsOff: boolean;
}

export interface Site {
  id: string; siteKey: string; name: string; allowedOrigins: string[]; topics: string[];
  color: string; greeting: string; identitySecret: string; identityRequired: boolean;
  /** Agents (not admins) see only their own topics' conversations on this site. */
  restrictAgentsToTopics: boolean;
  /** Largest file (0: 10 MB), kinds accepted, days files of resolved conversations are kept (0: always). */
  maxFileBytes: number; fileKinds: FileKinds; fileRetentionDays: number;
  /** Minutes an agent's reply may stay unseen before it is emailed to the visitor (0: 3). */
  emailDelayMinutes: number;
  /** Another address for the site's alert emails and digest (a team inbox); "" for none. */
  notifyEmail: string;
  /** New conversations one address may start per hour (0: the server's default, 30). */
  newConversationsPerIpHour: number;
  /** Hours without a customer answer after an agent's reply before an open conversation is
   *  resolved (0: off). */
  autoResolveHours: number;
  /** Opening hours: read in `timeZone` (IANA; "" = UTC); intervals per ISO weekday (1 Monday),
   *  minutes after local midnight (none: always open); whole local days closed ("YYYY-MM-DD");
   *  the out-of-office reply sent once per conversation outside hours ("" = none). */
  timeZone: string; openingHours: OpeningHours[]; closedDates: string[]; awayMessage: string;
  /** The site's widget texts by key: "offline" for every language, "de.offline" for one. */
  widgetTexts: Record<string, string>;
  /** Custom attributes of visitors and conversations (at most 50). */
  attributes: AttributeDefinition[];
}

/** One opening interval: `openMinute < closeMinute <= 1440` after local midnight. */
export interface OpeningHours { weekday: number; openMinute: number; closeMinute: number; }

export interface ApiKey { id: string; name: string; scopes: ("chat" | "admin")[]; createdAt: number; active: boolean; siteIds: string[]; }
export interface CannedReply { id: string; siteId: string; shortcut: string; text: string; }
/** An email the server sends about a conversation (its durable outbox). */
export interface ConversationEmail {
  id: string; kind: "continuity" | "transcript" | "alert" | "digest" | "webhook-disabled"; to: string; subject: string; state: "queued" | "sent" | "failed";
  attempts: number; createdAt: number;
  /** 0 until the SMTP server accepted it. */
  sentAt: number;
  /** The SMTP server's reply (or why none answered) on the last failed attempt. */
  lastError: string; messageId: string;
}
/** What a webhook endpoint receives (the `type` of its JSON bodies). */
export type WebhookEvent = "conversation.created" | "conversation.assigned" | "conversation.resolved"
  | "conversation.reopened" | "message.created" | "note.created" | "rating.submitted" | "visitor.identified";
/** A site's webhook endpoint (signed per Standard Webhooks; secrets are shown once, on create/rotate). */
export interface Webhook {
  id: string; siteId: string; url: string; events: WebhookEvent[]; enabled: boolean; description: string;
  createdAt: number;
  /** Set when the server disabled it (failing for days). */
  disabledReason: string;
  /** Since when every delivery failed (0: the last succeeded); the last success (0: none). */
  failingSince: number; lastSuccessAt: number;
  /** Deliveries waiting, and given up. */
  pending: number; failed: number;
}
/** One event for one endpoint, with its last attempt. */
export interface WebhookDelivery {
  eventId: string; webhookId: string; eventType: WebhookEvent; conversationId: string;
  state: "pending" | "delivered" | "failed"; attempts: number; createdAt: number;
  /** 0 unless pending. */
  nextAttemptAt: number; lastAttemptAt: number;
  /** 0: no HTTP answer (see lastError). */
  lastStatusCode: number; lastLatencyMs: number;
  /** The first bytes of the endpoint's answer. */
  lastResponse: string; lastError: string;
}
export interface Visitor {
  id: string; siteId: string; name: string; email: string; userId: string; verified: boolean;
  pageUrl: string; userAgent: string; locale: string; firstSeen: number; lastSeen: number;
  /** Address of the last session start (staff only). */
  lastIp: string;
  /** A block holds this visitor off the chat. */
  blocked: boolean;
  /** Custom attributes, by key (staff only). */
  attributes: Record<string, string>;
  /** Pages seen, newest first, at most 20 (staff only). */
  pages: { url: string; title: string; referrer: string; at: number }[];
}
/** A custom attribute a site declares. */
export interface AttributeDefinition {
  key: string; name: string; type: "text" | "number" | "date" | "link";
  target: "visitor" | "conversation";
  /** The page may set it (`WsmsChat('update', {...})`). */
  pageWritable: boolean;
}
export interface AgentPresence { agentId: string; name: string; status: Presence; topics: string[]; load: number; capacity: number; }
export interface SiteReport {
  perDay: { day: string; conversations: number }[]; conversations: number;
  medianFirstResponseMs: number; medianResolutionMs: number; satisfactionAverage: number;
  ratings: number; resolved: number;
  perLabel: { labelId: string; name: string; conversations: number }[];
}

export interface TypingEvent { conversationId: string; authorKind: AuthorKind; authorId: string; authorName: string; on: boolean; }
export interface ReadEvent { conversationId: string; readerKind: AuthorKind; seq: number; }
export interface PresenceEvent { agentId: string; agentName: string; status: Presence; }
/** `retryInMs` is set while offline; `error` says why the last attempt failed. */
export interface StateEvent { state: ConnectionState; attempt: number; retryInMs?: number; error?: string; }
/** Errors thrown/rejected by the SDK carry the gRPC status. */
export interface ChatError extends Error {
  code: number; codeName: string;
  /** The server's machine-readable reason: "CHAT_UNAVAILABLE" (a block), "NEW_CONVERSATION_QUOTA"
   *  (too many new conversations from this address this hour; see `retryAfterS`),
   *  "OPEN_CONVERSATION_LIMIT". Sends refused with a reason are not retried. */
  reason?: string; retryAfterS?: number;
}
export type BlockKind = "visitor" | "email" | "ip";
/** A block on a site: `value` is the visitor id, the email or the network (CIDR). */
export interface Block { id: string; siteId: string; kind: BlockKind; value: string; reason: string; createdBy: string; createdByName: string; createdAt: number; }
export interface AuditEntry { id: string; siteId: string; actor: string; actorName: string; action: string; target: string; detail: string; createdAt: number; }

/** `view(conversationId, topic)` changed: render it again. */
export interface ViewEvent { conversationId: string; topic: string; }
/** A line of a `ConversationView`: a stored message ("sent"), or a send of this client not
 *  stored yet ("sending", "waiting": will be retried, "failed": refused, see `error`; retry
 *  with `send(text, { clientMsgId })` or drop with `discard`). Sends have `seq` 0. */
export interface ViewMessage extends Message {
  status: "sent" | "sending" | "waiting" | "failed"; error?: string; topic?: string;
}
/** One conversation as a UI renders it (see `ChatClient.view`). */
export interface ConversationView {
  conversationId: string; topic: string; messages: ViewMessage[];
  visitorReadSeq: number; agentReadSeq: number;
  /** Older messages exist before `oldestSeq` (load them with `history(id, { beforeSeq })`). */
  hasMore: boolean; oldestSeq: number;
  /** The newest history page was loaded. */
  loaded: boolean;
}

export interface ChatEvents {
  message: Message; conversation: Conversation; typing: TypingEvent; read: ReadEvent;
  presence: PresenceEvent; state: StateEvent; error: ChatError; view: ViewEvent;
  ready: { streamId: string; heartbeatMs: number };
}
export type ChatEventName = keyof ChatEvents;

export interface SendOptions {
  /** The conversation; omit (with `topic`) to start one. */
  conversationId?: string;
  /** Topic of a new conversation. */
  topic?: string;
  /** Idempotency key; generated when omitted (`ChatClient.newId()`). Reuse it to retry. */
  clientMsgId?: string;
  /** "text" (default) or "note" (agents: private). */
  kind?: "text" | "note";
  /** Uploaded files to send (the JSON answers of `POST uploadUrl`, or their ids); with files
   *  the text may be empty. */
  attachments?: (Partial<Attachment> & { id: string })[] | string[];
}
export interface PendingSend { clientMsgId: string; conversationId: string; topic: string; text: string; kind: "text" | "note"; }
export interface HistoryPage { messages: Message[]; hasMore: boolean; }
export interface ListFilter {
  status?: ConversationStatus; topic?: string; assigneeId?: string; unassigned?: boolean;
  siteId?: string; query?: string; pageSize?: number; pageToken?: string; labelId?: string;
  /** "awake": leave snoozed conversations out; "snoozed": only them; absent: both. */
  snooze?: "awake" | "snoozed";
  /** Only where the conversation's or its visitor's attribute equals the value. */
  attribute?: { key: string; value: string };
}
/** A site's label (admins define them; staff put them on conversations). */
export interface Label { id: string; siteId: string; name: string; color: string; conversations: number; }
export interface ConversationPage { conversations: Conversation[]; nextPageToken: string; total: number; /** `total` is a lower bound (a query in more than 5,000 messages lists the newest). */ totalCapped: boolean; }
export interface VisitorProfile {
  visitor: Visitor; conversations: Conversation[];
  /** The attributes the visitor's site declares (what the visitor panel shows and edits). */
  attributes: AttributeDefinition[];
}
export interface Identity { userId?: string; userHash?: string; name?: string; email?: string; }
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "ConnectOptions")]
    pub type ConnectOptions;
    #[wasm_bindgen(typescript_type = "LoginOptions")]
    pub type LoginOptions;
    #[wasm_bindgen(typescript_type = "TokenOptions")]
    pub type TokenOptions;
    #[wasm_bindgen(typescript_type = "SendOptions")]
    pub type SendOptions;
    #[wasm_bindgen(typescript_type = "ListFilter")]
    pub type ListFilter;
    #[wasm_bindgen(typescript_type = "Identity")]
    pub type Identity;
    #[wasm_bindgen(typescript_type = "Partial<Site>")]
    pub type SiteInput;
    #[wasm_bindgen(typescript_type = "Partial<Agent>")]
    pub type AgentInput;
    #[wasm_bindgen(typescript_type = "Partial<CannedReply>")]
    pub type CannedReplyInput;
    #[wasm_bindgen(typescript_type = "Partial<Webhook>")]
    pub type WebhookInput;
    #[wasm_bindgen(
        typescript_type = "Pick<Webhook, \"id\" | \"url\" | \"events\" | \"enabled\"> & Partial<Webhook>"
    )]
    pub type WebhookUpdate;
}
