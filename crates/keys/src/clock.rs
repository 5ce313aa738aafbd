//! Where the KMC and the security module read the time: passed in, like rustls' `TimeProvider`,
//! so that tests and replays can fix it.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use sts_core::UtcMinute;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01 00:00 UTC.
    fn unix_seconds(&self) -> i64;

    /// The current minute.
    fn now(&self) -> UtcMinute {
        UtcMinute::from_unix_seconds(self.unix_seconds())
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock that shows what it is set to: for tests, replays and `--now` options.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `time`.
    #[must_use]
    pub fn new(time: UtcMinute) -> Self {
        Self(Arc::new(AtomicI64::new(time.unix_minutes() * 60)))
    }

    /// Sets the time; every copy of this clock sees it.
    pub fn set(&self, time: UtcMinute) {
        self.0.store(time.unix_minutes() * 60, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_seconds(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
