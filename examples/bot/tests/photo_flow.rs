//! The bot's "send me a photo" flow end to end: a real server on a loopback port, the bot
//! binary with a `chat`-scope API key, and a visitor over gRPC who asks, uploads a PNG and
//! sends it. The bot downloads the file, names its size and dimensions, and answers with a
//! picture of its own that the visitor downloads.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::transport::Channel;
use wsmschat::v1;
use wsmschat::v1::admin_service_client::AdminServiceClient;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::session_service_client::SessionServiceClient;
use wsmschat::v1::upload_attachment_request::Part;
use wsmschat_server::demo::DemoOptions;
use wsmschat_server::{Config, Database};

const ADMIN_PASSWORD: &str = "admin-password-1";

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

fn send(conversation: &str, id: &str, text: &str, files: &[String]) -> v1::PublishRequest {
    v1::PublishRequest {
        event: Some(v1::ClientEvent {
            request_id: id.into(),
            event: Some(Ce::SendMessage(v1::SendMessage {
                conversation_id: conversation.into(),
                topic: if conversation.is_empty() {
                    "Delivery".into()
                } else {
                    String::new()
                },
                client_msg_id: id.into(),
                text: text.into(),
                attachment_ids: files.to_vec(),
                ..Default::default()
            })),
        }),
    }
}

fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls the conversation until a service message satisfies `f`.
async fn bot_message(
    chat: &mut ChatServiceClient<Channel>,
    token: &str,
    conversation: &str,
    f: impl Fn(&v1::Message) -> bool,
) -> v1::Message {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = chat
            .get_history(authed(
                token,
                v1::GetHistoryRequest {
                    conversation_id: conversation.into(),
                    before_seq: 0,
                    limit: 100,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .messages;
        if let Some(m) = history
            .into_iter()
            .find(|m| m.author_kind == v1::AuthorKind::Service as i32 && f(m))
        {
            return m;
        }
        assert!(Instant::now() < deadline, "the bot did not answer in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_bot_asks_for_a_photo_and_answers_the_one_it_gets() {
    let dir = tempfile::tempdir().unwrap();
    let running = wsmschat_server::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: Database::Sqlite(dir.path().join("wsmschat.db")),
        core: Default::default(),
        static_dirs: Default::default(),
        demo: Some(DemoOptions {
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..Default::default()
        }),
        redis_url: None,
        redis_namespace: String::new(),
        net: Default::default(),
    })
    .await
    .unwrap();
    let url = format!("http://{}", running.addr);
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sessions = SessionServiceClient::new(channel.clone());
    let admin = sessions
        .login(v1::LoginRequest {
            email: "admin@example.com".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let key = AdminServiceClient::new(channel.clone())
        .create_api_key(authed(
            &admin,
            v1::CreateApiKeyRequest {
                name: "faq-bot".into(),
                scopes: vec![v1::ApiKeyScope::Chat as i32],
                site_ids: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsmschat-bot"))
        .args([&url, &key])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bot says when its stream is open; its later lines (errors) go to the test's stderr.
    let stderr = child.stderr.take().unwrap();
    let _bot = Bot(child);
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            if line.contains("connected to") {
                let _ = up_tx.send(());
            }
        }
    });
    tokio::task::spawn_blocking(move || up_rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the bot connected");
    let visitor = sessions
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "Vic".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .visitor_token;
    let mut chat = ChatServiceClient::new(channel);
    // Its subscription is registered right after its stream opens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let conv = chat
        .publish(authed(
            &visitor,
            send("", "v-1", "My parcel arrived damaged", &[]),
        ))
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap()
        .conversation_id;
    let ask = bot_message(&mut chat, &visitor, &conv, |m| m.text.contains("photo")).await;
    assert!(ask.attachments.is_empty(), "{ask:?}");

    let bytes = photo(120, 80);
    let parts = vec![
        v1::UploadAttachmentRequest {
            part: Some(Part::Metadata(v1::UploadMetadata {
                name: "parcel.png".into(),
                conversation_id: String::new(),
                size: bytes.len() as u64,
            })),
        },
        v1::UploadAttachmentRequest {
            part: Some(Part::Chunk(bytes.clone())),
        },
    ];
    let upload = chat
        .upload_attachment(authed(&visitor, tokio_stream::iter(parts)))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap();
    chat.publish(authed(&visitor, send(&conv, "v-2", "here", &[upload.id])))
        .await
        .unwrap();

    let thanks = bot_message(&mut chat, &visitor, &conv, |m| !m.attachments.is_empty()).await;
    assert!(
        thanks
            .text
            .starts_with("Thanks, I got parcel.png (120x80, "),
        "{}",
        thanks.text
    );
    let receipt = &thanks.attachments[0];
    assert_eq!(
        (receipt.name.as_str(), receipt.content_type.as_str()),
        ("received.png", "image/png")
    );
    assert_eq!((receipt.width, receipt.height), (64, 64));
    // The visitor downloads the bot's picture over the same API and it is a real PNG.
    let mut parts = chat
        .download_attachment(authed(
            &visitor,
            v1::DownloadAttachmentRequest {
                attachment_id: receipt.id.clone(),
                thumbnail: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(p) = parts.message().await.unwrap() {
        got.extend_from_slice(&p.chunk);
    }
    assert_eq!(got.len() as u64, receipt.size);
    let img = image::load_from_memory(&got).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    // Exactly one thanks, even though the bot saw the message live (no double answer).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = chat
        .get_history(authed(
            &visitor,
            v1::GetHistoryRequest {
                conversation_id: conv.clone(),
                before_seq: 0,
                limit: 100,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .messages;
    let with_files = history
        .iter()
        .filter(|m| m.author_kind == v1::AuthorKind::Service as i32 && !m.attachments.is_empty())
        .count();
    assert_eq!(with_files, 1);
    running.stop().await.unwrap();
}
