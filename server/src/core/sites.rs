//! The site cache: sites by id for origin checks, CORS and topics without a database read per
//! call; reloaded every `site_refresh`, at once after a change here, and on a change announced
//! by another node.

use std::sync::Arc;
use std::time::Instant;

use wsmschat::v1;

use super::{Core, SITE_CACHE_TTL};
use crate::auth;
use crate::error::{CoreError, CoreResult};

impl Core {
    /// Reloads the site cache from the store.
    pub async fn reload_sites(&self) -> CoreResult<()> {
        let sites = self.store.list_sites().await?;
        self.hours.load(sites.iter());
        *self.sites.write().unwrap() = (
            sites.into_iter().map(|s| (s.id.clone(), s)).collect(),
            Instant::now(),
        );
        Ok(())
    }

    /// Sites were created or changed here: reload now, and tell the other nodes to.
    pub async fn sites_changed(&self) -> CoreResult<()> {
        self.reload_sites().await?;
        if let Some(bus) = self.cluster.get() {
            bus.publish_sites_changed();
        }
        Ok(())
    }

    /// Keeps the site cache fresh (CORS for sites made by the CLI or on another node, within
    /// `site_refresh`), until shutdown.
    pub fn spawn_site_refresher(self: &Arc<Self>) {
        self.spawn_periodic(self.config.site_refresh, |core| async move {
            if let Err(error) = core.reload_sites().await {
                tracing::warn!(%error, "Could not refresh the site cache");
            }
        });
    }

    /// A site by id (cached).
    pub async fn site(&self, id: &str) -> CoreResult<v1::Site> {
        {
            let sites = self.sites.read().unwrap();
            if sites.1.elapsed() < SITE_CACHE_TTL {
                if let Some(s) = sites.0.get(id) {
                    return Ok(s.clone());
                }
            }
        }
        self.reload_sites().await?;
        self.sites
            .read()
            .unwrap()
            .0
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound("site not found".into()))
    }

    /// CORS: may a browser on `origin` call this server at all? (Any site's origin, or an
    /// extra origin such as a separately hosted console.) The per-site check is in
    /// [`Core::check_origin`].
    pub fn cors_origin_allowed(&self, origin: &str) -> bool {
        if auth::origin_allowed(&self.config.extra_origins, origin) {
            return true;
        }
        self.sites
            .read()
            .unwrap()
            .0
            .values()
            .any(|s| auth::origin_allowed(&s.allowed_origins, origin))
    }

    /// Every topic of every site.
    pub(super) async fn all_topics(&self) -> Vec<String> {
        let _ = self.reload_sites().await;
        let mut all: Vec<String> = self
            .sites
            .read()
            .unwrap()
            .0
            .values()
            .flat_map(|s| s.topics.clone())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Site texts at most, and bytes of one.
pub const MAX_WIDGET_TEXTS: usize = 300;
pub const MAX_WIDGET_TEXT_BYTES: usize = 500;

/// Checks and normalises `Site.widget_texts`: keys `[lang.]name` (a widget language as
/// `email_words` lists them, a name of
/// ASCII letters), texts one line of 1-500 bytes, no key twice; sorted by key.
pub(super) fn normalize_texts(s: &mut v1::Site) -> CoreResult<()> {
    let invalid = |m: String| CoreError::InvalidArgument(m);
    if s.widget_texts.len() > MAX_WIDGET_TEXTS {
        return Err(invalid(format!("at most {MAX_WIDGET_TEXTS} widget texts")));
    }
    for t in &mut s.widget_texts {
        t.key = t.key.trim().to_owned();
        t.text = t.text.trim().to_owned();
        let (lang, name) = t.key.split_once('.').unwrap_or(("", &t.key));
        let name_ok =
            (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphabetic());
        if !name_ok || !(lang.is_empty() || super::email_words::is_widget_language(lang)) {
            return Err(invalid(format!(
                "widget text key {:?} must be a string's name, optionally after a widget language (\"offline\", \"de.offline\")",
                t.key
            )));
        }
        if t.text.is_empty()
            || t.text.len() > MAX_WIDGET_TEXT_BYTES
            || t.text.contains(['\n', '\r'])
        {
            return Err(invalid(format!(
                "widget text {:?} must be one line of 1 to {MAX_WIDGET_TEXT_BYTES} bytes",
                t.key
            )));
        }
        super::check_no_nul(&t.text, "a widget text")?;
    }
    s.widget_texts.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(w) = s.widget_texts.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(invalid(format!(
            "widget text {:?} is given twice",
            w[0].key
        )));
    }
    Ok(())
}

/// The site's texts a widget in `locale` ("de-DE") needs: those for every language, then that
/// language's own under their plain name (so they win when applied in order).
pub(super) fn texts_for(site: &v1::Site, locale: &str) -> Vec<v1::WidgetText> {
    let lang = super::email_words::language(locale);
    let plain = site
        .widget_texts
        .iter()
        .filter(|t| !t.key.contains('.'))
        .cloned();
    let own = site.widget_texts.iter().filter_map(|t| {
        let (l, name) = t.key.split_once('.')?;
        (l == lang).then(|| v1::WidgetText {
            key: name.to_owned(),
            text: t.text.clone(),
        })
    });
    plain.chain(own).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(texts: &[(&str, &str)]) -> v1::Site {
        v1::Site {
            widget_texts: texts
                .iter()
                .map(|(k, t)| v1::WidgetText {
                    key: k.to_string(),
                    text: t.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn widget_texts_are_checked_and_picked_by_language() {
        let mut s = site(&[
            ("de.offline", " Weg "),
            ("offline", "Away"),
            ("title", "Help"),
        ]);
        normalize_texts(&mut s).unwrap();
        assert_eq!(s.widget_texts[0].text, "Weg");
        let de: Vec<_> = texts_for(&s, "de-AT")
            .into_iter()
            .map(|t| (t.key, t.text))
            .collect();
        assert_eq!(
            de,
            [
                ("offline".into(), "Away".into()),
                ("title".into(), "Help".into()),
                ("offline".into(), "Weg".into())
            ]
        );
        assert_eq!(texts_for(&s, "fr").len(), 2);
        for bad in [
            site(&[("xx.offline", "a")]),
            site(&[("off line", "a")]),
            site(&[("offline", "")]),
            site(&[("offline", "two\nlines")]),
            site(&[("offline", &"x".repeat(501))]),
            site(&[("offline", "a"), ("offline", "b")]),
            site(&[("offline", "a\0b")]),
        ] {
            let mut b = bad;
            assert!(normalize_texts(&mut b).is_err(), "{:?}", b.widget_texts);
        }
    }
}
