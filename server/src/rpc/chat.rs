//! `wsmschat.v1.ChatService`: streams, publish and the read-only queries.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use wsmschat::v1;
use wsmschat::v1::chat_service_server::ChatService;

use super::{caller, charged_caller};
use crate::core::Core;

/// The ChatService handlers.
pub struct ChatApi {
    pub core: Arc<Core>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

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
                    let answer = core.stream_event(&who.token, who.ip, stream_id, ev).await;
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
        Ok(Response::new(
            self.core
                .list_conversations(&who.principal, req.into_inner())
                .await?,
        ))
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
        Ok(Response::new(
            self.core.history(&who.principal, req.into_inner()).await?,
        ))
    }

    async fn get_visitor(
        &self,
        req: Request<v1::GetVisitorRequest>,
    ) -> Result<Response<v1::GetVisitorResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        Ok(Response::new(
            self.core
                .visitor_profile(&who.principal, req.into_inner().visitor_id)
                .await?,
        ))
    }

    async fn list_canned_replies(
        &self,
        req: Request<v1::ListCannedRepliesRequest>,
    ) -> Result<Response<v1::ListCannedRepliesResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let canned_replies = self
            .core
            .canned_replies(&who.principal, req.into_inner().site_id)
            .await?;
        Ok(Response::new(v1::ListCannedRepliesResponse {
            canned_replies,
        }))
    }

    async fn list_agent_presence(
        &self,
        req: Request<v1::ListAgentPresenceRequest>,
    ) -> Result<Response<v1::ListAgentPresenceResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let agents = self.core.agent_presence(&who.principal).await?;
        Ok(Response::new(v1::ListAgentPresenceResponse { agents }))
    }
}
