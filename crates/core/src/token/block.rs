use core::fmt;

use super::{TokenClass, TokenSubclass};
use crate::crc::token_crc;

/// A plain 64-bit data block with its class: `subclass(4) | data(44) | crc(16)` (STS.md 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataBlock {
    class: TokenClass,
    bits: u64,
}

impl DataBlock {
    /// Mask of the 44 data bits.
    pub const DATA_MASK: u64 = (1 << 44) - 1;

    /// Builds a block and computes its CRC (CRC_C for class 0 subclasses 4-7). Data bits above
    /// the 44th are ignored.
    #[must_use]
    pub const fn new(class: TokenClass, subclass: TokenSubclass, data: u64) -> Self {
        let body = ((subclass.get() as u64) << 44) | (data & Self::DATA_MASK);
        let crc = token_crc(
            ((class.get() as u64) << 48) | body,
            uses_currency_crc(class, subclass),
        );
        Self {
            class,
            bits: (body << 16) | crc as u64,
        }
    }

    /// A block as received, CRC unchecked.
    #[must_use]
    pub const fn from_bits(class: TokenClass, bits: u64) -> Self {
        Self { class, bits }
    }

    /// The 64 bits.
    #[must_use]
    pub const fn bits(&self) -> u64 {
        self.bits
    }

    /// The class.
    #[must_use]
    pub const fn class(&self) -> TokenClass {
        self.class
    }

    /// The subclass.
    #[must_use]
    pub const fn subclass(&self) -> TokenSubclass {
        TokenSubclass::from_bits((self.bits >> 60) as u8)
    }

    /// The 44 data bits.
    #[must_use]
    pub const fn data(&self) -> u64 {
        (self.bits >> 16) & Self::DATA_MASK
    }

    /// The 16-bit CRC field as carried.
    #[must_use]
    pub const fn crc_field(&self) -> u16 {
        self.bits as u16
    }

    /// True when the carried CRC matches the class, subclass and data.
    #[must_use]
    pub const fn crc_is_valid(&self) -> bool {
        Self::new(self.class, self.subclass(), self.data()).bits == self.bits
    }
}

/// Class 0 subclasses 4-7 (currency credit) feed the extra byte `0x01` to the CRC.
const fn uses_currency_crc(class: TokenClass, subclass: TokenSubclass) -> bool {
    class.get() == 0 && subclass.get() >= 4 && subclass.get() <= 7
}

impl fmt::Debug for DataBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataBlock(class {}, {:016X})", self.class, self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        let sub0 = TokenSubclass::from_bits(0);
        let block = DataBlock::new(TokenClass::TRANSFER_CREDIT, sub0, 0x559_9863_0001);
        assert_eq!(block.bits(), 0x0559_9863_0001_19E6);
        assert!(block.crc_is_valid());
        // Currency (CTSA20/1): data 052B13960AA, CRC_C -> 4052B13960AAC385.
        let block = DataBlock::new(
            TokenClass::TRANSFER_CREDIT,
            TokenSubclass::from_bits(4),
            0x052_B139_60AA,
        );
        assert_eq!(block.bits(), 0x4052_B139_60AA_C385);
        assert!(
            !DataBlock::from_bits(TokenClass::TRANSFER_CREDIT, 0x4052_B139_60AA_C386)
                .crc_is_valid()
        );
    }
}
