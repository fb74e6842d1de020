//! The authorization matrix: every RPC and client event against every kind of caller, on a
//! real server, each cell on fresh state. The outcome table is `docs/authorization.md`; this
//! test fails when the server's behaviour and that file differ (regenerate it with
//! `WSMSCHAT_WRITE_MATRIX=1 cargo test -p wsmschat-server --test authz_matrix`, then review
//! the diff), and it checks the invariants no table may break whatever it says.

mod common;

use common::*;
use tonic::Code;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

/// The callers (columns).
const CALLERS: &[&str] = &[
    "none",
    "malformed",
    "unknown",
    "visitor A",
    "visitor B",
    "visitor site 2",
    "agent",
    "agent site 2",
    "admin",
    "key chat",
    "key site 2",
    "key admin",
    "key revoked",
    "logged out",
    "deactivated",
];

/// The operations (rows); each acts on visitor A's conversation on site 1 where it needs one.
const OPS: &[&str] = &[
    "Session.StartVisitorSession",
    "Session.Login",
    "Chat.Subscribe (own)",
    "Chat.Subscribe (inbox)",
    "Chat.Subscribe (cursor on A's)",
    "Chat.Chat (open)",
    "Publish.SendMessage (A's)",
    "Publish.SendMessage note (A's)",
    "Publish.SendMessage (new)",
    "Publish.Typing (A's)",
    "Publish.MarkRead (A's)",
    "Publish.Join (A's)",
    "Publish.Assign (A's)",
    "Publish.Resolve (A's)",
    "Publish.Reopen (A's, resolved)",
    "Publish.SetPresence",
    "Publish.Rate (A's, resolved)",
    "Publish.Watch",
    "Chat.ListConversations",
    "Chat.GetConversation (A's)",
    "Chat.GetHistory (A's)",
    "Chat.GetVisitor (A)",
    "Chat.ListCannedReplies",
    "Chat.ListAgentPresence",
    "Chat.UploadAttachment (A's)",
    "HTTP POST /uploads (A's)",
    "Chat.GetAttachment (A's)",
    "Chat.GetAttachment (note on A's)",
    "Chat.DownloadAttachment (A's)",
    "Chat.ListAttachments (A's)",
    "Chat.ListConversationEmails (A's)",
    "Chat.GetTranscript (A's)",
    "Chat.EmailTranscript (A's)",
    "HTTP GET /files (link to a file of A's)",
    "HTTP GET /files (forged link)",
    "HTTP POST /email/unsubscribe (link from A's email)",
    "HTTP POST /email/unsubscribe (forged link)",
    "Admin.CreateSite",
    "Admin.UpdateSite",
    "Admin.ListSites",
    "Admin.CreateAgent",
    "Admin.UpdateAgent",
    "Admin.ListAgents",
    "Admin.CreateApiKey",
    "Admin.ListApiKeys",
    "Admin.RevokeApiKey",
    "Admin.PutCannedReply",
    "Admin.DeleteCannedReply",
    "Admin.GetSiteReport",
    "Admin.CreateWebhook",
    "Admin.UpdateWebhook",
    "Admin.DeleteWebhook",
    "Admin.ListWebhooks",
    "Admin.ListWebhookDeliveries",
    "Admin.ResendWebhookDeliveries",
    "Admin.GetServerInfo",
    "Session.SetEmailAlerts",
    "Chat.CreateBlock (IP on site 1)",
    "Chat.DeleteBlock (site 1's)",
    "Chat.ListBlocks (site 1)",
    "Admin.ListAuditLog (site 1)",
    "Admin.PutLabel (site 1)",
    "Admin.DeleteLabel (site 1's)",
    "Chat.ListLabels (site 1)",
    "Publish.Label (A's, site 1's label)",
    "Publish.Snooze (A's, open)",
    "Chat.SetAttributes (A's, page-writable)",
    "Chat.SetAttributes (A's, staff-only)",
    "Chat.TrackPage",
];

/// A new label of the site (each with its own name).
async fn new_label(s: &TestServer, admin: &str, site_id: &str) -> v1::Label {
    s.admin_client()
        .await
        .put_label(authed(
            admin,
            v1::PutLabelRequest {
                label: Some(v1::Label {
                    site_id: site_id.into(),
                    name: uuid(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .label
        .unwrap()
}

/// Lifts every block of the site (each cell starts without any).
async fn clear_blocks(s: &TestServer, admin: &str, site_id: &str) {
    let mut chat = s.chat().await;
    let blocks = chat
        .list_blocks(authed(
            admin,
            v1::ListBlocksRequest {
                site_id: site_id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .blocks;
    for b in blocks {
        chat.delete_block(authed(admin, v1::DeleteBlockRequest { block_id: b.id }))
            .await
            .unwrap();
    }
}

/// A block of a documentation network on the site (no test client comes from it).
async fn ip_block(s: &TestServer, admin: &str, site_id: &str) -> v1::Block {
    clear_blocks(s, admin, site_id).await;
    s.chat()
        .await
        .create_block(authed(
            admin,
            v1::CreateBlockRequest {
                site_id: site_id.into(),
                kind: v1::BlockKind::Ip as i32,
                value: "198.51.100.0/24".into(),
                reason: "matrix".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .block
        .unwrap()
}

/// Deletes the site's webhooks (a site has at most 20; each cell starts without any).
async fn clear_webhooks(s: &TestServer, admin: &str, site_id: &str) {
    let mut adm = s.admin_client().await;
    let hooks = adm
        .list_webhooks(authed(
            admin,
            v1::ListWebhooksRequest {
                site_id: site_id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    for w in hooks {
        adm.delete_webhook(authed(admin, v1::DeleteWebhookRequest { webhook_id: w.id }))
            .await
            .unwrap();
    }
}

/// A webhook endpoint of site 1 created by the admin (".invalid" never resolves: nothing is
/// delivered anywhere).
async fn webhook(s: &TestServer, admin: &str, site_id: &str) -> v1::WebhookEndpoint {
    clear_webhooks(s, admin, site_id).await;
    s.admin_client()
        .await
        .create_webhook(authed(
            admin,
            v1::CreateWebhookRequest {
                site_id: site_id.into(),
                url: "https://hooks.invalid/in".into(),
                events: vec![v1::WebhookEventType::MessageCreated as i32],
                description: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap()
}

fn cell(r: Result<(), tonic::Status>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(s) => match s.code() {
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "denied",
            Code::NotFound => "not found",
            Code::InvalidArgument => "invalid",
            Code::FailedPrecondition => "precondition",
            Code::ResourceExhausted => "exhausted",
            other => panic!("unexpected status {other:?}: {s:?}"),
        },
    }
}

struct World {
    s: TestServer,
    admin: String,
    visitor_a: String,
    visitor_a_id: String,
    site_id: String,
    site2_id: String,
    agent_id: String,
    tokens: Vec<Option<String>>,
}

async fn key(s: &TestServer, admin: &str, scope: v1::ApiKeyScope) -> (String, String) {
    key_for(s, admin, scope, vec![]).await
}

async fn key_for(
    s: &TestServer,
    admin: &str,
    scope: v1::ApiKeyScope,
    site_ids: Vec<String>,
) -> (String, String) {
    let r = s
        .admin_client()
        .await
        .create_api_key(authed(
            admin,
            v1::CreateApiKeyRequest {
                name: "matrix".into(),
                scopes: vec![scope as i32],
                site_ids,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (r.api_key.unwrap().id, r.secret)
}

async fn world() -> World {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut adm = s.admin_client().await;
    let site_id = adm
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites[0]
        .id
        .clone();
    let site2 = adm
        .create_site(authed(
            &admin,
            v1::CreateSiteRequest {
                site: Some(v1::Site {
                    name: "Second".into(),
                    allowed_origins: vec!["https://second.example".into()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    // Site 1 declares a page-writable and a staff-only attribute.
    let mut demo = s.demo_site(&admin).await;
    demo.attributes = ["plan", "tier"]
        .into_iter()
        .map(|key| v1::AttributeDefinition {
            key: key.into(),
            page_writable: key == "plan",
            ..Default::default()
        })
        .collect();
    s.save_site(&admin, demo).await.unwrap();
    let (visitor_a_id, visitor_a) = s.visitor("Alice").await;
    let (_, visitor_b) = s.visitor("Bob").await;
    let visitor_2 = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: site2.site_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .visitor_token;
    let (agent, agent_token) = s.agent("Dora", &["Delivery"], 5).await;
    adm.create_agent(authed(
        &admin,
        v1::CreateAgentRequest {
            agent: Some(v1::Agent {
                email: "sam@example.com".into(),
                name: "Sam".into(),
                role: v1::AgentRole::Agent as i32,
                capacity: 5,
                site_ids: vec![site2.id.clone()],
                ..Default::default()
            }),
            password: "agent-password".into(),
        },
    ))
    .await
    .unwrap();
    let site2_agent = s.login("sam@example.com", "agent-password").await;
    let (_, site2_key) = key_for(&s, &admin, v1::ApiKeyScope::Chat, vec![site2.id.clone()]).await;
    let (_, chat_key) = key(&s, &admin, v1::ApiKeyScope::Chat).await;
    let (_, admin_key) = key(&s, &admin, v1::ApiKeyScope::Admin).await;
    let (revoked_id, revoked) = key(&s, &admin, v1::ApiKeyScope::Chat).await;
    adm.revoke_api_key(authed(&admin, v1::RevokeApiKeyRequest { id: revoked_id }))
        .await
        .unwrap();
    let (_, logged_out) = s.agent("Leo", &[], 5).await;
    s.sessions()
        .await
        .logout(authed(&logged_out, v1::LogoutRequest {}))
        .await
        .unwrap();
    let (mut gone, gone_token) = s.agent("Gus", &[], 5).await;
    gone.active = false;
    adm.update_agent(authed(
        &admin,
        v1::UpdateAgentRequest {
            agent: Some(gone),
            password: String::new(),
        },
    ))
    .await
    .unwrap();
    let tokens = vec![
        None,
        Some("garbage".to_owned()),
        Some("wv_unknown-token-0000000000000000000000000".to_owned()),
        Some(visitor_a.clone()),
        Some(visitor_b),
        Some(visitor_2),
        Some(agent_token),
        Some(site2_agent),
        Some(admin.clone()),
        Some(chat_key),
        Some(site2_key),
        Some(admin_key),
        Some(revoked),
        Some(logged_out),
        Some(gone_token),
    ];
    World {
        s,
        admin,
        visitor_a,
        visitor_a_id,
        site_id,
        site2_id: site2.id,
        agent_id: agent.id,
        tokens,
    }
}

fn req<T>(token: &Option<String>, msg: T) -> tonic::Request<T> {
    match token {
        Some(t) => authed(t, msg),
        None => tonic::Request::new(msg),
    }
}

/// A tiny real PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `POST /uploads` with an optional bearer token; the outcome as a gRPC status.
async fn http_upload(
    url: &str,
    token: &Option<String>,
    conversation: &str,
) -> Result<(), tonic::Status> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::post(format!(
        "{url}/uploads?name=a.png&conversation={conversation}"
    ));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(req.body(Full::new(png().into())).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let message = String::from_utf8_lossy(&body).into_owned();
    match status {
        201 => Ok(()),
        400 => Err(tonic::Status::invalid_argument(message)),
        401 => Err(tonic::Status::unauthenticated(message)),
        403 => Err(tonic::Status::permission_denied(message)),
        404 => Err(tonic::Status::not_found(message)),
        429 => Err(tonic::Status::resource_exhausted(message)),
        other => panic!("unexpected HTTP status {other}: {message}"),
    }
}

/// `GET {url}{path}` (a file link) with an optional bearer token; the outcome as a status.
async fn http_get(url: &str, path: &str, token: &Option<String>) -> Result<(), tonic::Status> {
    http_call("GET", url, path, token).await
}

async fn http_call(
    method: &str,
    url: &str,
    path: &str,
    token: &Option<String>,
) -> Result<(), tonic::Status> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let message = String::from_utf8_lossy(&body).into_owned();
    match status {
        200 => Ok(()),
        400 => Err(tonic::Status::invalid_argument(message)),
        401 => Err(tonic::Status::unauthenticated(message)),
        403 => Err(tonic::Status::permission_denied(message)),
        404 => Err(tonic::Status::not_found(message)),
        other => panic!("unexpected HTTP status {other}: {message}"),
    }
}

impl World {
    /// A signed link to a file visitor A sent in their conversation (as visitor A got it).
    async fn file_link(&self) -> String {
        let (_, id) = self.file_message(false).await;
        self.s
            .chat()
            .await
            .get_attachment(authed(
                &self.visitor_a,
                v1::GetAttachmentRequest { attachment_id: id },
            ))
            .await
            .unwrap()
            .into_inner()
            .attachment
            .unwrap()
            .url
    }

    /// A new conversation of visitor A with a file visitor A sent (or, `note`, a file the
    /// admin sent in a private note); returns (conversation, file id).
    async fn file_message(&self, note: bool) -> (String, String) {
        let conv = self.conversation(false).await;
        let author = if note { &self.admin } else { &self.visitor_a };
        let mut chat = self.s.chat().await;
        let parts = vec![
            v1::UploadAttachmentRequest {
                part: Some(v1::upload_attachment_request::Part::Metadata(
                    v1::UploadMetadata {
                        name: "a.png".into(),
                        conversation_id: conv.clone(),
                        size: 0,
                    },
                )),
            },
            v1::UploadAttachmentRequest {
                part: Some(v1::upload_attachment_request::Part::Chunk(png())),
            },
        ];
        let id = chat
            .upload_attachment(authed(author, futures_util::stream::iter(parts)))
            .await
            .unwrap()
            .into_inner()
            .attachment
            .unwrap()
            .id;
        publish(
            &mut chat,
            author,
            ev(Ce::SendMessage(v1::SendMessage {
                conversation_id: conv.clone(),
                client_msg_id: uuid(),
                kind: if note {
                    v1::MessageKind::Note
                } else {
                    v1::MessageKind::Text
                } as i32,
                attachment_ids: vec![id.clone()],
                ..Default::default()
            })),
        )
        .await
        .unwrap();
        (conv, id)
    }

    /// A new conversation of visitor A (resolved when asked).
    async fn conversation(&self, resolved: bool) -> String {
        let mut chat = self.s.chat().await;
        let (id, _) = start_conversation(&mut chat, &self.visitor_a, "Order", "hello").await;
        if resolved {
            publish(
                &mut chat,
                &self.admin,
                ev(Ce::Resolve(v1::ResolveConversation {
                    conversation_id: id.clone(),
                })),
            )
            .await
            .unwrap();
        }
        id
    }

    async fn run(&self, op: &str, token: &Option<String>) -> Result<(), tonic::Status> {
        let mut chat = self.s.chat().await;
        let mut adm = self.s.admin_client().await;
        let publish_ev = |event: Ce| v1::PublishRequest {
            event: Some(ev(event)),
        };
        match op {
            "Session.StartVisitorSession" => self
                .s
                .sessions()
                .await
                .start_visitor_session(req(
                    token,
                    v1::StartVisitorSessionRequest {
                        site_key: "demo".into(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "Session.Login" => self
                .s
                .sessions()
                .await
                .login(req(
                    token,
                    v1::LoginRequest {
                        email: "dora@example.com".into(),
                        password: "agent-password".into(),
                    },
                ))
                .await
                .map(drop),
            "Chat.Subscribe (own)"
            | "Chat.Subscribe (inbox)"
            | "Chat.Subscribe (cursor on A's)" => {
                let cursors = if op.contains("cursor") {
                    vec![v1::ConversationCursor {
                        conversation_id: self.conversation(false).await,
                        after_seq: 0,
                    }]
                } else {
                    vec![]
                };
                let mut stream = chat
                    .subscribe(req(
                        token,
                        v1::SubscribeRequest {
                            subscription: Some(v1::Subscription {
                                cursors,
                                inbox: op.contains("inbox"),
                            }),
                        },
                    ))
                    .await?
                    .into_inner();
                stream.message().await.map(drop)
            }
            "Chat.Chat (open)" => {
                let first = v1::ChatRequest {
                    subscribe: Some(v1::Subscription::default()),
                    event: None,
                };
                let mut stream = chat
                    .chat(req(token, tokio_stream::iter([first])))
                    .await?
                    .into_inner();
                stream.message().await.map(drop)
            }
            "Publish.SendMessage (A's)" | "Publish.SendMessage note (A's)" => {
                let id = self.conversation(false).await;
                let mut m = v1::SendMessage {
                    conversation_id: id,
                    client_msg_id: uuid(),
                    text: "matrix".into(),
                    ..Default::default()
                };
                if op.contains("note") {
                    m.kind = v1::MessageKind::Note as i32;
                }
                chat.publish(req(token, publish_ev(Ce::SendMessage(m))))
                    .await
                    .map(drop)
            }
            "Publish.SendMessage (new)" => chat
                .publish(req(
                    token,
                    publish_ev(Ce::SendMessage(v1::SendMessage {
                        topic: "Order".into(),
                        client_msg_id: uuid(),
                        text: "new".into(),
                        ..Default::default()
                    })),
                ))
                .await
                .map(drop),
            "Publish.Typing (A's)" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Typing(v1::Typing {
                        conversation_id: id,
                        on: true,
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.MarkRead (A's)" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::MarkRead(v1::MarkRead {
                        conversation_id: id,
                        seq: 1,
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Join (A's)" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Join(v1::JoinConversation {
                        conversation_id: id,
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Assign (A's)" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Assign(v1::AssignConversation {
                        conversation_id: id,
                        agent_id: self.agent_id.clone(),
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Resolve (A's)" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Resolve(v1::ResolveConversation {
                        conversation_id: id,
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Reopen (A's, resolved)" => {
                let id = self.conversation(true).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Reopen(v1::ReopenConversation {
                        conversation_id: id,
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.SetPresence" => chat
                .publish(req(
                    token,
                    publish_ev(Ce::SetPresence(v1::SetPresence {
                        status: v1::PresenceStatus::Away as i32,
                    })),
                ))
                .await
                .map(drop),
            "Publish.Rate (A's, resolved)" => {
                let id = self.conversation(true).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Rate(v1::RateConversation {
                        conversation_id: id,
                        score: 4,
                        comment: String::new(),
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Watch" => {
                let id = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Watch(v1::WatchConversation {
                        cursor: Some(v1::ConversationCursor {
                            conversation_id: id,
                            after_seq: 0,
                        }),
                    })),
                ))
                .await
                .map(drop)
            }
            "Chat.ListConversations" => chat
                .list_conversations(req(token, v1::ListConversationsRequest::default()))
                .await
                .map(drop),
            "Chat.GetConversation (A's)" => {
                let id = self.conversation(false).await;
                chat.get_conversation(req(
                    token,
                    v1::GetConversationRequest {
                        conversation_id: id,
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.GetHistory (A's)" => {
                let id = self.conversation(false).await;
                chat.get_history(req(
                    token,
                    v1::GetHistoryRequest {
                        conversation_id: id,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.GetVisitor (A)" => chat
                .get_visitor(req(
                    token,
                    v1::GetVisitorRequest {
                        visitor_id: self.visitor_a_id.clone(),
                    },
                ))
                .await
                .map(drop),
            "Chat.ListCannedReplies" => chat
                .list_canned_replies(req(token, v1::ListCannedRepliesRequest::default()))
                .await
                .map(drop),
            "Chat.ListAgentPresence" => chat
                .list_agent_presence(req(token, v1::ListAgentPresenceRequest {}))
                .await
                .map(drop),
            "Chat.UploadAttachment (A's)" => {
                let conv = self.conversation(false).await;
                let parts = vec![
                    v1::UploadAttachmentRequest {
                        part: Some(v1::upload_attachment_request::Part::Metadata(
                            v1::UploadMetadata {
                                name: "a.png".into(),
                                conversation_id: conv,
                                size: 0,
                            },
                        )),
                    },
                    v1::UploadAttachmentRequest {
                        part: Some(v1::upload_attachment_request::Part::Chunk(png())),
                    },
                ];
                chat.upload_attachment(req(token, futures_util::stream::iter(parts)))
                    .await
                    .map(drop)
            }
            "HTTP POST /uploads (A's)" => {
                let conv = self.conversation(false).await;
                http_upload(&self.s.url, token, &conv).await
            }
            "Chat.GetAttachment (A's)" | "Chat.GetAttachment (note on A's)" => {
                let (_, id) = self.file_message(op.contains("note")).await;
                chat.get_attachment(req(token, v1::GetAttachmentRequest { attachment_id: id }))
                    .await
                    .map(drop)
            }
            "Chat.DownloadAttachment (A's)" => {
                let (_, id) = self.file_message(false).await;
                match chat
                    .download_attachment(req(
                        token,
                        v1::DownloadAttachmentRequest {
                            attachment_id: id,
                            thumbnail: false,
                        },
                    ))
                    .await
                {
                    Ok(r) => {
                        let mut s = r.into_inner();
                        while s.message().await?.is_some() {}
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            "Chat.ListAttachments (A's)" => {
                let (conv, _) = self.file_message(false).await;
                chat.list_attachments(req(
                    token,
                    v1::ListAttachmentsRequest {
                        conversation_id: conv,
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.GetTranscript (A's)" => {
                let id = self.conversation(false).await;
                chat.get_transcript(req(
                    token,
                    v1::GetTranscriptRequest {
                        conversation_id: id,
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.EmailTranscript (A's)" => {
                let id = self.conversation(false).await;
                chat.email_transcript(req(
                    token,
                    v1::EmailTranscriptRequest {
                        conversation_id: id,
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.ListConversationEmails (A's)" => {
                let id = self.conversation(false).await;
                chat.list_conversation_emails(req(
                    token,
                    v1::ListConversationEmailsRequest {
                        conversation_id: id,
                    },
                ))
                .await
                .map(drop)
            }
            // The link is the capability (handed only to those who get the message): the
            // caller's token, whatever it is, is neither needed nor looked at.
            "HTTP GET /files (link to a file of A's)" => {
                let link = self.file_link().await;
                http_get(&self.s.url, &link, token).await
            }
            "HTTP GET /files (forged link)" => {
                let link = self.file_link().await;
                let (path, _) = link.split_once("&s=").unwrap();
                let forged = format!("{path}&s=AAAAAAAAAAAAAAAAAAAAAAAA");
                http_get(&self.s.url, &forged, token).await
            }
            // The unsubscribe link (in A's emails) is the capability, like a file link.
            "HTTP POST /email/unsubscribe (link from A's email)" => {
                let t = self
                    .s
                    .running
                    .as_ref()
                    .unwrap()
                    .core
                    .signer()
                    .token("unsubscribe", &[&self.visitor_a_id], 0)
                    .unwrap();
                http_call(
                    "POST",
                    &self.s.url,
                    &format!("/email/unsubscribe?t={t}"),
                    token,
                )
                .await
            }
            "HTTP POST /email/unsubscribe (forged link)" => {
                http_call("POST", &self.s.url, "/email/unsubscribe?t=AAAA.BBBB", token).await
            }
            "Admin.CreateSite" => adm
                .create_site(req(
                    token,
                    v1::CreateSiteRequest {
                        site: Some(v1::Site {
                            name: "New".into(),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .map(drop),
            "Admin.UpdateSite" => {
                let mut site = adm
                    .list_sites(authed(&self.admin, v1::ListSitesRequest {}))
                    .await
                    .unwrap()
                    .into_inner()
                    .sites
                    .into_iter()
                    .find(|s| s.id == self.site2_id)
                    .unwrap();
                site.greeting = "Hi".into();
                adm.update_site(req(
                    token,
                    v1::UpdateSiteRequest {
                        site: Some(site),
                        rotate_identity_secret: false,
                    },
                ))
                .await
                .map(drop)
            }
            "Admin.ListSites" => adm
                .list_sites(req(token, v1::ListSitesRequest {}))
                .await
                .map(drop),
            "Admin.CreateAgent" => adm
                .create_agent(req(
                    token,
                    v1::CreateAgentRequest {
                        agent: Some(v1::Agent {
                            email: format!("{}@example.com", uuid()),
                            name: "New".into(),
                            role: v1::AgentRole::Agent as i32,
                            capacity: 1,
                            ..Default::default()
                        }),
                        password: "a-long-password".into(),
                    },
                ))
                .await
                .map(drop),
            "Admin.UpdateAgent" => {
                let agent = adm
                    .list_agents(authed(&self.admin, v1::ListAgentsRequest {}))
                    .await
                    .unwrap()
                    .into_inner()
                    .agents
                    .into_iter()
                    .find(|a| a.id == self.agent_id)
                    .unwrap();
                adm.update_agent(req(
                    token,
                    v1::UpdateAgentRequest {
                        agent: Some(agent),
                        password: String::new(),
                    },
                ))
                .await
                .map(drop)
            }
            "Admin.ListAgents" => adm
                .list_agents(req(token, v1::ListAgentsRequest {}))
                .await
                .map(drop),
            "Admin.CreateApiKey" => adm
                .create_api_key(req(
                    token,
                    v1::CreateApiKeyRequest {
                        name: "k".into(),
                        scopes: vec![v1::ApiKeyScope::Chat as i32],
                        site_ids: vec![],
                    },
                ))
                .await
                .map(drop),
            "Admin.ListApiKeys" => adm
                .list_api_keys(req(token, v1::ListApiKeysRequest {}))
                .await
                .map(drop),
            "Admin.RevokeApiKey" => {
                let (id, _) = key(&self.s, &self.admin, v1::ApiKeyScope::Chat).await;
                adm.revoke_api_key(req(token, v1::RevokeApiKeyRequest { id }))
                    .await
                    .map(drop)
            }
            "Admin.PutCannedReply" => adm
                .put_canned_reply(req(
                    token,
                    v1::PutCannedReplyRequest {
                        canned_reply: Some(v1::CannedReply {
                            site_id: self.site_id.clone(),
                            shortcut: uuid().replace('-', ""),
                            text: "Thanks!".into(),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .map(drop),
            "Admin.DeleteCannedReply" => {
                let reply = adm
                    .put_canned_reply(authed(
                        &self.admin,
                        v1::PutCannedReplyRequest {
                            canned_reply: Some(v1::CannedReply {
                                site_id: self.site_id.clone(),
                                shortcut: uuid().replace('-', ""),
                                text: "Bye".into(),
                                ..Default::default()
                            }),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .canned_reply
                    .unwrap();
                adm.delete_canned_reply(req(token, v1::DeleteCannedReplyRequest { id: reply.id }))
                    .await
                    .map(drop)
            }
            "Admin.GetSiteReport" => adm
                .get_site_report(req(
                    token,
                    v1::GetSiteReportRequest {
                        site_id: self.site_id.clone(),
                        days: 7,
                    },
                ))
                .await
                .map(drop),
            "Admin.CreateWebhook" => {
                clear_webhooks(&self.s, &self.admin, &self.site_id).await;
                adm.create_webhook(req(
                    token,
                    v1::CreateWebhookRequest {
                        site_id: self.site_id.clone(),
                        url: "https://hooks.invalid/in".into(),
                        events: vec![v1::WebhookEventType::MessageCreated as i32],
                        description: String::new(),
                    },
                ))
                .await
                .map(drop)
            }
            "Admin.UpdateWebhook" => {
                let mut w = webhook(&self.s, &self.admin, &self.site_id).await;
                w.enabled = false;
                adm.update_webhook(req(
                    token,
                    v1::UpdateWebhookRequest {
                        webhook: Some(w),
                        rotate_secret: true,
                    },
                ))
                .await
                .map(drop)
            }
            "Admin.DeleteWebhook" => {
                let w = webhook(&self.s, &self.admin, &self.site_id).await;
                adm.delete_webhook(req(token, v1::DeleteWebhookRequest { webhook_id: w.id }))
                    .await
                    .map(drop)
            }
            "Admin.ListWebhooks" => adm
                .list_webhooks(req(token, v1::ListWebhooksRequest::default()))
                .await
                .map(drop),
            "Admin.ListWebhookDeliveries" => {
                let w = webhook(&self.s, &self.admin, &self.site_id).await;
                adm.list_webhook_deliveries(req(
                    token,
                    v1::ListWebhookDeliveriesRequest {
                        webhook_id: w.id,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
            }
            "Admin.ResendWebhookDeliveries" => {
                let w = webhook(&self.s, &self.admin, &self.site_id).await;
                adm.resend_webhook_deliveries(req(
                    token,
                    v1::ResendWebhookDeliveriesRequest {
                        webhook_id: w.id,
                        event_ids: vec![],
                        all_failed: true,
                    },
                ))
                .await
                .map(drop)
            }
            "Session.SetEmailAlerts" => self
                .s
                .sessions()
                .await
                .set_email_alerts(req(token, v1::SetEmailAlertsRequest { off: false }))
                .await
                .map(drop),
            "Admin.GetServerInfo" => adm
                .get_server_info(req(token, v1::GetServerInfoRequest {}))
                .await
                .map(drop),
            "Chat.CreateBlock (IP on site 1)" => {
                clear_blocks(&self.s, &self.admin, &self.site_id).await;
                chat.create_block(req(
                    token,
                    v1::CreateBlockRequest {
                        site_id: self.site_id.clone(),
                        kind: v1::BlockKind::Ip as i32,
                        value: "203.0.113.0/24".into(),
                        reason: "matrix".into(),
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.DeleteBlock (site 1's)" => {
                let b = ip_block(&self.s, &self.admin, &self.site_id).await;
                chat.delete_block(req(token, v1::DeleteBlockRequest { block_id: b.id }))
                    .await
                    .map(drop)
            }
            "Chat.ListBlocks (site 1)" => chat
                .list_blocks(req(
                    token,
                    v1::ListBlocksRequest {
                        site_id: self.site_id.clone(),
                    },
                ))
                .await
                .map(drop),
            "Admin.ListAuditLog (site 1)" => adm
                .list_audit_log(req(
                    token,
                    v1::ListAuditLogRequest {
                        site_id: self.site_id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "Admin.PutLabel (site 1)" => adm
                .put_label(req(
                    token,
                    v1::PutLabelRequest {
                        label: Some(v1::Label {
                            site_id: self.site_id.clone(),
                            name: uuid(),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .map(drop),
            "Admin.DeleteLabel (site 1's)" => {
                let l = new_label(&self.s, &self.admin, &self.site_id).await;
                adm.delete_label(req(token, v1::DeleteLabelRequest { label_id: l.id }))
                    .await
                    .map(drop)
            }
            "Chat.SetAttributes (A's, page-writable)" | "Chat.SetAttributes (A's, staff-only)" => {
                chat.set_attributes(req(
                    token,
                    v1::SetAttributesRequest {
                        visitor_id: self.visitor_a_id.clone(),
                        conversation_id: String::new(),
                        attributes: vec![v1::AttributeValue {
                            key: if op.contains("staff") { "tier" } else { "plan" }.into(),
                            value: "gold".into(),
                        }],
                    },
                ))
                .await
                .map(drop)
            }
            "Chat.TrackPage" => chat
                .track_page(req(
                    token,
                    v1::TrackPageRequest {
                        url: "https://shop.example/pricing".into(),
                        title: "Pricing".into(),
                        referrer: String::new(),
                    },
                ))
                .await
                .map(drop),
            "Chat.ListLabels (site 1)" => chat
                .list_labels(req(
                    token,
                    v1::ListLabelsRequest {
                        site_id: self.site_id.clone(),
                    },
                ))
                .await
                .map(drop),
            "Publish.Label (A's, site 1's label)" => {
                let l = new_label(&self.s, &self.admin, &self.site_id).await;
                let conv = self.conversation(false).await;
                chat.publish(req(
                    token,
                    publish_ev(Ce::Label(v1::LabelConversation {
                        conversation_id: conv,
                        add: vec![l.id],
                        remove: vec![],
                    })),
                ))
                .await
                .map(drop)
            }
            "Publish.Snooze (A's, open)" => {
                let conv = self.conversation(false).await;
                publish(
                    &mut chat,
                    &self.admin,
                    ev(Ce::Join(v1::JoinConversation {
                        conversation_id: conv.clone(),
                    })),
                )
                .await
                .unwrap();
                chat.publish(req(
                    token,
                    publish_ev(Ce::Snooze(v1::SnoozeConversation {
                        conversation_id: conv,
                        until_ms: 0,
                        wake: false,
                    })),
                ))
                .await
                .map(drop)
            }
            other => panic!("no such operation {other}"),
        }
    }
}

fn render(rows: &[Vec<&'static str>]) -> String {
    let mut out = String::from(
        "# Authorization matrix\n\n\
         Generated by `server/tests/authz_matrix.rs` against a real server (each cell on fresh \
         state; \"A's\" is a conversation of visitor A on site 1, topic Order). The test fails \
         when the server and this table differ. Callers: `none` (no token), `malformed`, \
         `unknown` (well-formed, not issued), visitors A and B of site 1 and one of site 2, \
         `agent` (role agent, topic Delivery), `agent site 2` (an agent of site 2 only), `admin`, \
         API keys with the chat or admin scope, `key site 2` (a chat key limited to site 2), a \
         revoked key, a logged-out agent session, a deactivated agent's session.\n\n\
         The `agent` and `key chat` columns have no site limit. Agents on a site that restricts \
         them to their topics, live events of inbox streams and auto-assignment across sites are \
         tested in `server/tests/security.rs` \
         (`agents_and_keys_see_only_their_sites_and_restricted_topics`).\n\n\
         File links (`GET /files/...`) are signed, expiring capabilities handed out with the \
         message: the caller's token is not looked at, so every column is the same; who gets \
         a link is what the message rows above (and `Chat.GetAttachment`) decide. The same \
         holds for the unsubscribe link of an email (a MAC of the visitor id, only in that \
         visitor's emails); a forged one is refused (400).\n\n",
    );
    out.push_str("| operation | ");
    out.push_str(&CALLERS.join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(CALLERS.len()));
    out.push('\n');
    for (op, row) in OPS.iter().zip(rows) {
        out.push_str(&format!("| {op} | {} |\n", row.join(" | ")));
    }
    out
}

#[tokio::test]
async fn every_rpc_against_every_caller() {
    let w = world().await;
    let mut rows = Vec::new();
    for op in OPS {
        let mut row = Vec::new();
        for token in &w.tokens {
            row.push(cell(w.run(op, token).await));
        }
        rows.push(row);
    }
    // Invariants, whatever the table says.
    let col = |name: &str| CALLERS.iter().position(|c| *c == name).unwrap();
    for (op, row) in OPS.iter().zip(&rows) {
        // Signed links are capabilities: they need no token.
        let public = op.starts_with("Session.")
            || op.starts_with("HTTP GET /files")
            || op.starts_with("HTTP POST /email/unsubscribe");
        for dead in [
            "none",
            "malformed",
            "unknown",
            "key revoked",
            "logged out",
            "deactivated",
        ] {
            if !public {
                assert_eq!(row[col(dead)], "unauthenticated", "{op} by {dead}");
            }
        }
        if op.contains("(A's") || op.contains("(A)") {
            for other in ["visitor B", "visitor site 2", "agent site 2", "key site 2"] {
                assert_ne!(row[col(other)], "ok", "{op} by {other}");
            }
        }
        if op.starts_with("Admin.") {
            for caller in [
                "visitor A",
                "visitor B",
                "visitor site 2",
                "agent",
                "key chat",
            ] {
                assert_eq!(row[col(caller)], "denied", "{op} by {caller}");
            }
            assert_eq!(row[col("admin")], "ok", "{op} by admin");
            assert_eq!(row[col("key admin")], "ok", "{op} by the admin key");
        }
        if op.contains("note") {
            assert_ne!(
                row[col("visitor A")],
                "ok",
                "visitors cannot write or read notes"
            );
        }
        if op.contains("forged") {
            // A forged file link is forbidden (403); a forged unsubscribe link is a bad one
            // (400, a page saying so); nobody gets through either way.
            let want = if op.contains("unsubscribe") {
                "invalid"
            } else {
                "denied"
            };
            assert!(row.iter().all(|c| *c == want), "{op}: {row:?}");
        }
    }
    let table = render(&rows);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/authorization.md");
    if std::env::var_os("WSMSCHAT_WRITE_MATRIX").is_some() {
        std::fs::write(path, &table).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == table,
        "the server's authorization differs from docs/authorization.md:\n{table}"
    );
    w.s.stop().await;
}
