//! Per-key rate limits (token buckets) and open-stream counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

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
        let mut open = self.open.lock().unwrap();
        let n = open.entry(key.to_owned()).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
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
    fn stream_counter() {
        let c = StreamCounter::new(2);
        assert!(c.acquire("t"));
        assert!(c.acquire("t"));
        assert!(!c.acquire("t"));
        c.release("t");
        assert!(c.acquire("t"));
    }
}
