//! Desk operations (issue #15) on a real server (SQLite, or PostgreSQL with
//! WSMSCHAT_TEST_POSTGRES): labels (admins define them per site, staff put them on
//! conversations, live to every follower; the inbox filters by them, the report counts them) and
//! auto-resolve (a conversation the customer left unanswered resolves itself after the site's
//! hours, on a shortened clock: its rows are moved into the past).

mod common;

use common::*;
use tonic::Code;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

async fn put(s: &TestServer, token: &str, label: v1::Label) -> Result<v1::Label, tonic::Status> {
    s.admin_client()
        .await
        .put_label(authed(token, v1::PutLabelRequest { label: Some(label) }))
        .await
        .map(|r| r.into_inner().label.unwrap())
}

fn label(site_id: &str, name: &str, color: &str) -> v1::Label {
    v1::Label {
        site_id: site_id.into(),
        name: name.into(),
        color: color.into(),
        ..Default::default()
    }
}

fn labelling(conversation_id: &str, add: &[&str], remove: &[&str]) -> v1::ClientEvent {
    ev(Ce::Label(v1::LabelConversation {
        conversation_id: conversation_id.into(),
        add: add.iter().map(|s| s.to_string()).collect(),
        remove: remove.iter().map(|s| s.to_string()).collect(),
    }))
}

async fn list(
    chat: &mut wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
    token: &str,
    label_id: &str,
) -> Vec<String> {
    chat.list_conversations(authed(
        token,
        v1::ListConversationsRequest {
            label_id: label_id.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .conversations
    .into_iter()
    .map(|c| c.id)
    .collect()
}

#[tokio::test]
async fn labels_are_defined_put_on_conversations_live_filtered_and_counted() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut adm = s.admin_client().await;
    let sites = adm
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites;
    let site = sites[0].id.clone();
    let other_site = adm
        .create_site(authed(
            &admin,
            v1::CreateSiteRequest {
                site: Some(v1::Site {
                    name: "Other".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap()
        .id;
    let (_, agent) = s.agent("Dora", &[], 5).await;

    // Admins define labels; names are unique per site (any case), colours "#rrggbb".
    let refund = put(&s, &admin, label(&site, "Refund", "#DC2626"))
        .await
        .unwrap();
    assert_eq!(refund.color, "#dc2626");
    let bug = put(&s, &admin, label(&site, "Bug", "")).await.unwrap();
    let foreign = put(&s, &admin, label(&other_site, "Refund", "#000000"))
        .await
        .unwrap();
    let e = put(&s, &admin, label(&site, "refund", "#111111"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = put(&s, &admin, label(&site, "X", "red")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = put(&s, &agent, label(&site, "Mine", "")).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "agents do not define labels"
    );

    let (_, visitor) = s.visitor("Vera").await;
    let mut chat = s.chat().await;
    let (c1, _) = start_conversation(&mut chat, &visitor, "Order", "refund please").await;
    let (_, visitor2) = s.visitor("Walt").await;
    let (c2, _) = start_conversation(&mut chat, &visitor2, "Order", "it crashes").await;
    let mut inbox = Sub::open(&mut chat, &agent, vec![], true).await.unwrap();

    // An agent labels; the inbox stream gets the new snapshot.
    publish(
        &mut chat,
        &agent,
        labelling(&c1, &[&refund.id, &bug.id], &[]),
    )
    .await
    .unwrap();
    let snap = wait_conversation(&mut inbox, &c1, |c| c.label_ids.len() == 2).await;
    assert_eq!(
        snap.label_ids,
        [bug.id.clone(), refund.id.clone()],
        "by name"
    );
    publish(&mut chat, &agent, labelling(&c1, &[], &[&bug.id]))
        .await
        .unwrap();
    wait_conversation(&mut inbox, &c1, |c| c.label_ids == [refund.id.clone()]).await;
    publish(&mut chat, &agent, labelling(&c2, &[&bug.id], &[]))
        .await
        .unwrap();
    // Labels do not move the conversation's activity or write into its log.
    // (Dora, online, was assigned the conversations: that system line is all there is.)
    let h = history(&mut chat, &agent, &c1).await;
    let kinds: Vec<i32> = h.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [v1::MessageKind::Text as i32, v1::MessageKind::System as i32],
        "{h:?}"
    );

    // Another site's label, a visitor, a made-up id: refused, nothing changes.
    let e = publish(&mut chat, &agent, labelling(&c1, &[&foreign.id], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = publish(&mut chat, &visitor, labelling(&c1, &[&bug.id], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = publish(&mut chat, &agent, labelling(&c1, &["not-a-label"], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // The inbox filters by label.
    assert_eq!(
        list(&mut chat, &agent, &refund.id).await,
        std::slice::from_ref(&c1)
    );
    assert_eq!(
        list(&mut chat, &agent, &bug.id).await,
        std::slice::from_ref(&c2)
    );
    let all = list(&mut chat, &agent, "").await;
    assert!(all.contains(&c1) && all.contains(&c2));
    // ListLabels: staff only, with counts; every site the caller sees without a site.
    let labels = chat
        .list_labels(authed(
            &agent,
            v1::ListLabelsRequest {
                site_id: site.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .labels;
    let counts: Vec<(&str, u32)> = labels
        .iter()
        .map(|l| (l.name.as_str(), l.conversations))
        .collect();
    assert_eq!(counts, [("Bug", 1), ("Refund", 1)]);
    let everywhere = chat
        .list_labels(authed(&agent, v1::ListLabelsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .labels;
    assert_eq!(everywhere.len(), 3);
    let e = chat
        .list_labels(authed(
            &visitor,
            v1::ListLabelsRequest {
                site_id: site.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // The report counts by label.
    let report = adm
        .get_site_report(authed(
            &admin,
            v1::GetSiteReportRequest {
                site_id: site.clone(),
                days: 7,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let per: Vec<(&str, u32)> = report
        .per_label
        .iter()
        .map(|l| (l.name.as_str(), l.conversations))
        .collect();
    assert_eq!(per, [("Bug", 1), ("Refund", 1)]);

    // Renamed: the id stays; deleted: it leaves every conversation (followers are told).
    let renamed = put(
        &s,
        &admin,
        v1::Label {
            id: bug.id.clone(),
            name: "Defect".into(),
            color: "#7c3aed".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.site_id.as_str()),
        ("Defect", site.as_str())
    );
    adm.delete_label(authed(
        &admin,
        v1::DeleteLabelRequest {
            label_id: bug.id.clone(),
        },
    ))
    .await
    .unwrap();
    wait_conversation(&mut inbox, &c2, |c| c.label_ids.is_empty()).await;
    assert!(list(&mut chat, &agent, &bug.id).await.is_empty());
    let c = chat
        .get_conversation(authed(
            &agent,
            v1::GetConversationRequest {
                conversation_id: c2.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert!(c.label_ids.is_empty());
    // At most 20 labels on one conversation.
    let mut many = Vec::new();
    for i in 0..21 {
        many.push(
            put(&s, &admin, label(&site, &format!("L{i}"), ""))
                .await
                .unwrap()
                .id,
        );
    }
    let refs: Vec<&str> = many.iter().take(20).map(String::as_str).collect();
    let e = publish(&mut chat, &agent, labelling(&c2, &refs, &[]))
        .await
        .map(|_| ());
    assert!(e.is_ok(), "20 fit: {e:?}");
    let e = publish(&mut chat, &agent, labelling(&c2, &[&many[20]], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    drop(inbox);
    s.stop().await;
}

/// Moves a conversation's messages `ms` into the past, straight in the server's database (the
/// "shortened clock": the server's own clock stays the machine's).
async fn backdate(db: &wsmschat_server::Database, conversation_id: &str, ms: i64) {
    const SQL: &str = "UPDATE messages SET created_at = created_at - $1 WHERE conversation_id = $2";
    match db {
        wsmschat_server::Database::Sqlite(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            c.execute(
                &SQL.replace('$', "?"),
                rusqlite::params![ms, conversation_id],
            )
            .unwrap();
        }
        wsmschat_server::Database::Postgres { url, .. } => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.execute(SQL, &[&ms, &conversation_id]).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_conversation_the_customer_left_unanswered_resolves_itself_after_the_sites_hours() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut adm = s.admin_client().await;
    let mut site = adm
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .remove(0);
    let (_, agent) = s.agent("Dora", &[], 5).await;
    let (_, visitor) = s.visitor("Vera").await;
    let mut chat = s.chat().await;
    // Answered and left: the customer read the reply and went away.
    let (idle, _) = start_conversation(&mut chat, &visitor, "Order", "where is it?").await;
    publish(
        &mut chat,
        &agent,
        send(&idle, "", &uuid(), "It ships today."),
    )
    .await
    .unwrap();
    // Waiting for us: the customer wrote last; it must stay open whatever its age.
    let (waiting, _) = start_conversation(&mut chat, &visitor, "Order", "hello?").await;
    publish(&mut chat, &agent, send(&waiting, "", &uuid(), "Looking."))
        .await
        .unwrap();
    publish(
        &mut chat,
        &visitor,
        send(&waiting, "", &uuid(), "thanks, and?"),
    )
    .await
    .unwrap();
    // Answered recently: stays open.
    let (recent, _) = start_conversation(&mut chat, &visitor, "Order", "a question").await;
    publish(&mut chat, &agent, send(&recent, "", &uuid(), "An answer."))
        .await
        .unwrap();
    backdate(&s.config.database, &idle, 3 * 3_600_000).await;
    backdate(&s.config.database, &waiting, 3 * 3_600_000).await;
    backdate(&s.config.database, &recent, 3_600_000 / 2).await;
    let mut sub = Sub::open(&mut chat, &visitor, vec![(idle.clone(), 0)], false)
        .await
        .unwrap();

    // Off by default: nothing happens in several passes (every 200 ms in tests).
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        conversation(&mut chat, &agent, &idle).await.status,
        v1::ConversationStatus::Open as i32
    );
    // Two hours on this site.
    site.auto_resolve_hours = 2;
    adm.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(site.clone()),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
    let resolved = wait_conversation(&mut sub, &idle, |c| {
        c.status == v1::ConversationStatus::Resolved as i32
    })
    .await;
    assert!(resolved.rating == 0);
    // The usual resolve: a system message in the seq log, after the reply.
    let log = history(&mut chat, &agent, &idle).await;
    let last = log.last().unwrap();
    assert_eq!(
        last.system.as_ref().map(|s| s.kind),
        Some(v1::SystemEventKind::Resolved as i32)
    );
    assert_eq!(last.seq, log.len() as u64);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for (id, what) in [
        (&waiting, "the customer wrote last"),
        (&recent, "answered recently"),
    ] {
        assert_eq!(
            conversation(&mut chat, &agent, id).await.status,
            v1::ConversationStatus::Open as i32,
            "{what}"
        );
    }
    // Out of range: refused.
    site.auto_resolve_hours = 9_000;
    let e = adm
        .update_site(authed(
            &admin,
            v1::UpdateSiteRequest {
                site: Some(site),
                rotate_identity_secret: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}
