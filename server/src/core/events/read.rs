//! Read marks: how far the visitor (or the staff side) has read, stored and announced.

use std::sync::Arc;

use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use crate::auth::Principal;
use crate::core::hub::Route;
use crate::core::{Core, event};
use crate::error::CoreResult;

impl Core {
    pub(super) async fn mark_read(
        self: &Arc<Self>,
        principal: &Principal,
        r: v1::MarkRead,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let c = self
            .visible_conversation(principal, &r.conversation_id)
            .await?;
        let by_visitor = matches!(principal, Principal::Visitor { .. });
        let after = self
            .store
            .mark_read(c.id.clone(), by_visitor, r.seq)
            .await?;
        let seq = if by_visitor {
            after.visitor_read_seq
        } else {
            after.agent_read_seq
        };
        self.hub.deliver(
            Route {
                conversation_id: &c.id,
                visitor_id: &c.visitor_id,
                staff_only: false,
            },
            event(Se::Read(v1::ReadChanged {
                conversation_id: c.id.clone(),
                reader_kind: if by_visitor {
                    v1::AuthorKind::Visitor
                } else {
                    v1::AuthorKind::Agent
                } as i32,
                seq,
            })),
        );
        ack.conversation_id = c.id;
        ack.seq = seq;
        Ok(())
    }
}
