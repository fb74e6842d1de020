//! Typing indicators: ephemeral, never stored, delivered to the conversation's followers.

use std::sync::Arc;

use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use crate::auth::Principal;
use crate::core::hub::Route;
use crate::core::{Core, event};
use crate::error::CoreResult;

impl Core {
    pub(super) async fn typing(
        self: &Arc<Self>,
        principal: &Principal,
        t: v1::Typing,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let c = self
            .visible_conversation(principal, &t.conversation_id)
            .await?;
        let (author_kind, author_id, author_name) = principal.author();
        self.hub.deliver(
            Route {
                conversation_id: &c.id,
                visitor_id: &c.visitor_id,
                // A visitor's own typing is not echoed to their other tabs.
                staff_only: author_kind == v1::AuthorKind::Visitor,
            },
            event(Se::Typing(v1::TypingChanged {
                conversation_id: c.id.clone(),
                author_kind: author_kind as i32,
                author_id,
                author_name,
                on: t.on,
            })),
        );
        ack.conversation_id = c.id;
        Ok(())
    }
}
