//! Small helpers with no better home: clock and time formats, random ids and tokens, HTML
//! escaping and error chains (what the webhook, email and transcript code share).

use base64::Engine;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf
}

/// A new id: `prefix` + 12 random bytes in hex (24 chars). Random, not sequential,
/// so ids reveal nothing about volume.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random_bytes::<12>()))
}

/// A new secret token: `prefix` + 32 random bytes, URL-safe base64.
pub fn new_token(prefix: &str) -> String {
    let bytes = random_bytes::<32>();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// RFC 3339 UTC with milliseconds for a time in ms since epoch.
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// "2026-12-02 14:05 UTC" for a time in ms since epoch (emails, transcripts).
pub fn utc_minute(ms: i64) -> String {
    let t = rfc3339(ms);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

/// Escapes text for HTML: user text is never markup.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `head`, then each cause of `e` not already said, ": "-separated, in one line.
pub fn error_chain(head: String, e: &dyn std::error::Error) -> String {
    let mut out = head;
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !out.contains(&part) {
            out.push_str(": ");
            out.push_str(&part);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_minute(1_614_265_330_123), "2021-02-25 15:02 UTC");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<img src=x onerror=alert(1)> & \"q\""),
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;"
        );
    }
}
