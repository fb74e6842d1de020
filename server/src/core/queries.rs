//! Read-only use cases with their access scoping: the inbox list and search, one
//! conversation, its history, a visitor's profile, canned replies, agents' presence, and what
//! a Chat stream may watch.

use std::collections::HashMap;
use std::sync::Arc;

use wsmschat::v1;

use super::Core;
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};
use crate::store::ConversationFilter;

/// The `page_token` after a conversation: "updated_at_ms:id" (the list's order).
pub fn page_token(c: &v1::Conversation) -> String {
    format!("{}:{}", c.updated_at_ms, c.id)
}

/// Parses a `page_token` (empty: the first page).
pub fn parse_page_token(t: &str) -> CoreResult<Option<(i64, String)>> {
    if t.is_empty() {
        return Ok(None);
    }
    let malformed = || CoreError::InvalidArgument("malformed page_token".into());
    let (at, id) = t.split_once(':').ok_or_else(malformed)?;
    let at = at.parse().map_err(|_| malformed())?;
    Ok(Some((at, id.to_owned())))
}

impl Core {
    /// The conversations the caller may see, filtered and paged: a visitor's own, a staff
    /// member's within their sites and topics. A search is bounded (query length) and holds a
    /// search slot while it runs.
    pub async fn list_conversations(
        &self,
        principal: &Principal,
        r: v1::ListConversationsRequest,
    ) -> CoreResult<v1::ListConversationsResponse> {
        let page_size = match r.page_size {
            0 => 50,
            n => n.min(200),
        };
        if r.label_id.len() > 64 || r.label_id.contains('\0') {
            return Err(CoreError::InvalidArgument(
                "label_id is not a label id".into(),
            ));
        }
        let attribute = match r.attribute {
            Some(a) if !a.key.is_empty() => {
                if a.key.len() > super::context::MAX_KEY_BYTES
                    || a.value.len() > super::context::MAX_URL_BYTES
                    || a.key.contains('\0')
                    || a.value.contains('\0')
                {
                    return Err(CoreError::InvalidArgument(
                        "attribute: a declared key and a value of at most 2,048 bytes".into(),
                    ));
                }
                Some((a.key, a.value.trim().to_owned()))
            }
            _ => None,
        };
        let mut filter = ConversationFilter {
            attribute,
            status: v1::ConversationStatus::try_from(r.status)
                .ok()
                .filter(|s| *s != v1::ConversationStatus::Unspecified),
            topic: (!r.topic.is_empty()).then_some(r.topic),
            assignee_id: (!r.assignee_id.is_empty()).then_some(r.assignee_id),
            unassigned: r.unassigned,
            site_id: (!r.site_id.is_empty()).then_some(r.site_id),
            visitor_id: None,
            label_id: (!r.label_id.is_empty()).then_some(r.label_id),
            snoozed: match v1::SnoozeFilter::try_from(r.snooze).unwrap_or_default() {
                v1::SnoozeFilter::Unspecified => None,
                v1::SnoozeFilter::Awake => Some(false),
                v1::SnoozeFilter::Snoozed => Some(true),
            },
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            limit: page_size,
            after: parse_page_token(&r.page_token)?,
            scope: None,
        };
        match principal {
            Principal::Visitor { visitor_id, .. } => {
                filter.visitor_id = Some(visitor_id.clone());
                filter.label_id = None; // labels are staff business
                filter.snoozed = None; // and so is snoozing
                filter.attribute = None; // and attributes
            }
            Principal::Agent { agent } if filter.assignee_id.as_deref() == Some("me") => {
                filter.assignee_id = Some(agent.id.clone());
            }
            p if !p.is_staff() => {
                return Err(CoreError::PermissionDenied(
                    "this API key has no chat scope".into(),
                ));
            }
            _ => {}
        }
        filter.scope = self.staff_scope(principal);
        let _slot = match &filter.query {
            Some(q) => Some(self.search_slot(q).await?),
            None => None,
        };
        let (rows, total) = self.store.list_conversations(filter).await?;
        let next_page_token = if rows.len() == page_size as usize {
            rows.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        let visitor = matches!(principal, Principal::Visitor { .. });
        Ok(v1::ListConversationsResponse {
            conversations: rows
                .into_iter()
                .map(|c| match visitor {
                    true => super::context::visitor_copy(self.decorate(c)),
                    false => self.decorate(c),
                })
                .collect(),
            next_page_token,
            total: total.count,
            total_capped: total.capped,
        })
    }

    /// A page of a conversation's messages before `before_seq` (0: the newest); notes only
    /// for staff.
    pub async fn history(
        &self,
        principal: &Principal,
        r: v1::GetHistoryRequest,
    ) -> CoreResult<v1::GetHistoryResponse> {
        let c = self
            .visible_conversation(principal, &r.conversation_id)
            .await?;
        let limit = match r.limit {
            0 => 50,
            n => n.min(500),
        };
        let (mut messages, has_more) = self
            .store
            .history(&c.id, r.before_seq, limit, principal.is_staff())
            .await?;
        for m in &mut messages {
            self.sign(m);
        }
        Ok(v1::GetHistoryResponse { messages, has_more })
    }

    /// A visitor's profile and conversations: the visitor themself, or staff of their site.
    pub async fn visitor_profile(
        &self,
        principal: &Principal,
        visitor_id: String,
    ) -> CoreResult<v1::GetVisitorResponse> {
        match principal {
            Principal::Visitor { visitor_id: me, .. } if *me == visitor_id => {}
            p if p.is_staff() => {}
            _ => {
                return Err(CoreError::PermissionDenied(
                    "only agents may read visitor profiles".into(),
                ));
            }
        }
        let mut visitor = self.store.visitor_by_id(&visitor_id).await?;
        let own = matches!(principal, Principal::Visitor { .. });
        if own {
            visitor = super::context::visitor_self(visitor); // address, attributes, pages: staff only
        }
        if !self.may_see_site(principal, &visitor.site_id) {
            return Err(CoreError::NotFound("visitor not found".into()));
        }
        let (conversations, _) = self
            .store
            .list_conversations(ConversationFilter {
                visitor_id: Some(visitor_id),
                limit: 100,
                scope: self.staff_scope(principal),
                ..Default::default()
            })
            .await?;
        let attributes = match own {
            true => Vec::new(),
            false => self.site(&visitor.site_id).await?.attributes,
        };
        Ok(v1::GetVisitorResponse {
            visitor: Some(visitor),
            attributes,
            conversations: match own {
                true => conversations
                    .into_iter()
                    .map(super::context::visitor_copy)
                    .collect(),
                false => conversations,
            },
        })
    }

    /// Canned replies a staff member may use: those for every site, and their sites' own.
    pub async fn canned_replies(
        &self,
        principal: &Principal,
        site_id: String,
    ) -> CoreResult<Vec<v1::CannedReply>> {
        if !principal.is_staff() {
            return Err(CoreError::PermissionDenied(
                "only agents may list canned replies".into(),
            ));
        }
        Ok(self
            .store
            .list_canned_replies((!site_id.is_empty()).then_some(site_id))
            .await?
            .into_iter()
            // Replies for every site (no site id) are everyone's; a site's only its staff's.
            .filter(|c| c.site_id.is_empty() || self.may_see_site(principal, &c.site_id))
            .collect())
    }

    /// Active agents with their cluster-wide status and current load (staff only; staff
    /// limited to sites see the agents who serve one of those sites, or every site).
    pub async fn agent_presence(
        &self,
        principal: &Principal,
    ) -> CoreResult<Vec<v1::AgentPresence>> {
        if !principal.is_staff() {
            return Err(CoreError::PermissionDenied(
                "only agents may list agents".into(),
            ));
        }
        let agents = self.store.list_agents().await?;
        let loads: HashMap<String, u32> = self.store.agent_loads().await?.into_iter().collect();
        let status = self.presence.snapshot();
        Ok(agents
            .into_iter()
            .filter(|a| a.active && self.may_see_agent(principal, a))
            .map(|a| v1::AgentPresence {
                status: status
                    .get(&a.id)
                    .copied()
                    .unwrap_or(v1::PresenceStatus::Offline) as i32,
                load: loads.get(&a.id).copied().unwrap_or(0),
                agent_id: a.id,
                name: a.name,
                topics: a.topics,
                capacity: a.capacity,
            })
            .collect())
    }

    /// A staff Chat stream starts following one more conversation (one the caller may see).
    pub async fn watch(
        self: &Arc<Self>,
        principal: &Principal,
        stream_id: u64,
        w: v1::WatchConversation,
    ) -> CoreResult<()> {
        let cursor = w
            .cursor
            .ok_or_else(|| CoreError::InvalidArgument("watch needs a cursor".into()))?;
        if !principal.is_staff() {
            return Err(CoreError::PermissionDenied(
                "visitors follow their own conversations already".into(),
            ));
        }
        self.visible_conversation(principal, &cursor.conversation_id)
            .await?;
        self.hub.watch(stream_id, cursor);
        Ok(())
    }
}
