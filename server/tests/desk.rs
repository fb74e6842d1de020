//! Desk operations (issue #15) on a real server (SQLite, or PostgreSQL with
//! WSMSCHAT_TEST_POSTGRES): labels (admins define them per site, staff put them on
//! conversations, live to every follower; the inbox filters by them, the report counts them) and
//! auto-resolve (a conversation the customer left unanswered resolves itself after the site's
//! hours, on a shortened clock: its rows are moved into the past); opening hours (closed
//! now: when the team is back, the out-of-office reply once per conversation) and the typical
//! reply time.

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

/// The ids of the conversations `token` lists with `filter`.
async fn ids(
    chat: &mut wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
    token: &str,
    filter: v1::ListConversationsRequest,
) -> Vec<String> {
    chat.list_conversations(authed(token, filter))
        .await
        .unwrap()
        .into_inner()
        .conversations
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn list(
    chat: &mut wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
    token: &str,
    label_id: &str,
) -> Vec<String> {
    let filter = v1::ListConversationsRequest {
        label_id: label_id.into(),
        ..Default::default()
    };
    ids(chat, token, filter).await
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

async fn site_info(s: &TestServer, site_key: &str) -> v1::SiteInfo {
    s.sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: site_key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap()
}

fn every_day(open: u32, close: u32) -> Vec<v1::OpeningHours> {
    (1..=7)
        .map(|weekday| v1::OpeningHours {
            weekday,
            open_minute: open,
            close_minute: close,
        })
        .collect()
}

/// A site closed today and tomorrow (its holidays, in Tokyo) tells the widget it is closed
/// and back the day after at 09:00 Tokyo time; a customer writing gets the site's
/// out-of-office reply once, after their message in the seq log; open hours, 24/7 and bad
/// schedules behave; the typical reply time is the median of recent first responses.
#[tokio::test]
async fn opening_hours_away_reply_and_typical_reply_time() {
    use jiff::{Timestamp, tz::TimeZone};
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut site = s.demo_site(&admin).await;
    assert!(!site_info(&s, "demo").await.closed, "no hours: open");

    let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
    let today = Timestamp::now().to_zoned_datetime(tokyo.clone()).date();
    let tomorrow = today.tomorrow().unwrap();
    let back = tomorrow
        .tomorrow()
        .unwrap()
        .at(9, 0, 0, 0)
        .to_zoned_datetime(tokyo.clone())
        .unwrap()
        .timestamp()
        .as_millisecond();
    site.time_zone = "Asia/Tokyo".into();
    site.opening_hours = every_day(9 * 60, 17 * 60);
    site.closed_dates = vec![tomorrow.to_string(), today.to_string()];
    site.away_message = "We are out until <b>Monday</b>.".into();
    let saved = s.save_site(&admin, site.clone()).await.unwrap();
    assert_eq!(
        saved.closed_dates,
        [today.to_string(), tomorrow.to_string()],
        "sorted"
    );
    assert_eq!(saved.opening_hours.len(), 7);
    let info = site_info(&s, "demo").await;
    assert!(info.closed);
    assert_eq!(
        info.opens_at_ms, back,
        "back the day after tomorrow, 09:00 in Tokyo"
    );
    assert_eq!(info.closes_at_ms, 0);

    // A customer writes: their message, then the site's reply, once per conversation. An
    // agent online outside the hours does not get it assigned: it waits in the queue.
    let (_, visitor) = s.visitor("Vera").await;
    let mut chat = s.chat().await;
    let (agent, agent_token) = s.agent("Nora", &[], 50).await;
    let mut inbox = Sub::open(&mut chat, &agent_token, vec![], true)
        .await
        .unwrap();
    let (c, ack) = start_conversation(&mut chat, &visitor, "Order", "hello?").await;
    let mut sub = Sub::open(&mut chat, &visitor, vec![(c.clone(), ack.seq)], false)
        .await
        .unwrap();
    let away = sub.next_message().await;
    assert_eq!(away.seq, 2);
    assert_eq!(away.kind, v1::MessageKind::System as i32);
    assert_eq!(
        away.system.as_ref().map(|s| s.kind),
        Some(v1::SystemEventKind::Away as i32)
    );
    assert_eq!(away.text, "We are out until <b>Monday</b>.");
    publish(&mut chat, &visitor, send(&c, "", &uuid(), "anyone?"))
        .await
        .unwrap();
    assert_eq!(sub.next_message().await.text, "anyone?");
    sub.no_message_within(std::time::Duration::from_millis(600))
        .await;
    let log = history(&mut chat, &visitor, &c).await;
    let aways = log
        .iter()
        .filter(|m| {
            m.system
                .as_ref()
                .is_some_and(|s| s.kind == v1::SystemEventKind::Away as i32)
        })
        .count();
    assert_eq!((log.len(), aways), (3, 1));
    assert_eq!(
        conversation(&mut chat, &admin, &c).await.status,
        v1::ConversationStatus::Queued as i32,
        "closed: it waits in the queue although an agent is online"
    );

    // Open now (all day, no holidays): not closed, closes at the end of the day; around the
    // clock: no closing in sight; no message is sent to new conversations while open.
    site.closed_dates.clear();
    site.opening_hours = (1..=7)
        .flat_map(|weekday| {
            [
                v1::OpeningHours {
                    weekday,
                    open_minute: 0,
                    close_minute: 720,
                },
                v1::OpeningHours {
                    weekday,
                    open_minute: 720,
                    close_minute: 1439,
                },
            ]
        })
        .collect();
    s.save_site(&admin, site.clone()).await.unwrap();
    let info = site_info(&s, "demo").await;
    let now = Timestamp::now().to_zoned_datetime(tokyo.clone());
    if now.time().hour() < 23 || now.time().minute() < 59 {
        assert!(!info.closed);
        let end = now
            .date()
            .at(23, 59, 0, 0)
            .to_zoned_datetime(tokyo.clone())
            .unwrap()
            .timestamp()
            .as_millisecond();
        assert_eq!(info.closes_at_ms, end, "touching intervals are one stretch");
    }
    // Open now: the waiting conversation is served (the opening is noticed on the clock).
    let served = wait_conversation(&mut inbox, &c, |c| {
        c.status == v1::ConversationStatus::Open as i32
    })
    .await;
    assert_eq!(served.assignee_id, agent.id);
    site.opening_hours = every_day(0, 1440);
    s.save_site(&admin, site.clone()).await.unwrap();
    let info = site_info(&s, "demo").await;
    assert_eq!(
        (info.closed, info.opens_at_ms, info.closes_at_ms),
        (false, 0, 0)
    );
    let (_, visitor2) = s.visitor("Walt").await;
    let (c2, _) = start_conversation(&mut chat, &visitor2, "Order", "open?").await;
    wait_conversation(&mut inbox, &c2, |c| {
        c.status == v1::ConversationStatus::Open as i32
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        history(&mut chat, &visitor2, &c2).await.iter().all(|m| m
            .system
            .as_ref()
            .is_none_or(|s| s.kind != v1::SystemEventKind::Away as i32)),
        "open: no out-of-office reply"
    );

    // What cannot be evaluated is refused, with the field named.
    for (bad, what) in [
        (
            v1::Site {
                time_zone: "Mars/Olympus".into(),
                ..site.clone()
            },
            "time_zone",
        ),
        (
            v1::Site {
                opening_hours: every_day(600, 600),
                ..site.clone()
            },
            "open_minute",
        ),
        (
            v1::Site {
                opening_hours: every_day(0, 1441),
                ..site.clone()
            },
            "1440",
        ),
        (
            v1::Site {
                closed_dates: vec!["24/12/2026".into()],
                ..site.clone()
            },
            "closed date",
        ),
        (
            v1::Site {
                away_message: "x".repeat(1001),
                ..site.clone()
            },
            "away_message",
        ),
        (
            v1::Site {
                away_message: "a\0b".into(),
                ..site.clone()
            },
            "NUL",
        ),
    ] {
        let e = s.save_site(&admin, bad).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}");
        assert!(e.message().contains(what), "{what}: {}", e.message());
    }

    // Typical reply time: unknown under three first responses, then their median (the agent
    // took two conversations without writing in them).
    let agent = agent_token;
    assert_eq!(site_info(&s, "demo").await.typical_reply_s, 0);
    for (i, text) in ["a", "b", "c"].iter().enumerate() {
        let (_, v) = s.visitor(&format!("R{i}")).await;
        let (id, _) = start_conversation(&mut chat, &v, "Product", text).await;
        publish(&mut chat, &agent, send(&id, "", &uuid(), "here"))
            .await
            .unwrap();
    }
    let typical = site_info(&s, "demo").await.typical_reply_s;
    assert!(
        (1..60).contains(&typical),
        "median of quick replies: {typical} s"
    );
    s.stop().await;
}

fn snoozing(conversation_id: &str, until_ms: i64, wake: bool) -> v1::ClientEvent {
    ev(Ce::Snooze(v1::SnoozeConversation {
        conversation_id: conversation_id.into(),
        until_ms,
        wake,
    }))
}

async fn listed(
    chat: &mut wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
    token: &str,
    snooze: v1::SnoozeFilter,
) -> Vec<String> {
    let filter = v1::ListConversationsRequest {
        snooze: snooze as i32,
        ..Default::default()
    };
    ids(chat, token, filter).await
}

/// Snooze: an agent puts an open conversation aside until the customer writes (which wakes it,
/// live on the inbox stream) or until a time (the one-minute clock wakes it; 200 ms in tests);
/// lists leave snoozed ones out or show only them; resolving ends a snooze; only open
/// conversations snooze, only to a time ahead; the customer is never told.
#[tokio::test]
async fn snooze_until_the_customer_writes_or_a_time() {
    let s = TestServer::start().await;
    let (_, agent) = s.agent("Sam", &[], 5).await;
    let mut chat = s.chat().await;
    let mut inbox = Sub::open(&mut chat, &agent, vec![], true).await.unwrap();
    let (_, visitor) = s.visitor("Vic").await;
    let (c, _) = start_conversation(&mut chat, &visitor, "Order", "where is it?").await;
    wait_conversation(&mut inbox, &c, |c| {
        c.status == v1::ConversationStatus::Open as i32
    })
    .await;
    let open_seq = history(&mut chat, &agent, &c).await.len();
    let mut vsub = Sub::open(
        &mut chat,
        &visitor,
        vec![(c.clone(), open_seq as u64)],
        false,
    )
    .await
    .unwrap();

    // Until the customer's next message.
    publish(&mut chat, &agent, snoozing(&c, 0, false))
        .await
        .unwrap();
    let z = wait_conversation(&mut inbox, &c, |c| c.snoozed).await;
    assert_eq!(z.snoozed_until_ms, 0);
    assert!(
        !listed(&mut chat, &agent, v1::SnoozeFilter::Awake)
            .await
            .contains(&c)
    );
    assert_eq!(
        listed(&mut chat, &agent, v1::SnoozeFilter::Snoozed).await,
        std::slice::from_ref(&c)
    );
    assert!(
        listed(&mut chat, &agent, v1::SnoozeFilter::Unspecified)
            .await
            .contains(&c)
    );
    publish(&mut chat, &visitor, send(&c, "", &uuid(), "hello again"))
        .await
        .unwrap();
    let woke = wait_conversation(&mut inbox, &c, |c| !c.snoozed).await;
    assert_eq!(woke.status, v1::ConversationStatus::Open as i32);
    assert!(
        listed(&mut chat, &agent, v1::SnoozeFilter::Awake)
            .await
            .contains(&c)
    );
    // Not a message in the log: the customer saw only their own message.
    assert_eq!(vsub.next_message().await.text, "hello again");
    assert_eq!(history(&mut chat, &agent, &c).await.len(), open_seq + 1);

    // Until a time: the clock wakes it.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600;
    publish(&mut chat, &agent, snoozing(&c, until, false))
        .await
        .unwrap();
    let z = wait_conversation(&mut inbox, &c, |c| c.snoozed).await;
    assert_eq!(z.snoozed_until_ms, until);
    let woke = wait_conversation(&mut inbox, &c, |c| !c.snoozed).await;
    assert_eq!(woke.snoozed_until_ms, 0);
    assert!(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            >= until,
        "not before its time"
    );

    // Wake by hand; resolving ends a snooze.
    publish(&mut chat, &agent, snoozing(&c, 0, false))
        .await
        .unwrap();
    wait_conversation(&mut inbox, &c, |c| c.snoozed).await;
    publish(&mut chat, &agent, snoozing(&c, 0, true))
        .await
        .unwrap();
    wait_conversation(&mut inbox, &c, |c| !c.snoozed).await;
    publish(&mut chat, &agent, snoozing(&c, 0, false))
        .await
        .unwrap();
    wait_conversation(&mut inbox, &c, |c| c.snoozed).await;
    publish(
        &mut chat,
        &agent,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: c.clone(),
        })),
    )
    .await
    .unwrap();
    let r = wait_conversation(&mut inbox, &c, |c| {
        c.status == v1::ConversationStatus::Resolved as i32
    })
    .await;
    assert!(!r.snoozed);

    // Refused: a resolved or queued conversation, a time past or over a year ahead, a visitor.
    let e = publish(&mut chat, &agent, snoozing(&c, 0, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    for bad in [1_000, i64::MAX / 2] {
        let e = publish(&mut chat, &agent, snoozing(&c, bad, false))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    let (_, other) = s.visitor("Queued").await;
    let e = publish(&mut chat, &visitor, snoozing(&c, 0, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    drop(inbox); // Sam goes offline: the next conversation stays queued.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (q, _) = start_conversation(&mut chat, &other, "Order", "anyone?").await;
    let e = publish(&mut chat, &agent, snoozing(&q, 0, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "queued: take it first");
    s.stop().await;
}

/// A site's own widget texts: checked when saved, and a session gets those for every language
/// plus its own language's (as plain keys, after the others).
#[tokio::test]
async fn a_sites_widget_texts_reach_the_widget_in_its_language() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut site = s.demo_site(&admin).await;
    let text = |key: &str, text: &str| v1::WidgetText {
        key: key.into(),
        text: text.into(),
    };
    site.widget_texts = vec![
        text("ja.title", "サポート"),
        text("topicQuestion", "What do you need?"),
        text("de.offline", "Gerade weg"),
    ];
    let saved = s.save_site(&admin, site.clone()).await.unwrap();
    let keys: Vec<&str> = saved.widget_texts.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["de.offline", "ja.title", "topicQuestion"], "sorted");
    let session = |locale: &'static str| {
        let s = &s;
        async move {
            s.sessions()
                .await
                .start_visitor_session(v1::StartVisitorSessionRequest {
                    site_key: "demo".into(),
                    locale: locale.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .site
                .unwrap()
                .texts
                .into_iter()
                .map(|t| (t.key, t.text))
                .collect::<Vec<_>>()
        }
    };
    let q = ("topicQuestion".to_string(), "What do you need?".to_string());
    assert_eq!(
        session("de-DE").await,
        [q.clone(), ("offline".into(), "Gerade weg".into())]
    );
    assert_eq!(
        session("ja").await,
        [q.clone(), ("title".into(), "サポート".into())]
    );
    assert_eq!(session("en-US").await, [q]);
    for (bad, what) in [
        (vec![text("xx.title", "a")], "key"),
        (vec![text("title", "")], "one line"),
        (vec![text("title", "a\nb")], "one line"),
        (vec![text("title", "a"), text("title", "b")], "twice"),
        (vec![text("title", "a"); 301], "at most"),
    ] {
        let e = s
            .save_site(
                &admin,
                v1::Site {
                    widget_texts: bad,
                    ..site.clone()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}");
        assert!(e.message().contains(what), "{what}: {}", e.message());
    }
    s.stop().await;
}
