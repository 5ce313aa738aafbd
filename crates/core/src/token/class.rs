use core::fmt;

/// Token class: the 2 bits that are never encrypted (STS.md section 5).
///
/// Class 3 is reserved; it is an open newtype so a decoder can name what it rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenClass(u8);

impl TokenClass {
    /// Class 0: transfer credit.
    pub const TRANSFER_CREDIT: Self = Self(0);
    /// Class 1: initiate meter test or display; not meter specific, not encrypted.
    pub const INITIATE_METER_TEST: Self = Self(1);
    /// Class 2: meter-specific management, key change tokens included.
    pub const MANAGEMENT: Self = Self(2);
    /// Class 3: reserved.
    pub const RESERVED: Self = Self(3);

    /// The class of the low two bits of `bits`.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 3)
    }

    /// The 2-bit code.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// True for classes whose data block is encrypted (0 and 2).
    #[must_use]
    pub const fn is_encrypted(self) -> bool {
        self.0 == 0 || self.0 == 2
    }
}

impl fmt::Display for TokenClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Token subclass: 4 bits whose meaning depends on the class (STS.md section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSubclass(u8);

impl TokenSubclass {
    /// The subclass of the low four bits of `bits`.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0xF)
    }

    /// The subclass for a number 0-15.
    #[must_use]
    pub const fn new(value: u8) -> Option<Self> {
        if value < 16 { Some(Self(value)) } else { None }
    }

    /// The 4-bit code.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for TokenSubclass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
