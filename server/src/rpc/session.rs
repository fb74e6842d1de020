//! `wsmschat.v1.SessionService`: visitor sessions, agent login and logout.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wsmschat::v1;
use wsmschat::v1::session_service_server::SessionService;

use super::{bearer, origin, peer_ip};
use crate::core::Core;
use crate::core::session::SessionStart;

/// The SessionService handlers.
pub struct SessionApi {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "SessionService/StartVisitorSession")
    )]
    async fn start_visitor_session(
        &self,
        req: Request<v1::StartVisitorSessionRequest>,
    ) -> Result<Response<v1::StartVisitorSessionResponse>, Status> {
        let start = SessionStart {
            ip: peer_ip(&req),
            origin: origin(&req),
            header_user_agent: req
                .metadata()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            request: req.into_inner(),
        };
        Ok(Response::new(self.core.start_visitor_session(start).await?))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "SessionService/Login"))]
    async fn login(
        &self,
        req: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::LoginResponse>, Status> {
        let ip = peer_ip(&req);
        let r = req.into_inner();
        Ok(Response::new(
            self.core.login(&r.email, r.password, ip).await?,
        ))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "SessionService/Logout"))]
    async fn logout(
        &self,
        req: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        self.core.logout(&bearer(&req)?).await?;
        Ok(Response::new(v1::LogoutResponse {}))
    }

    #[tracing::instrument(
        name = "rpc",
        skip_all,
        fields(method = "SessionService/SetEmailAlerts", principal, principal_id)
    )]
    async fn set_email_alerts(
        &self,
        req: Request<v1::SetEmailAlertsRequest>,
    ) -> Result<Response<v1::SetEmailAlertsResponse>, Status> {
        let who = super::charged_caller(&self.core, &req).await?;
        let agent = self
            .core
            .set_email_alerts(&who.principal, req.get_ref().off)
            .await?;
        Ok(Response::new(v1::SetEmailAlertsResponse {
            agent: Some(agent),
        }))
    }
}
