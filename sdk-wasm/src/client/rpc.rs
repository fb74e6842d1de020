//! The RPCs, with the generated clients' method names, all through [`crate::raw::unary`].

use tonic::{Request, Status};
use wsmschat::v1;

use super::Shared;
use crate::raw;

/// The RPCs of one client.
pub(crate) struct Rpc<'a>(pub(super) &'a Shared);

macro_rules! rpcs {
    ($($name:ident: $path:literal, $req:ty => $resp:ty;)*) => {
        impl Rpc<'_> {
            $(
                pub(crate) async fn $name(&self, r: Request<$req>) -> Result<$resp, Status> {
                    raw::unary(self.0.unary.clone(), r, $path).await
                }
            )*
        }
    };
}

rpcs! {
    publish: "/wsmschat.v1.ChatService/Publish", v1::PublishRequest => v1::PublishResponse;
    get_conversation: "/wsmschat.v1.ChatService/GetConversation", v1::GetConversationRequest => v1::GetConversationResponse;
    get_history: "/wsmschat.v1.ChatService/GetHistory", v1::GetHistoryRequest => v1::GetHistoryResponse;
    start_visitor_session: "/wsmschat.v1.SessionService/StartVisitorSession", v1::StartVisitorSessionRequest => v1::StartVisitorSessionResponse;
    logout: "/wsmschat.v1.SessionService/Logout", v1::LogoutRequest => v1::LogoutResponse;
    get_transcript: "/wsmschat.v1.ChatService/GetTranscript", v1::GetTranscriptRequest => v1::GetTranscriptResponse;
    email_transcript: "/wsmschat.v1.ChatService/EmailTranscript", v1::EmailTranscriptRequest => v1::EmailTranscriptResponse;
}

#[cfg(feature = "agent")]
rpcs! {
    set_attributes: "/wsmschat.v1.ChatService/SetAttributes", v1::SetAttributesRequest => v1::SetAttributesResponse;
}

#[cfg(feature = "agent")]
rpcs! {
    list_attachments: "/wsmschat.v1.ChatService/ListAttachments", v1::ListAttachmentsRequest => v1::ListAttachmentsResponse;
    get_attachment: "/wsmschat.v1.ChatService/GetAttachment", v1::GetAttachmentRequest => v1::GetAttachmentResponse;
    list_conversations: "/wsmschat.v1.ChatService/ListConversations", v1::ListConversationsRequest => v1::ListConversationsResponse;
    get_visitor: "/wsmschat.v1.ChatService/GetVisitor", v1::GetVisitorRequest => v1::GetVisitorResponse;
    list_canned_replies: "/wsmschat.v1.ChatService/ListCannedReplies", v1::ListCannedRepliesRequest => v1::ListCannedRepliesResponse;
    list_agent_presence: "/wsmschat.v1.ChatService/ListAgentPresence", v1::ListAgentPresenceRequest => v1::ListAgentPresenceResponse;
    login: "/wsmschat.v1.SessionService/Login", v1::LoginRequest => v1::LoginResponse;
    list_sites: "/wsmschat.v1.AdminService/ListSites", v1::ListSitesRequest => v1::ListSitesResponse;
    create_site: "/wsmschat.v1.AdminService/CreateSite", v1::CreateSiteRequest => v1::CreateSiteResponse;
    update_site: "/wsmschat.v1.AdminService/UpdateSite", v1::UpdateSiteRequest => v1::UpdateSiteResponse;
    list_agents: "/wsmschat.v1.AdminService/ListAgents", v1::ListAgentsRequest => v1::ListAgentsResponse;
    create_agent: "/wsmschat.v1.AdminService/CreateAgent", v1::CreateAgentRequest => v1::CreateAgentResponse;
    update_agent: "/wsmschat.v1.AdminService/UpdateAgent", v1::UpdateAgentRequest => v1::UpdateAgentResponse;
    create_api_key: "/wsmschat.v1.AdminService/CreateApiKey", v1::CreateApiKeyRequest => v1::CreateApiKeyResponse;
    list_api_keys: "/wsmschat.v1.AdminService/ListApiKeys", v1::ListApiKeysRequest => v1::ListApiKeysResponse;
    revoke_api_key: "/wsmschat.v1.AdminService/RevokeApiKey", v1::RevokeApiKeyRequest => v1::RevokeApiKeyResponse;
    put_canned_reply: "/wsmschat.v1.AdminService/PutCannedReply", v1::PutCannedReplyRequest => v1::PutCannedReplyResponse;
    delete_canned_reply: "/wsmschat.v1.AdminService/DeleteCannedReply", v1::DeleteCannedReplyRequest => v1::DeleteCannedReplyResponse;
    get_site_report: "/wsmschat.v1.AdminService/GetSiteReport", v1::GetSiteReportRequest => v1::GetSiteReportResponse;
    create_webhook: "/wsmschat.v1.AdminService/CreateWebhook", v1::CreateWebhookRequest => v1::CreateWebhookResponse;
    update_webhook: "/wsmschat.v1.AdminService/UpdateWebhook", v1::UpdateWebhookRequest => v1::UpdateWebhookResponse;
    delete_webhook: "/wsmschat.v1.AdminService/DeleteWebhook", v1::DeleteWebhookRequest => v1::DeleteWebhookResponse;
    list_webhooks: "/wsmschat.v1.AdminService/ListWebhooks", v1::ListWebhooksRequest => v1::ListWebhooksResponse;
    list_webhook_deliveries: "/wsmschat.v1.AdminService/ListWebhookDeliveries", v1::ListWebhookDeliveriesRequest => v1::ListWebhookDeliveriesResponse;
    resend_webhook_deliveries: "/wsmschat.v1.AdminService/ResendWebhookDeliveries", v1::ResendWebhookDeliveriesRequest => v1::ResendWebhookDeliveriesResponse;
    set_email_alerts: "/wsmschat.v1.SessionService/SetEmailAlerts", v1::SetEmailAlertsRequest => v1::SetEmailAlertsResponse;
    get_server_info: "/wsmschat.v1.AdminService/GetServerInfo", v1::GetServerInfoRequest => v1::GetServerInfoResponse;
    list_conversation_emails: "/wsmschat.v1.ChatService/ListConversationEmails", v1::ListConversationEmailsRequest => v1::ListConversationEmailsResponse;
    create_block: "/wsmschat.v1.ChatService/CreateBlock", v1::CreateBlockRequest => v1::CreateBlockResponse;
    delete_block: "/wsmschat.v1.ChatService/DeleteBlock", v1::DeleteBlockRequest => v1::DeleteBlockResponse;
    list_blocks: "/wsmschat.v1.ChatService/ListBlocks", v1::ListBlocksRequest => v1::ListBlocksResponse;
    list_audit_log: "/wsmschat.v1.AdminService/ListAuditLog", v1::ListAuditLogRequest => v1::ListAuditLogResponse;
    list_labels: "/wsmschat.v1.ChatService/ListLabels", v1::ListLabelsRequest => v1::ListLabelsResponse;
    put_label: "/wsmschat.v1.AdminService/PutLabel", v1::PutLabelRequest => v1::PutLabelResponse;
    delete_label: "/wsmschat.v1.AdminService/DeleteLabel", v1::DeleteLabelRequest => v1::DeleteLabelResponse;
}
