//! The TID memory: the identifiers of the most recent accepted tokens (STS.md 3 and 8,
//! STS-detail.md 9.2).
//!
//! A token whose TID is stored is **used**; once the memory holds as many TIDs as its depth, a
//! token older than the oldest stored TID is **old**. When full, accepting a token evicts the
//! smallest (oldest) TID, as the one public firmware does ("replacing the smallest"), so the
//! memory always holds the newest TIDs it has seen and a token may arrive out of order as long
//! as it is newer than the oldest one kept.
//!
//! The memory is a fixed array of [`TidMemory::CAPACITY`] TIDs kept in ascending order; the
//! depth in use is a setting ([`crate::MeterConfig::tid_memory_depth`]). No allocation.

use core::fmt;

use sts_core::TokenIdentifier;

/// Why the TID memory refuses a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TidVerdict {
    /// The TID is stored: the token was accepted before.
    Used,
    /// The memory is full and the TID is older than the oldest stored.
    Old {
        /// The oldest stored TID.
        oldest: TokenIdentifier,
    },
}

/// The TIDs of accepted tokens, oldest first, at most [`TidMemory::CAPACITY`] of them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TidMemory {
    tids: [u32; Self::CAPACITY],
    len: u16,
}

impl TidMemory {
    /// The most TIDs a memory can hold, whatever its depth setting.
    pub const CAPACITY: usize = 256;

    /// An empty memory (a new meter, or one after a rollover key change).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            tids: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// A memory holding these TIDs.
    ///
    /// # Errors
    /// More than [`TidMemory::CAPACITY`] TIDs, or a TID given twice.
    pub fn from_tids(
        tids: impl IntoIterator<Item = TokenIdentifier>,
    ) -> Result<Self, TidMemoryError> {
        let mut memory = Self::new();
        for tid in tids {
            let stored = memory.stored();
            let at = match stored.binary_search(&tid.get()) {
                Ok(_) => return Err(TidMemoryError::Duplicate(tid)),
                Err(at) => at,
            };
            if memory.len() == Self::CAPACITY {
                return Err(TidMemoryError::TooMany);
            }
            memory.insert_at(at, tid.get());
        }
        Ok(memory)
    }

    /// How many TIDs are stored.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no TID is stored.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The stored TIDs, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = TokenIdentifier> + '_ {
        self.stored()
            .iter()
            .filter_map(|&t| TokenIdentifier::from_raw(t).ok())
    }

    /// The oldest (smallest) stored TID.
    #[must_use]
    pub fn oldest(&self) -> Option<TokenIdentifier> {
        self.iter().next()
    }

    /// The newest (largest) stored TID.
    #[must_use]
    pub fn newest(&self) -> Option<TokenIdentifier> {
        self.iter().next_back()
    }

    /// True when `tid` is stored.
    #[must_use]
    pub fn contains(&self, tid: TokenIdentifier) -> bool {
        self.stored().binary_search(&tid.get()).is_ok()
    }

    fn stored(&self) -> &[u32] {
        &self.tids[..self.len()]
    }

    fn insert_at(&mut self, at: usize, tid: u32) {
        let len = self.len();
        self.tids.copy_within(at..len, at + 1);
        self.tids[at] = tid;
        self.len += 1;
    }

    /// Used when stored; old when the memory holds `depth` TIDs and `tid` is older than all.
    pub(crate) fn check(&self, tid: TokenIdentifier, depth: usize) -> Result<(), TidVerdict> {
        if self.contains(tid) {
            return Err(TidVerdict::Used);
        }
        match self.oldest() {
            Some(oldest) if self.len() >= depth && tid < oldest => Err(TidVerdict::Old { oldest }),
            _ => Ok(()),
        }
    }

    /// Stores `tid` (which [`TidMemory::check`] passed), evicting the oldest TIDs while the
    /// memory holds `depth` or more.
    pub(crate) fn insert(&mut self, tid: TokenIdentifier, depth: usize) {
        let depth = depth.clamp(1, Self::CAPACITY);
        while self.len() >= depth {
            let len = self.len();
            self.tids.copy_within(1..len, 0);
            self.len -= 1;
        }
        if let Err(at) = self.stored().binary_search(&tid.get()) {
            self.insert_at(at, tid.get());
        }
    }

    /// Forgets every TID (a rollover key change, STS.md 5).
    pub(crate) fn clear(&mut self) {
        *self = Self::new();
    }
}

impl Default for TidMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TidMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.stored()).finish()
    }
}

/// TIDs that do not make a memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TidMemoryError {
    /// More than [`TidMemory::CAPACITY`] TIDs.
    TooMany,
    /// A TID given twice.
    Duplicate(TokenIdentifier),
}

impl fmt::Display for TidMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany => write!(f, "a TID memory holds at most {} TIDs", TidMemory::CAPACITY),
            Self::Duplicate(tid) => write!(f, "TID {tid} is stored twice"),
        }
    }
}

impl core::error::Error for TidMemoryError {}

/// Saved as the list of stored TIDs, oldest first.
#[cfg(feature = "serde")]
impl serde::Serialize for TidMemory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.stored())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TidMemory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TidMemory;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a list of at most {} distinct 24-bit TIDs",
                    TidMemory::CAPACITY
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TidMemory, A::Error> {
                use serde::de::Error;
                let mut memory = TidMemory::new();
                while let Some(raw) = seq.next_element::<u32>()? {
                    let tid = TokenIdentifier::from_raw(raw).map_err(A::Error::custom)?;
                    if memory.len() == TidMemory::CAPACITY {
                        return Err(A::Error::custom(TidMemoryError::TooMany));
                    }
                    match memory.stored().binary_search(&tid.get()) {
                        Ok(_) => return Err(A::Error::custom(TidMemoryError::Duplicate(tid))),
                        Err(at) => memory.insert_at(at, tid.get()),
                    }
                }
                Ok(memory)
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(n: u32) -> TokenIdentifier {
        TokenIdentifier::from_raw(n).unwrap()
    }

    #[test]
    fn used_old_and_eviction() {
        let mut m = TidMemory::new();
        for n in [30, 10, 20] {
            assert_eq!(m.check(tid(n), 3), Ok(()));
            m.insert(tid(n), 3);
        }
        assert_eq!(
            m.iter().map(TokenIdentifier::get).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        assert_eq!(m.check(tid(20), 3), Err(TidVerdict::Used));
        assert_eq!(m.check(tid(5), 3), Err(TidVerdict::Old { oldest: tid(10) }));
        // Out of order but newer than the oldest: accepted, and the oldest goes.
        assert_eq!(m.check(tid(15), 3), Ok(()));
        m.insert(tid(15), 3);
        assert_eq!(
            m.iter().map(TokenIdentifier::get).collect::<Vec<_>>(),
            [15, 20, 30]
        );
        // Not full yet: an older TID is not old.
        assert_eq!(m.check(tid(1), 4), Ok(()));
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn from_tids_refuses_duplicates_and_overflow() {
        assert_eq!(
            TidMemory::from_tids([tid(1), tid(1)]),
            Err(TidMemoryError::Duplicate(tid(1)))
        );
        assert_eq!(
            TidMemory::from_tids((0..=256).map(tid)),
            Err(TidMemoryError::TooMany)
        );
        let m = TidMemory::from_tids((0..256).rev().map(tid)).unwrap();
        assert_eq!((m.oldest(), m.newest()), (Some(tid(0)), Some(tid(255))));
        // A smaller depth than what is stored evicts down to depth - 1 before inserting.
        let mut m = m;
        m.insert(tid(1000), 10);
        assert_eq!(m.len(), 10);
        assert_eq!(m.newest(), Some(tid(1000)));
    }
}
