//! A FAQ bot for wsmschat over the bidirectional `ChatService.Chat` RPC, authenticated with an
//! API key (scope `chat`). It follows every conversation (inbox), greets each new visitor once,
//! answers questions about opening hours, and steps aside when the visitor asks for a human
//! (the conversation stays queued for the next human agent).
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

const GREETING: &str = "Hi! I'm the shop's assistant. Ask me about our opening hours, or write \
                        \"human\" to talk to a person.";
const HOURS: &str = "We answer every day from 8:00 to 20:00 (CET). Outside those hours, leave \
                     a message and we reply first thing in the morning.";
const HANDOVER: &str = "Sure, I'm getting a human colleague for you. Please stay with us!";

/// What the bot says to a visitor message, if anything. `greeted` tells whether this
/// conversation has already been greeted.
pub fn answer(text: &str, greeted: bool) -> Vec<&'static str> {
    let t = text.to_lowercase();
    let mut out = Vec::new();
    if ["human", "person", "agent", "someone real", "mensch"]
        .iter()
        .any(|w| t.contains(w))
    {
        out.push(HANDOVER);
        return out;
    }
    if !greeted {
        out.push(GREETING);
    }
    if [
        "opening hours",
        "open",
        "hours",
        "when are you",
        "öffnungszeiten",
    ]
    .iter()
    .any(|w| t.contains(w))
    {
        out.push(HOURS);
    }
    out
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
    let mut client =
        ChatServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", auth.clone());
            Ok(req)
        });

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
                let replies = answer(&m.text, greeted.contains(&m.conversation_id));
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
        assert_eq!(answer("hello", false), vec![GREETING]);
        assert_eq!(
            answer("what are your opening hours?", false),
            vec![GREETING, HOURS]
        );
        assert_eq!(answer("Opening hours?", true), vec![HOURS]);
        assert!(answer("thanks", true).is_empty());
        assert_eq!(answer("I want a human please", false), vec![HANDOVER]);
    }
}
