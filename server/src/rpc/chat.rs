//! `wsmschat.v1.ChatService`: streams, publish and the read-only queries.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use wsmschat::v1;
use wsmschat::v1::chat_service_server::ChatService;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

use super::{caller, charged_caller};
use crate::auth::Principal;
use crate::core::Core;
use crate::error::CoreError;
use crate::store::ConversationFilter;

/// The ChatService handlers.
pub struct ChatApi {
    pub core: Arc<Core>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub fn page_token(c: &v1::Conversation) -> String {
    format!("{}:{}", c.updated_at_ms, c.id)
}

pub fn parse_page_token(t: &str) -> Result<Option<(i64, String)>, Status> {
    if t.is_empty() {
        return Ok(None);
    }
    let (at, id) = t
        .split_once(':')
        .ok_or_else(|| Status::invalid_argument("malformed page_token"))?;
    let at = at
        .parse()
        .map_err(|_| Status::invalid_argument("malformed page_token"))?;
    Ok(Some((at, id.to_owned())))
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    type ChatStream = BoxStream<v1::ChatResponse>;
    type SubscribeStream = BoxStream<v1::SubscribeResponse>;

    async fn chat(
        &self,
        req: Request<Streaming<v1::ChatRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        // The slot is taken before the first request arrives: a call that never sends one
        // still counts, and is ended after `first_request_timeout`.
        let permit = self.core.reserve_stream(&who.principal, who.ip)?;
        let mut inbound = req.into_inner();
        // The first request subscribes (and may already carry an event).
        let first = tokio::time::timeout(self.core.config.first_request_timeout, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("the Chat stream sent no first request in time")
            })??
            .ok_or_else(|| {
                Status::invalid_argument("the Chat stream closed before its first request")
            })?;
        let (ack_tx, ack_rx) = mpsc::channel::<v1::ServerEvent>(64);
        let (events, stream_id) = self
            .core
            .open_stream(
                permit,
                who.principal.clone(),
                who.token.clone(),
                first.subscribe.unwrap_or_default(),
                Some(ack_rx),
            )
            .await?;
        let core = self.core.clone();
        tokio::spawn(async move {
            let mut next = first.event;
            loop {
                if let Some(ev) = next.take() {
                    // Each event is authorised with the token's current rights (a revoked
                    // token's events are refused while its stream winds down).
                    let answer = match core.authenticate(&who.token).await {
                        Ok(principal) => {
                            handle_chat_event(&core, &principal, who.ip, stream_id, ev).await
                        }
                        Err(e) => {
                            let (request_id, client_msg_id) = event_ids(&ev);
                            event_error(request_id, client_msg_id, e)
                        }
                    };
                    if ack_tx.send(answer).await.is_err() {
                        break;
                    }
                }
                match inbound.message().await {
                    Ok(Some(req)) => next = req.event,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "Chat inbound ended with an error");
                        break;
                    }
                }
            }
        });
        let out = events.map(|e| {
            e.map(|e| v1::ChatResponse { event: Some(e) })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn subscribe(
        &self,
        req: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let permit = self.core.reserve_stream(&who.principal, who.ip)?;
        let sub = req.into_inner().subscription.unwrap_or_default();
        let (events, _) = self
            .core
            .open_stream(permit, who.principal, who.token, sub, None)
            .await?;
        let out = events.map(|e| {
            e.map(|e| v1::SubscribeResponse { event: Some(e) })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn publish(
        &self,
        req: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let who = caller(&self.core, &req).await?;
        let ev = req
            .into_inner()
            .event
            .ok_or_else(|| Status::invalid_argument("PublishRequest.event is required"))?;
        let ack = self.core.publish(&who.principal, who.ip, ev, None).await?;
        Ok(Response::new(v1::PublishResponse { ack: Some(ack) }))
    }

    async fn list_conversations(
        &self,
        req: Request<v1::ListConversationsRequest>,
    ) -> Result<Response<v1::ListConversationsResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let r = req.into_inner();
        let page_size = match r.page_size {
            0 => 50,
            n => n.min(200),
        };
        let mut filter = ConversationFilter {
            status: v1::ConversationStatus::try_from(r.status)
                .ok()
                .filter(|s| *s != v1::ConversationStatus::Unspecified),
            topic: (!r.topic.is_empty()).then_some(r.topic),
            assignee_id: (!r.assignee_id.is_empty()).then_some(r.assignee_id),
            unassigned: r.unassigned,
            site_id: (!r.site_id.is_empty()).then_some(r.site_id),
            visitor_id: None,
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            limit: page_size,
            after: parse_page_token(&r.page_token)?,
            scope: None,
        };
        match &who.principal {
            Principal::Visitor { visitor_id, .. } => filter.visitor_id = Some(visitor_id.clone()),
            Principal::Agent { agent } if filter.assignee_id.as_deref() == Some("me") => {
                filter.assignee_id = Some(agent.id.clone());
            }
            p if !p.is_staff() => {
                return Err(Status::permission_denied("this API key has no chat scope"));
            }
            _ => {}
        }
        filter.scope = self.core.staff_scope(&who.principal);
        // A search is bounded (query length) and takes a search slot while it runs.
        let _slot = match &filter.query {
            Some(q) => Some(self.core.search_slot(q).await?),
            None => None,
        };
        let (rows, total) = self.core.store.list_conversations(filter).await?;
        let next_page_token = if rows.len() == page_size as usize {
            rows.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListConversationsResponse {
            conversations: rows.into_iter().map(|c| self.core.decorate(c)).collect(),
            next_page_token,
            total,
        }))
    }

    async fn get_conversation(
        &self,
        req: Request<v1::GetConversationRequest>,
    ) -> Result<Response<v1::GetConversationResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let c = self
            .core
            .visible_conversation(&who.principal, &req.into_inner().conversation_id)
            .await?;
        Ok(Response::new(v1::GetConversationResponse {
            conversation: Some(c),
        }))
    }

    async fn get_history(
        &self,
        req: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let r = req.into_inner();
        let c = self
            .core
            .visible_conversation(&who.principal, &r.conversation_id)
            .await?;
        let limit = match r.limit {
            0 => 50,
            n => n.min(500),
        };
        let (messages, has_more) = self
            .core
            .store
            .history(&c.id, r.before_seq, limit, who.principal.is_staff())
            .await?;
        Ok(Response::new(v1::GetHistoryResponse { messages, has_more }))
    }

    async fn get_visitor(
        &self,
        req: Request<v1::GetVisitorRequest>,
    ) -> Result<Response<v1::GetVisitorResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let visitor_id = req.into_inner().visitor_id;
        match &who.principal {
            Principal::Visitor { visitor_id: me, .. } if *me == visitor_id => {}
            p if p.is_staff() => {}
            _ => {
                return Err(Status::permission_denied(
                    "only agents may read visitor profiles",
                ));
            }
        }
        let visitor = self.core.store.visitor_by_id(&visitor_id).await?;
        if !self.core.may_see_site(&who.principal, &visitor.site_id) {
            return Err(Status::not_found("visitor not found"));
        }
        let (conversations, _) = self
            .core
            .store
            .list_conversations(ConversationFilter {
                visitor_id: Some(visitor_id),
                limit: 100,
                scope: self.core.staff_scope(&who.principal),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(v1::GetVisitorResponse {
            visitor: Some(visitor),
            conversations,
        }))
    }

    async fn list_canned_replies(
        &self,
        req: Request<v1::ListCannedRepliesRequest>,
    ) -> Result<Response<v1::ListCannedRepliesResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        if !who.principal.is_staff() {
            return Err(Status::permission_denied(
                "only agents may list canned replies",
            ));
        }
        let site = req.into_inner().site_id;
        let canned_replies = self
            .core
            .store
            .list_canned_replies((!site.is_empty()).then_some(site))
            .await?
            .into_iter()
            // Replies for every site (no site id) are everyone's; a site's only its staff's.
            .filter(|c| c.site_id.is_empty() || self.core.may_see_site(&who.principal, &c.site_id))
            .collect();
        Ok(Response::new(v1::ListCannedRepliesResponse {
            canned_replies,
        }))
    }

    async fn list_agent_presence(
        &self,
        req: Request<v1::ListAgentPresenceRequest>,
    ) -> Result<Response<v1::ListAgentPresenceResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        if !who.principal.is_staff() {
            return Err(Status::permission_denied("only agents may list agents"));
        }
        let agents = self.core.store.list_agents().await?;
        let loads: std::collections::HashMap<String, u32> =
            self.core.store.agent_loads().await?.into_iter().collect();
        let status = self.core.presence.snapshot();
        Ok(Response::new(v1::ListAgentPresenceResponse {
            agents: agents
                .into_iter()
                .filter(|a| a.active)
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
                .collect(),
        }))
    }
}

/// Runs one event of a Chat stream and turns the outcome into an Ack or EventError.
async fn handle_chat_event(
    core: &Arc<Core>,
    principal: &Principal,
    ip: Option<std::net::IpAddr>,
    stream_id: u64,
    ev: v1::ClientEvent,
) -> v1::ServerEvent {
    let (request_id, client_msg_id) = event_ids(&ev);
    let result = match ev.event {
        Some(Ce::Watch(w)) => watch(core, principal, stream_id, w).await.map(|_| v1::Ack {
            request_id: request_id.clone(),
            ..Default::default()
        }),
        _ => core.publish(principal, ip, ev, Some(stream_id)).await,
    };
    match result {
        Ok(ack) => v1::ServerEvent {
            event: Some(Se::Ack(ack)),
        },
        Err(e) => event_error(request_id, client_msg_id, e),
    }
}

/// The request id and (for a send) the client_msg_id an answer to `ev` carries.
fn event_ids(ev: &v1::ClientEvent) -> (String, String) {
    let client_msg_id = match &ev.event {
        Some(Ce::SendMessage(m)) => m.client_msg_id.clone(),
        _ => String::new(),
    };
    (ev.request_id.clone(), client_msg_id)
}

/// The EventError answering an event.
fn event_error(request_id: String, client_msg_id: String, e: CoreError) -> v1::ServerEvent {
    if let CoreError::Internal(cause) = &e {
        tracing::error!(error = %cause, "Internal error in a Chat event");
    }
    v1::ServerEvent {
        event: Some(Se::Error(v1::EventError {
            request_id,
            code: e.code() as i32,
            message: e.to_string(),
            client_msg_id,
        })),
    }
}

async fn watch(
    core: &Arc<Core>,
    principal: &Principal,
    stream_id: u64,
    w: v1::WatchConversation,
) -> Result<(), CoreError> {
    let cursor = w
        .cursor
        .ok_or_else(|| CoreError::InvalidArgument("watch needs a cursor".into()))?;
    if !principal.is_staff() {
        return Err(CoreError::PermissionDenied(
            "visitors follow their own conversations already".into(),
        ));
    }
    core.visible_conversation(principal, &cursor.conversation_id)
        .await?;
    core.hub.watch(stream_id, cursor);
    Ok(())
}
