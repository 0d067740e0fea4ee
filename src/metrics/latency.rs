//! Latency histograms kept as atomics. The request path records two latencies per transaction
//! (checkout wait, request duration): here that is a search over 14 bounds and two relaxed
//! atomic adds, where the exporter's histogram queues every sample for a later fold. A scrape
//! renders them in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds: 100 µs to 10 s, as the exposition's `le` labels.
const BOUNDS: [&str; 14] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "2.5", "10",
];
/// The same bounds in nanoseconds.
const BOUNDS_NANOS: [u64; 14] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// One latency histogram: a count per bucket (the last one past every bound) and the sum.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Counts one sample.
    pub fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the series of histogram `name` with `labels`: cumulative buckets, sum and count.
    pub fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let labels = label_text(labels);
        let mut total = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            total += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {total}");
        }
        total += self.buckets[BOUNDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let plain = labels.trim_end_matches(',');
        let _ = writeln!(out, "{name}_sum{{{plain}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{plain}}} {total}");
    }
}

/// `k="v",` for each label, values escaped as the text format wants.
fn label_text(labels: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (key, value) in labels {
        let value = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(text, "{key}=\"{value}\",");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_cumulative_buckets_with_sum_and_count() {
        let latency = Latency::default();
        latency.record(Duration::from_micros(100));
        latency.record(Duration::from_micros(300));
        latency.record(Duration::from_secs(60));
        let mut out = String::new();
        latency.render(&mut out, "x_seconds", &[("node", "a\"b")]);
        assert!(out.contains("x_seconds_bucket{node=\"a\\\"b\",le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("le=\"0.00025\"} 1\n") && out.contains("le=\"0.0005\"} 2\n"), "{out}");
        assert!(out.contains("le=\"10\"} 2\n") && out.contains("le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_count{node=\"a\\\"b\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum{node=\"a\\\"b\"} 60.0004\n"), "{out}");
    }
}
