//! The one HTTP application: gRPC and gRPC-web services, health, metrics and static files,
//! behind CORS. Built by one function ([`app`]) so tests run exactly what production runs.

pub mod assets;
pub mod email;
pub mod files;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use tonic::service::Routes;
use tower_http::cors::{AllowOrigin, CorsLayer};
use wsmschat::limits::MAX_DECODE_BYTES;
use wsmschat::v1;

pub use self::assets::Source;
use crate::core::{Core, Readiness};
use crate::rpc::{admin::AdminApi, chat::ChatApi, session::SessionApi};

/// Where the static web apps come from (built widget, SDK, console, demo), if served at all.
#[derive(Debug, Clone, Default)]
pub struct StaticDirs {
    /// Served at `/widget/` (and `/widget.js` from it).
    pub widget: Option<Source>,
    /// Served at `/console/`.
    pub console: Option<Source>,
    /// The full browser SDK (agent calls), served at `/sdk/`.
    pub sdk: Option<Source>,
    /// The demo page embedding the widget, served on its own listener (`demo_port`).
    pub demo: Option<Source>,
    /// Where the demo listener binds (port 0: any free port); None: no demo page.
    pub demo_listen: Option<std::net::SocketAddr>,
    /// Port of the demo listener once bound (`/demo/` on the chat port redirects there); 0: none.
    pub demo_port: u16,
}

/// The whole application.
pub fn app(core: Arc<Core>, dirs: StaticDirs, net: &crate::server::NetConfig) -> Router {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // The chat service is healthy as long as the process serves; readiness is /readyz.
    tokio::spawn(async move {
        health_reporter
            .set_serving::<v1::chat_service_server::ChatServiceServer<ChatApi>>()
            .await;
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let descriptors_valid = "the embedded descriptor set is valid";
    let reflection_v1 = reflection().build_v1().expect(descriptors_valid);
    // Python's grpcio-reflection, Postman and older grpcurl speak only v1alpha.
    let reflection_alpha = reflection().build_v1alpha().expect(descriptors_valid);
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
        .add_service(reflection_v1)
        .add_service(reflection_alpha)
        .prepare()
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());

    let mut router = Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ctx {
            core: core.clone(),
            metrics_token: net.metrics_token.clone().map(Arc::from),
        })
        .merge(
            Router::new()
                .route("/uploads", post(files::upload))
                .route("/files/{id}/{variant}", get(files::download))
                .route(
                    "/email/unsubscribe",
                    get(email::unsubscribe_page).post(email::unsubscribe),
                )
                .with_state(core.clone()),
        )
        .fallback_service(grpc_or_not_found(grpc));
    if let Some(src) = dirs.widget {
        // Embedded by other sites: no framing rules, but never sniffed as another type.
        let widget = Router::new()
            .route_service("/widget.js", assets::service("widget", src.clone(), false))
            .nest_service("/widget", assets::service("widget", src, false))
            .layer(axum::middleware::map_response(widget_headers))
            .layer(axum::middleware::from_fn(assets::caching));
        router = router.merge(widget);
    }
    if let Some(src) = dirs.sdk {
        // The full SDK, imported by the console (and by pages that build their own UI), also
        // cross-origin: the same headers as the widget's files.
        let sdk = Router::new()
            .nest_service("/sdk", assets::service("sdk", src, false))
            .layer(axum::middleware::map_response(widget_headers))
            .layer(axum::middleware::from_fn(assets::caching));
        router = router.merge(sdk);
    }
    if let Some(src) = dirs.console {
        let console = Router::new()
            .nest_service("/console", assets::service("console", src, true))
            .layer(axum::middleware::map_response(app_headers))
            .layer(axum::middleware::from_fn(assets::caching));
        router = router.merge(console);
    }
    if dirs.demo.is_some() {
        // The demo lives on its own listener (another origin than the console's stored session,
        // security review F1); old links to /demo/ are sent there.
        let port = dirs.demo_port;
        router = router
            .route("/demo", get(move |h: HeaderMap| demo_redirect(h, port)))
            .route("/demo/", get(move |h: HeaderMap| demo_redirect(h, port)))
            .route(
                "/demo/{*rest}",
                get(move |h: HeaderMap| demo_redirect(h, port)),
            );
    }
    router = router.layer(axum::middleware::map_response(base_headers));
    if net.hsts {
        router = router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router.layer(cors(core))
}

/// State of the plain HTTP routes.
#[derive(Clone)]
struct Ctx {
    core: Arc<Core>,
    metrics_token: Option<Arc<str>>,
}

/// The demo page's own app: the example shop on a separate port (a third-party origin, as on a
/// real customer's site), with a generated `config.js` naming this chat server.
pub fn demo_app(src: Source, chat_port: u16) -> Router {
    let config = format!(
        "// Generated by wsmschat serve: the chat server is this host's port {chat_port}.\n\
         window.WSMSCHAT_DEMO = {{ server: location.protocol + '//' + location.hostname + ':{chat_port}', site: 'demo' }};\n"
    );
    Router::new()
        .route(
            "/config.js",
            get(move || {
                let config = config.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        config,
                    )
                }
            }),
        )
        .fallback_service(assets::service("demo", src, true))
        .layer(axum::middleware::map_response(base_headers))
        .layer(axum::middleware::from_fn(assets::caching))
}

/// `/demo/` on the chat port: a redirect to the demo listener on the same host name.
async fn demo_redirect(headers: HeaderMap, port: u16) -> axum::response::Response {
    if port == 0 {
        return (StatusCode::NOT_FOUND, "the demo page is not served\n").into_response();
    }
    // The host the browser used (no port): only letters, digits, dots, dashes and IPv6 brackets,
    // so the Location header cannot be steered anywhere but this host.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            Some((name, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
                name
            }
            _ => h,
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        })
        .unwrap_or("localhost");
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("http://{host}:{port}/"))],
    )
        .into_response()
}

/// Headers on every response: no MIME sniffing, no referrer beyond the origin.
async fn base_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    res
}

/// The chat server's own pages (console, index): code from this origin only, never framed, a
/// browsing-context group of their own (a same-origin opener cannot reach into them).
const APP_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    media-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

async fn app_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(APP_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn widget_headers(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    res
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

async fn index() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(include_str!("../index.html")),
    )
}

/// Ready while the store answers. Redis being down degrades cross-node delivery but is no
/// reason for a balancer to drop every node at once, so it is reported, not failed on. Bodies
/// are terse; the causes go to the log.
async fn readyz(State(ctx): State<Ctx>) -> impl IntoResponse {
    match ctx.core.readiness().await {
        Readiness::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
        Readiness::Degraded => (StatusCode::OK, "ready (degraded: redis unavailable)\n"),
        Readiness::Ready => (StatusCode::OK, "ready\n"),
    }
}

async fn metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> axum::response::Response {
    if let Some(token) = &ctx.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        use subtle::ConstantTimeEq;
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need a bearer token\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.core.metrics.render(),
    )
        .into_response()
}
