//! Labels (issue #15, context for agents): admins define them per site (name, colour); staff
//! add and remove them on conversations (a `LabelConversation` event: followers get the new
//! snapshot); the inbox filters by label and the site report counts by label. Snoozing (staff put an open conversation aside until a
//! time or the customer's next message) lives here too: like labels, a snapshot change only.

use std::sync::Arc;

use wsmschat::v1;

use super::access::AdminGrant;
use super::{Core, check_no_nul};
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};
use crate::store::labels::MAX_LABELS_PER_CONVERSATION;
use crate::util::new_id;

/// Longest label name, bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 40;

/// A label's name: one line, trimmed, 1 to 40 bytes.
fn label_name(name: &str) -> CoreResult<String> {
    let name = crate::core::session::display_name(name);
    if name.is_empty() || name.len() > MAX_LABEL_NAME_BYTES {
        return Err(CoreError::InvalidArgument(format!(
            "a label's name is 1 to {MAX_LABEL_NAME_BYTES} bytes"
        )));
    }
    Ok(name)
}

/// "#rrggbb" (lower case); empty: a neutral grey.
fn label_color(color: &str) -> CoreResult<String> {
    let color = color.trim();
    if color.is_empty() {
        return Ok("#64748b".into());
    }
    let hex = color.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CoreError::InvalidArgument(format!(
            "colour {color:?} is not \"#rrggbb\""
        )));
    }
    Ok(format!("#{}", hex.to_ascii_lowercase()))
}

/// Label ids of an event: at most the per-conversation limit, each an id's shape.
fn label_ids(ids: &[String]) -> CoreResult<Vec<String>> {
    if ids.len() > MAX_LABELS_PER_CONVERSATION {
        return Err(CoreError::InvalidArgument(format!(
            "at most {MAX_LABELS_PER_CONVERSATION} labels at once"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !id.starts_with("lb_") || id.len() > 64 || id.contains('\0') {
            return Err(CoreError::InvalidArgument(
                "label ids look like lb_...".into(),
            ));
        }
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

impl Core {
    /// Creates (no id) or changes a label of a site.
    pub async fn put_label(&self, _: AdminGrant, label: v1::Label) -> CoreResult<v1::Label> {
        check_no_nul(&label.id, "id")?;
        check_no_nul(&label.site_id, "site_id")?;
        let name = label_name(&label.name)?;
        let color = label_color(&label.color)?;
        let (stored, create) = if label.id.is_empty() {
            if label.site_id.is_empty() {
                return Err(CoreError::InvalidArgument("site_id is required".into()));
            }
            self.site(&label.site_id).await?;
            (
                v1::Label {
                    id: new_id("lb_"),
                    site_id: label.site_id,
                    name,
                    color,
                    conversations: 0,
                },
                true,
            )
        } else {
            let old = self.store.label_by_id(&label.id).await?;
            (v1::Label { name, color, ..old }, false)
        };
        Ok(self.store.put_label(stored, create).await?)
    }

    /// Deletes a label and takes it off every conversation (their followers get new snapshots).
    pub async fn delete_label(&self, _: AdminGrant, id: String) -> CoreResult<()> {
        check_no_nul(&id, "label_id")?;
        let (_, conversations) = self.store.delete_label(id).await?;
        for id in conversations {
            if let Ok(c) = self.store.conversation(&id).await {
                self.announce(c);
            }
        }
        Ok(())
    }

    /// A site's labels (staff of the site); with no site, those of every site the caller sees.
    pub async fn list_labels(
        &self,
        principal: &Principal,
        site_id: String,
    ) -> CoreResult<Vec<v1::Label>> {
        Self::require_staff(principal)?;
        check_no_nul(&site_id, "site_id")?;
        if !site_id.is_empty() && !self.may_see_site(principal, &site_id) {
            return Err(CoreError::NotFound("site not found".into()));
        }
        let mut labels = self.store.list_labels(&site_id).await?;
        labels.retain(|l| self.may_see_site(principal, &l.site_id));
        Ok(labels)
    }

    /// Staff add and remove labels on a conversation they may see.
    pub(super) async fn label(
        self: &Arc<Self>,
        principal: &Principal,
        l: v1::LabelConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        let add = label_ids(&l.add)?;
        let remove = label_ids(&l.remove)?;
        check_no_nul(&l.conversation_id, "conversation_id")?;
        let c = self
            .staff_conversation(principal, &l.conversation_id)
            .await?;
        let changed = self
            .store
            .label_conversation(c.id.clone(), add, remove)
            .await?;
        self.announce(changed);
        ack.conversation_id = c.id;
        Ok(())
    }
}

/// The furthest a snooze may reach.
const MAX_SNOOZE_MS: i64 = 366 * 86_400_000;

impl Core {
    /// Staff snooze an open conversation they may see (until a time, or the customer's next
    /// message), or wake it. Followers get the snapshot; the customer is not told.
    pub(super) async fn snooze(
        self: &Arc<Self>,
        principal: &Principal,
        z: v1::SnoozeConversation,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        check_no_nul(&z.conversation_id, "conversation_id")?;
        let now = crate::util::now_ms();
        let until = if z.wake {
            None
        } else if z.until_ms == 0 {
            Some(0)
        } else if z.until_ms <= now || z.until_ms > now + MAX_SNOOZE_MS {
            return Err(CoreError::InvalidArgument(
                "until_ms must be in the future and at most a year ahead (0: until the customer writes)"
                    .into(),
            ));
        } else {
            Some(z.until_ms)
        };
        let c = self
            .staff_conversation(principal, &z.conversation_id)
            .await?;
        let changed = self.store.snooze(c.id.clone(), until).await?;
        self.announce(changed);
        ack.conversation_id = c.id;
        Ok(())
    }

    /// Wakes the conversations whose snooze is over (on the one-minute clock, every node).
    pub async fn wake_pass(&self) -> CoreResult<u32> {
        let woken = self.store.wake_snoozed(crate::util::now_ms(), 500).await?;
        let n = woken.len() as u32;
        for c in woken {
            self.announce(c);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_colours_and_ids_are_checked() {
        assert_eq!(label_name("  Refund\nrequest ").unwrap(), "Refund request");
        assert!(label_name("   ").is_err());
        assert!(label_name(&"x".repeat(41)).is_err());
        assert_eq!(label_color("#0B5FFF").unwrap(), "#0b5fff");
        assert_eq!(label_color("").unwrap(), "#64748b");
        for bad in [
            "red",
            "#12345",
            "#1234567",
            "0b5fff",
            "#zzzzzz",
            "javascript:x",
        ] {
            assert!(label_color(bad).is_err(), "{bad}");
        }
        assert_eq!(
            label_ids(&["lb_a".into(), "lb_a".into(), "lb_b".into()]).unwrap(),
            ["lb_a", "lb_b"]
        );
        assert!(label_ids(&["c_1".into()]).is_err());
        assert!(label_ids(&vec!["lb_x".to_string(); 21]).is_err());
    }
}
