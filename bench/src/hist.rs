//! A small log-linear latency histogram (microseconds, about 1.6% relative precision),
//! mergeable across load processes and sent between them as sparse (bucket, count) pairs.

use serde::{Deserialize, Serialize};

const LINEAR: u64 = 128;
const SUB: u64 = 64;

/// Latency histogram in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    sum: u128,
}

/// The wire form of a [`Hist`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SparseHist {
    pub buckets: Vec<(u32, u64)>,
    pub max: u64,
    pub sum: u128,
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // >= 7
    let m = v >> (e - 6); // in [64, 128)
    (LINEAR + (e - 7) * SUB + (m - SUB)) as usize
}

/// The middle of a bucket.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + 7;
    let m = (i - LINEAR) % SUB + SUB;
    let shift = e - 6;
    (m << shift) + (1u64 << shift) / 2
}

impl Hist {
    pub fn record_us(&mut self, us: u64) {
        let i = index(us);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.n += 1;
        self.max = self.max.max(us);
        self.sum += us as u128;
    }

    /// Records a duration given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.record_us(ns / 1000);
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let target = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return value(i).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Hist) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (i, c) in other.counts.iter().enumerate() {
            self.counts[i] += c;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn to_sparse(&self) -> SparseHist {
        SparseHist {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
            max: self.max,
            sum: self.sum,
        }
    }

    pub fn from_sparse(s: &SparseHist) -> Hist {
        let mut h = Hist::default();
        for (i, c) in &s.buckets {
            let i = *i as usize;
            if h.counts.len() <= i {
                h.counts.resize(i + 1, 0);
            }
            h.counts[i] += c;
            h.n += c;
        }
        h.max = s.max;
        h.sum = s.sum;
        h
    }

    /// Summary in milliseconds: n, p50, p90, p99, p99.9, max, mean.
    pub fn summary_ms(&self) -> serde_json::Value {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        serde_json::json!({
            "n": self.n,
            "p50": ms(self.quantile_us(0.5)),
            "p90": ms(self.quantile_us(0.9)),
            "p99": ms(self.quantile_us(0.99)),
            "p999": ms(self.quantile_us(0.999)),
            "max": ms(self.max),
            "mean": if self.n == 0 { 0.0 } else { ms((self.sum / self.n as u128) as u64) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..5_000_000u64).step_by(37) {
            let i = index(v);
            assert!(i >= last);
            last = i;
            let mid = value(i) as f64;
            assert!(
                (mid - v as f64).abs() <= (v as f64 * 0.016).max(1.0),
                "{v} -> {mid}"
            );
        }
    }

    #[test]
    fn quantiles_and_merge() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        for v in 1..=1000 {
            a.record_us(v);
            b.record_us(v + 1000);
        }
        let a2 = Hist::from_sparse(&a.to_sparse());
        let mut m = a2.clone();
        m.merge(&b);
        assert_eq!(m.len(), 2000);
        let p50 = m.quantile_us(0.5) as f64;
        assert!((p50 - 1000.0).abs() < 20.0, "{p50}");
        assert_eq!(m.quantile_us(1.0), 2000);
    }
}
