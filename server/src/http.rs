//! The one HTTP application: gRPC and gRPC-web services, health, metrics and static files,
//! behind CORS. Built by one function ([`app`]) so tests run exactly what production runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tonic::service::Routes;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use wsmschat::limits::MAX_DECODE_BYTES;
use wsmschat::v1;

use crate::core::Core;
use crate::rpc::{admin::AdminApi, chat::ChatApi, session::SessionApi};

/// Where the static web apps live (built widget and console), if served by this server.
#[derive(Debug, Clone, Default)]
pub struct StaticDirs {
    /// Served at `/widget/` (and `/widget.js` from it).
    pub widget: Option<PathBuf>,
    /// Served at `/console/`.
    pub console: Option<PathBuf>,
    /// Served at `/demo/` (a demo page embedding the widget).
    pub demo: Option<PathBuf>,
}

/// The whole application.
pub fn app(core: Arc<Core>, dirs: StaticDirs) -> Router {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // The chat service is healthy as long as the process serves; readiness is /readyz.
    tokio::spawn(async move {
        health_reporter
            .set_serving::<v1::chat_service_server::ChatServiceServer<ChatApi>>()
            .await;
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let chat = v1::chat_service_server::ChatServiceServer::new(ChatApi { core: core.clone() })
        .max_decoding_message_size(MAX_DECODE_BYTES);
    let session =
        v1::session_service_server::SessionServiceServer::new(SessionApi { core: core.clone() })
            .max_decoding_message_size(MAX_DECODE_BYTES);
    let admin = v1::admin_service_server::AdminServiceServer::new(AdminApi { core: core.clone() })
        .max_decoding_message_size(MAX_DECODE_BYTES);
    let grpc = Routes::new(chat)
        .add_service(session)
        .add_service(admin)
        .add_service(health)
        .add_service(reflection)
        .prepare()
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());

    let mut router = Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(core.clone())
        .fallback_service(grpc_or_not_found(grpc));
    if let Some(dir) = dirs.widget {
        router = router
            .route_service(
                "/widget.js",
                tower_http::services::ServeFile::new(dir.join("widget.js")),
            )
            .nest_service("/widget", ServeDir::new(dir));
    }
    if let Some(dir) = dirs.console {
        router = router.nest_service(
            "/console",
            ServeDir::new(dir).append_index_html_on_directories(true),
        );
    }
    if let Some(dir) = dirs.demo {
        router = router.nest_service(
            "/demo",
            ServeDir::new(dir).append_index_html_on_directories(true),
        );
    }
    router.layer(cors(core))
}

/// gRPC and gRPC-web calls go to the services; any other request for an unknown path gets a
/// plain 404 (not the 400 the gRPC-web layer gives a non-gRPC request).
fn grpc_or_not_found(
    grpc: Router,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: axum::extract::Request| {
        let grpc = grpc.clone();
        async move {
            let is_grpc = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/grpc"));
            if is_grpc {
                tower::ServiceExt::oneshot(grpc, req).await
            } else {
                Ok((StatusCode::NOT_FOUND, "not found\n").into_response())
            }
        }
    })
}

/// CORS for browsers on other origins: any site's allowed origin (or an extra one) may call;
/// the grpc-* headers are exposed, or every error would reach the browser as "malformed".
fn cors(core: Arc<Core>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .map(|o| core.cors_origin_allowed(o))
                .unwrap_or(false)
        }))
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(86_400))
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

async fn readyz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    if let Err(error) = core.store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {error}\n"),
        );
    }
    if let Some(bus) = core.bus.get() {
        if let Err(error) = bus.ping().await {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {error}\n"));
        }
    }
    (StatusCode::OK, "ready\n".to_string())
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        core.metrics.render(),
    )
}
