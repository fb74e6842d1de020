//! Join (an agent takes a conversation), assign and transfer (staff hand it to an agent).

use std::sync::Arc;

use wsmschat::v1;

use crate::auth::Principal;
use crate::core::Core;
use crate::error::CoreResult;

impl Core {
    pub(super) async fn join(
        self: &Arc<Self>,
        principal: &Principal,
        j: v1::JoinConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let agent = Self::require_agent(principal)?;
        let c = self
            .visible_conversation(principal, &j.conversation_id)
            .await?;
        self.assign_to(&c, &agent.id, v1::SystemEventKind::Joined)
            .await?;
        ack.conversation_id = c.id;
        Ok(())
    }

    pub(super) async fn assign(
        self: &Arc<Self>,
        principal: &Principal,
        a: v1::AssignConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let c = self
            .staff_conversation(principal, &a.conversation_id)
            .await?;
        let kind = if c.assignee_id.is_empty() {
            v1::SystemEventKind::Assigned
        } else {
            v1::SystemEventKind::Transferred
        };
        self.assign_to(&c, &a.agent_id, kind).await?;
        ack.conversation_id = c.id;
        Ok(())
    }
}
