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
