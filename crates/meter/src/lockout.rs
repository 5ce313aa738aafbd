//! Keypad lockout after consecutive invalid entries.
//!
//! The standard does not define a lockout; this follows the one vendor behaviour on record
//! (STS-detail.md 9.5, CLOU; STS.md 8): after 3 wrong entries the keypad locks for 10 s, the
//! lock doubles with every further wrong entry up to 1280 s, class 1 tokens still work, and a
//! good token (or a power cycle) resets it. **Not normative**: every number is a setting.
//!
//! Time is a monotonic seconds counter the caller passes in; the meter reads no clock.

/// When and how long the keypad locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LockoutPolicy {
    /// Consecutive invalid entries that lock the keypad (at least 1).
    pub threshold: u32,
    /// Seconds of the first lock.
    pub initial_seconds: u64,
    /// Seconds of the longest lock; each further invalid entry doubles the lock up to this.
    pub maximum_seconds: u64,
}

impl LockoutPolicy {
    /// 3 entries, 10 s doubling to 1280 s (STS-detail.md 9.5, one vendor).
    pub const DEFAULT: Self = Self {
        threshold: 3,
        initial_seconds: 10,
        maximum_seconds: 1280,
    };

    /// The lock after `invalid` consecutive invalid entries: none below the threshold, then
    /// `initial * 2^(invalid - threshold)`, at most the maximum.
    #[must_use]
    pub const fn lock_seconds(&self, invalid: u32) -> Option<u64> {
        if invalid < self.threshold {
            return None;
        }
        let doublings = invalid - self.threshold;
        let seconds = if doublings >= 64 {
            u64::MAX
        } else {
            match self.initial_seconds.checked_mul(1 << doublings) {
                Some(s) => s,
                None => u64::MAX,
            }
        };
        Some(if seconds > self.maximum_seconds {
            self.maximum_seconds
        } else {
            seconds
        })
    }
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The count of consecutive invalid entries and the lock they caused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LockoutState {
    consecutive_invalid: u32,
    locked_until: Option<u64>,
}

impl LockoutState {
    /// No invalid entries, not locked.
    pub const UNLOCKED: Self = Self {
        consecutive_invalid: 0,
        locked_until: None,
    };

    /// Consecutive invalid entries since the last accepted meter-specific token.
    #[must_use]
    pub const fn consecutive_invalid(&self) -> u32 {
        self.consecutive_invalid
    }

    /// The second (on the caller's counter) the current or last lock ends.
    #[must_use]
    pub const fn locked_until(&self) -> Option<u64> {
        self.locked_until
    }

    /// Seconds the keypad stays locked at `now_seconds`; `None` when it is not locked.
    #[must_use]
    pub const fn remaining(&self, now_seconds: u64) -> Option<u64> {
        match self.locked_until {
            Some(until) if now_seconds < until => Some(until - now_seconds),
            _ => None,
        }
    }

    /// Counts an invalid entry and locks when the policy says so.
    pub(crate) fn record_invalid(&mut self, now_seconds: u64, policy: &LockoutPolicy) {
        self.consecutive_invalid = self.consecutive_invalid.saturating_add(1);
        if let Some(seconds) = policy.lock_seconds(self.consecutive_invalid) {
            self.locked_until = Some(now_seconds.saturating_add(seconds));
        }
    }

    /// A good token or a power cycle: count and lock cleared.
    pub(crate) fn reset(&mut self) {
        *self = Self::UNLOCKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_to_1280_seconds() {
        let p = LockoutPolicy::DEFAULT;
        let locks: [Option<u64>; 12] = core::array::from_fn(|i| p.lock_seconds(i as u32));
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                Some(10),
                Some(20),
                Some(40),
                Some(80),
                Some(160),
                Some(320),
                Some(640),
                Some(1280),
                Some(1280)
            ]
        );
        assert_eq!(p.lock_seconds(u32::MAX), Some(1280));
    }

    #[test]
    fn locks_and_unlocks_with_time() {
        let p = LockoutPolicy::DEFAULT;
        let mut s = LockoutState::UNLOCKED;
        s.record_invalid(100, &p);
        s.record_invalid(101, &p);
        assert_eq!(s.remaining(101), None);
        s.record_invalid(102, &p);
        assert_eq!(s.remaining(102), Some(10));
        assert_eq!(s.remaining(111), Some(1));
        assert_eq!(s.remaining(112), None);
        s.record_invalid(200, &p);
        assert_eq!(s.remaining(200), Some(20));
        s.reset();
        assert_eq!(s, LockoutState::UNLOCKED);
        // Near the end of the counter the lock saturates instead of wrapping.
        s.consecutive_invalid = 10;
        s.record_invalid(u64::MAX - 1, &p);
        assert_eq!(s.locked_until(), Some(u64::MAX));
    }
}
