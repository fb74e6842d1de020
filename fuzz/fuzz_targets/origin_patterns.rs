//! `wsmschat_server::auth::origin_allowed(patterns, origin)`: the `Origin` allowlist every
//! visitor call, visitor session and CORS preflight goes through.
//!
//! Invariants (any violation aborts):
//! - it never panics;
//! - a pattern equal to the origin matches it (for origins without surrounding whitespace:
//!   patterns are trimmed, origins are not; hyper strips such whitespace from header values);
//! - "https://*.example.com" matches only https origins whose host ends with ".example.com";
//! - "http://localhost:*" matches only http origins whose host is "localhost";
//! - a list matches iff one of its patterns matches alone; a list with "*" matches anything.
//!
//! The two host invariants hold for any string by default. `FUZZ_ORIGIN_WELLFORMED=1` limits
//! them to well-formed origins (`scheme://host[:port]`, what a browser sends), to fuzz the
//! other invariants past the known finding on malformed origins (docs/fuzzing.md).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsmschat_server::auth::origin_allowed;

#[derive(Debug, Arbitrary)]
struct Input {
    patterns: Vec<String>,
    origin: String,
}

/// (scheme, host) of an origin-like string, the way a URL parser reads it: the host is the
/// authority (up to the first '/', '?', '#' or '\') after any userinfo and without the port.
fn scheme_host(origin: &str) -> Option<(String, String)> {
    let (scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => host_port,
        }
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// `scheme "://" host [":" port]` with an RFC 3986 scheme, a host of letters, digits, '-',
/// '.', '_' (or a bracketed IPv6 address) and a numeric port: the serialized origin a browser
/// sends in `Origin`.
fn well_formed(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => ("v6", None),
            p => match p.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    scheme_ok && host_ok && port_ok
}

fn wellformed_only() -> bool {
    static ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONLY.get_or_init(|| std::env::var_os("FUZZ_ORIGIN_WELLFORMED").is_some_and(|v| v == "1"))
}

const SUBDOMAINS: &str = "https://*.example.com";
const ANY_PORT: &str = "http://localhost:*";

fuzz_target!(|input: Input| {
    let Input { patterns, origin } = input;
    let origin = origin.as_str();

    let matched = origin_allowed(&patterns, origin);
    let one_by_one = patterns
        .iter()
        .any(|p| origin_allowed(std::slice::from_ref(p), origin));
    assert_eq!(
        matched, one_by_one,
        "list vs single patterns: {patterns:?} {origin:?}"
    );

    let mut with_star = patterns.clone();
    with_star.push("*".into());
    assert!(
        origin_allowed(&with_star, origin),
        "'*' must match {origin:?}"
    );

    if origin.trim() == origin {
        assert!(
            origin_allowed(&[origin.to_owned()], origin),
            "an exact pattern must match its origin: {origin:?}"
        );
    }

    if wellformed_only() && !well_formed(origin.trim_end_matches('/')) {
        return;
    }

    if origin_allowed(&[SUBDOMAINS.to_owned()], origin) {
        let (scheme, host) = scheme_host(origin)
            .unwrap_or_else(|| panic!("{SUBDOMAINS} matched {origin:?}, which has no host"));
        assert_eq!(scheme, "https", "{SUBDOMAINS} matched {origin:?}");
        assert!(
            host.ends_with(".example.com"),
            "{SUBDOMAINS} matched {origin:?}, whose host is {host:?}"
        );
    }

    if origin_allowed(&[ANY_PORT.to_owned()], origin) {
        let (scheme, host) = scheme_host(origin)
            .unwrap_or_else(|| panic!("{ANY_PORT} matched {origin:?}, which has no host"));
        assert_eq!(scheme, "http", "{ANY_PORT} matched {origin:?}");
        assert_eq!(host, "localhost", "{ANY_PORT} matched {origin:?}");
    }
});
