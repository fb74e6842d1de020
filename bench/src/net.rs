//! Connections to the server: native HTTP/2 channels (tonic) and raw gRPC-web over HTTP/1.1
//! (hyper), both from a chosen loopback source address so that tens of thousands of sockets do
//! not exhaust the ephemeral ports of one address pair.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::{TcpSocket, TcpStream};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

/// Origin sent by the gRPC-web client, as a browser on a demo-site page would (the demo site
/// allows `http://localhost:*`).
pub const WEB_ORIGIN: &str = "http://localhost:5173";

/// The `i`-th source address when spreading over `n` loopback addresses (127.0.0.2 ...);
/// None: let the kernel choose (127.0.0.1).
pub fn source_ip(i: usize, n: usize) -> Option<IpAddr> {
    if n == 0 {
        None
    } else {
        Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            2 + (i % n.min(250)) as u8,
        )))
    }
}

/// The server's address from an `http://127.0.0.1:PORT` URL; only loopback is accepted.
pub fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: Uri = url.parse().context("bad --url")?;
    let host = uri.host().ok_or_else(|| anyhow!("--url has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .context("--url host must be a loopback IP or localhost")?
    };
    if !ip.is_loopback() {
        bail!("only loopback servers may be load-tested (got {ip})");
    }
    Ok(SocketAddr::new(ip, uri.port_u16().unwrap_or(80)))
}

pub async fn tcp_connect(addr: SocketAddr, src: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let (Some(ip), true) = (src, addr.is_ipv4()) {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One HTTP/2 connection (a tonic channel) from `src`.
pub async fn native_channel(addr: SocketAddr, src: Option<IpAddr>) -> anyhow::Result<Channel> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?
        .initial_connection_window_size(8 * 1024 * 1024)
        .initial_stream_window_size(1024 * 1024);
    let ch = ep
        .connect_with_connector(tower::service_fn(move |_: Uri| async move {
            tcp_connect(addr, src).await.map(TokioIo::new)
        }))
        .await?;
    Ok(ch)
}

pub fn bearer(token: &str) -> MetadataValue<tonic::metadata::Ascii> {
    format!("Bearer {token}").parse().expect("tokens are ASCII")
}

/// A gRPC-web error: grpc-status code and message (or a transport failure as code -1).
#[derive(Debug)]
pub struct WebError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grpc-status {}: {}", self.code, self.message)
    }
}

fn transport_err(e: impl std::fmt::Display) -> WebError {
    WebError {
        code: -1,
        message: e.to_string(),
    }
}

/// One HTTP/1.1 connection speaking gRPC-web (`application/grpc-web+proto`), as a browser does
/// on plain http://. One call at a time.
pub struct WebConn {
    tx: http1::SendRequest<Full<Bytes>>,
    host: String,
}

pub fn web_frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut out).expect("capacity reserved");
    out.freeze()
}

impl WebConn {
    pub async fn connect(addr: SocketAddr, src: Option<IpAddr>) -> anyhow::Result<Self> {
        let s = tcp_connect(addr, src).await?;
        let (tx, conn) = http1::handshake(TokioIo::new(s)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            tx,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        path: &str,
        token: &str,
        msg: &impl Message,
    ) -> Result<http::Response<Incoming>, WebError> {
        let req = http::Request::post(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header(http::header::ORIGIN, WEB_ORIGIN)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(web_frame(msg)))
            .map_err(transport_err)?;
        self.tx.ready().await.map_err(transport_err)?;
        let resp = self.tx.send_request(req).await.map_err(transport_err)?;
        if resp.status() != http::StatusCode::OK {
            return Err(WebError {
                code: -1,
                message: format!("HTTP {}", resp.status()),
            });
        }
        // Trailers-only response: the status is in the headers.
        if let Some(code) = resp.headers().get("grpc-status") {
            let code: i32 = code.to_str().unwrap_or("2").parse().unwrap_or(2);
            if code != 0 {
                let message = resp
                    .headers()
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                return Err(WebError { code, message });
            }
        }
        Ok(resp)
    }

    /// A unary call: the one response message.
    pub async fn unary<R: Message + Default>(
        &mut self,
        path: &str,
        token: &str,
        msg: &impl Message,
    ) -> Result<R, WebError> {
        let resp = self.send(path, token, msg).await?;
        let mut frames = WebStream::new(resp.into_body());
        let mut out = None;
        while let Some(f) = frames.next().await {
            match f? {
                WebFrame::Data(d) => out = Some(R::decode(d).map_err(transport_err)?),
                WebFrame::Trailers(t) => check_trailers(&t)?,
            }
        }
        out.ok_or_else(|| transport_err("no response message"))
    }

    /// A server-streaming call: the response body, read frame by frame.
    pub async fn server_stream(
        &mut self,
        path: &str,
        token: &str,
        msg: &impl Message,
    ) -> Result<WebStream, WebError> {
        let resp = self.send(path, token, msg).await?;
        Ok(WebStream::new(resp.into_body()))
    }
}

fn check_trailers(t: &str) -> Result<(), WebError> {
    let mut code = 2;
    let mut message = String::new();
    for line in t.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "grpc-status" => code = v.trim().parse().unwrap_or(2),
                "grpc-message" => message = v.trim().to_owned(),
                _ => {}
            }
        }
    }
    if code == 0 {
        Ok(())
    } else {
        Err(WebError { code, message })
    }
}

pub enum WebFrame {
    Data(Bytes),
    Trailers(String),
}

/// A gRPC-web response body split into frames as it arrives.
pub struct WebStream {
    body: Incoming,
    buf: BytesMut,
}

impl WebStream {
    fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
        }
    }

    fn parse(&mut self) -> Option<WebFrame> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let flag = self.buf[0];
        self.buf.advance(5);
        let payload = self.buf.split_to(len).freeze();
        Some(if flag & 0x80 != 0 {
            WebFrame::Trailers(String::from_utf8_lossy(&payload).into_owned())
        } else {
            WebFrame::Data(payload)
        })
    }

    /// The next frame; None at the end of the body.
    pub async fn next(&mut self) -> Option<Result<WebFrame, WebError>> {
        loop {
            if let Some(f) = self.parse() {
                return Some(Ok(f));
            }
            match self.body.frame().await {
                None => {
                    return if self.buf.is_empty() {
                        None
                    } else {
                        Some(Err(transport_err("truncated gRPC-web frame")))
                    };
                }
                Some(Err(e)) => return Some(Err(transport_err(e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.is_empty() && data.len() >= 5 {
                            self.buf = BytesMut::from(&data[..]);
                        } else {
                            self.buf.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }

    /// The next message decoded as `R`; Err at the end or on an error trailer.
    pub async fn message<R: Message + Default>(&mut self) -> Result<Option<R>, WebError> {
        match self.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(WebFrame::Trailers(t))) => {
                check_trailers(&t)?;
                Ok(None)
            }
            Some(Ok(WebFrame::Data(d))) => R::decode(d).map(Some).map_err(transport_err),
        }
    }
}
