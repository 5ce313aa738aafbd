//! Key change token sets: 2 tokens (64-bit key), 3 (64-bit key with the supply group code,
//! "3KCT") or 4 (128-bit key for EA11), each encrypted with the meter's **current** key
//! (STS.md section 5).

use super::{DataBlock, EncodeError, Token, TokenNumber, TokenSubclass};
use crate::{
    DecoderKey, KeyExpiryNumber, KeyRevisionNumber, KeyType, SupplyGroupCode, TariffIndex,
    TokenCipher,
};

/// One section of a key change set: a class 2 token with subclass 3, 4, 8 or 9.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChangeSection {
    /// 2/3, set 1st section decoder key: new key bytes 0-3 and the new KRN and key type.
    First {
        /// KENHO: high nibble of the new key expiry number.
        expiry_high: u8,
        /// New key revision number.
        key_revision: KeyRevisionNumber,
        /// RO: the change moves the meter to a new base date; it clears its TID memory.
        rollover: bool,
        /// 3KCT: this 64-bit key change is a 3-token set that also carries the SGC.
        three_sections: bool,
        /// New key type.
        key_type: KeyType,
        /// NKHO: new key bytes 0-3, big-endian.
        key_word: u32,
    },
    /// 2/4, set 2nd section decoder key: the new tariff index and the last key bytes (4-7 of a
    /// 64-bit key, 12-15 of a 128-bit key).
    Second {
        /// KENLO: low nibble of the new key expiry number.
        expiry_low: u8,
        /// New tariff index (binary in the token).
        tariff_index: TariffIndex,
        /// NKLO, big-endian.
        key_word: u32,
    },
    /// 2/8 of a 3-token set for a 64-bit key: the new SGC (24 bits) then 20 zero bits.
    SupplyGroup {
        /// New supply group code.
        supply_group: SupplyGroupCode,
    },
    /// 2/8 of a 4-token set (128-bit key): low 12 bits of the new SGC, new key bytes 4-7.
    Third {
        /// SGCLO.
        supply_group_low: u16,
        /// NKMO2, big-endian.
        key_word: u32,
    },
    /// 2/9 of a 4-token set (128-bit key): high 12 bits of the new SGC, new key bytes 8-11.
    Fourth {
        /// SGCHO.
        supply_group_high: u16,
        /// NKMO1, big-endian.
        key_word: u32,
    },
}

impl KeyChangeSection {
    /// The subclass: 3, 4, 8 or 9.
    #[must_use]
    pub const fn subclass(&self) -> TokenSubclass {
        TokenSubclass::from_bits(match self {
            Self::First { .. } => 3,
            Self::Second { .. } => 4,
            Self::SupplyGroup { .. } | Self::Third { .. } => 8,
            Self::Fourth { .. } => 9,
        })
    }

    pub(crate) const fn data(&self) -> u64 {
        match *self {
            Self::First {
                expiry_high,
                key_revision,
                rollover,
                three_sections,
                key_type,
                key_word,
            } => {
                ((expiry_high as u64 & 0xF) << 40)
                    | ((key_revision.get() as u64) << 36)
                    | ((rollover as u64) << 35)
                    | ((three_sections as u64) << 34)
                    | ((key_type.code() as u64) << 32)
                    | key_word as u64
            }
            Self::Second {
                expiry_low,
                tariff_index,
                key_word,
            } => {
                ((expiry_low as u64 & 0xF) << 40)
                    | ((tariff_index.get() as u64) << 32)
                    | key_word as u64
            }
            Self::SupplyGroup { supply_group } => (supply_group.get() as u64) << 20,
            Self::Third {
                supply_group_low: half,
                key_word,
            }
            | Self::Fourth {
                supply_group_high: half,
                key_word,
            } => ((half as u64 & 0xFFF) << 32) | key_word as u64,
        }
    }
}

/// What a key change sets in the meter. The new decoder key is derived with the new SGC, KRN,
/// KT, TI and (DKGA04) base date; the KEN travels only in the tokens.
#[derive(Clone, Debug)]
pub struct KeyChange {
    /// The new decoder key: 8 bytes gives a 2- or 3-token set, 16 bytes a 4-token set.
    pub key: DecoderKey,
    /// New key type.
    pub key_type: KeyType,
    /// New key revision number.
    pub key_revision: KeyRevisionNumber,
    /// New tariff index.
    pub tariff_index: TariffIndex,
    /// New key expiry number.
    pub expiry: KeyExpiryNumber,
    /// New supply group code: carried by 3- and 4-token sets.
    pub supply_group: SupplyGroupCode,
    /// RO: the new key is for a later base date; the meter clears its TID memory.
    pub rollover: bool,
    /// For a 64-bit key: send the 3-token set that carries the SGC (3KCT). Ignored for 128-bit
    /// keys, whose sets always carry it.
    pub include_supply_group: bool,
}

/// One token of a key change set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyChangeToken {
    /// The section it carries.
    pub section: KeyChangeSection,
    /// The plain data block.
    pub block: DataBlock,
    /// The token.
    pub number: TokenNumber,
}

/// The 2, 3 or 4 tokens of a key change, in subclass order (3, 4, then 8 and 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyChangeSet {
    tokens: [Option<KeyChangeToken>; 4],
}

impl KeyChangeSet {
    /// The tokens in subclass order.
    pub fn iter(&self) -> impl Iterator<Item = &KeyChangeToken> {
        self.tokens.iter().flatten()
    }

    /// The number of tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Never true: a set has at least two tokens.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token with the given subclass.
    #[must_use]
    pub fn by_subclass(&self, subclass: TokenSubclass) -> Option<&KeyChangeToken> {
        self.iter().find(|t| t.section.subclass() == subclass)
    }
}

impl KeyChange {
    /// The sections of this change, in subclass order.
    #[must_use]
    pub fn sections(&self) -> [Option<KeyChangeSection>; 4] {
        let key = self.key.expose_secret();
        let word = |i: usize| u32::from_be_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]);
        let wide = key.len() == 16;
        let three = !wide && self.include_supply_group;
        let first = KeyChangeSection::First {
            expiry_high: self.expiry.high(),
            key_revision: self.key_revision,
            rollover: self.rollover,
            three_sections: three,
            key_type: self.key_type,
            key_word: word(0),
        };
        let second = KeyChangeSection::Second {
            expiry_low: self.expiry.low(),
            tariff_index: self.tariff_index,
            key_word: word(key.len() - 4),
        };
        let sgc = self.supply_group.get();
        if wide {
            [
                Some(first),
                Some(second),
                Some(KeyChangeSection::Third {
                    supply_group_low: (sgc & 0xFFF) as u16,
                    key_word: word(4),
                }),
                Some(KeyChangeSection::Fourth {
                    supply_group_high: (sgc >> 12) as u16,
                    key_word: word(8),
                }),
            ]
        } else if three {
            [
                Some(first),
                Some(second),
                Some(KeyChangeSection::SupplyGroup {
                    supply_group: self.supply_group,
                }),
                None,
            ]
        } else {
            [Some(first), Some(second), None, None]
        }
    }

    /// Encrypts the set with the meter's current key.
    ///
    /// # Errors
    /// [`EncodeError::KeyWidth`] when the new key's width differs from the current key's:
    /// a key change keeps the meter's encryption algorithm.
    pub fn encode(&self, current: &TokenCipher) -> Result<KeyChangeSet, EncodeError> {
        if self.key.expose_secret().len() != current.algorithm().key_len() {
            return Err(EncodeError::KeyWidth);
        }
        let mut tokens = [None; 4];
        for (slot, section) in tokens.iter_mut().zip(self.sections()) {
            if let Some(section) = section {
                let token = Token::KeyChange(section);
                let block = token.to_block()?;
                let number = super::seal(block, Some(current))?;
                *slot = Some(KeyChangeToken {
                    section,
                    block,
                    number,
                });
            }
        }
        Ok(KeyChangeSet { tokens })
    }
}
