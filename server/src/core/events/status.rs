//! Resolve and reopen: ordered events in the conversation's seq log (a system message each).

use std::sync::Arc;

use wsmschat::v1;

use crate::auth::Principal;
use crate::core::Core;
use crate::error::CoreResult;

impl Core {
    pub(super) async fn resolve(
        self: &Arc<Self>,
        principal: &Principal,
        r: v1::ResolveConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let c = self
            .staff_conversation(principal, &r.conversation_id)
            .await?;
        let changed = self.store.resolve(c.id.clone()).await?;
        self.after_change(changed).await;
        ack.conversation_id = c.id;
        Ok(())
    }

    pub(super) async fn reopen(
        self: &Arc<Self>,
        principal: &Principal,
        r: v1::ReopenConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let c = self
            .staff_conversation(principal, &r.conversation_id)
            .await?;
        let changed = self.store.reopen(c.id.clone()).await?;
        let (topic, site_id) = (
            changed.conversation.topic.clone(),
            changed.conversation.site_id.clone(),
        );
        self.after_change(changed).await;
        self.drain_arrival(&topic, &site_id);
        ack.conversation_id = c.id;
        Ok(())
    }
}
