//! First start on an empty database: a demo site and an admin agent, so the product works
//! out of the box; and the shell commands that create sites, agents and keys.

use std::sync::Arc;

use wsmschat::v1;

use crate::auth;
use crate::core::{Core, DEFAULT_TOPICS};
use crate::util::{new_id, new_token, random_bytes};

/// What to seed.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Site key of the demo site (fixed, so the demo page can embed it).
    pub site_key: String,
    /// Admin login email.
    pub admin_email: String,
    /// Admin password; None: a random one, printed once.
    pub admin_password: Option<String>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            site_key: "demo".into(),
            admin_email: "admin@example.com".into(),
            admin_password: None,
        }
    }
}

/// What was seeded.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    pub site: v1::Site,
    pub admin_email: String,
    pub admin_password: String,
}

/// Seeds the demo when the database has no site yet. Returns None when it already had one.
pub async fn seed(core: &Arc<Core>, opts: &DemoOptions) -> anyhow::Result<Option<DemoInfo>> {
    if !core.store.list_sites().await?.is_empty() {
        return Ok(None);
    }
    let site = core
        .store
        .create_site(v1::Site {
            id: new_id("site_"),
            site_key: opts.site_key.clone(),
            name: "Demo Shop".into(),
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
            topics: DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect(),
            color: "#0b5fff".into(),
            greeting: "Hi! How can we help you today?".into(),
            identity_secret: hex::encode(random_bytes::<32>()),
            identity_required: false,
            restrict_agents_to_topics: false,
        })
        .await?;
    let password = opts
        .admin_password
        .clone()
        .unwrap_or_else(|| new_token("")[..16].to_owned());
    let hash = auth::hash_password(&password);
    core.store
        .create_agent(
            v1::Agent {
                id: new_id("ag_"),
                email: opts.admin_email.clone(),
                name: "Demo Admin".into(),
                role: v1::AgentRole::Admin as i32,
                topics: vec![],
                capacity: 10,
                active: true,
                site_ids: vec![],
            },
            hash,
        )
        .await?;
    for (shortcut, text) in [
        ("hello", "Hello! Thanks for reaching out. How can I help?"),
        ("hours", "We answer every day from 8:00 to 20:00 (CET)."),
        (
            "thanks",
            "Thank you! Is there anything else I can do for you?",
        ),
    ] {
        core.store
            .put_canned_reply(v1::CannedReply {
                id: new_id("cr_"),
                site_id: String::new(),
                shortcut: shortcut.into(),
                text: text.into(),
            })
            .await?;
    }
    Ok(Some(DemoInfo {
        site,
        admin_email: opts.admin_email.clone(),
        admin_password: password,
    }))
}
