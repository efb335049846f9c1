//! Requests per second and their p99 latency over the last minutes, for the dashboard's
//! chart. Fed by the request-timing middleware (`crate::metrics`, through
//! [`common::metrics::RequestObserver`]), so every request the Prometheus histogram counts
//! is counted here too, from the same measurement.
//!
//! Prometheus keeps cumulative histograms; a chart of the last minutes needs per-second
//! values, which the router would otherwise have to scrape from itself. So each second
//! keeps its request count and a bounded sample of its latencies (reservoir sampling:
//! exact below [`RESERVOIR`] requests a second, an unbiased sample above), and only the
//! last [`WINDOW_SECS`] seconds are kept.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;

/// Seconds the chart covers.
pub const WINDOW_SECS: u64 = 300;

/// Latencies kept per second for its p99.
const RESERVOIR: usize = 2048;

/// The dashboard's own polling is left out: a watcher should not see itself.
const OWN_PREFIX: &str = "/dashboard";

/// One finished second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    unix_s: u64,
    requests: u64,
    p99_ms: Option<f64>,
}

/// The second being counted.
#[derive(Debug)]
struct Second {
    unix_s: u64,
    requests: u64,
    latencies_ms: Vec<f64>,
}

impl Second {
    fn new(unix_s: u64) -> Second {
        Second {
            unix_s,
            requests: 0,
            latencies_ms: Vec::new(),
        }
    }

    fn add(&mut self, latency_ms: f64) {
        self.requests += 1;
        if self.latencies_ms.len() < RESERVOIR {
            self.latencies_ms.push(latency_ms);
            return;
        }
        // Algorithm R: the n-th request replaces a kept one with probability RESERVOIR/n.
        let slot = rand::thread_rng().gen_range(0..self.requests);
        if let Some(kept) = self.latencies_ms.get_mut(slot as usize) {
            *kept = latency_ms;
        }
    }

    fn finish(mut self) -> Sample {
        self.latencies_ms.sort_by(f64::total_cmp);
        Sample {
            unix_s: self.unix_s,
            requests: self.requests,
            p99_ms: percentile(&self.latencies_ms, 0.99),
        }
    }
}

/// The `q` quantile of sorted values (nearest rank), `None` when there are none.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// The chart's data: one value per second, oldest first, the last one being the second
/// before `end_unix_s` (the current second is still being counted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficSeries {
    pub end_unix_s: u64,
    pub requests_per_s: Vec<u64>,
    /// `None` for a second without requests.
    pub p99_ms: Vec<Option<f64>>,
}

#[derive(Debug, Default)]
pub struct Traffic {
    current: Option<Second>,
    finished: VecDeque<Sample>,
}

impl Traffic {
    /// One request that took `elapsed`, finished at `unix_s`.
    pub fn record(&mut self, unix_s: u64, elapsed: Duration) {
        self.roll(unix_s);
        self.current
            .get_or_insert_with(|| Second::new(unix_s))
            .add(elapsed.as_secs_f64() * 1000.0);
    }

    /// Finishes the current second if `unix_s` is past it. A clock that steps back
    /// keeps counting into the current second rather than rewriting history.
    fn roll(&mut self, unix_s: u64) {
        if self.current.as_ref().is_some_and(|c| c.unix_s < unix_s) {
            if let Some(done) = self.current.take() {
                self.finished.push_back(done.finish());
            }
        }
        let oldest = unix_s.saturating_sub(WINDOW_SECS);
        while self.finished.front().is_some_and(|s| s.unix_s < oldest) {
            self.finished.pop_front();
        }
    }

    /// The last [`WINDOW_SECS`] finished seconds as of `unix_s`, idle seconds as zero.
    pub fn series(&mut self, unix_s: u64) -> TrafficSeries {
        self.roll(unix_s);
        let start = unix_s.saturating_sub(WINDOW_SECS);
        let mut requests_per_s = vec![0; (unix_s - start) as usize];
        let mut p99_ms = vec![None; requests_per_s.len()];
        for s in &self.finished {
            if let Some(i) = s.unix_s.checked_sub(start).map(|i| i as usize) {
                if i < requests_per_s.len() {
                    requests_per_s[i] = s.requests;
                    p99_ms[i] = s.p99_ms;
                }
            }
        }
        TrafficSeries {
            end_unix_s: unix_s,
            requests_per_s,
            p99_ms,
        }
    }
}

static TRAFFIC: LazyLock<Mutex<Traffic>> = LazyLock::new(Mutex::default);

pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The [`common::metrics::RequestObserver`] the router's metrics report to.
pub fn observe(endpoint: &str, _status: u16, elapsed: Duration) {
    if counts(endpoint) {
        TRAFFIC.lock().record(unix_now_s(), elapsed);
    }
}

fn counts(endpoint: &str) -> bool {
    !endpoint.starts_with(OWN_PREFIX)
}

/// The process's series as of now.
pub fn series() -> TrafficSeries {
    TRAFFIC.lock().series(unix_now_s())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn seconds_are_counted_apart_and_idle_ones_are_zero() {
        let mut t = Traffic::default();
        for i in 1..=100 {
            t.record(1000, ms(i));
        }
        t.record(1002, ms(5));
        let s = t.series(1003);
        assert_eq!(s.end_unix_s, 1003);
        assert_eq!(s.requests_per_s.len(), WINDOW_SECS as usize);
        let last3 = &s.requests_per_s[s.requests_per_s.len() - 3..];
        assert_eq!(last3, [100, 0, 1]);
        let p99 = &s.p99_ms[s.p99_ms.len() - 3..];
        assert_eq!(p99, [Some(99.0), None, Some(5.0)]);
    }

    #[test]
    fn the_current_second_is_not_reported_and_old_ones_fall_off() {
        let mut t = Traffic::default();
        t.record(10, ms(1));
        t.record(11, ms(1));
        let s = t.series(11);
        assert_eq!(s.requests_per_s.iter().sum::<u64>(), 1);
        let later = t.series(11 + WINDOW_SECS + 1);
        assert_eq!(later.requests_per_s.iter().sum::<u64>(), 0);
        assert!(t.finished.is_empty());
    }

    #[test]
    fn a_clock_stepping_back_counts_into_the_current_second() {
        let mut t = Traffic::default();
        t.record(50, ms(1));
        t.record(49, ms(1));
        let s = t.series(51);
        assert_eq!(s.requests_per_s.last(), Some(&2));
    }

    #[test]
    fn busy_seconds_keep_a_bounded_sample() {
        let mut second = Second::new(1);
        for i in 0..10 * RESERVOIR as u64 {
            second.add((i % 100) as f64);
        }
        assert_eq!(second.latencies_ms.len(), RESERVOIR);
        let sample = second.finish();
        assert_eq!(sample.requests, 10 * RESERVOIR as u64);
        assert!(sample.p99_ms.is_some_and(|p| p >= 90.0), "{sample:?}");
    }

    #[test]
    fn the_dashboard_does_not_count_itself() {
        assert!(!counts("/dashboard/state"));
        assert!(!counts("/dashboard"));
        assert!(counts("/api/v2/heartbeat"));
        assert!(counts(common::metrics::UNMATCHED_ENDPOINT));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 0.99), None);
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.99), Some(198.0));
    }
}
