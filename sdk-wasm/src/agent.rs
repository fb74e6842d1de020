//! Agent and service calls (feature `agent`): the agent console and backend integrations use
//! them; the widget's build leaves them out to stay small.

use js_sys::Promise;
use tonic::Request;
use wasm_bindgen::prelude::*;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

use crate::client::{ChatClient, Shared, normalize_server, promise};
use crate::js::{self, O, get_str};
use crate::rt::Store;
use crate::types::*;

#[wasm_bindgen]
impl ChatClient {
    /// One attachment with fresh links (links expire after about an hour: call this when
    /// one stops working, e.g. a download from a conversation open for long).
    #[wasm_bindgen(unchecked_return_type = "Promise<Attachment>")]
    pub fn attachment(&self, attachment_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .get_attachment(sh.req(v1::GetAttachmentRequest { attachment_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            let mut a = r.attachment.unwrap_or_default();
            sh.absolute_links(&mut a);
            Ok(js::attachment(&a))
        })
    }

    /// The files of a conversation, newest first (visitors never see notes' files).
    #[wasm_bindgen(unchecked_return_type = "Promise<ConversationFile[]>")]
    pub fn attachments(&self, conversation_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_attachments(sh.req(v1::ListAttachmentsRequest { conversation_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            let files: js_sys::Array = r
                .files
                .into_iter()
                .map(|mut f| {
                    let mut a = f.attachment.take().unwrap_or_default();
                    sh.absolute_links(&mut a);
                    O::new()
                        .v("attachment", js::attachment(&a))
                        .n("seq", f.seq as f64)
                        .s("authorKind", js::author_kind(f.author_kind))
                        .s("authorName", &f.author_name)
                        .b("note", f.note)
                        .n("createdAt", f.created_at_ms as f64)
                        .done()
                })
                .collect();
            Ok(files.into())
        })
    }

    /// Agent login with email and password.
    pub async fn login(opts: LoginOptions) -> Result<ChatClient, JsValue> {
        let o: JsValue = opts.into();
        let server = normalize_server(&get_str(&o, "server"))?;
        let sh = Shared::new(server, Store::Memory, String::new());
        let r = sh
            .session()
            .login(Request::new(v1::LoginRequest {
                email: get_str(&o, "email"),
                password: get_str(&o, "password"),
            }))
            .await
            .map_err(|s| sh.err(&s))?;
        *sh.token.borrow_mut() = r.token;
        *sh.agent.borrow_mut() = r.agent.as_ref().map(js::agent).unwrap_or_default();
        Ok(ChatClient { sh })
    }

    /// Agent: take a conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn join(&self, conversation_id: String) -> Promise {
        self.event(Ce::Join(v1::JoinConversation { conversation_id }))
    }

    /// Agent: assign or transfer a conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn assign(&self, conversation_id: String, agent_id: String) -> Promise {
        self.event(Ce::Assign(v1::AssignConversation {
            conversation_id,
            agent_id,
        }))
    }

    /// Agent: resolve a conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn resolve(&self, conversation_id: String) -> Promise {
        self.event(Ce::Resolve(v1::ResolveConversation { conversation_id }))
    }

    /// Staff: add and remove labels (ids from `listLabels`) on a conversation.
    #[wasm_bindgen(js_name = labelConversation, unchecked_return_type = "Promise<Ack>")]
    pub fn label_conversation(
        &self,
        conversation_id: String,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Promise {
        self.event(Ce::Label(v1::LabelConversation {
            conversation_id,
            add,
            remove,
        }))
    }

    /// Staff: snooze an open conversation until `untilMs` (ms since epoch; 0: until the
    /// customer writes). It leaves the lists filtered with `snooze: "awake"` until then.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn snooze(&self, conversation_id: String, until_ms: f64) -> Promise {
        self.event(Ce::Snooze(v1::SnoozeConversation {
            conversation_id,
            until_ms: until_ms.max(0.0) as i64,
            wake: false,
        }))
    }

    /// Staff: end a conversation's snooze now.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn wake(&self, conversation_id: String) -> Promise {
        self.event(Ce::Snooze(v1::SnoozeConversation {
            conversation_id,
            until_ms: 0,
            wake: true,
        }))
    }

    /// A site's labels by name, with how many conversations carry each.
    #[wasm_bindgen(js_name = listLabels, unchecked_return_type = "Promise<Label[]>")]
    pub fn list_labels(&self, site_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_labels(sh.req(v1::ListLabelsRequest { site_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.labels, label))
        })
    }

    /// Admins: create a label (`{ siteId, name, color }`) or change one (with its `id`).
    #[wasm_bindgen(js_name = putLabel, unchecked_return_type = "Promise<Label>")]
    pub fn put_label(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "{ id?: string; siteId: string; name: string; color?: string }"
        )]
        input: JsValue,
    ) -> Promise {
        let sh = self.sh.clone();
        let l = v1::Label {
            id: js::get_str(&input, "id"),
            site_id: js::get_str(&input, "siteId"),
            name: js::get_str(&input, "name"),
            color: js::get_str(&input, "color"),
            conversations: 0,
        };
        promise(async move {
            let r = sh
                .admin()
                .put_label(sh.req(v1::PutLabelRequest { label: Some(l) }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.label.as_ref().map(label).unwrap_or_default())
        })
    }

    /// Admins: delete a label (it leaves every conversation).
    #[wasm_bindgen(js_name = deleteLabel, unchecked_return_type = "Promise<void>")]
    pub fn delete_label(&self, label_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.admin()
                .delete_label(sh.req(v1::DeleteLabelRequest { label_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Agent: reopen a resolved conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn reopen(&self, conversation_id: String) -> Promise {
        self.event(Ce::Reopen(v1::ReopenConversation { conversation_id }))
    }

    /// Agent: set my presence ("online" or "away").
    #[wasm_bindgen(js_name = setPresence, unchecked_return_type = "Promise<Ack>")]
    pub fn set_presence(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"online\" | \"away\"")] status: String,
    ) -> Promise {
        self.event(Ce::SetPresence(v1::SetPresence {
            status: js::presence_from(&status) as i32,
        }))
    }

    /// Conversations visible to the caller, newest activity first.
    #[wasm_bindgen(js_name = listConversations, unchecked_return_type = "Promise<ConversationPage>")]
    pub fn list_conversations(&self, filter: Option<ListFilter>) -> Promise {
        let sh = self.sh.clone();
        let f = js::list_filter_from(&filter.map(JsValue::from).unwrap_or_default());
        promise(async move {
            let r = sh
                .chat()
                .list_conversations(sh.req(f))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "conversations",
                    js::array(&r.conversations, js::conversation),
                )
                .s("nextPageToken", &r.next_page_token)
                .n("total", r.total as f64)
                .b("totalCapped", r.total_capped)
                .done())
        })
    }

    /// A visitor's profile and conversations (agents).
    #[wasm_bindgen(js_name = getVisitor, unchecked_return_type = "Promise<VisitorProfile>")]
    pub fn get_visitor(&self, visitor_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .get_visitor(sh.req(v1::GetVisitorRequest { visitor_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "visitor",
                    r.visitor.as_ref().map(js::visitor).unwrap_or_default(),
                )
                .v(
                    "conversations",
                    js::array(&r.conversations, js::conversation),
                )
                .v("attributes", js::attribute_definitions(&r.attributes))
                .done())
        })
    }

    /// Canned replies (agents); `siteId` empty for all.
    #[wasm_bindgen(js_name = listCannedReplies, unchecked_return_type = "Promise<CannedReply[]>")]
    pub fn list_canned_replies(&self, site_id: Option<String>) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_canned_replies(sh.req(v1::ListCannedRepliesRequest {
                    site_id: site_id.unwrap_or_default(),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.canned_replies, js::canned_reply))
        })
    }

    /// Agents and their presence.
    #[wasm_bindgen(js_name = listAgentPresence, unchecked_return_type = "Promise<AgentPresence[]>")]
    pub fn list_agent_presence(&self) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_agent_presence(sh.req(v1::ListAgentPresenceRequest {}))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.agents, js::agent_presence))
        })
    }

    // ---- administration (admin agents, API keys with scope admin) -------------------------

    /// All sites.
    #[wasm_bindgen(js_name = listSites, unchecked_return_type = "Promise<Site[]>")]
    pub fn list_sites(&self) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .list_sites(sh.req(v1::ListSitesRequest {}))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.sites, js::site))
        })
    }

    /// Creates a site (key and secret generated).
    #[wasm_bindgen(js_name = createSite, unchecked_return_type = "Promise<Site>")]
    pub fn create_site(&self, site: SiteInput) -> Promise {
        let sh = self.sh.clone();
        let site = js::site_from(&site.into());
        promise(async move {
            let r = sh
                .admin()
                .create_site(sh.req(v1::CreateSiteRequest { site: Some(site) }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.site.as_ref().map(js::site).unwrap_or_default())
        })
    }

    /// Changes a site (by id).
    #[wasm_bindgen(js_name = updateSite, unchecked_return_type = "Promise<Site>")]
    pub fn update_site(&self, site: SiteInput, rotate_identity_secret: Option<bool>) -> Promise {
        let sh = self.sh.clone();
        let site = js::site_from(&site.into());
        promise(async move {
            let r = sh
                .admin()
                .update_site(sh.req(v1::UpdateSiteRequest {
                    site: Some(site),
                    rotate_identity_secret: rotate_identity_secret.unwrap_or(false),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.site.as_ref().map(js::site).unwrap_or_default())
        })
    }

    /// All agents.
    #[wasm_bindgen(js_name = listAgents, unchecked_return_type = "Promise<Agent[]>")]
    pub fn list_agents(&self) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .list_agents(sh.req(v1::ListAgentsRequest {}))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.agents, js::agent))
        })
    }

    /// Creates an agent.
    #[wasm_bindgen(js_name = createAgent, unchecked_return_type = "Promise<Agent>")]
    pub fn create_agent(&self, agent: AgentInput, password: String) -> Promise {
        let sh = self.sh.clone();
        let agent = js::agent_from(&agent.into());
        promise(async move {
            let r = sh
                .admin()
                .create_agent(sh.req(v1::CreateAgentRequest {
                    agent: Some(agent),
                    password,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.agent.as_ref().map(js::agent).unwrap_or_default())
        })
    }

    /// Changes an agent (by id); an empty password keeps it.
    #[wasm_bindgen(js_name = updateAgent, unchecked_return_type = "Promise<Agent>")]
    pub fn update_agent(&self, agent: AgentInput, password: Option<String>) -> Promise {
        let sh = self.sh.clone();
        let agent = js::agent_from(&agent.into());
        promise(async move {
            let r = sh
                .admin()
                .update_agent(sh.req(v1::UpdateAgentRequest {
                    agent: Some(agent),
                    password: password.unwrap_or_default(),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.agent.as_ref().map(js::agent).unwrap_or_default())
        })
    }

    /// Creates an API key; resolves with `{ apiKey, secret }` (the secret is shown once).
    #[wasm_bindgen(js_name = createApiKey, unchecked_return_type = "Promise<{ apiKey: ApiKey; secret: string }>")]
    pub fn create_api_key(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "(\"chat\" | \"admin\")[]")] scopes: Vec<String>,
        #[wasm_bindgen(unchecked_param_type = "string[] | undefined")] site_ids: Option<
            Vec<String>,
        >,
    ) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .create_api_key(sh.req(v1::CreateApiKeyRequest {
                    name,
                    scopes: scopes.iter().map(|s| js::scope_from(s) as i32).collect(),
                    site_ids: site_ids.unwrap_or_default(),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "apiKey",
                    r.api_key.as_ref().map(js::api_key).unwrap_or_default(),
                )
                .s("secret", &r.secret)
                .done())
        })
    }

    /// All API keys (without secrets).
    #[wasm_bindgen(js_name = listApiKeys, unchecked_return_type = "Promise<ApiKey[]>")]
    pub fn list_api_keys(&self) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .list_api_keys(sh.req(v1::ListApiKeysRequest {}))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.api_keys, js::api_key))
        })
    }

    /// Revokes an API key.
    #[wasm_bindgen(js_name = revokeApiKey, unchecked_return_type = "Promise<void>")]
    pub fn revoke_api_key(&self, id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.admin()
                .revoke_api_key(sh.req(v1::RevokeApiKeyRequest { id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Creates or replaces a canned reply (by site and shortcut).
    #[wasm_bindgen(js_name = putCannedReply, unchecked_return_type = "Promise<CannedReply>")]
    pub fn put_canned_reply(&self, reply: CannedReplyInput) -> Promise {
        let sh = self.sh.clone();
        let reply = js::canned_reply_from(&reply.into());
        promise(async move {
            let r = sh
                .admin()
                .put_canned_reply(sh.req(v1::PutCannedReplyRequest {
                    canned_reply: Some(reply),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.canned_reply
                .as_ref()
                .map(js::canned_reply)
                .unwrap_or_default())
        })
    }

    /// Deletes a canned reply.
    #[wasm_bindgen(js_name = deleteCannedReply, unchecked_return_type = "Promise<void>")]
    pub fn delete_canned_reply(&self, id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.admin()
                .delete_canned_reply(sh.req(v1::DeleteCannedReplyRequest { id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Figures of a site over the last `days` days (default 30).
    #[wasm_bindgen(js_name = siteReport, unchecked_return_type = "Promise<SiteReport>")]
    pub fn site_report(&self, site_id: String, days: Option<u32>) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .get_site_report(sh.req(v1::GetSiteReportRequest {
                    site_id,
                    days: days.unwrap_or(0),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::report(&r))
        })
    }

    // ------------------------------------------------------------ server, email

    /// What the server is configured to do (admins): `{ version, emailEnabled, mailFrom,
    /// webhooksAllowPrivate, publicUrl }`.
    #[wasm_bindgen(js_name = getServerInfo, unchecked_return_type = "Promise<{ version: string; emailEnabled: boolean; mailFrom: string; webhooksAllowPrivate: boolean; publicUrl: string }>")]
    pub fn get_server_info(&self) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .get_server_info(sh.req(v1::GetServerInfoRequest {}))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .s("version", &r.version)
                .b("emailEnabled", r.email_enabled)
                .s("mailFrom", &r.mail_from)
                .b("webhooksAllowPrivate", r.webhooks_allow_private)
                .s("publicUrl", &r.public_url)
                .done())
        })
    }

    /// The logged-in agent turns their alert emails off (`true`) or on; resolves with the agent.
    #[wasm_bindgen(js_name = setEmailAlerts, unchecked_return_type = "Promise<Agent>")]
    pub fn set_email_alerts(&self, off: bool) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .set_email_alerts(sh.req(v1::SetEmailAlertsRequest { off }))
                .await
                .map_err(|s| sh.err(&s))?;
            let agent = r.agent.as_ref().map(js::agent).unwrap_or_default();
            *sh.agent.borrow_mut() = agent.clone();
            Ok(agent)
        })
    }

    /// The emails about a conversation, newest first, and where each stands.
    #[wasm_bindgen(js_name = listConversationEmails, unchecked_return_type = "Promise<ConversationEmail[]>")]
    pub fn list_conversation_emails(&self, conversation_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_conversation_emails(
                    sh.req(v1::ListConversationEmailsRequest { conversation_id }),
                )
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.emails, |e: &v1::Email| {
                O::new()
                    .s("id", &e.id)
                    .s("kind", &e.kind)
                    .s("to", &e.to)
                    .s("subject", &e.subject)
                    .s(
                        "state",
                        match v1::EmailState::try_from(e.state).unwrap_or_default() {
                            v1::EmailState::Queued => "queued",
                            v1::EmailState::Sent => "sent",
                            v1::EmailState::Failed => "failed",
                            v1::EmailState::Unspecified => "",
                        },
                    )
                    .n("attempts", e.attempts as f64)
                    .n("createdAt", e.created_at_ms as f64)
                    .n("sentAt", e.sent_at_ms as f64)
                    .s("lastError", &e.last_error)
                    .s("messageId", &e.message_id)
                    .done()
            }))
        })
    }

    // ------------------------------------------------------------ webhooks

    /// Adds a webhook endpoint to a site; resolves with `{ webhook, secret }` (shown once).
    #[wasm_bindgen(js_name = createWebhook, unchecked_return_type = "Promise<{ webhook: Webhook; secret: string }>")]
    pub fn create_webhook(&self, input: WebhookInput) -> Promise {
        let sh = self.sh.clone();
        let w = webhook_from(&input.into());
        promise(async move {
            let r = sh
                .admin()
                .create_webhook(sh.req(v1::CreateWebhookRequest {
                    site_id: w.site_id,
                    url: w.url,
                    events: w.events,
                    description: w.description,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "webhook",
                    r.webhook.as_ref().map(webhook).unwrap_or_default(),
                )
                .s("secret", &r.secret)
                .done())
        })
    }

    /// Replaces an endpoint's url, events, description and enabled state (by id: pass the whole
    /// endpoint, as `listWebhooks` gives it; a missing `enabled` means enabled); with
    /// `rotateSecret`, resolves with the new secret (else `secret` is "").
    #[wasm_bindgen(js_name = updateWebhook, unchecked_return_type = "Promise<{ webhook: Webhook; secret: string }>")]
    pub fn update_webhook(&self, input: WebhookUpdate, rotate_secret: Option<bool>) -> Promise {
        let sh = self.sh.clone();
        let w = webhook_from(&input.into());
        promise(async move {
            let r = sh
                .admin()
                .update_webhook(sh.req(v1::UpdateWebhookRequest {
                    webhook: Some(w),
                    rotate_secret: rotate_secret.unwrap_or(false),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "webhook",
                    r.webhook.as_ref().map(webhook).unwrap_or_default(),
                )
                .s("secret", &r.secret)
                .done())
        })
    }

    /// Deletes an endpoint and its delivery log.
    #[wasm_bindgen(js_name = deleteWebhook, unchecked_return_type = "Promise<void>")]
    pub fn delete_webhook(&self, id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.admin()
                .delete_webhook(sh.req(v1::DeleteWebhookRequest { webhook_id: id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Blocks a visitor (`kind` "visitor", `value` the visitor id), an email ("email") or an
    /// IP address / CIDR range ("ip") on a site, with a reason; resolves with
    /// `{ block, visitorsBlocked }`.
    #[wasm_bindgen(js_name = createBlock, unchecked_return_type = "Promise<{ block: Block; visitorsBlocked: number }>")]
    pub fn create_block(
        &self,
        site_id: String,
        #[wasm_bindgen(unchecked_param_type = "BlockKind")] kind: String,
        value: String,
        reason: String,
    ) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let kind = match kind.as_str() {
                "visitor" => v1::BlockKind::Visitor,
                "email" => v1::BlockKind::Email,
                "ip" => v1::BlockKind::Ip,
                _ => v1::BlockKind::Unspecified,
            } as i32;
            let r = sh
                .chat()
                .create_block(sh.req(v1::CreateBlockRequest {
                    site_id,
                    kind,
                    value,
                    reason,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v("block", r.block.as_ref().map(block).unwrap_or_default())
                .n("visitorsBlocked", r.visitors_blocked as f64)
                .done())
        })
    }

    /// Lifts a block.
    #[wasm_bindgen(js_name = deleteBlock, unchecked_return_type = "Promise<void>")]
    pub fn delete_block(&self, block_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.chat()
                .delete_block(sh.req(v1::DeleteBlockRequest { block_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A site's blocks, newest first.
    #[wasm_bindgen(js_name = listBlocks, unchecked_return_type = "Promise<Block[]>")]
    pub fn list_blocks(&self, site_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .list_blocks(sh.req(v1::ListBlocksRequest { site_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.blocks, block))
        })
    }

    /// A site's audit log (admins), newest first; `beforeMs` pages on.
    #[wasm_bindgen(js_name = listAuditLog, unchecked_return_type = "Promise<AuditEntry[]>")]
    pub fn list_audit_log(&self, site_id: String, before_ms: Option<f64>) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .list_audit_log(sh.req(v1::ListAuditLogRequest {
                    site_id,
                    before_ms: before_ms.unwrap_or(0.0) as i64,
                    limit: 100,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.entries, |e| {
                O::new()
                    .s("id", &e.id)
                    .s("siteId", &e.site_id)
                    .s("actor", &e.actor)
                    .s("actorName", &e.actor_name)
                    .s("action", &e.action)
                    .s("target", &e.target)
                    .s("detail", &e.detail)
                    .n("createdAt", e.created_at_ms as f64)
                    .done()
            }))
        })
    }

    /// Endpoints of a site (all sites without one), oldest first.
    #[wasm_bindgen(js_name = listWebhooks, unchecked_return_type = "Promise<Webhook[]>")]
    pub fn list_webhooks(&self, site_id: Option<String>) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .admin()
                .list_webhooks(sh.req(v1::ListWebhooksRequest {
                    site_id: site_id.unwrap_or_default(),
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.webhooks, webhook))
        })
    }

    /// An endpoint's delivery log, newest first (`state`: "pending" | "delivered" | "failed"
    /// to filter; the last row's `createdAt` and `eventId` as `beforeMs` and `beforeEventId`
    /// for the next page).
    #[wasm_bindgen(js_name = listWebhookDeliveries, unchecked_return_type = "Promise<WebhookDelivery[]>")]
    pub fn list_webhook_deliveries(
        &self,
        webhook_id: String,
        #[wasm_bindgen(
            unchecked_param_type = "{ state?: string; limit?: number; beforeMs?: number; beforeEventId?: string } | undefined"
        )]
        options: JsValue,
    ) -> Promise {
        let sh = self.sh.clone();
        let req = v1::ListWebhookDeliveriesRequest {
            webhook_id,
            state: delivery_state_from(&get_str(&options, "state")) as i32,
            limit: js::get_num(&options, "limit") as u32,
            before_ms: js::get_num(&options, "beforeMs") as i64,
            before_event_id: get_str(&options, "beforeEventId"),
        };
        promise(async move {
            let r = sh
                .admin()
                .list_webhook_deliveries(sh.req(req))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(js::array(&r.deliveries, delivery))
        })
    }

    /// Queues deliveries again: these event ids, or (with none) every failed one. Resolves
    /// with how many.
    #[wasm_bindgen(js_name = resendWebhookDeliveries, unchecked_return_type = "Promise<number>")]
    pub fn resend_webhook_deliveries(
        &self,
        webhook_id: String,
        #[wasm_bindgen(unchecked_param_type = "string[] | undefined")] event_ids: Option<
            Vec<String>,
        >,
    ) -> Promise {
        let sh = self.sh.clone();
        let event_ids = event_ids.unwrap_or_default();
        promise(async move {
            let r = sh
                .admin()
                .resend_webhook_deliveries(sh.req(v1::ResendWebhookDeliveriesRequest {
                    webhook_id,
                    all_failed: event_ids.is_empty(),
                    event_ids,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::from_f64(r.queued as f64))
        })
    }
}

/// Wire names of webhook event types (as the JSON bodies' `type`).
const WEBHOOK_EVENTS: [(v1::WebhookEventType, &str); 8] = [
    (
        v1::WebhookEventType::ConversationCreated,
        "conversation.created",
    ),
    (
        v1::WebhookEventType::ConversationAssigned,
        "conversation.assigned",
    ),
    (
        v1::WebhookEventType::ConversationResolved,
        "conversation.resolved",
    ),
    (
        v1::WebhookEventType::ConversationReopened,
        "conversation.reopened",
    ),
    (v1::WebhookEventType::MessageCreated, "message.created"),
    (v1::WebhookEventType::NoteCreated, "note.created"),
    (v1::WebhookEventType::RatingSubmitted, "rating.submitted"),
    (
        v1::WebhookEventType::VisitorIdentified,
        "visitor.identified",
    ),
];

fn event_name(t: i32) -> &'static str {
    WEBHOOK_EVENTS
        .iter()
        .find(|(e, _)| *e as i32 == t)
        .map(|(_, n)| *n)
        .unwrap_or("")
}

fn label(l: &v1::Label) -> JsValue {
    O::new()
        .s("id", &l.id)
        .s("siteId", &l.site_id)
        .s("name", &l.name)
        .s("color", &l.color)
        .n("conversations", l.conversations as f64)
        .done()
}

fn block(b: &v1::Block) -> JsValue {
    let kind = match v1::BlockKind::try_from(b.kind).unwrap_or_default() {
        v1::BlockKind::Visitor => "visitor",
        v1::BlockKind::Email => "email",
        v1::BlockKind::Ip => "ip",
        v1::BlockKind::Unspecified => "",
    };
    O::new()
        .s("id", &b.id)
        .s("siteId", &b.site_id)
        .s("kind", kind)
        .s("value", &b.value)
        .s("reason", &b.reason)
        .s("createdBy", &b.created_by)
        .s("createdByName", &b.created_by_name)
        .n("createdAt", b.created_at_ms as f64)
        .done()
}

fn webhook(w: &v1::WebhookEndpoint) -> JsValue {
    let events: Vec<String> = w.events.iter().map(|e| event_name(*e).to_owned()).collect();
    O::new()
        .s("id", &w.id)
        .s("siteId", &w.site_id)
        .s("url", &w.url)
        .strs("events", &events)
        .b("enabled", w.enabled)
        .s("description", &w.description)
        .n("createdAt", w.created_at_ms as f64)
        .s("disabledReason", &w.disabled_reason)
        .n("failingSince", w.failing_since_ms as f64)
        .n("lastSuccessAt", w.last_success_at_ms as f64)
        .n("pending", w.pending as f64)
        .n("failed", w.failed as f64)
        .done()
}

fn webhook_from(o: &JsValue) -> v1::WebhookEndpoint {
    let events = js::get_strs(o, "events")
        .iter()
        .filter_map(|n| WEBHOOK_EVENTS.iter().find(|(_, w)| w == n))
        .map(|(e, _)| *e as i32)
        .collect();
    v1::WebhookEndpoint {
        id: get_str(o, "id"),
        site_id: get_str(o, "siteId"),
        url: get_str(o, "url"),
        events,
        enabled: js::get(o, "enabled").as_bool().unwrap_or(true),
        description: get_str(o, "description"),
        ..Default::default()
    }
}

fn delivery_state(s: i32) -> &'static str {
    match v1::WebhookDeliveryState::try_from(s).unwrap_or_default() {
        v1::WebhookDeliveryState::Pending => "pending",
        v1::WebhookDeliveryState::Delivered => "delivered",
        v1::WebhookDeliveryState::Failed => "failed",
        v1::WebhookDeliveryState::Unspecified => "",
    }
}

fn delivery_state_from(s: &str) -> v1::WebhookDeliveryState {
    match s {
        "pending" => v1::WebhookDeliveryState::Pending,
        "delivered" => v1::WebhookDeliveryState::Delivered,
        "failed" => v1::WebhookDeliveryState::Failed,
        _ => v1::WebhookDeliveryState::Unspecified,
    }
}

fn delivery(d: &v1::WebhookDelivery) -> JsValue {
    O::new()
        .s("eventId", &d.event_id)
        .s("webhookId", &d.webhook_id)
        .s("eventType", event_name(d.event_type))
        .s("conversationId", &d.conversation_id)
        .s("state", delivery_state(d.state))
        .n("attempts", d.attempts as f64)
        .n("createdAt", d.created_at_ms as f64)
        .n("nextAttemptAt", d.next_attempt_at_ms as f64)
        .n("lastAttemptAt", d.last_attempt_at_ms as f64)
        .n("lastStatusCode", d.last_status_code as f64)
        .n("lastLatencyMs", d.last_latency_ms as f64)
        .s("lastResponse", &d.last_response)
        .s("lastError", &d.last_error)
        .done()
}
