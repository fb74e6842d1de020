//! `wsmschat.v1.AdminService`: sites, agents, API keys, canned replies, reports. Each handler
//! proves the caller is an admin, then calls the core's admin use case.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wsmschat::v1;
use wsmschat::v1::admin_service_server::AdminService;

use super::caller;
use crate::core::Core;
use crate::core::access::AdminGrant;

/// The AdminService handlers.
pub struct AdminApi {
    pub core: Arc<Core>,
}

impl AdminApi {
    /// The caller's admin grant (PERMISSION_DENIED for everyone else).
    async fn admin<T>(&self, req: &Request<T>) -> Result<AdminGrant, Status> {
        let who = caller(&self.core, req).await?;
        Ok(Core::require_admin(&who.principal)?)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/CreateSite", principal, principal_id)
    )]
    async fn create_site(
        &self,
        req: Request<v1::CreateSiteRequest>,
    ) -> Result<Response<v1::CreateSiteResponse>, Status> {
        let grant = self.admin(&req).await?;
        let site = req.into_inner().site.unwrap_or_default();
        let site = self.core.create_site(grant, site, None).await?;
        Ok(Response::new(v1::CreateSiteResponse { site: Some(site) }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/UpdateSite", principal, principal_id)
    )]
    async fn update_site(
        &self,
        req: Request<v1::UpdateSiteRequest>,
    ) -> Result<Response<v1::UpdateSiteResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        let site = self
            .core
            .update_site(grant, r.site.unwrap_or_default(), r.rotate_identity_secret)
            .await?;
        Ok(Response::new(v1::UpdateSiteResponse { site: Some(site) }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListSites", principal, principal_id)
    )]
    async fn list_sites(
        &self,
        req: Request<v1::ListSitesRequest>,
    ) -> Result<Response<v1::ListSitesResponse>, Status> {
        let grant = self.admin(&req).await?;
        let sites = self.core.list_sites(grant).await?;
        Ok(Response::new(v1::ListSitesResponse { sites }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/CreateAgent", principal, principal_id)
    )]
    async fn create_agent(
        &self,
        req: Request<v1::CreateAgentRequest>,
    ) -> Result<Response<v1::CreateAgentResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        let agent = self
            .core
            .create_agent(grant, r.agent.unwrap_or_default(), r.password)
            .await?;
        Ok(Response::new(v1::CreateAgentResponse {
            agent: Some(agent),
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/UpdateAgent", principal, principal_id)
    )]
    async fn update_agent(
        &self,
        req: Request<v1::UpdateAgentRequest>,
    ) -> Result<Response<v1::UpdateAgentResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        let agent = self
            .core
            .update_agent(grant, r.agent.unwrap_or_default(), r.password)
            .await?;
        Ok(Response::new(v1::UpdateAgentResponse {
            agent: Some(agent),
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListAgents", principal, principal_id)
    )]
    async fn list_agents(
        &self,
        req: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        let grant = self.admin(&req).await?;
        let agents = self.core.list_agents(grant).await?;
        Ok(Response::new(v1::ListAgentsResponse { agents }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/CreateApiKey", principal, principal_id)
    )]
    async fn create_api_key(
        &self,
        req: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        let (key, secret) = self
            .core
            .create_api_key(grant, &r.name, r.scopes, r.site_ids)
            .await?;
        Ok(Response::new(v1::CreateApiKeyResponse {
            api_key: Some(key),
            secret,
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListApiKeys", principal, principal_id)
    )]
    async fn list_api_keys(
        &self,
        req: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        let grant = self.admin(&req).await?;
        let api_keys = self.core.list_api_keys(grant).await?;
        Ok(Response::new(v1::ListApiKeysResponse { api_keys }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/RevokeApiKey", principal, principal_id)
    )]
    async fn revoke_api_key(
        &self,
        req: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        let grant = self.admin(&req).await?;
        self.core.revoke_api_key(grant, req.into_inner().id).await?;
        Ok(Response::new(v1::RevokeApiKeyResponse {}))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/PutCannedReply", principal, principal_id)
    )]
    async fn put_canned_reply(
        &self,
        req: Request<v1::PutCannedReplyRequest>,
    ) -> Result<Response<v1::PutCannedReplyResponse>, Status> {
        let grant = self.admin(&req).await?;
        let reply = req.into_inner().canned_reply.unwrap_or_default();
        let reply = self.core.put_canned_reply(grant, reply).await?;
        Ok(Response::new(v1::PutCannedReplyResponse {
            canned_reply: Some(reply),
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/DeleteCannedReply", principal, principal_id)
    )]
    async fn delete_canned_reply(
        &self,
        req: Request<v1::DeleteCannedReplyRequest>,
    ) -> Result<Response<v1::DeleteCannedReplyResponse>, Status> {
        let grant = self.admin(&req).await?;
        self.core
            .delete_canned_reply(grant, req.into_inner().id)
            .await?;
        Ok(Response::new(v1::DeleteCannedReplyResponse {}))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/GetSiteReport", principal, principal_id)
    )]
    async fn get_site_report(
        &self,
        req: Request<v1::GetSiteReportRequest>,
    ) -> Result<Response<v1::GetSiteReportResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        Ok(Response::new(
            self.core.site_report(grant, r.site_id, r.days).await?,
        ))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/CreateWebhook", principal, principal_id)
    )]
    async fn create_webhook(
        &self,
        req: Request<v1::CreateWebhookRequest>,
    ) -> Result<Response<v1::CreateWebhookResponse>, Status> {
        let grant = self.admin(&req).await?;
        let (webhook, secret) = self.core.create_webhook(grant, req.into_inner()).await?;
        Ok(Response::new(v1::CreateWebhookResponse {
            webhook: Some(webhook),
            secret,
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/UpdateWebhook", principal, principal_id)
    )]
    async fn update_webhook(
        &self,
        req: Request<v1::UpdateWebhookRequest>,
    ) -> Result<Response<v1::UpdateWebhookResponse>, Status> {
        let grant = self.admin(&req).await?;
        let r = req.into_inner();
        let (webhook, secret) = self
            .core
            .update_webhook(grant, r.webhook.unwrap_or_default(), r.rotate_secret)
            .await?;
        Ok(Response::new(v1::UpdateWebhookResponse {
            webhook: Some(webhook),
            secret,
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/DeleteWebhook", principal, principal_id)
    )]
    async fn delete_webhook(
        &self,
        req: Request<v1::DeleteWebhookRequest>,
    ) -> Result<Response<v1::DeleteWebhookResponse>, Status> {
        let grant = self.admin(&req).await?;
        self.core
            .delete_webhook(grant, req.into_inner().webhook_id)
            .await?;
        Ok(Response::new(v1::DeleteWebhookResponse {}))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListWebhooks", principal, principal_id)
    )]
    async fn list_webhooks(
        &self,
        req: Request<v1::ListWebhooksRequest>,
    ) -> Result<Response<v1::ListWebhooksResponse>, Status> {
        let grant = self.admin(&req).await?;
        let webhooks = self
            .core
            .list_webhooks(grant, req.into_inner().site_id)
            .await?;
        Ok(Response::new(v1::ListWebhooksResponse { webhooks }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListWebhookDeliveries", principal, principal_id)
    )]
    async fn list_webhook_deliveries(
        &self,
        req: Request<v1::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<v1::ListWebhookDeliveriesResponse>, Status> {
        let grant = self.admin(&req).await?;
        let deliveries = self
            .core
            .list_webhook_deliveries(grant, req.into_inner())
            .await?;
        Ok(Response::new(v1::ListWebhookDeliveriesResponse {
            deliveries,
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(
            method = "AdminService/ResendWebhookDeliveries",
            principal,
            principal_id
        )
    )]
    async fn resend_webhook_deliveries(
        &self,
        req: Request<v1::ResendWebhookDeliveriesRequest>,
    ) -> Result<Response<v1::ResendWebhookDeliveriesResponse>, Status> {
        let grant = self.admin(&req).await?;
        let queued = self
            .core
            .resend_webhook_deliveries(grant, req.into_inner())
            .await?;
        Ok(Response::new(v1::ResendWebhookDeliveriesResponse {
            queued,
        }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/GetServerInfo", principal, principal_id)
    )]
    async fn get_server_info(
        &self,
        req: Request<v1::GetServerInfoRequest>,
    ) -> Result<Response<v1::GetServerInfoResponse>, Status> {
        let grant = self.admin(&req).await?;
        Ok(Response::new(self.core.server_info(grant)))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/ListAuditLog", principal, principal_id)
    )]
    async fn list_audit_log(
        &self,
        req: Request<v1::ListAuditLogRequest>,
    ) -> Result<Response<v1::ListAuditLogResponse>, Status> {
        let grant = self.admin(&req).await?;
        let entries = self.core.audit_log(grant, req.into_inner()).await?;
        Ok(Response::new(v1::ListAuditLogResponse { entries }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/PutLabel", principal, principal_id)
    )]
    async fn put_label(
        &self,
        req: Request<v1::PutLabelRequest>,
    ) -> Result<Response<v1::PutLabelResponse>, Status> {
        let grant = self.admin(&req).await?;
        let label = self
            .core
            .put_label(grant, req.into_inner().label.unwrap_or_default())
            .await?;
        Ok(Response::new(v1::PutLabelResponse { label: Some(label) }))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "AdminService/DeleteLabel", principal, principal_id)
    )]
    async fn delete_label(
        &self,
        req: Request<v1::DeleteLabelRequest>,
    ) -> Result<Response<v1::DeleteLabelResponse>, Status> {
        let grant = self.admin(&req).await?;
        self.core
            .delete_label(grant, req.into_inner().label_id)
            .await?;
        Ok(Response::new(v1::DeleteLabelResponse {}))
    }
}
