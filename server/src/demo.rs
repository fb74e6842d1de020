//! First start on an empty database: a demo site and an admin agent, so the product works
//! out of the box.

use std::sync::Arc;

use wsmschat::v1;

use crate::core::access::AdminGrant;
use crate::core::{Core, DEFAULT_TOPICS};
use crate::util::new_token;

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
/// It goes through the same admin use cases as the console and the CLI.
pub async fn seed(core: &Arc<Core>, opts: &DemoOptions) -> anyhow::Result<Option<DemoInfo>> {
    let grant = AdminGrant::operator();
    if !core.list_sites(grant).await?.is_empty() {
        return Ok(None);
    }
    let site = core
        .create_site(
            grant,
            v1::Site {
                name: "Demo Shop".into(),
                allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
                topics: DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect(),
                greeting: "Hi! How can we help you today?".into(),
                ..Default::default()
            },
            Some(opts.site_key.clone()),
        )
        .await?;
    let password = opts
        .admin_password
        .clone()
        .unwrap_or_else(|| new_token("")[..16].to_owned());
    core.create_agent(
        grant,
        v1::Agent {
            email: opts.admin_email.clone(),
            name: "Demo Admin".into(),
            role: v1::AgentRole::Admin as i32,
            capacity: 10,
            ..Default::default()
        },
        password.clone(),
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
        core.put_canned_reply(
            grant,
            v1::CannedReply {
                shortcut: shortcut.into(),
                text: text.into(),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(Some(DemoInfo {
        site,
        admin_email: opts.admin_email.clone(),
        admin_password: password,
    }))
}
