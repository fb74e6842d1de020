//! `wsmschat.v1.ChatService`: streams, publish and the read-only queries.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use wsmschat::v1;
use wsmschat::v1::chat_service_server::ChatService;

use super::{caller, charged_caller};
use crate::core::Core;

/// The ChatService handlers.
pub struct ChatApi {
    pub core: Arc<Core>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A response stream polled inside its RPC's span (tonic polls it after the handler returned,
/// outside the handler's span; `tracing::Instrument` covers futures only): what the core logs
/// while it produces the stream's events carries the stream id and the principal.
struct InSpan<S> {
    inner: S,
    span: tracing::Span,
}

impl<S: Stream + Unpin> Stream for InSpan<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        this.inner.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// `stream`, polled inside the current span.
fn in_current_span<S: Stream + Unpin>(stream: S) -> InSpan<S> {
    InSpan {
        inner: stream,
        span: tracing::Span::current(),
    }
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    type ChatStream = BoxStream<v1::ChatResponse>;
    type SubscribeStream = BoxStream<v1::SubscribeResponse>;

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/Chat", principal, principal_id, stream)
    )]
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
        // The inbound half runs in the RPC's span too (it has the stream id by now).
        let inbound_task = async move {
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
        };
        tokio::spawn(inbound_task.in_current_span());
        let out = events.map(|e| {
            e.map(|e| v1::ChatResponse { event: Some(e) })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(in_current_span(out))))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/Subscribe", principal, principal_id, stream)
    )]
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
        Ok(Response::new(Box::pin(in_current_span(out))))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/Publish", principal, principal_id, conversation)
    )]
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

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListConversations", principal, principal_id)
    )]
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

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/GetConversation", principal, principal_id)
    )]
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

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/GetHistory", principal, principal_id)
    )]
    async fn get_history(
        &self,
        req: Request<v1::GetHistoryRequest>,
    ) -> Result<Response<v1::GetHistoryResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        Ok(Response::new(
            self.core.history(&who.principal, req.into_inner()).await?,
        ))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/GetVisitor", principal, principal_id)
    )]
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

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListCannedReplies", principal, principal_id)
    )]
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

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListAgentPresence", principal, principal_id)
    )]
    async fn list_agent_presence(
        &self,
        req: Request<v1::ListAgentPresenceRequest>,
    ) -> Result<Response<v1::ListAgentPresenceResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let agents = self.core.agent_presence(&who.principal).await?;
        Ok(Response::new(v1::ListAgentPresenceResponse { agents }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/UploadAttachment", principal, principal_id)
    )]
    async fn upload_attachment(
        &self,
        req: Request<Streaming<v1::UploadAttachmentRequest>>,
    ) -> Result<Response<v1::UploadAttachmentResponse>, Status> {
        use v1::upload_attachment_request::Part;
        let who = caller(&self.core, &req).await?;
        let mut parts = req.into_inner();
        let refused = |r: crate::core::files::Refused| {
            self.core.metrics.upload_refused(r.reason);
            Status::from(r)
        };
        let meta = match parts.message().await? {
            Some(v1::UploadAttachmentRequest {
                part: Some(Part::Metadata(m)),
            }) => m,
            _ => {
                return Err(Status::invalid_argument(
                    "the first request of an upload carries its metadata",
                ));
            }
        };
        let start = crate::core::files::UploadStart {
            name: meta.name,
            conversation_id: meta.conversation_id,
            declared_size: (meta.size > 0).then_some(meta.size),
        };
        let mut upload = self
            .core
            .begin_upload(&who.principal, who.ip, start)
            .await
            .map_err(refused)?;
        while let Some(part) = parts.message().await? {
            match part.part {
                Some(Part::Chunk(bytes)) => upload.write(&bytes).await.map_err(refused)?,
                _ => {
                    return Err(Status::invalid_argument(
                        "only the first request of an upload carries metadata",
                    ));
                }
            }
        }
        let attachment = upload.finish().await.map_err(refused)?;
        Ok(Response::new(v1::UploadAttachmentResponse {
            attachment: Some(attachment),
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/GetAttachment", principal, principal_id)
    )]
    async fn get_attachment(
        &self,
        req: Request<v1::GetAttachmentRequest>,
    ) -> Result<Response<v1::GetAttachmentResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let (_, attachment) = self
            .core
            .attachment(&who.principal, &req.get_ref().attachment_id)
            .await?;
        Ok(Response::new(v1::GetAttachmentResponse {
            attachment: Some(attachment),
        }))
    }

    type DownloadAttachmentStream = BoxStream<v1::DownloadAttachmentResponse>;

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/DownloadAttachment", principal, principal_id)
    )]
    async fn download_attachment(
        &self,
        req: Request<v1::DownloadAttachmentRequest>,
    ) -> Result<Response<Self::DownloadAttachmentStream>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let r = req.into_inner();
        let (attachment, bytes) = self
            .core
            .download(&who.principal, &r.attachment_id, r.thumbnail)
            .await?;
        let first = futures_util::stream::once(async move {
            Ok(v1::DownloadAttachmentResponse {
                attachment: Some(attachment),
                chunk: Default::default(),
            })
        });
        let rest = bytes.map(|chunk| match chunk {
            Ok(chunk) => Ok(v1::DownloadAttachmentResponse {
                attachment: None,
                chunk: chunk.to_vec(),
            }),
            Err(error) => {
                tracing::error!(%error, "Reading a file failed");
                Err(Status::internal("reading the file failed"))
            }
        });
        Ok(Response::new(Box::pin(in_current_span(Box::pin(
            first.chain(rest),
        )))))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListAttachments", principal, principal_id)
    )]
    async fn list_attachments(
        &self,
        req: Request<v1::ListAttachmentsRequest>,
    ) -> Result<Response<v1::ListAttachmentsResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        Ok(Response::new(
            self.core
                .conversation_files(&who.principal, &req.get_ref().conversation_id)
                .await?,
        ))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListConversationEmails", principal, principal_id)
    )]
    async fn list_conversation_emails(
        &self,
        req: Request<v1::ListConversationEmailsRequest>,
    ) -> Result<Response<v1::ListConversationEmailsResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let emails = self
            .core
            .conversation_emails(&who.principal, req.into_inner().conversation_id)
            .await?;
        Ok(Response::new(v1::ListConversationEmailsResponse { emails }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/GetTranscript", principal, principal_id)
    )]
    async fn get_transcript(
        &self,
        req: Request<v1::GetTranscriptRequest>,
    ) -> Result<Response<v1::GetTranscriptResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let (text, filename) = self
            .core
            .transcript(&who.principal, &req.get_ref().conversation_id)
            .await?;
        Ok(Response::new(v1::GetTranscriptResponse { text, filename }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/EmailTranscript", principal, principal_id)
    )]
    async fn email_transcript(
        &self,
        req: Request<v1::EmailTranscriptRequest>,
    ) -> Result<Response<v1::EmailTranscriptResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let (email_id, to) = self
            .core
            .email_transcript(&who.principal, &req.get_ref().conversation_id)
            .await?;
        Ok(Response::new(v1::EmailTranscriptResponse { email_id, to }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/CreateBlock", principal, principal_id)
    )]
    async fn create_block(
        &self,
        req: Request<v1::CreateBlockRequest>,
    ) -> Result<Response<v1::CreateBlockResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        Ok(Response::new(
            self.core
                .create_block(&who.principal, req.into_inner())
                .await?,
        ))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/DeleteBlock", principal, principal_id)
    )]
    async fn delete_block(
        &self,
        req: Request<v1::DeleteBlockRequest>,
    ) -> Result<Response<v1::DeleteBlockResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        self.core
            .delete_block(&who.principal, req.into_inner().block_id)
            .await?;
        Ok(Response::new(v1::DeleteBlockResponse {}))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListBlocks", principal, principal_id)
    )]
    async fn list_blocks(
        &self,
        req: Request<v1::ListBlocksRequest>,
    ) -> Result<Response<v1::ListBlocksResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let blocks = self
            .core
            .list_blocks(&who.principal, req.into_inner().site_id)
            .await?;
        Ok(Response::new(v1::ListBlocksResponse { blocks }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/ListLabels", principal, principal_id)
    )]
    async fn list_labels(
        &self,
        req: Request<v1::ListLabelsRequest>,
    ) -> Result<Response<v1::ListLabelsResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        let labels = self
            .core
            .list_labels(&who.principal, req.into_inner().site_id)
            .await?;
        Ok(Response::new(v1::ListLabelsResponse { labels }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/SetAttributes", principal, principal_id)
    )]
    async fn set_attributes(
        &self,
        req: Request<v1::SetAttributesRequest>,
    ) -> Result<Response<v1::SetAttributesResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        Ok(Response::new(
            self.core
                .set_attributes(&who.principal, req.into_inner())
                .await?,
        ))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "ChatService/TrackPage", principal, principal_id)
    )]
    async fn track_page(
        &self,
        req: Request<v1::TrackPageRequest>,
    ) -> Result<Response<v1::TrackPageResponse>, Status> {
        let who = charged_caller(&self.core, &req).await?;
        self.core
            .track_page(&who.principal, req.into_inner())
            .await?;
        Ok(Response::new(v1::TrackPageResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;
    use hyper::body::Frame;
    use prost::Message as _;
    use tonic::codec::Codec;
    use tonic::{Request, Streaming};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;
    use wsmschat::v1;
    use wsmschat::v1::chat_service_server::ChatService;
    use wsmschat::v1::client_event::Event as Ce;
    use wsmschat::v1::server_event::Event as Se;

    use super::ChatApi;
    use crate::core::testkit::TestCore;

    /// Fields as `name=value` strings.
    #[derive(Default, Clone)]
    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().into(), value.into()));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().into(), format!("{value:?}")));
        }
    }

    /// Every event logged: its message, and the fields of the spans it was logged in.
    #[derive(Default, Clone)]
    struct Logs(Arc<Mutex<Vec<(String, Fields)>>>);

    impl Logs {
        /// The span fields of the event logged with `message` (panics if none was).
        fn fields_of(&self, message: &str) -> Vec<(String, String)> {
            let logs = self.0.lock().unwrap();
            let found = logs.iter().find(|(m, _)| m == message);
            found
                .unwrap_or_else(|| {
                    panic!(
                        "no {message:?} in {:?}",
                        Vec::from_iter(logs.iter().map(|l| &l.0))
                    )
                })
                .1
                .0
                .clone()
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Logs {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            ctx.span(id).unwrap().extensions_mut().insert(fields);
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let span = ctx.span(id).unwrap();
            let mut ext = span.extensions_mut();
            values.record(ext.get_mut::<Fields>().unwrap());
        }

        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let mut own = Fields::default();
            event.record(&mut own);
            let message = own
                .0
                .iter()
                .find(|(name, _)| name == "message")
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            let mut fields = Fields::default();
            for span in ctx
                .event_scope(event)
                .into_iter()
                .flat_map(|s| s.from_root())
            {
                fields
                    .0
                    .extend(span.extensions().get::<Fields>().unwrap().0.clone());
            }
            self.0.lock().unwrap().push((message, fields));
        }
    }

    /// Captures what this thread logs (a current-thread test: the spawned tasks too).
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::registry().with(logs.clone());
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn has(fields: &[(String, String)], name: &str, value: &str) -> bool {
        fields.iter().any(|(n, v)| n == name && v == value)
    }

    fn authed<T>(token: &str, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        let value = format!("Bearer {token}").parse().unwrap();
        req.metadata_mut().insert("authorization", value);
        req
    }

    fn send(conversation_id: &str, text: &str) -> v1::ClientEvent {
        v1::ClientEvent {
            request_id: "r1".into(),
            event: Some(Ce::SendMessage(v1::SendMessage {
                conversation_id: conversation_id.into(),
                client_msg_id: "m-after-close".into(),
                text: text.into(),
                ..Default::default()
            })),
        }
    }

    /// The event a stream's next response carries.
    fn server_event(e: Option<v1::ServerEvent>) -> Se {
        e.expect("a response with an event")
            .event
            .expect("an event")
    }

    /// The stream id a stream's Ready event names ("s12" -> "12").
    fn stream_id(ev: &Se) -> String {
        match ev {
            Se::Ready(r) => r.stream_id.trim_start_matches('s').to_owned(),
            other => panic!("not Ready: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_publish_logs_inside_its_rpc_span_with_principal_and_conversation() {
        let t = TestCore::sqlite().await;
        let (visitor_id, token) = t.visitor().await;
        let conv = t.send(&token, "", "hello").await.conversation_id;
        let api = ChatApi {
            core: t.core.clone(),
        };
        let (logs, _guard) = capture();
        // The store takes no more writes: the publish fails inside, and the cause is logged.
        t.core.close();
        let request = v1::PublishRequest {
            event: Some(send(&conv, "lost")),
        };
        let e = api.publish(authed(&token, request)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        let fields = logs.fields_of("Internal error");
        assert!(has(&fields, "method", "ChatService/Publish"), "{fields:?}");
        assert!(has(&fields, "principal", "visitor"), "{fields:?}");
        assert!(has(&fields, "principal_id", &visitor_id), "{fields:?}");
        assert!(has(&fields, "conversation", &conv), "{fields:?}");
        assert!(
            !fields.iter().any(|(_, v)| v.contains(&token)),
            "no token in logs"
        );
        t.finish().await;
    }

    #[tokio::test]
    async fn a_chat_streams_events_log_with_its_stream_principal_and_conversation() {
        let t = TestCore::sqlite().await;
        let (visitor_id, token) = t.visitor().await;
        let conv = t.send(&token, "", "hello").await.conversation_id;
        let api = ChatApi {
            core: t.core.clone(),
        };
        let (logs, _guard) = capture();
        // The client's half of the call, as gRPC frames.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >();
        let frame = |req: v1::ChatRequest| {
            let body = req.encode_to_vec();
            let mut framed = vec![0u8];
            framed.extend((body.len() as u32).to_be_bytes());
            framed.extend(body);
            Ok(Frame::data(Bytes::from(framed)))
        };
        tx.send(frame(v1::ChatRequest {
            subscribe: Some(v1::Subscription::default()),
            event: None,
        }))
        .unwrap();
        let body = http_body_util::StreamBody::new(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        );
        let decoder =
            tonic_prost::ProstCodec::<v1::ChatResponse, v1::ChatRequest>::default().decoder();
        let inbound = Streaming::new_request(decoder, body, None, None);
        let mut out = api
            .chat(authed(&token, inbound))
            .await
            .unwrap()
            .into_inner();
        let ready = server_event(out.next().await.unwrap().unwrap().event);
        let stream = stream_id(&ready);
        t.core.close();
        tx.send(frame(v1::ChatRequest {
            subscribe: None,
            event: Some(send(&conv, "lost")),
        }))
        .unwrap();
        let answer = server_event(out.next().await.unwrap().unwrap().event);
        assert!(
            matches!(&answer, Se::Error(e) if e.code == tonic::Code::Internal as i32),
            "{answer:?}"
        );
        let fields = logs.fields_of("Internal error in a Chat event");
        assert!(has(&fields, "method", "ChatService/Chat"), "{fields:?}");
        assert!(has(&fields, "principal", "visitor"), "{fields:?}");
        assert!(has(&fields, "principal_id", &visitor_id), "{fields:?}");
        assert!(has(&fields, "stream", &stream), "{fields:?}");
        assert!(has(&fields, "conversation", &conv), "{fields:?}");
        drop((tx, out));
        t.finish().await;
    }

    #[tokio::test]
    async fn a_subscribe_stream_logs_inside_its_rpc_span() {
        let t = TestCore::sqlite().await;
        let (visitor_id, token) = t.visitor().await;
        let api = ChatApi {
            core: t.core.clone(),
        };
        let (logs, _guard) = capture();
        let request = v1::SubscribeRequest::default();
        let mut out = api
            .subscribe(authed(&token, request))
            .await
            .unwrap()
            .into_inner();
        let ready = server_event(out.next().await.unwrap().unwrap().event);
        let stream = stream_id(&ready);
        // The visitor logs out: the stream ends (logged while the stream is polled).
        t.core.logout(&token).await.unwrap();
        let end = out.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unauthenticated);
        let fields = logs.fields_of("Stream ended");
        assert!(
            has(&fields, "method", "ChatService/Subscribe"),
            "{fields:?}"
        );
        assert!(has(&fields, "principal", "visitor"), "{fields:?}");
        assert!(has(&fields, "principal_id", &visitor_id), "{fields:?}");
        assert!(has(&fields, "stream", &stream), "{fields:?}");
        drop(out);
        t.finish().await;
    }
}
