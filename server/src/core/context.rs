//! Customer context for agents (issue #15): custom attributes and the page trail.
//!
//! A site declares its attributes (`Site.attributes`: key, name, type, target, whether the
//! page may set it). Values come from the site's page (`WsmsChat('update', {...})` in the
//! widget: only `page_writable` ones), from a backend with a chat-scope API key, and from
//! agents; every value is checked against its declared type and stored in the type's
//! canonical form, so search and display agree on both engines. Nobody can set a key the site
//! did not declare.
//!
//! The page trail: the page a session starts on (`StartVisitorSession.page_url`, title,
//! referrer) and each single-page-app navigation (`TrackPage`, a unary call: a visitor who
//! never chats opens no stream), the last 20 per visitor.
//!
//! Staff see changes live: a `VisitorChanged` event on inbox streams (here and, over the bus,
//! on every node) while the visitor has a conversation that is not resolved; conversation
//! attributes travel in the conversation's snapshot. Visitors never get attributes or pages
//! back (they may be a backend's private notes on the customer).

use std::sync::Arc;

use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use super::{Core, check_no_nul, event};
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};
use crate::store::context::{AttributeWrite, ConversationTarget};
use crate::util::now_ms;

/// Attributes one site may declare, and values one call may write.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest key, display name, text value and link, bytes.
pub const MAX_KEY_BYTES: usize = 40;
pub const MAX_NAME_BYTES: usize = 60;
pub const MAX_TEXT_BYTES: usize = 500;
pub const MAX_URL_BYTES: usize = 2048;
/// Longest page title kept, bytes.
pub const MAX_TITLE_BYTES: usize = 300;

fn bad(msg: String) -> CoreError {
    CoreError::InvalidArgument(msg)
}

/// Checks and normalises `Site.attributes` (create and update site).
pub(super) fn normalize_definitions(site: &mut v1::Site) -> CoreResult<()> {
    if site.attributes.len() > MAX_ATTRIBUTES {
        return Err(bad(format!(
            "a site declares at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    let mut keys: Vec<String> = Vec::new();
    for d in &mut site.attributes {
        d.key = d.key.trim().to_owned();
        let mut chars = d.key.chars();
        let shaped = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && d.key.len() <= MAX_KEY_BYTES;
        if !shaped {
            return Err(bad(format!(
                "attribute key {:?}: a letter, then letters, digits or \"_\", at most {MAX_KEY_BYTES} bytes",
                d.key
            )));
        }
        if keys.contains(&d.key) {
            return Err(bad(format!("attribute {:?} is declared twice", d.key)));
        }
        keys.push(d.key.clone());
        check_no_nul(&d.name, "attribute name")?;
        d.name = super::session::display_name(&d.name);
        if d.name.len() > MAX_NAME_BYTES {
            return Err(bad(format!(
                "attribute {:?}: a name is at most {MAX_NAME_BYTES} bytes",
                d.key
            )));
        }
        if d.name.is_empty() {
            d.name = d.key.clone();
        }
        d.r#type = match v1::AttributeType::try_from(d.r#type) {
            Ok(v1::AttributeType::Unspecified) => v1::AttributeType::Text as i32,
            Ok(t) => t as i32,
            Err(_) => return Err(bad(format!("attribute {:?}: unknown type", d.key))),
        };
        d.target = match v1::AttributeTarget::try_from(d.target) {
            Ok(v1::AttributeTarget::Unspecified) => v1::AttributeTarget::Visitor as i32,
            Ok(t) => t as i32,
            Err(_) => return Err(bad(format!("attribute {:?}: unknown target", d.key))),
        };
    }
    Ok(())
}

/// A value in its type's canonical form ("" stays "": a removal).
pub(super) fn canonical(def: &v1::AttributeDefinition, value: &str) -> CoreResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let key = &def.key;
    if value.chars().any(char::is_control) {
        return Err(bad(format!(
            "attribute {key:?}: one line, without control characters"
        )));
    }
    match v1::AttributeType::try_from(def.r#type).unwrap_or(v1::AttributeType::Text) {
        v1::AttributeType::Number => {
            let n: f64 = value
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| bad(format!("attribute {key:?} is a number, not {value:?}")))?;
            // 42, -3.5, 0 (never "-0" or "42.0").
            Ok(if n == 0.0 { "0".into() } else { n.to_string() })
        }
        v1::AttributeType::Date => {
            let date: jiff::civil::Date = value.parse().map_err(|_| {
                bad(format!(
                    "attribute {key:?} is a date (YYYY-MM-DD), not {value:?}"
                ))
            })?;
            Ok(date.to_string())
        }
        v1::AttributeType::Link => {
            let url = url::Url::parse(value)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| {
                    bad(format!(
                        "attribute {key:?} is an http(s) link, not {value:?}"
                    ))
                })?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad(format!(
                    "attribute {key:?}: a link may not carry a user name or password"
                )));
            }
            let url = url.to_string();
            if url.len() > MAX_URL_BYTES {
                return Err(bad(format!(
                    "attribute {key:?}: a link is at most {MAX_URL_BYTES} bytes"
                )));
            }
            Ok(url)
        }
        _ => {
            if value.len() > MAX_TEXT_BYTES {
                return Err(bad(format!(
                    "attribute {key:?}: at most {MAX_TEXT_BYTES} bytes"
                )));
            }
            Ok(value.to_owned())
        }
    }
}

/// A page address as kept: http(s), no fragment, no user info, at most 2,048 bytes.
fn page_url(raw: &str) -> Option<String> {
    let mut url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let url = url.to_string();
    (url.len() <= MAX_URL_BYTES).then_some(url)
}

fn clip(text: &str, max: usize) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A page view from what a client sent; None when the address is not a page's.
pub(super) fn page_view(url: &str, title: &str, referrer: &str) -> Option<v1::PageView> {
    Some(v1::PageView {
        url: page_url(url)?,
        title: clip(title, MAX_TITLE_BYTES),
        referrer: page_url(referrer).unwrap_or_default(),
        at_ms: now_ms(),
    })
}

/// What a visitor sees of a conversation: no attributes.
pub(super) fn visitor_copy(mut c: v1::Conversation) -> v1::Conversation {
    c.attributes.clear();
    c
}

/// What a visitor sees of themself: no attributes, pages or address.
pub(super) fn visitor_self(mut v: v1::Visitor) -> v1::Visitor {
    v.attributes.clear();
    v.pages.clear();
    v.last_ip.clear();
    v
}

impl Core {
    fn charge_context(&self, principal: &Principal) -> CoreResult<()> {
        if self.context_limiter.check(&principal.author_key()) {
            Ok(())
        } else {
            Err(CoreError::ResourceExhausted(format!(
                "too many attribute and page updates: at most {}/min",
                self.config.context_updates_per_minute
            )))
        }
    }

    /// Tells staff inbox streams (every node) that a visitor's context changed.
    fn announce_visitor(&self, visitor: &v1::Visitor) {
        self.hub
            .deliver_inbox(event(Se::Visitor(v1::VisitorChanged {
                visitor_id: visitor.id.clone(),
                site_id: visitor.site_id.clone(),
            })));
    }

    /// `ChatService.SetAttributes`.
    pub async fn set_attributes(
        self: &Arc<Self>,
        principal: &Principal,
        r: v1::SetAttributesRequest,
    ) -> CoreResult<v1::SetAttributesResponse> {
        check_no_nul(&r.visitor_id, "visitor_id")?;
        check_no_nul(&r.conversation_id, "conversation_id")?;
        if r.attributes.len() > MAX_ATTRIBUTES {
            return Err(bad(format!("at most {MAX_ATTRIBUTES} attributes at once")));
        }
        self.charge_context(principal)?;
        // Whose: the visitor, the conversation (if any), and the site.
        let conversation = if r.conversation_id.is_empty() {
            None
        } else {
            Some(
                self.visible_conversation(principal, &r.conversation_id)
                    .await?,
            )
        };
        let (visitor_id, site_id) = match principal {
            Principal::Visitor {
                visitor_id,
                site_id,
                ..
            } => {
                if !r.visitor_id.is_empty() && r.visitor_id != *visitor_id {
                    return Err(CoreError::PermissionDenied(
                        "a visitor sets their own attributes only".into(),
                    ));
                }
                (visitor_id.clone(), site_id.clone())
            }
            p if p.is_staff() => match &conversation {
                Some(c) => {
                    if !r.visitor_id.is_empty() && r.visitor_id != c.visitor_id {
                        return Err(bad("the conversation is not this visitor's".into()));
                    }
                    (c.visitor_id.clone(), c.site_id.clone())
                }
                None if r.visitor_id.is_empty() => {
                    return Err(bad("name a visitor_id or a conversation_id".into()));
                }
                None => {
                    let v = self.store.visitor_by_id(&r.visitor_id).await?;
                    if !self.may_see_site(principal, &v.site_id) {
                        return Err(CoreError::NotFound("visitor not found".into()));
                    }
                    (v.id, v.site_id)
                }
            },
            _ => {
                return Err(CoreError::PermissionDenied(
                    "this API key has no chat scope".into(),
                ));
            }
        };
        let page = matches!(principal, Principal::Visitor { .. });
        let mut site = self.site(&site_id).await?;
        let refused = |site: &v1::Site| {
            r.attributes.iter().any(|a| {
                !site
                    .attributes
                    .iter()
                    .any(|d| d.key == a.key && (d.page_writable || !page))
            })
        };
        if refused(&site) {
            // Declared a moment ago, maybe on another node whose news has not reached this
            // node's cache yet: the store decides (one read, after the limiter charged).
            site = self.store.site_by_id(&site_id).await?;
        }
        let mut visitor_values = Vec::new();
        let mut conversation_values = Vec::new();
        for a in &r.attributes {
            check_no_nul(&a.key, "attribute key")?;
            check_no_nul(&a.value, "attribute value")?;
            let def = site
                .attributes
                .iter()
                .find(|d| d.key == a.key)
                .ok_or_else(|| {
                    bad(format!(
                        "attribute {:?} is not declared by the site (Site.attributes)",
                        a.key
                    ))
                })?;
            if page && !def.page_writable {
                return Err(CoreError::PermissionDenied(format!(
                    "attribute {:?} is not settable from the page (page_writable is off)",
                    a.key
                )));
            }
            let value = (a.key.clone(), canonical(def, &a.value)?);
            if def.target == v1::AttributeTarget::Conversation as i32 {
                if !conversation_values.iter().any(|(k, _)| *k == value.0) {
                    conversation_values.push(value);
                }
            } else if !visitor_values.iter().any(|(k, _)| *k == value.0) {
                visitor_values.push(value);
            }
        }
        let conversations = match (&conversation, page) {
            (Some(c), _) => ConversationTarget::One(c.id.clone()),
            (None, true) => ConversationTarget::Unresolved,
            (None, false) if !conversation_values.is_empty() => {
                return Err(bad(format!(
                    "attribute {:?} belongs to a conversation: name its conversation_id",
                    conversation_values[0].0
                )));
            }
            (None, false) => ConversationTarget::None,
        };
        let written = self
            .store
            .set_attributes(AttributeWrite {
                site_id,
                visitor_id,
                visitor_values,
                conversation_values,
                conversations,
            })
            .await?;
        if written.visitor_changed {
            self.announce_visitor(&written.visitor);
        }
        for c in &written.conversations {
            self.announce(c.clone());
        }
        Ok(if page {
            v1::SetAttributesResponse {
                visitor: Some(visitor_self(written.visitor)),
                conversations: written
                    .conversations
                    .into_iter()
                    .map(|c| visitor_copy(self.decorate(c)))
                    .collect(),
            }
        } else {
            v1::SetAttributesResponse {
                visitor: Some(written.visitor),
                conversations: written
                    .conversations
                    .into_iter()
                    .map(|c| self.decorate(c))
                    .collect(),
            }
        })
    }

    /// `ChatService.TrackPage`: visitors only.
    pub async fn track_page(
        &self,
        principal: &Principal,
        r: v1::TrackPageRequest,
    ) -> CoreResult<()> {
        let Principal::Visitor { visitor_id, .. } = principal else {
            return Err(CoreError::PermissionDenied(
                "only visitors report the page they are on".into(),
            ));
        };
        check_no_nul(&r.url, "url")?;
        check_no_nul(&r.title, "title")?;
        check_no_nul(&r.referrer, "referrer")?;
        let page = page_view(&r.url, &r.title, &r.referrer).ok_or_else(|| {
            bad(format!(
                "url must be an http(s) address of at most {MAX_URL_BYTES} bytes"
            ))
        })?;
        self.charge_context(principal)?;
        let (visitor, live) = self.store.track_page(visitor_id.clone(), page).await?;
        if live {
            self.announce_visitor(&visitor);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(t: v1::AttributeType) -> v1::AttributeDefinition {
        v1::AttributeDefinition {
            key: "k".into(),
            name: "K".into(),
            r#type: t as i32,
            target: v1::AttributeTarget::Visitor as i32,
            page_writable: true,
        }
    }

    #[test]
    fn values_take_their_types_canonical_form() {
        use v1::AttributeType as T;
        let ok = |t, v: &str| canonical(&def(t), v).unwrap();
        let err = |t, v: &str| canonical(&def(t), v).unwrap_err().to_string();
        assert_eq!(ok(T::Text, "  pro plan "), "pro plan");
        assert_eq!(ok(T::Text, ""), "");
        assert!(err(T::Text, "two\nlines").contains("one line"));
        assert!(err(T::Text, &"x".repeat(501)).contains("500"));
        assert_eq!(ok(T::Number, "42.0"), "42");
        assert_eq!(ok(T::Number, "-3.50"), "-3.5");
        assert_eq!(ok(T::Number, "-0"), "0");
        assert!(err(T::Number, "NaN").contains("number"));
        assert!(err(T::Number, "inf").contains("number"));
        assert!(err(T::Number, "12 EUR").contains("number"));
        assert_eq!(ok(T::Date, "2026-02-28"), "2026-02-28");
        assert!(err(T::Date, "2026-02-30").contains("YYYY-MM-DD"));
        assert!(err(T::Date, "yesterday").contains("YYYY-MM-DD"));
        assert_eq!(
            ok(T::Link, "https://crm.example.com/c/1001"),
            "https://crm.example.com/c/1001"
        );
        assert!(err(T::Link, "javascript:alert(1)").contains("http(s)"));
        assert!(err(T::Link, "data:text/html,<b>").contains("http(s)"));
        assert!(err(T::Link, "/relative").contains("http(s)"));
        assert!(err(T::Link, "https://u:p@example.com/").contains("password"));
    }

    #[test]
    fn declarations_are_checked() {
        let site = |defs: Vec<v1::AttributeDefinition>| v1::Site {
            attributes: defs,
            ..Default::default()
        };
        let mut s = site(vec![v1::AttributeDefinition {
            key: " orderId ".into(),
            ..Default::default()
        }]);
        normalize_definitions(&mut s).unwrap();
        assert_eq!(s.attributes[0].key, "orderId");
        assert_eq!(s.attributes[0].name, "orderId");
        assert_eq!(s.attributes[0].r#type, v1::AttributeType::Text as i32);
        assert_eq!(s.attributes[0].target, v1::AttributeTarget::Visitor as i32);
        for key in ["", "1st", "plan-name", "a b", &"k".repeat(41), "plän"] {
            let mut s = site(vec![v1::AttributeDefinition {
                key: key.into(),
                ..Default::default()
            }]);
            assert!(normalize_definitions(&mut s).is_err(), "{key:?}");
        }
        let twice = v1::AttributeDefinition {
            key: "plan".into(),
            ..Default::default()
        };
        assert!(normalize_definitions(&mut site(vec![twice.clone(), twice])).is_err());
        let mut many = site(vec![Default::default(); 51]);
        assert!(normalize_definitions(&mut many).is_err());
        let mut unknown = site(vec![v1::AttributeDefinition {
            key: "x".into(),
            r#type: 99,
            ..Default::default()
        }]);
        assert!(normalize_definitions(&mut unknown).is_err());
    }

    #[test]
    fn page_views_keep_only_a_pages_address() {
        let p = page_view("https://u:pw@shop.example/cart?x=1#top", "Cart\n", "").unwrap();
        assert_eq!(p.url, "https://shop.example/cart?x=1");
        assert_eq!(p.title, "Cart");
        assert!(page_view("javascript:alert(1)", "", "").is_none());
        assert!(page_view("file:///etc/passwd", "", "").is_none());
        let long = format!("https://shop.example/{}", "a".repeat(2100));
        assert!(page_view(&long, "", "").is_none());
        let p = page_view("https://shop.example/", &"é".repeat(200), "ftp://x/").unwrap();
        assert!(p.title.len() <= MAX_TITLE_BYTES);
        assert_eq!(p.referrer, "");
    }
}
