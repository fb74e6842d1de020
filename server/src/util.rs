//! Small helpers with no better home: clock, random ids and tokens.

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
