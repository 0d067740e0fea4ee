//! One clock for the whole monitor: every probe and every database's round wakes on the same
//! instants, multiples of the check interval from one origin.
//!
//! Each kept a timer of its own, started when it was: with a primary and two replicas at the
//! default 100 ms that was four wake-ups of the thread per interval, each a sleep and a switch,
//! and one more per database. On one beat the timer wheel fires them together, and the thread
//! wakes once for them all.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The instants the monitor wakes on.
#[derive(Clone, Copy, Debug)]
pub struct Beat {
    origin: Instant,
    interval: Duration,
}

impl Beat {
    /// Beats every `interval` (at least a millisecond, the timer's grain) from now.
    pub fn new(interval: Duration) -> Beat {
        Beat { origin: Instant::now(), interval: interval.max(Duration::from_millis(1)) }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The first beat strictly after `at`.
    pub fn next_after(&self, at: Instant) -> Instant {
        let since = at.saturating_duration_since(self.origin);
        let beats = since.as_nanos() / self.interval.as_nanos() + 1;
        // A u32 of beats covers over a year at 10 ms; past that, the beat drifts by the rest.
        self.origin + self.interval * u32::try_from(beats).unwrap_or(u32::MAX)
    }

    /// A ticker on the beats; a beat missed while the thread was busy is skipped, not made up.
    pub fn ticker(&self) -> Interval {
        let mut tick = tokio::time::interval_at(self.next_after(Instant::now()), self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_beat_is_the_first_multiple_of_the_interval_after_the_instant() {
        let beat = Beat::new(Duration::from_millis(100));
        let at = |ms: u64| beat.origin + Duration::from_millis(ms);
        assert_eq!(beat.next_after(at(0)), at(100));
        assert_eq!(beat.next_after(at(1)), at(100));
        assert_eq!(beat.next_after(at(99)), at(100));
        assert_eq!(beat.next_after(at(100)), at(200), "strictly after: a probe that ends on a beat waits for the next");
        assert_eq!(beat.next_after(at(1_234)), at(1_300));
        // Before the origin (an instant taken earlier): the first beat.
        assert_eq!(beat.next_after(beat.origin - Duration::from_millis(5)), at(100));
    }

    #[test]
    fn an_interval_below_the_timers_grain_beats_every_millisecond() {
        let beat = Beat::new(Duration::ZERO);
        assert_eq!(beat.interval(), Duration::from_millis(1));
        assert_eq!(beat.next_after(beat.origin), beat.origin + Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticker_of_one_beat_fires_on_the_same_instants() {
        let beat = Beat::new(Duration::from_millis(100));
        let mut first = beat.ticker();
        tokio::time::advance(Duration::from_millis(37)).await;
        let mut second = beat.ticker();
        let (a, b) = (first.tick().await, second.tick().await);
        assert_eq!(a, b, "a ticker made later still fires on the shared beat");
        assert_eq!(a, beat.origin + Duration::from_millis(100));
        assert_eq!(first.tick().await, second.tick().await);
    }
}
