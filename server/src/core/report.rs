//! The site report: conversations per day, median first response and resolution times,
//! satisfaction, over the last N days (UTC days).

use wsmschat::v1;

use super::Core;
use super::access::AdminGrant;
use crate::error::CoreResult;
use crate::util::now_ms;

const DAY_MS: i64 = 86_400_000;

/// The median (the mean of the middle two for an even count); 0 for none.
pub(super) fn median(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// "YYYY-MM-DD" of a UTC day number (days since 1970-01-01).
fn day_string(days: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl Core {
    /// The report of one site (empty id: every site) over the last `days` (0: 30; at most
    /// 366), today included.
    pub async fn site_report(
        &self,
        _: AdminGrant,
        site_id: String,
        days: u32,
    ) -> CoreResult<v1::GetSiteReportResponse> {
        let days = if days == 0 { 30 } else { days.min(366) } as i64;
        let today = now_ms().div_euclid(DAY_MS);
        let first_day = today - days + 1;
        let per_label = self
            .store
            .label_report(site_id.clone(), first_day * DAY_MS)
            .await?;
        let rows = self
            .store
            .report_rows(site_id, first_day * DAY_MS)
            .await?
            .conversations;
        let mut per_day: Vec<v1::DayCount> = (first_day..=today)
            .map(|d| v1::DayCount {
                day: day_string(d),
                conversations: 0,
            })
            .collect();
        let mut first_response = Vec::new();
        let mut resolution = Vec::new();
        let (mut rating_sum, mut ratings, mut resolved) = (0u64, 0u32, 0u32);
        for row in &rows {
            let idx = (row.created_at.div_euclid(DAY_MS) - first_day) as usize;
            if let Some(d) = per_day.get_mut(idx) {
                d.conversations += 1;
            }
            if let (Some(m), Some(reply)) = (row.first_message_at, row.first_response_at) {
                first_response.push((reply - m).max(0));
            }
            if let Some(at) = row.resolved_at {
                resolved += 1;
                resolution.push(at - row.created_at);
            }
            if row.rating > 0 {
                ratings += 1;
                rating_sum += row.rating as u64;
            }
        }
        Ok(v1::GetSiteReportResponse {
            per_day,
            conversations: rows.len() as u32,
            median_first_response_ms: median(first_response),
            median_resolution_ms: median(resolution),
            satisfaction_average: if ratings == 0 {
                0.0
            } else {
                rating_sum as f64 / ratings as f64
            },
            ratings,
            resolved,
            per_label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_medians() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(20_454), "2026-01-01");
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(vec![]), 0);
    }
}
