//! Wall-clock time as the cluster's processes exchange it: a request's absolute deadline
//! travels in its proposal, and a leader stamps each entry it proposes with its clock.
//!
//! Deadlines are absolute so that a copy of a request that sat in a node's queue does not
//! start a fresh budget there (it is refused once the caller's deadline has passed), and
//! so that the dedup window can keep a request id for as long as any copy of the request
//! could still be proposed. Both rely on the processes' clocks agreeing within
//! [`MAX_CLOCK_SKEW_MS`] (NTP keeps ordinary machines within a few milliseconds; the
//! processes of a local cluster share one clock).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far apart two processes' clocks may be. A request id stays in the dedup window
/// until the log's clock is twice this far past the request's deadline.
pub const MAX_CLOCK_SKEW_MS: u64 = 500;

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// The wall-clock time (Unix ms) of the monotonic instant `deadline`.
pub fn wall_deadline(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    unix_ms().saturating_add(left.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// What is left until the wall-clock `deadline_ms` (zero once it has passed).
pub fn time_left(deadline_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms.saturating_sub(unix_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monotonic_deadline_maps_to_the_wall_clock_and_back() {
        let deadline = wall_deadline(Instant::now() + Duration::from_secs(10));
        let left = time_left(deadline);
        assert!(left <= Duration::from_secs(10) && left >= Duration::from_secs(9));
        assert_eq!(time_left(unix_ms().saturating_sub(1)), Duration::ZERO);
        assert_eq!(wall_deadline(Instant::now()) / 1000, unix_ms() / 1000);
    }
}
