//! Opening hours (issue #15): a site's time zone, weekly schedule and closed dates, checked
//! when a site is saved and evaluated for the widget (open now? until or from when?) and for
//! the out-of-office reply.
//!
//! A schedule is evaluated in the site's zone (IANA, from jiff's bundled tz database, so a
//! binary copied alone to a machine without `/usr/share/zoneinfo` still knows every zone):
//! the intervals of the next 15 local days become instants, touching ones merge (Monday
//! 18:00-24:00 and Tuesday 00:00-06:00 are one stretch), and the stretch holding `now`, or the
//! next one, answers. A local time a DST change skips or repeats resolves as
//! `compatible` (the later instant for a gap, the earlier for a fold).

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use wsmschat::v1;

use super::Core;
use crate::error::{CoreError, CoreResult};
use crate::store::NewMessage;
use crate::util::now_ms;

/// Intervals a site may declare (several a day are allowed: a lunch break).
pub const MAX_INTERVALS: usize = 70;
/// Closed dates a site may list (a year and a bit of holidays).
pub const MAX_CLOSED_DATES: usize = 400;
/// Bytes of the out-of-office reply.
pub const MAX_AWAY_BYTES: usize = 1_000;
/// How far ahead the next opening is looked for, in days.
const HORIZON_DAYS: i16 = 15;

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}

/// A site's schedule, parsed once per site-cache load.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    /// Per ISO weekday (index 0: Monday), (open, close) minutes after local midnight, sorted.
    week: [Vec<(u16, u16)>; 7],
    closed: BTreeSet<Date>,
    /// The out-of-office reply ("": none).
    pub away_message: String,
}

/// Open or closed at an instant, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub open: bool,
    /// Open: when it closes; closed: when it opens (ms since epoch). None: not within
    /// the horizon (closed for good, or open around the clock).
    pub next_change_ms: Option<i64>,
}

fn zone(name: &str) -> CoreResult<TimeZone> {
    if name.is_empty() {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        invalid(format!(
            "time_zone {name:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)"
        ))
    })
}

/// Checks and normalises a site's hours fields (called by the site's normalisation).
pub fn normalize(s: &mut v1::Site) -> CoreResult<()> {
    s.time_zone = s.time_zone.trim().to_owned();
    if s.time_zone.len() > 64 {
        return Err(invalid("time_zone is at most 64 bytes"));
    }
    zone(&s.time_zone)?;
    if s.opening_hours.len() > MAX_INTERVALS {
        return Err(invalid(format!(
            "at most {MAX_INTERVALS} opening intervals"
        )));
    }
    for i in &s.opening_hours {
        if !(1..=7).contains(&i.weekday) {
            return Err(invalid(
                "an opening interval's weekday is 1 (Monday) to 7 (Sunday)",
            ));
        }
        if i.open_minute >= i.close_minute || i.close_minute > 1440 {
            return Err(invalid(
                "an opening interval is open_minute < close_minute <= 1440 (minutes after local midnight)",
            ));
        }
    }
    s.opening_hours
        .sort_by_key(|i| (i.weekday, i.open_minute, i.close_minute));
    s.opening_hours.dedup();
    if s.closed_dates.len() > MAX_CLOSED_DATES {
        return Err(invalid(format!("at most {MAX_CLOSED_DATES} closed dates")));
    }
    let mut dates = BTreeSet::new();
    for d in &s.closed_dates {
        let d = d.trim();
        let parsed: Date = (d.len() == 10)
            .then(|| d.parse().ok())
            .flatten()
            .ok_or_else(|| invalid(format!("closed date {d:?} is not a date like 2026-12-24")))?;
        dates.insert(parsed);
    }
    s.closed_dates = dates.iter().map(|d| d.to_string()).collect();
    if s.away_message.len() > MAX_AWAY_BYTES {
        return Err(invalid(format!(
            "away_message is at most {MAX_AWAY_BYTES} bytes"
        )));
    }
    super::check_no_nul(&s.away_message, "away_message")?;
    s.away_message = s.away_message.trim().to_owned();
    Ok(())
}

impl Schedule {
    /// The site's schedule; None when it declares no hours (always open).
    pub fn of(s: &v1::Site) -> Option<Schedule> {
        if s.opening_hours.is_empty() {
            return None;
        }
        let tz = zone(&s.time_zone).unwrap_or(TimeZone::UTC);
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for i in &s.opening_hours {
            if (1..=7).contains(&i.weekday) && i.open_minute < i.close_minute {
                week[i.weekday as usize - 1]
                    .push((i.open_minute as u16, i.close_minute.min(1440) as u16));
            }
        }
        for day in &mut week {
            day.sort_unstable();
        }
        let closed = s
            .closed_dates
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        Some(Schedule {
            tz,
            week,
            closed,
            away_message: s.away_message.clone(),
        })
    }

    fn instant(&self, day: Date, minute: u16) -> Option<Timestamp> {
        let dt: DateTime = if minute >= 1440 {
            day.tomorrow().ok()?.at(0, 0, 0, 0)
        } else {
            day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
        };
        self.tz.to_ambiguous_timestamp(dt).compatible().ok()
    }

    /// Open or closed at `now_ms`, and until when.
    pub fn status(&self, now_ms: i64) -> Status {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return Status {
                open: false,
                next_change_ms: None,
            };
        };
        let today = self.tz.to_datetime(now).date();
        // Stretches of the coming days, merged where they touch.
        let mut stretches: Vec<(Timestamp, Timestamp)> = Vec::new();
        let mut day = today;
        for _ in 0..HORIZON_DAYS {
            if !self.closed.contains(&day) {
                let weekday = day.weekday().to_monday_one_offset() as usize - 1;
                for &(open, close) in &self.week[weekday] {
                    let (Some(a), Some(b)) = (self.instant(day, open), self.instant(day, close))
                    else {
                        continue;
                    };
                    if b <= a {
                        continue;
                    }
                    match stretches.last_mut() {
                        Some(last) if a <= last.1 => last.1 = last.1.max(b),
                        _ => stretches.push((a, b)),
                    }
                }
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
        // The end of the last day looked at: a stretch reaching it does not close within sight.
        let horizon_end = self.instant(day, 0);
        for (a, b) in stretches {
            if now < a {
                return Status {
                    open: false,
                    next_change_ms: Some(a.as_millisecond()),
                };
            }
            if now < b {
                return Status {
                    open: true,
                    next_change_ms: Some(b.as_millisecond())
                        .filter(|_| horizon_end.is_none_or(|end| b < end)),
                };
            }
        }
        Status {
            open: false,
            next_change_ms: None,
        }
    }
}

/// The period the typical reply time is the median of.
const REPLY_TIME_PERIOD_MS: i64 = 14 * 86_400_000;
/// Fewer first responses than this in the period: no figure (one slow night is not typical).
const REPLY_TIME_MIN_SAMPLES: usize = 3;

/// Per-node caches of the hours feature: parsed schedules (rebuilt with the site cache, so a
/// change reaches every node as the site cache does) and typical reply times.
#[derive(Default)]
pub(super) struct HoursCache {
    schedules: std::sync::RwLock<std::collections::HashMap<String, Arc<Schedule>>>,
    reply_times: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
    /// Open or closed at the last `opening_pass`, per site with hours.
    was_open: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl HoursCache {
    /// Rebuilds the schedules from freshly loaded sites.
    pub(super) fn load<'a>(&self, sites: impl Iterator<Item = &'a v1::Site>) {
        let map = sites
            .filter_map(|s| Schedule::of(s).map(|sch| (s.id.clone(), Arc::new(sch))))
            .collect();
        *self.schedules.write().unwrap() = map;
    }
}

impl Core {
    /// The site's schedule, None when it declares no hours (always open). No database read.
    pub fn schedule(&self, site_id: &str) -> Option<Arc<Schedule>> {
        self.hours.schedules.read().unwrap().get(site_id).cloned()
    }

    /// Sites that opened since the last pass get their queues served (outside hours the
    /// router leaves them waiting). Every node may do it: assignments are transactional.
    pub async fn opening_pass(self: &Arc<Self>) {
        let now = now_ms();
        let schedules: Vec<(String, Arc<Schedule>)> = self
            .hours
            .schedules
            .read()
            .unwrap()
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let mut opened = Vec::new();
        {
            let mut was = self.hours.was_open.lock().unwrap();
            for (site_id, schedule) in &schedules {
                let open = schedule.status(now).open;
                if was.insert(site_id.clone(), open) == Some(false) && open {
                    opened.push(site_id.clone());
                }
            }
            // A site that dropped its hours is open from now on.
            was.retain(|site_id, open| {
                let kept = schedules.iter().any(|(id, _)| id == site_id);
                if !kept && !*open {
                    opened.push(site_id.clone());
                }
                kept
            });
        }
        for site_id in opened {
            if let Ok(site) = self.site(&site_id).await {
                tracing::info!(site = %site_id, "Opening hours began: serving the queue");
                self.drain(site.topics);
            }
        }
    }

    /// What the widget is told about the site's hours now: (closed, opens_at_ms, closes_at_ms).
    pub(super) fn hours_now(&self, site_id: &str) -> (bool, i64, i64) {
        let Some(schedule) = self.schedule(site_id) else {
            return (false, 0, 0);
        };
        let st = schedule.status(now_ms());
        let next = st.next_change_ms.unwrap_or(0);
        if st.open {
            (false, 0, next)
        } else {
            (true, next, 0)
        }
    }

    /// The median first-response time of the site's conversations of the last 14 days,
    /// seconds (0: fewer than three). Computed at most every `reply_time_ttl` per site and node
    /// (one indexed range read of the site's conversations).
    pub(super) async fn typical_reply_s(&self, site_id: &str) -> u32 {
        if let Some((at, s)) = self.hours.reply_times.lock().unwrap().get(site_id) {
            if at.elapsed() < self.config.reply_time_ttl {
                return *s;
            }
        }
        let now = now_ms();
        let value = match self
            .store
            .report_rows(site_id.to_owned(), now - REPLY_TIME_PERIOD_MS)
            .await
        {
            Ok(rows) => {
                let times: Vec<i64> = rows
                    .conversations
                    .iter()
                    .filter_map(|r| Some((r.first_response_at? - r.first_message_at?).max(0)))
                    .collect();
                if times.len() < REPLY_TIME_MIN_SAMPLES {
                    0
                } else {
                    // The report's median, so the widget and the site report agree.
                    (super::report::median(times) / 1000).clamp(1, u32::MAX as i64) as u32
                }
            }
            Err(error) => {
                tracing::warn!(%error, site_id, "Could not compute the typical reply time");
                0
            }
        };
        self.hours
            .reply_times
            .lock()
            .unwrap()
            .insert(site_id.to_owned(), (std::time::Instant::now(), value));
        value
    }

    /// A customer's message was stored: outside the site's opening hours, the site's
    /// out-of-office reply follows it, once per conversation. "Once" is the store's
    /// idempotency key (`s:` + `away:<conversation>`), so it holds across retries, nodes and
    /// restarts with no column of its own. Runs after the ack, off the sender's path.
    pub(super) fn away_reply(self: &Arc<Self>, site_id: &str, conversation_id: &str) {
        let Some(schedule) = self.schedule(site_id) else {
            return;
        };
        if schedule.away_message.is_empty() || schedule.status(now_ms()).open {
            return;
        }
        let core = self.clone();
        let site_id = site_id.to_owned();
        let conversation_id = conversation_id.to_owned();
        tokio::spawn(async move {
            let name = core
                .site(&site_id)
                .await
                .map(|s| s.name)
                .unwrap_or_default();
            let m = NewMessage {
                conversation_id: Some(conversation_id.clone()),
                new_conversation: None,
                client_msg_id: Some(format!("away:{conversation_id}")),
                author_key: "s:".into(),
                kind: v1::MessageKind::System,
                author_kind: v1::AuthorKind::System,
                author_id: String::new(),
                author_name: name,
                text: schedule.away_message.clone(),
                system: Some(v1::SystemEvent {
                    kind: v1::SystemEventKind::Away as i32,
                    ..Default::default()
                }),
                require_visitor: None,
                origin_stream: None,
                attachment_ids: Vec::new(),
                alert_topics: Vec::new(),
                alert_delay_ms: 0,
                email_visitor: None,
            };
            if let Err(error) = core.store.append_message(m).await {
                tracing::warn!(%error, conversation = conversation_id, "Could not send the out-of-office reply");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str, tz: &str) -> i64 {
        let dt: DateTime = s.parse().unwrap();
        TimeZone::get(tz)
            .unwrap()
            .to_ambiguous_timestamp(dt)
            .compatible()
            .unwrap()
            .as_millisecond()
    }

    fn site(tz: &str, hours: &[(u32, u32, u32)], closed: &[&str]) -> v1::Site {
        v1::Site {
            time_zone: tz.into(),
            opening_hours: hours
                .iter()
                .map(|&(weekday, open_minute, close_minute)| v1::OpeningHours {
                    weekday,
                    open_minute,
                    close_minute,
                })
                .collect(),
            closed_dates: closed.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    fn weekdays_9_to_17(tz: &str, closed: &[&str]) -> Schedule {
        let hours: Vec<_> = (1..=5).map(|d| (d, 540, 1020)).collect();
        Schedule::of(&site(tz, &hours, closed)).unwrap()
    }

    #[test]
    fn open_and_closed_through_a_week_in_the_sites_zone() {
        let tz = "Europe/Berlin";
        let s = weekdays_9_to_17(tz, &[]);
        // Thursday 2026-12-03 10:00 Berlin: open until 17:00.
        let st = s.status(ms("2026-12-03T10:00", tz));
        assert_eq!(
            st,
            Status {
                open: true,
                next_change_ms: Some(ms("2026-12-03T17:00", tz))
            }
        );
        // 08:59: closed, opens at 09:00 the same day.
        let st = s.status(ms("2026-12-03T08:59", tz));
        assert_eq!(
            st,
            Status {
                open: false,
                next_change_ms: Some(ms("2026-12-03T09:00", tz))
            }
        );
        // Friday 17:00 sharp is closed; back Monday 09:00.
        let st = s.status(ms("2026-12-04T17:00", tz));
        assert_eq!(
            st,
            Status {
                open: false,
                next_change_ms: Some(ms("2026-12-07T09:00", tz))
            }
        );
        // The same instant seen from New York is 11:00 there: the site's zone decides.
        let st = s.status(ms("2026-12-04T11:00", "America/New_York"));
        assert!(!st.open);
    }

    #[test]
    fn closed_dates_skip_whole_days() {
        let tz = "America/New_York";
        let s = weekdays_9_to_17(tz, &["2026-12-24", "2026-12-25"]);
        let st = s.status(ms("2026-12-24T10:00", tz));
        assert_eq!(
            st,
            Status {
                open: false,
                next_change_ms: Some(ms("2026-12-28T09:00", tz))
            }
        );
    }

    #[test]
    fn touching_intervals_merge_across_midnight_and_breaks_split() {
        let tz = "UTC";
        // Monday 18:00-24:00 and Tuesday 00:00-06:00; Wednesday 09:00-12:00 and 13:00-17:00.
        let s = Schedule::of(&site(
            tz,
            &[(1, 1080, 1440), (2, 0, 360), (3, 540, 720), (3, 780, 1020)],
            &[],
        ))
        .unwrap();
        let st = s.status(ms("2026-11-30T23:00", tz)); // a Monday
        assert_eq!(
            st,
            Status {
                open: true,
                next_change_ms: Some(ms("2026-12-01T06:00", tz))
            }
        );
        let st = s.status(ms("2026-12-02T12:30", tz));
        assert_eq!(
            st,
            Status {
                open: false,
                next_change_ms: Some(ms("2026-12-02T13:00", tz))
            }
        );
    }

    #[test]
    fn a_dst_change_moves_the_instant_not_the_local_time() {
        let tz = "Europe/Berlin";
        let s = weekdays_9_to_17(tz, &[]);
        // Friday 2027-03-26 18:00 CET: back Monday 09:00 CEST, which is 07:00 UTC (not 08:00).
        let st = s.status(ms("2027-03-26T18:00", tz));
        assert_eq!(st.next_change_ms, Some(ms("2027-03-29T07:00", "UTC")));
    }

    #[test]
    fn no_opening_within_the_horizon_and_no_hours_at_all() {
        let all: Vec<String> = (1..=31).map(|d| format!("2026-12-{d:02}")).collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let s = weekdays_9_to_17("UTC", &refs);
        assert_eq!(
            s.status(ms("2026-12-03T10:00", "UTC")),
            Status {
                open: false,
                next_change_ms: None
            }
        );
        assert!(
            Schedule::of(&site("UTC", &[], &[])).is_none(),
            "no hours: always open"
        );
        let always: Vec<_> = (1..=7).map(|d| (d, 0, 1440)).collect();
        let s = Schedule::of(&site("Europe/Berlin", &always, &[])).unwrap();
        assert_eq!(
            s.status(ms("2026-12-03T10:00", "UTC")),
            Status {
                open: true,
                next_change_ms: None
            }
        );
    }

    /// Not a test: what one evaluation costs (README, opening hours). Run with
    /// `cargo test --release -p wsmschat-server --lib measure_schedule_status -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn measure_schedule_status() {
        let typical: Vec<_> = (1..=5)
            .flat_map(|d| [(d, 540, 720), (d, 780, 1020)])
            .collect();
        // The most a site may declare: 70 intervals, 10 a day.
        let worst: Vec<_> = (1..=7)
            .flat_map(|d| (0..10u32).map(move |i| (d, i * 140, i * 140 + 100)))
            .collect();
        for (what, hours) in [("typical (2 a weekday)", typical), ("worst (70)", worst)] {
            let s = Schedule::of(&site("Europe/Berlin", &hours, &["2026-12-24"])).unwrap();
            let now = ms("2026-12-05T10:00", "UTC"); // a Saturday: the next opening is days away
            let n = 20_000;
            let start = std::time::Instant::now();
            for i in 0..n {
                std::hint::black_box(s.status(now + i));
            }
            println!("{what}: {:?} per status()", start.elapsed() / n as u32);
        }
    }

    /// The README's claim that a binary copied alone (no /usr/share/zoneinfo) knows every
    /// zone: the bundled copy is compiled in and answers by itself.
    #[test]
    fn the_tz_database_is_bundled_in_the_binary() {
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        for zone in [
            "Asia/Tokyo",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
        ] {
            assert!(bundled.get(zone).is_ok(), "{zone}");
        }
    }

    #[test]
    fn normalisation_refuses_what_cannot_be_evaluated() {
        let bad = |mut s: v1::Site| normalize(&mut s).unwrap_err().to_string();
        assert!(bad(site("Mars/Olympus", &[], &[])).contains("IANA"));
        assert!(bad(site("UTC", &[(0, 1, 2)], &[])).contains("weekday"));
        assert!(bad(site("UTC", &[(1, 600, 600)], &[])).contains("open_minute"));
        assert!(bad(site("UTC", &[(1, 0, 1441)], &[])).contains("1440"));
        assert!(bad(site("UTC", &[], &["24.12.2026"])).contains("closed date"));
        assert!(bad(site("UTC", &[], &["2026-02-30"])).contains("closed date"));
        let mut s = site("UTC", &[(1, 0, 1440)], &[]);
        s.away_message = "x".repeat(MAX_AWAY_BYTES + 1);
        assert!(bad(s).contains("away_message"));
        let mut s = site(
            " Asia/Tokyo ",
            &[(2, 60, 120), (1, 0, 60), (1, 0, 60)],
            &["2027-01-01", "2026-12-31", "2027-01-01"],
        );
        normalize(&mut s).unwrap();
        assert_eq!(s.time_zone, "Asia/Tokyo");
        assert_eq!(s.opening_hours.len(), 2);
        assert_eq!(s.opening_hours[0].weekday, 1);
        assert_eq!(s.closed_dates, ["2026-12-31", "2027-01-01"]);
    }
}
