//! Per-key rate limits (token buckets) and open-stream counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock (the system's monotonic clock unless a test pauses it), so refills and
// lockouts are tested on a paused clock instead of by sleeping.
use tokio::time::Instant;

/// The key of a client address in per-address limits: the IPv4 address, or the /64 of an IPv6
/// address (one subscriber usually gets a whole /64, so per-address limits would not hold).
pub fn ip_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A job for the hash pool.
type HashJob = Box<dyn FnOnce() + Send>;

/// A few dedicated threads for password hashing (argon2id: 19 MiB and tens of ms each). Not
/// the blocking pool: store reads run there, and hundreds of its threads each keeping a
/// hash's memory in its own allocator arena is what made a login flood cost gigabytes.
pub struct HashPool {
    jobs: Mutex<Option<std::sync::mpsc::Sender<HashJob>>>,
}

impl HashPool {
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("wsmschat-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was dropped
                        }
                    }
                });
        }
        Self {
            jobs: Mutex::new(Some(tx)),
        }
    }

    /// Runs `f` on a pool thread; None if the pool is gone or `f` panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.lock().unwrap().as_ref()?.send(job).ok()?;
        rx.await.ok()
    }
}

/// A token bucket per key: `rate` tokens per second, at most `burst` saved up.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    /// key -> (tokens, last refill).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle (full) ones are swept.
const SWEEP_AT: usize = 50_000;

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `n` per minute, with a burst of `n`.
    pub fn per_minute(n: u32) -> Self {
        Self {
            rate: n.max(1) as f64 / 60.0,
            burst: n.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `n` per hour, with a burst of `n`.
    pub fn per_hour(n: u32) -> Self {
        Self {
            rate: n.max(1) as f64 / 3600.0,
            burst: n.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when the key is over its rate.
    pub fn check(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() >= SWEEP_AT {
            let (rate, burst) = (self.rate, self.burst);
            // A bucket that has refilled completely carries no state worth keeping.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts open streams per key against a maximum.
pub struct StreamCounter {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamCounter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more stream for `key`, or false when at the maximum.
    pub fn acquire(&self, key: &str) -> bool {
        self.take(key, Some(self.max))
    }

    /// Counts one more stream for `key` against `max` (0: unlimited), or false when at it.
    pub fn acquire_max(&self, key: &str, max: usize) -> bool {
        self.take(key, (max != 0).then_some(max))
    }

    fn take(&self, key: &str, max: Option<usize>) -> bool {
        let mut open = self.open.lock().unwrap();
        let n = open.get(key).copied().unwrap_or(0);
        if max.is_some_and(|max| n >= max) {
            return false;
        }
        open.insert(key.to_owned(), n + 1);
        true
    }

    /// One stream of `key` closed.
    pub fn release(&self, key: &str) {
        let mut open = self.open.lock().unwrap();
        if let Some(n) = open.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                open.remove(key);
            }
        }
    }
}

/// Failed attempts per key (an account, an address) with a growing lockout: after `free`
/// failures each further one locks the key for twice as long as the last (1 s, 2 s, 4 s ...,
/// at most `max_lock`). A success clears the key. Entries are swept when the map grows large.
pub struct FailureThrottle {
    free: u32,
    max_lock: Duration,
    keys: Mutex<HashMap<String, (u32, Instant)>>,
}

impl FailureThrottle {
    pub fn new(free: u32, max_lock: Duration) -> Self {
        Self {
            free,
            max_lock,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait before its next attempt (None: it may try now).
    pub fn locked_for(&self, key: &str) -> Option<Duration> {
        let keys = self.keys.lock().unwrap();
        let (_, until) = keys.get(key)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Records a failure of `key`.
    pub fn failed(&self, key: &str) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap();
        if keys.len() >= SWEEP_AT {
            // Keys whose lock ran out a while ago carry little: forget them.
            let horizon = self.max_lock;
            keys.retain(|_, (_, until)| now.saturating_duration_since(*until) < horizon);
        }
        let (n, until) = keys.entry(key.to_owned()).or_insert((0, now));
        *n += 1;
        if *n > self.free {
            let exp = (*n - self.free - 1).min(20);
            let lock = Duration::from_secs(1u64 << exp).min(self.max_lock);
            *until = now + lock;
        }
    }

    /// `key` succeeded: its failures are forgotten.
    pub fn succeeded(&self, key: &str) {
        self.keys.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let l = RateLimiter::new(1, 3);
        assert!(l.check("a"));
        assert!(l.check("a"));
        assert!(l.check("a"));
        assert!(!l.check("a"));
        assert!(l.check("b"), "keys are independent");
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(ip_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[test]
    fn failures_lock_out_growing() {
        let t = FailureThrottle::new(2, Duration::from_secs(60));
        t.failed("a");
        t.failed("a");
        assert!(t.locked_for("a").is_none(), "the first failures are free");
        t.failed("a");
        let first = t.locked_for("a").expect("locked after the free failures");
        assert!(first <= Duration::from_secs(1));
        t.failed("a");
        assert!(t.locked_for("a").unwrap() > Duration::from_millis(1500));
        assert!(t.locked_for("b").is_none());
        t.succeeded("a");
        assert!(t.locked_for("a").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let l = RateLimiter::new(2, 3);
        for _ in 0..3 {
            assert!(l.check("a"));
        }
        assert!(!l.check("a"), "the burst is spent");
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(!l.check("a"), "0.8 of a token after 400 ms at 2/s");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(l.check("a"), "a whole token after 600 ms");
        assert!(!l.check("a"));
        // A long quiet spell saves up the burst, not more.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..3 {
            assert!(l.check("a"));
        }
        assert!(!l.check("a"), "at most the burst is saved up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_minute_bucket_refills_per_minute() {
        let l = RateLimiter::per_minute(6);
        for _ in 0..6 {
            assert!(l.check("ip"));
        }
        assert!(!l.check("ip"));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!l.check("ip"), "6 a minute: one every 10 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.check("ip"));
        assert!(!l.check("ip"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lockout_runs_out_and_the_next_one_doubles_up_to_the_cap() {
        let t = FailureThrottle::new(1, Duration::from_secs(4));
        t.failed("a");
        assert_eq!(t.locked_for("a"), None, "one free failure");
        t.failed("a");
        assert_eq!(t.locked_for("a"), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(t.locked_for("a"), Some(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(t.locked_for("a"), None, "the lock ran out");
        t.failed("a");
        assert_eq!(t.locked_for("a"), Some(Duration::from_secs(2)));
        t.failed("a");
        assert_eq!(t.locked_for("a"), Some(Duration::from_secs(4)));
        t.failed("a");
        assert_eq!(t.locked_for("a"), Some(Duration::from_secs(4)), "capped");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(t.locked_for("a"), None);
    }

    #[test]
    fn stream_counter() {
        let c = StreamCounter::new(2);
        assert!(c.acquire("t"));
        assert!(c.acquire("t"));
        assert!(!c.acquire("t"));
        c.release("t");
        assert!(c.acquire("t"));
    }
}
