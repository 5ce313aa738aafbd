//! Prometheus metrics in the text exposition format, counted with atomics.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds of the vend latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    vends_credit: AtomicU64,
    vends_management: AtomicU64,
    vends_key_change: AtomicU64,
    reprints: AtomicU64,
    vend_errors: AtomicU64,
    conflicts: AtomicU64,
    batches: AtomicU64,
    batched_vends: AtomicU64,
    http: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    pub(crate) fn vend(&self, kind: &str, elapsed: Duration) {
        let counter = match kind {
            "credit" => &self.vends_credit,
            "management" => &self.vends_management,
            _ => &self.vends_key_change,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn reprint(&self) {
        self.reprints.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn vend_error(&self, code: &str) {
        if code == "request_id_reused" {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        } else {
            self.vend_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A group commit: one security module and one vend transaction for `vends` new vends.
    pub(crate) fn batch(&self, vends: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_vends
            .fetch_add(u64::try_from(vends).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn http(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http[class].fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP sts_vends_total Vends that issued new tokens, by kind.\n# TYPE sts_vends_total counter\n");
        for (kind, c) in [
            ("credit", &self.vends_credit),
            ("management", &self.vends_management),
            ("key_change", &self.vends_key_change),
        ] {
            let _ = writeln!(out, "sts_vends_total{{kind=\"{kind}\"}} {}", get(c));
        }
        let _ = writeln!(
            out,
            "# HELP sts_vend_reprints_total Requests answered with the tokens of an earlier request with the same ID.\n# TYPE sts_vend_reprints_total counter\nsts_vend_reprints_total {}",
            get(&self.reprints)
        );
        let _ = writeln!(
            out,
            "# HELP sts_vend_request_id_conflicts_total Request IDs reused with different content.\n# TYPE sts_vend_request_id_conflicts_total counter\nsts_vend_request_id_conflicts_total {}",
            get(&self.conflicts)
        );
        let _ = writeln!(
            out,
            "# HELP sts_vend_errors_total Vends refused or failed.\n# TYPE sts_vend_errors_total counter\nsts_vend_errors_total {}",
            get(&self.vend_errors)
        );
        let _ = writeln!(
            out,
            "# HELP sts_vend_batches_total Group commits of credit vends (one security module and one vend transaction each).\n# TYPE sts_vend_batches_total counter\nsts_vend_batches_total {}",
            get(&self.batches)
        );
        let _ = writeln!(
            out,
            "# HELP sts_vend_batched_total Credit vends issued in group commits.\n# TYPE sts_vend_batched_total counter\nsts_vend_batched_total {}",
            get(&self.batched_vends)
        );
        out.push_str("# HELP sts_http_responses_total HTTP responses by status class.\n# TYPE sts_http_responses_total counter\n");
        for (i, c) in self.http.iter().enumerate() {
            let _ = writeln!(
                out,
                "sts_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
        out.push_str("# HELP sts_vend_duration_seconds Time to issue and record a vend.\n# TYPE sts_vend_duration_seconds histogram\n");
        for (bound, c) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "sts_vend_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                get(c)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "sts_vend_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "sts_vend_duration_seconds_sum {}",
            get(&self.latency_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "sts_vend_duration_seconds_count {count}");
        out
    }
}
