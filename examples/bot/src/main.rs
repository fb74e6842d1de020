//! A FAQ bot for wsmschat over the bidirectional `ChatService.Chat` RPC, authenticated with an
//! API key (scope `chat`). It follows every conversation (inbox), greets each new visitor once,
//! answers questions about opening hours, asks for a photo when the visitor wants to send one
//! (or reports something broken), and steps aside when the visitor asks for a human (the
//! conversation stays queued for the next human agent).
//!
//! When a visitor's message carries images, the bot fetches each with `DownloadAttachment`,
//! answers "Thanks, I got <name> (<W>x<H>, <size>)" and sends back a small PNG of a check mark,
//! drawn here, encoded with the `image` crate and uploaded with `UploadAttachment`.
//!
//! ```sh
//! wsmschat api-key create --name faq-bot --scope chat      # prints the secret once
//! cargo run -p wsmschat-bot -- http://localhost:8080 wk_...  # or WSMSCHAT_API_KEY=wk_...
//! ```

use std::collections::HashSet;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::upload_attachment_request::Part;

const GREETING: &str = "Hi! I'm the shop's assistant. Ask me about our opening hours, or write \
                        \"human\" to talk to a person.";
const HOURS: &str = "We answer every day from 8:00 to 20:00 (CET). Outside those hours, leave \
                     a message and we reply first thing in the morning.";
const HANDOVER: &str = "Sure, I'm getting a human colleague for you. Please stay with us!";
const PHOTO: &str = "Sure, please send me a photo: attach it with the paperclip button next to \
                     the message field (PNG, JPEG, GIF or WebP).";
const DAMAGED: &str = "I'm sorry to hear that! Could you send me a photo of it? Attach it with \
                       the paperclip button next to the message field.";
/// The name of the picture the bot sends back for a photo.
const RECEIPT_NAME: &str = "received.png";
/// Bytes per `UploadAttachment` chunk (well under the server's 64 KiB frame limit).
const UPLOAD_CHUNK: usize = 8 * 1024;

/// What the bot says to a visitor message, if anything. `greeted` tells whether this
/// conversation has already been greeted; `with_image` whether the message carries an image
/// (then the bot does not ask for one: its thanks come from [`photo_thanks`]).
pub fn answer(text: &str, greeted: bool, with_image: bool) -> Vec<&'static str> {
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    let mut out = Vec::new();
    if has(&["human", "person", "agent", "someone real", "mensch"]) {
        out.push(HANDOVER);
        return out;
    }
    if !greeted {
        out.push(GREETING);
    }
    if has(&[
        "opening hours",
        "open",
        "hours",
        "when are you",
        "öffnungszeiten",
    ]) {
        out.push(HOURS);
    }
    if !with_image {
        if has(&[
            "photo",
            "picture",
            "screenshot",
            "pic of",
            "image of",
            "foto",
            "bild",
        ]) {
            out.push(PHOTO);
        } else if has(&[
            "broken",
            "damaged",
            "cracked",
            "defective",
            "kaputt",
            "beschädigt",
        ]) {
            out.push(DAMAGED);
        }
    }
    out
}

/// The images of a message the bot thanks for: raster images the server measured, still stored.
pub fn images(attachments: &[v1::Attachment]) -> Vec<&v1::Attachment> {
    attachments
        .iter()
        .filter(|a| a.content_type.starts_with("image/") && a.width > 0 && !a.deleted)
        .collect()
}

/// `1234` -> "1.2 KB", `512` -> "512 bytes" (binary units, one decimal).
pub fn human_size(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / KB),
        _ => format!("{:.1} MB", bytes as f64 / (KB * KB)),
    }
}

/// The bot's answer to received images: (name, width, height, bytes) of each.
pub fn photo_thanks(got: &[(String, u32, u32, u64)]) -> String {
    let list: Vec<String> = got
        .iter()
        .map(|(name, w, h, size)| format!("{name} ({w}x{h}, {})", human_size(*size)))
        .collect();
    format!(
        "Thanks, I got {}. A colleague will have a look at it.",
        list.join(" and ")
    )
}

// ----------------------------------------------------------------------------- the reply picture

/// A 64x64 PNG: a green disc with a white check mark, transparent around it.
pub fn check_mark_png() -> Vec<u8> {
    fn to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
    }
    let (a, b, c) = ((18.0, 33.0), (28.0, 43.0), (46.0, 22.0));
    let img = image::RgbaImage::from_fn(64, 64, |x, y| {
        let p = (x as f32 + 0.5, y as f32 + 0.5);
        image::Rgba(if (p.0 - 32.0).hypot(p.1 - 32.0) > 30.0 {
            [0, 0, 0, 0]
        } else if to_segment(p, a, b).min(to_segment(p, b, c)) <= 3.0 {
            [255, 255, 255, 255]
        } else {
            [46, 160, 67, 255]
        })
    });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    png.into_inner()
}

// ----------------------------------------------------------------------------- the photo flow

/// Puts the API key on every call.
#[derive(Clone)]
struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Client = ChatServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>,
>;

/// Downloads `a` and returns (name, width, height, bytes counted).
async fn fetch(client: &mut Client, a: &v1::Attachment) -> anyhow::Result<(String, u32, u32, u64)> {
    let mut parts = client
        .download_attachment(v1::DownloadAttachmentRequest {
            attachment_id: a.id.clone(),
            thumbnail: false,
        })
        .await?
        .into_inner();
    let mut meta = a.clone();
    let mut n = 0u64;
    while let Some(part) = parts.message().await? {
        if let Some(fresh) = part.attachment {
            meta = fresh;
        }
        n += part.chunk.len() as u64;
    }
    if n != meta.size {
        eprintln!(
            "wsmschat-bot: {} has {n} bytes, announced {}",
            meta.id, meta.size
        );
    }
    Ok((meta.name, meta.width, meta.height, n))
}

/// Uploads `bytes` as `name` for `conversation_id` in chunks; the new attachment's id.
async fn upload(
    client: &mut Client,
    conversation_id: &str,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<String> {
    let mut parts = vec![v1::UploadAttachmentRequest {
        part: Some(Part::Metadata(v1::UploadMetadata {
            name: name.into(),
            conversation_id: conversation_id.into(),
            size: bytes.len() as u64,
        })),
    }];
    parts.extend(
        bytes
            .chunks(UPLOAD_CHUNK)
            .map(|c| v1::UploadAttachmentRequest {
                part: Some(Part::Chunk(c.to_vec())),
            }),
    );
    let resp = client
        .upload_attachment(tokio_stream::iter(parts))
        .await?
        .into_inner();
    resp.attachment
        .map(|a| a.id)
        .context("UploadAttachment answered without an attachment")
}

/// Thanks for the images of message `m`, with the check mark attached.
async fn answer_photos(
    mut client: Client,
    tx: mpsc::Sender<v1::ChatRequest>,
    m: v1::Message,
) -> anyhow::Result<()> {
    let mut got = Vec::new();
    for a in images(&m.attachments) {
        got.push(
            fetch(&mut client, a)
                .await
                .with_context(|| format!("downloading {}", a.id))?,
        );
    }
    let receipt = upload(
        &mut client,
        &m.conversation_id,
        RECEIPT_NAME,
        &check_mark_png(),
    )
    .await
    .context("uploading the check mark")?;
    let event = v1::ClientEvent {
        request_id: format!("bot-photo-{}-{}", m.conversation_id, m.seq),
        event: Some(Ce::SendMessage(v1::SendMessage {
            conversation_id: m.conversation_id.clone(),
            client_msg_id: format!("bot-{}-{}-photo", m.conversation_id, m.seq),
            text: photo_thanks(&got),
            attachment_ids: vec![receipt],
            ..Default::default()
        })),
    };
    tx.send(v1::ChatRequest {
        subscribe: None,
        event: Some(event),
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .or_else(|| std::env::var("WSMSCHAT_SERVER").ok())
        .unwrap_or_else(|| "http://localhost:8080".into());
    let key = args
        .next()
        .or_else(|| std::env::var("WSMSCHAT_API_KEY").ok())
        .context("usage: wsmschat-bot SERVER_URL API_KEY (or WSMSCHAT_API_KEY)")?;
    let auth: MetadataValue<_> = format!("Bearer {key}").parse()?;
    let channel = tonic::transport::Endpoint::from_shared(server.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    let mut client: Client = ChatServiceClient::with_interceptor(channel, Auth(auth));

    let (tx, rx) = mpsc::channel::<v1::ChatRequest>(64);
    tx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: vec![],
            inbox: true,
        }),
        event: None,
    })
    .await?;
    let mut events = client.chat(ReceiverStream::new(rx)).await?.into_inner();
    let mut greeted: HashSet<String> = HashSet::new();
    let mut handed_over: HashSet<String> = HashSet::new();
    let mut n = 0u64;
    eprintln!("wsmschat-bot: connected to {server}");
    while let Some(item) = events.next().await {
        let Some(ev) = item?.event.and_then(|e| e.event) else {
            continue;
        };
        match ev {
            Se::Message(m)
                if m.author_kind == v1::AuthorKind::Visitor as i32
                    && !handed_over.contains(&m.conversation_id) =>
            {
                let with_image = !images(&m.attachments).is_empty();
                let replies = answer(&m.text, greeted.contains(&m.conversation_id), with_image);
                greeted.insert(m.conversation_id.clone());
                for (i, reply) in replies.into_iter().enumerate() {
                    if reply == HANDOVER {
                        handed_over.insert(m.conversation_id.clone());
                    }
                    n += 1;
                    let event = v1::ClientEvent {
                        request_id: format!("bot-{n}"),
                        event: Some(Ce::SendMessage(v1::SendMessage {
                            conversation_id: m.conversation_id.clone(),
                            // Idempotent per visitor message: a restarted bot cannot answer twice.
                            client_msg_id: format!("bot-{}-{}-{i}", m.conversation_id, m.seq),
                            text: reply.into(),
                            ..Default::default()
                        })),
                    };
                    tx.send(v1::ChatRequest {
                        subscribe: None,
                        event: Some(event),
                    })
                    .await?;
                }
                if with_image && !handed_over.contains(&m.conversation_id) {
                    // Off the event loop: the stream keeps being read while the files move.
                    let (client, tx) = (client.clone(), tx.clone());
                    tokio::spawn(async move {
                        let at = format!("{} seq {}", m.conversation_id, m.seq);
                        if let Err(e) = answer_photos(client, tx, m).await {
                            eprintln!("wsmschat-bot: the photo of {at}: {e:#}");
                        }
                    });
                }
            }
            Se::Message(m) if m.author_kind == v1::AuthorKind::Agent as i32 => {
                // A human took over: the bot keeps quiet in this conversation.
                handed_over.insert(m.conversation_id);
            }
            Se::Error(e) => eprintln!("wsmschat-bot: refused: {} ({})", e.message, e.code),
            Se::ResyncRequired(r) => anyhow::bail!("resync required: {}", r.reason),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_once_answers_hours_and_hands_over() {
        assert_eq!(answer("hello", false, false), vec![GREETING]);
        assert_eq!(
            answer("what are your opening hours?", false, false),
            vec![GREETING, HOURS]
        );
        assert_eq!(answer("Opening hours?", true, false), vec![HOURS]);
        assert!(answer("thanks", true, false).is_empty());
        assert_eq!(
            answer("I want a human please", false, false),
            vec![HANDOVER]
        );
    }

    #[test]
    fn asks_for_a_photo_unless_one_came() {
        assert_eq!(
            answer("Can I send you a photo?", false, false),
            vec![GREETING, PHOTO]
        );
        assert_eq!(
            answer("how do I upload a picture", true, false),
            vec![PHOTO]
        );
        assert_eq!(answer("The mug arrived broken", true, false), vec![DAMAGED]);
        // The photo is there: no request for one, whatever the caption says.
        assert!(answer("here is a photo, it's broken", true, true).is_empty());
        assert_eq!(answer("", false, true), vec![GREETING]);
        // A human still wins.
        assert_eq!(
            answer("a human, or do you want a photo?", true, false),
            vec![HANDOVER]
        );
    }

    fn attachment(content_type: &str, width: u32, deleted: bool) -> v1::Attachment {
        v1::Attachment {
            id: "f_1".into(),
            name: "x".into(),
            content_type: content_type.into(),
            width,
            height: width,
            deleted,
            ..Default::default()
        }
    }

    #[test]
    fn thanks_for_measured_raster_images_only() {
        let files = [
            attachment("image/png", 64, false),
            attachment("application/pdf", 0, false),
            attachment("image/svg+xml", 0, false),
            attachment("image/jpeg", 10, true),
        ];
        let got = images(&files);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].content_type, "image/png");
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(4147), "4.0 KB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MB");
        assert_eq!(
            photo_thanks(&[("a b.png".into(), 64, 32, 4147)]),
            "Thanks, I got a b.png (64x32, 4.0 KB). A colleague will have a look at it."
        );
        assert_eq!(
            photo_thanks(&[("a.png".into(), 1, 2, 3), ("b.jpg".into(), 4, 5, 2048)]),
            "Thanks, I got a.png (1x2, 3 bytes) and b.jpg (4x5, 2.0 KB). A colleague will have a \
             look at it."
        );
    }

    #[test]
    fn check_mark_is_a_small_png() {
        let png = check_mark_png();
        assert!(png.len() < 20 * 1024);
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .unwrap()
            .to_rgba8();
        assert_eq!(img.dimensions(), (64, 64));
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0, 0]); // the corner is transparent
        assert_eq!(img.get_pixel(28, 42).0, [255, 255, 255, 255]); // on the check mark
        assert_eq!(img.get_pixel(32, 55).0, [46, 160, 67, 255]); // the disc
    }
}
