//! Key change sets arriving one section at a time (STS.md 5, STS-detail.md 5.5 and 9.3).
//!
//! A set has 2 sections (2/3 + 2/4, 64-bit key), 3 (2/3 with the 3KCT bit + 2/4 + 2/8 carrying
//! the SGC, 64-bit key) or 4 (2/3, 2/4, 2/8, 2/9, 128-bit EA11 key: key bytes 0-3 in 2/3, 4-7 in
//! 2/8, 8-11 in 2/9, 12-15 in 2/4, SGC halves in 2/8 and 2/9). The meter accepts the sections in
//! any order and applies the key only when all have arrived (\[P\], STS.md 5).
//!
//! What the public record does not settle, and how this meter decides:
//! - **A section arrives again.** The same section with the same content changes nothing (the
//!   meter answers the partial status again). A section with different content starts a new
//!   set: the staged sections are dropped and the new one is staged, so a customer who
//!   abandons a set can enter a fresh one.
//! - **Sections that cannot belong together**: a 2/8 SGC section with a 2/3 whose 3KCT bit is
//!   0 (64-bit key), or a 2/3 with the 3KCT bit at an EA11 meter (STS.md 5: "the 3KCT bit is
//!   always 0 for EA11 sets"). The token that shows the conflict is refused with
//!   [`crate::Rejection::KeyChangeMismatch`] and every staged section is dropped: the meter
//!   cannot tell which one is wrong.
//! - **A complete set the meter refuses** (a supply group code above 999999): the set is
//!   dropped. A 2/3 section the meter would refuse anyway (a change to DITK, a rollover past
//!   2035) is refused on arrival and not staged.
//! - **Other tokens in between** leave the staged sections alone (conservative: a credit or
//!   management token says nothing about the key change).
//! - **Timeout**: none unless [`crate::MeterConfig::key_change_timeout`] sets one; then a set
//!   whose first section is older is dropped when the next section arrives.
//!
//! The key words are secret: they live in [`crate::MeterSecrets`], the rest here.

use sts_core::{
    DecoderKey, KeyChangeSection, KeyRevisionNumber, KeyType, SupplyGroupCode, TariffIndex,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MismatchProblem;

/// The public part of a 2/3 section: everything but the key word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FirstSection {
    /// KENHO: the high nibble of the new key expiry number.
    pub expiry_high: u8,
    /// The new key revision number.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub key_revision: KeyRevisionNumber,
    /// RO: the new key is for the next base date; the TID memory is cleared.
    pub rollover: bool,
    /// 3KCT: a 64-bit set with a third section carrying the SGC.
    pub three_sections: bool,
    /// The new key type.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub key_type: KeyType,
}

/// The public part of a 2/4 section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SecondSection {
    /// KENLO: the low nibble of the new key expiry number.
    pub expiry_low: u8,
    /// The new tariff index.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub tariff_index: TariffIndex,
}

/// The public part of a 2/8 section, whose layout depends on the key width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ThirdSection {
    /// 64-bit key, 3-token set: the new SGC.
    SupplyGroup(#[cfg_attr(feature = "serde", serde(with = "crate::wire"))] SupplyGroupCode),
    /// 128-bit key: the low 12 bits of the new SGC (the key word is secret).
    SupplyGroupLow(u16),
}

/// The public part of a 2/9 section (128-bit key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FourthSection {
    /// The high 12 bits of the new SGC.
    pub supply_group_high: u16,
}

/// The sections of a key change set accepted so far, without their key words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StagedKeyChange {
    first: Option<FirstSection>,
    second: Option<SecondSection>,
    third: Option<ThirdSection>,
    fourth: Option<FourthSection>,
    started_at: Option<u64>,
}

/// The secret key words of the staged sections: 2/3, 2/4, 2/8 (128-bit only), 2/9.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct KeyWords {
    pub(crate) words: [u32; 4],
    /// Bit i set: `words[i]` holds a word.
    pub(crate) present: u8,
}

impl KeyWords {
    fn get(&self, slot: usize) -> Option<u32> {
        (self.present & (1 << slot) != 0).then(|| self.words[slot])
    }

    fn put(&mut self, slot: usize, word: Option<u32>) {
        match word {
            Some(w) => {
                self.words[slot] = w;
                self.present |= 1 << slot;
            }
            None => {
                self.words[slot] = 0;
                self.present &= !(1 << slot);
            }
        }
    }
}

/// What staging a section came to.
#[derive(Debug)]
pub(crate) enum Staging {
    /// Staged (or already staged); more sections needed.
    Partial {
        /// Sections staged.
        have: u8,
        /// Sections the set needs, as far as known.
        need: u8,
    },
    /// The set is complete: apply it or refuse it, then [`StagedKeyChange::clear`].
    Complete(CompleteSet),
    /// The sections contradict each other; all were dropped.
    Mismatch(MismatchProblem),
}

/// A complete key change set.
#[derive(Debug)]
pub(crate) struct CompleteSet {
    /// The new decoder key.
    pub(crate) key: DecoderKey,
    /// From 2/3.
    pub(crate) first: FirstSection,
    /// From 2/4.
    pub(crate) second: SecondSection,
    /// The new SGC as carried (24 bits, may exceed 999999); `None` for a 2-token set.
    pub(crate) supply_group: Option<u32>,
}

/// A staged key change that cannot be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StagedProblem {
    /// A section's layout does not fit the key width, or a field is out of range.
    Section,
    /// The staged sections and the secret key words disagree.
    Words,
}

impl StagedKeyChange {
    /// Nothing staged.
    pub const NONE: Self = Self {
        first: None,
        second: None,
        third: None,
        fourth: None,
        started_at: None,
    };

    /// The staged 2/3 section.
    #[must_use]
    pub const fn first(&self) -> Option<FirstSection> {
        self.first
    }

    /// The staged 2/4 section.
    #[must_use]
    pub const fn second(&self) -> Option<SecondSection> {
        self.second
    }

    /// The staged 2/8 section.
    #[must_use]
    pub const fn third(&self) -> Option<ThirdSection> {
        self.third
    }

    /// The staged 2/9 section.
    #[must_use]
    pub const fn fourth(&self) -> Option<FourthSection> {
        self.fourth
    }

    /// When (on the caller's seconds counter) the first staged section arrived.
    #[must_use]
    pub const fn started_at(&self) -> Option<u64> {
        self.started_at
    }

    /// How many sections are staged.
    #[must_use]
    pub const fn len(&self) -> u8 {
        self.first.is_some() as u8
            + self.second.is_some() as u8
            + self.third.is_some() as u8
            + self.fourth.is_some() as u8
    }

    /// True when nothing is staged.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many sections the set needs, as far as the staged ones tell: 4 for a 128-bit key;
    /// for a 64-bit key 3 when the 2/3 section has the 3KCT bit or a 2/8 section is staged,
    /// else 2.
    #[must_use]
    pub const fn needed(&self, wide: bool) -> u8 {
        if wide {
            return 4;
        }
        match self.first {
            Some(first) => 2 + first.three_sections as u8,
            None if self.third.is_some() => 3,
            None => 2,
        }
    }

    pub(crate) fn clear(&mut self, words: &mut KeyWords) {
        *self = Self::NONE;
        words.zeroize();
    }

    /// Stages a section; see the module docs for repeats, mismatches and the timeout.
    pub(crate) fn stage(
        &mut self,
        words: &mut KeyWords,
        section: KeyChangeSection,
        wide: bool,
        now_seconds: u64,
        timeout: Option<u64>,
    ) -> Staging {
        if let (Some(limit), Some(start)) = (timeout, self.started_at)
            && now_seconds.saturating_sub(start) > limit
        {
            self.clear(words);
        }
        let (slot, word) = Self::split(section);
        let mut next = *self;
        next.put(section);
        if self.occupied(slot) {
            if next == *self && words.get(slot) == word {
                return Staging::Partial {
                    have: self.len(),
                    need: self.needed(wide),
                };
            }
            // Different content: a new set begins with this section.
            self.clear(words);
            next = Self::NONE;
            next.put(section);
        }
        if next.started_at.is_none() {
            next.started_at = Some(now_seconds);
        }
        if !wide && next.third.is_some() && next.first.is_some_and(|first| !first.three_sections) {
            self.clear(words);
            return Staging::Mismatch(MismatchProblem::SupplyGroupWithoutThreeSections);
        }
        *self = next;
        words.put(slot, word);
        let (have, need) = (self.len(), self.needed(wide));
        if have < need {
            return Staging::Partial { have, need };
        }
        match self.assemble(words, wide) {
            Some(set) => Staging::Complete(set),
            None => {
                self.clear(words);
                Staging::Mismatch(MismatchProblem::Incomplete)
            }
        }
    }

    /// The slot (0-3 for 2/3, 2/4, 2/8, 2/9) and secret word of a section.
    fn split(section: KeyChangeSection) -> (usize, Option<u32>) {
        match section {
            KeyChangeSection::First { key_word, .. } => (0, Some(key_word)),
            KeyChangeSection::Second { key_word, .. } => (1, Some(key_word)),
            KeyChangeSection::SupplyGroup { .. } => (2, None),
            KeyChangeSection::Third { key_word, .. } => (2, Some(key_word)),
            KeyChangeSection::Fourth { key_word, .. } => (3, Some(key_word)),
        }
    }

    const fn occupied(&self, slot: usize) -> bool {
        match slot {
            0 => self.first.is_some(),
            1 => self.second.is_some(),
            2 => self.third.is_some(),
            _ => self.fourth.is_some(),
        }
    }

    fn put(&mut self, section: KeyChangeSection) {
        match section {
            KeyChangeSection::First {
                expiry_high,
                key_revision,
                rollover,
                three_sections,
                key_type,
                ..
            } => {
                self.first = Some(FirstSection {
                    expiry_high,
                    key_revision,
                    rollover,
                    three_sections,
                    key_type,
                });
            }
            KeyChangeSection::Second {
                expiry_low,
                tariff_index,
                ..
            } => {
                self.second = Some(SecondSection {
                    expiry_low,
                    tariff_index,
                });
            }
            KeyChangeSection::SupplyGroup { supply_group } => {
                self.third = Some(ThirdSection::SupplyGroup(supply_group));
            }
            KeyChangeSection::Third {
                supply_group_low, ..
            } => self.third = Some(ThirdSection::SupplyGroupLow(supply_group_low)),
            KeyChangeSection::Fourth {
                supply_group_high, ..
            } => {
                self.fourth = Some(FourthSection { supply_group_high });
            }
        }
    }

    /// The complete set, or `None` when a needed section or word is missing.
    fn assemble(&self, words: &KeyWords, wide: bool) -> Option<CompleteSet> {
        let first = self.first?;
        let second = self.second?;
        let mut bytes = [0u8; 16];
        let (len, supply_group) = if wide {
            let low = match self.third? {
                ThirdSection::SupplyGroupLow(low) => low,
                ThirdSection::SupplyGroup(_) => return None,
            };
            let high = self.fourth?.supply_group_high;
            for (i, slot) in [0, 2, 3, 1].into_iter().enumerate() {
                bytes[4 * i..4 * i + 4].copy_from_slice(&words.get(slot)?.to_be_bytes());
            }
            (
                16,
                Some((u32::from(high & 0xFFF) << 12) | u32::from(low & 0xFFF)),
            )
        } else {
            bytes[..4].copy_from_slice(&words.get(0)?.to_be_bytes());
            bytes[4..8].copy_from_slice(&words.get(1)?.to_be_bytes());
            let supply_group = match (first.three_sections, self.third) {
                (true, Some(ThirdSection::SupplyGroup(sgc))) => Some(sgc.get()),
                (false, None) => None,
                _ => return None,
            };
            (8, supply_group)
        };
        let key = DecoderKey::from_bytes(&bytes[..len]).ok();
        bytes.zeroize();
        Some(CompleteSet {
            key: key?,
            first,
            second,
            supply_group,
        })
    }

    /// Checks a restored staging against the key width and the secret words.
    pub(crate) fn check(&self, words: &KeyWords, wide: bool) -> Result<(), StagedProblem> {
        let nibble_ok = self
            .first
            .is_none_or(|f| f.expiry_high <= 0xF && !(wide && f.three_sections))
            && self.second.is_none_or(|s| s.expiry_low <= 0xF);
        let third_ok = match self.third {
            None => true,
            Some(ThirdSection::SupplyGroup(_)) => !wide,
            Some(ThirdSection::SupplyGroupLow(low)) => wide && low <= 0xFFF,
        };
        let fourth_ok = self
            .fourth
            .is_none_or(|f| wide && f.supply_group_high <= 0xFFF);
        if !(nibble_ok && third_ok && fourth_ok) {
            return Err(StagedProblem::Section);
        }
        if !self.is_empty() && self.started_at.is_none() {
            return Err(StagedProblem::Section);
        }
        let expected = u8::from(self.first.is_some())
            | (u8::from(self.second.is_some()) << 1)
            | (u8::from(matches!(self.third, Some(ThirdSection::SupplyGroupLow(_)))) << 2)
            | (u8::from(self.fourth.is_some()) << 3);
        if words.present != expected {
            return Err(StagedProblem::Words);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(three: bool, word: u32) -> KeyChangeSection {
        KeyChangeSection::First {
            expiry_high: 0xF,
            key_revision: KeyRevisionNumber::try_from(2).unwrap(),
            rollover: false,
            three_sections: three,
            key_type: KeyType::Unique,
            key_word: word,
        }
    }

    fn second(word: u32) -> KeyChangeSection {
        KeyChangeSection::Second {
            expiry_low: 0xF,
            tariff_index: TariffIndex::try_from(1).unwrap(),
            key_word: word,
        }
    }

    fn sgc() -> KeyChangeSection {
        KeyChangeSection::SupplyGroup {
            supply_group: SupplyGroupCode::try_from(201_457).unwrap(),
        }
    }

    #[test]
    fn two_sections_in_either_order() {
        for order in [
            [first(false, 0x0102_0304), second(0x0506_0708)],
            [second(0x0506_0708), first(false, 0x0102_0304)],
        ] {
            let mut staged = StagedKeyChange::NONE;
            let mut words = KeyWords::default();
            assert!(matches!(
                staged.stage(&mut words, order[0], false, 0, None),
                Staging::Partial { have: 1, need: 2 }
            ));
            let Staging::Complete(set) = staged.stage(&mut words, order[1], false, 1, None) else {
                panic!("not complete");
            };
            assert_eq!(set.key.expose_secret(), [1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(set.supply_group, None);
        }
    }

    #[test]
    fn repeats_and_mismatches() {
        let mut staged = StagedKeyChange::NONE;
        let mut words = KeyWords::default();
        staged.stage(&mut words, first(false, 1), false, 0, None);
        // Identical repeat: nothing changes.
        let before = staged;
        assert!(matches!(
            staged.stage(&mut words, first(false, 1), false, 5, None),
            Staging::Partial { have: 1, need: 2 }
        ));
        assert_eq!(staged, before);
        // Different repeat: a new set.
        staged.stage(&mut words, first(true, 2), false, 6, None);
        assert_eq!(staged.started_at(), Some(6));
        assert_eq!(staged.needed(false), 3);
        assert_eq!(words.get(0), Some(2));
        // SGC section with a 2/3 without 3KCT: mismatch, all dropped.
        staged.stage(&mut words, first(false, 3), false, 7, None);
        assert!(matches!(
            staged.stage(&mut words, sgc(), false, 8, None),
            Staging::Mismatch(_)
        ));
        assert!(staged.is_empty());
        assert!(words == KeyWords::default());
    }

    #[test]
    fn timeout_drops_a_stale_set() {
        let mut staged = StagedKeyChange::NONE;
        let mut words = KeyWords::default();
        staged.stage(&mut words, first(false, 1), false, 100, Some(90));
        assert!(matches!(
            staged.stage(&mut words, second(2), false, 191, Some(90)),
            Staging::Partial { have: 1, need: 2 }
        ));
        assert_eq!(staged.first(), None);
        assert_eq!(staged.started_at(), Some(191));
    }
}
