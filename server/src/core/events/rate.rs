//! The visitor's rating of a conversation (1 to 5, with an optional comment).

use std::sync::Arc;

use wsmschat::v1;

use crate::auth::Principal;
use crate::core::Core;
use crate::error::{CoreError, CoreResult};

impl Core {
    pub(super) async fn rate(
        self: &Arc<Self>,
        principal: &Principal,
        r: v1::RateConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let Principal::Visitor { .. } = principal else {
            return Err(CoreError::PermissionDenied(
                "only the visitor may rate".into(),
            ));
        };
        if !(1..=5).contains(&r.score) {
            return Err(CoreError::InvalidArgument("score must be 1 to 5".into()));
        }
        self.check_text(&r.comment, true)?;
        let c = self
            .visible_conversation(principal, &r.conversation_id)
            .await?;
        let changed = self.store.rate(c.id.clone(), r.score, r.comment).await?;
        self.announce(changed.conversation);
        ack.conversation_id = c.id;
        Ok(())
    }
}
