//! Decoder key generation: DKGA01, DKGA02, DKGA03 and DKGA04 (STS.md section 6).
//!
//! A [`DecoderKeyGenerator`] holds a vending key made ready for one algorithm (its DES key
//! schedule or HMAC key state computed once) and derives the decoder key of any meter described
//! by a [`MeterDescription`].
//!
//! | algorithm | vending key | status |
//! |---|---|---|
//! | DKGA02 | 64-bit DES | verified by the conformance vectors |
//! | DKGA04 | 160-bit HMAC-SHA-256 | verified by the conformance vectors |
//! | DKGA01 | 64-bit DES | one public source, **no vectors**: unverified |
//! | DKGA03 | 2 x 64-bit (two-key triple DES) | one public source, **no vectors**, withdrawn in 2018 |

pub mod dkga01;
pub mod dkga02;
pub mod dkga03;
pub mod dkga04;

use core::fmt;

use crate::{
    BaseDate, DecoderKey, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyRevisionNumber, KeyType,
    MeterPan, SupplyGroupCode, TariffIndex, VendingKey,
};

/// Everything that identifies a meter's decoder key: the inputs of key derivation and the
/// algorithm the key serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MeterDescription {
    /// Meter primary account number.
    pub pan: MeterPan,
    /// Supply group code.
    pub supply_group: SupplyGroupCode,
    /// Tariff index.
    pub tariff_index: TariffIndex,
    /// Key revision number.
    pub key_revision: KeyRevisionNumber,
    /// Key type.
    pub key_type: KeyType,
    /// Base date (an input of DKGA04 only; dates the TIDs for every algorithm).
    pub base_date: BaseDate,
    /// Encryption algorithm the decoder key is for.
    pub algorithm: EncryptionAlgorithm,
    /// Decoder key generation algorithm.
    pub derivation: KeyDerivationAlgorithm,
}

/// A decoder key that cannot be derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeriveError {
    /// The vending key's length does not fit the algorithm.
    VendingKeyLength {
        /// The algorithm.
        derivation: KeyDerivationAlgorithm,
        /// Bytes the algorithm takes.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The algorithm cannot make a key for the encryption algorithm (DKGA01-03 make 64-bit keys
    /// only; EA11 needs DKGA04; DKGA04 is defined for EA07 and EA11).
    Unsupported {
        /// The key generation algorithm.
        derivation: KeyDerivationAlgorithm,
        /// The encryption algorithm.
        algorithm: EncryptionAlgorithm,
    },
    /// A DITK (key type 0) is never derived from a vending key.
    InitializationKey,
    /// The generator was prepared for another algorithm than the meter's.
    WrongGenerator {
        /// The generator's algorithm.
        generator: KeyDerivationAlgorithm,
        /// The meter's algorithm.
        meter: KeyDerivationAlgorithm,
    },
    /// DKGA01 applies only to early meters: IIN 600727, KRN 1 and EA07.
    NotApplicable,
}

impl fmt::Display for DeriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VendingKeyLength { derivation, expected, found } => write!(
                f,
                "DKGA{derivation} takes a {}-bit vending key, this one has {} bits",
                expected * 8,
                found * 8
            ),
            Self::Unsupported { derivation, algorithm } => {
                write!(f, "DKGA{derivation} does not make keys for EA{algorithm}")
            }
            Self::InitializationKey => f.write_str(
                "a DITK (key type 0) is not derived from a vending key: give the decoder key itself",
            ),
            Self::WrongGenerator { generator, meter } => write!(
                f,
                "the vending key was prepared for DKGA{generator} but the meter uses DKGA{meter}"
            ),
            Self::NotApplicable => {
                f.write_str("DKGA01 applies only to meters with IIN 600727, KRN 1 and EA07")
            }
        }
    }
}

impl core::error::Error for DeriveError {}

/// A vending key made ready to derive decoder keys with one algorithm.
///
/// ```
/// use sts_core::{DecoderKeyGenerator, KeyDerivationAlgorithm, VendingKey};
/// # use sts_core::*;
/// let vk = VendingKey::from_hex("ABABABABABABABAB")?;
/// let generator = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vk)?;
/// let meter = MeterDescription {
///     pan: "600727000000000009".parse()?,
///     supply_group: "123456".parse()?,
///     tariff_index: "01".parse()?,
///     key_revision: "1".parse()?,
///     key_type: KeyType::Unique,
///     base_date: BaseDate::Y1993,
///     algorithm: EncryptionAlgorithm::Sta,
///     derivation: KeyDerivationAlgorithm::Dkga02,
/// };
/// let dk = generator.derive(&meter)?;
/// assert_eq!(dk, DecoderKey::from_hex("E653341F9D5BF36F")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Security
/// Holds the vending key (or its key schedule); wiped on drop.
#[derive(Clone)]
pub struct DecoderKeyGenerator(Generator);

#[derive(Clone)]
enum Generator {
    Dkga01(dkga01::Dkga01),
    Dkga02(dkga02::Dkga02),
    Dkga03(dkga03::Dkga03),
    Dkga04(dkga04::Dkga04),
}

impl DecoderKeyGenerator {
    /// Prepares `vending_key` for `derivation`.
    ///
    /// # Errors
    /// [`DeriveError::VendingKeyLength`] when the key's length does not fit.
    pub fn new(
        derivation: KeyDerivationAlgorithm,
        vending_key: &VendingKey,
    ) -> Result<Self, DeriveError> {
        let bytes = vending_key.expose_secret();
        let expected = derivation.vending_key_len();
        if bytes.len() != expected {
            return Err(DeriveError::VendingKeyLength {
                derivation,
                expected,
                found: bytes.len(),
            });
        }
        Ok(Self(match derivation {
            KeyDerivationAlgorithm::Dkga01 => Generator::Dkga01(dkga01::Dkga01::new(bytes)),
            KeyDerivationAlgorithm::Dkga02 => Generator::Dkga02(dkga02::Dkga02::new(bytes)),
            KeyDerivationAlgorithm::Dkga03 => Generator::Dkga03(dkga03::Dkga03::new(bytes)),
            KeyDerivationAlgorithm::Dkga04 => Generator::Dkga04(dkga04::Dkga04::new(bytes)),
        }))
    }

    /// The algorithm this generator serves.
    #[must_use]
    pub const fn derivation(&self) -> KeyDerivationAlgorithm {
        match self.0 {
            Generator::Dkga01(_) => KeyDerivationAlgorithm::Dkga01,
            Generator::Dkga02(_) => KeyDerivationAlgorithm::Dkga02,
            Generator::Dkga03(_) => KeyDerivationAlgorithm::Dkga03,
            Generator::Dkga04(_) => KeyDerivationAlgorithm::Dkga04,
        }
    }

    /// Derives the decoder key of `meter`.
    ///
    /// # Errors
    /// The meter's algorithm differs from the generator's, the pair of derivation and
    /// encryption algorithms is not defined, or the meter has a DITK.
    pub fn derive(&self, meter: &MeterDescription) -> Result<DecoderKey, DeriveError> {
        self.check(meter)?;
        match &self.0 {
            Generator::Dkga04(g) => Ok(g.derive(meter)),
            Generator::Dkga01(g) => g.derive(meter),
            Generator::Dkga02(g) => Ok(g.derive(meter)),
            Generator::Dkga03(g) => Ok(g.derive(meter)),
        }
    }

    /// Checks that [`DecoderKeyGenerator::derive`] can derive the decoder key of `meter`,
    /// without deriving it: when this succeeds, so does `derive`, and the key fits the
    /// meter's encryption algorithm ([`crate::TokenCipher::new`] accepts it).
    ///
    /// # Errors
    /// As [`DecoderKeyGenerator::derive`].
    pub fn check(&self, meter: &MeterDescription) -> Result<(), DeriveError> {
        if meter.derivation != self.derivation() {
            return Err(DeriveError::WrongGenerator {
                generator: self.derivation(),
                meter: meter.derivation,
            });
        }
        if meter.key_type == KeyType::Initialization {
            return Err(DeriveError::InitializationKey);
        }
        let unsupported = DeriveError::Unsupported {
            derivation: meter.derivation,
            algorithm: meter.algorithm,
        };
        match &self.0 {
            Generator::Dkga04(_) => match meter.algorithm {
                EncryptionAlgorithm::Sta | EncryptionAlgorithm::Misty1 => Ok(()),
                EncryptionAlgorithm::Des => Err(unsupported),
            },
            _ if meter.algorithm == EncryptionAlgorithm::Misty1 => Err(unsupported),
            Generator::Dkga01(_) if !dkga01::Dkga01::applies(meter) => {
                Err(DeriveError::NotApplicable)
            }
            Generator::Dkga01(_) | Generator::Dkga02(_) | Generator::Dkga03(_) => Ok(()),
        }
    }
}

impl fmt::Debug for DecoderKeyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecoderKeyGenerator(DKGA{}, ..)", self.derivation())
    }
}

/// Derives a decoder key in one call (prepare a [`DecoderKeyGenerator`] to derive many).
///
/// # Errors
/// As [`DecoderKeyGenerator::new`] and [`DecoderKeyGenerator::derive`].
pub fn derive_decoder_key(
    vending_key: &VendingKey,
    meter: &MeterDescription,
) -> Result<DecoderKey, DeriveError> {
    DecoderKeyGenerator::new(meter.derivation, vending_key)?.derive(meter)
}

/// The PANBlock of DKGA01-03: the 16 PAN digits left after dropping the first digit and the
/// check digit, one per nibble; for a common key (KT 3) the DRN digits are zero.
#[must_use]
pub fn pan_block(meter: &MeterDescription) -> u64 {
    let digits = meter.pan.as_bytes();
    let drn_start = meter.pan.iin().digits().len();
    let mut block = 0u64;
    for (i, d) in digits[1..17].iter().enumerate() {
        let digit = if meter.key_type == KeyType::Common && i + 1 >= drn_start {
            0
        } else {
            d - b'0'
        };
        block = (block << 4) | u64::from(digit);
    }
    block
}

/// The CONTROLBlock of DKGA01-03: nibbles `KT SGC(6) TI(2) KRN F F F F F F`.
#[must_use]
pub fn control_block(meter: &MeterDescription) -> u64 {
    let mut block = u64::from(meter.key_type.code());
    for d in meter
        .supply_group
        .to_digits()
        .iter()
        .chain(meter.tariff_index.to_digits().iter())
    {
        block = (block << 4) | u64::from(d - b'0');
    }
    block = (block << 4) | u64::from(meter.key_revision.get());
    (block << 24) | 0xFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn meter(
        pan: &str,
        kt: KeyType,
        derivation: KeyDerivationAlgorithm,
    ) -> MeterDescription {
        MeterDescription {
            pan: pan.parse().unwrap(),
            supply_group: "123456".parse().unwrap(),
            tariff_index: "01".parse().unwrap(),
            key_revision: "1".parse().unwrap(),
            key_type: kt,
            base_date: BaseDate::Y1993,
            algorithm: EncryptionAlgorithm::Sta,
            derivation,
        }
    }

    #[test]
    fn blocks_from_the_worked_example() {
        let m = meter(
            "600727000000000009",
            KeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
        );
        assert_eq!(pan_block(&m), 0x0072_7000_0000_0000);
        assert_eq!(control_block(&m), 0x2123_4560_11FF_FFFF);
        let m = meter(
            "000001000000000082",
            KeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
        );
        assert_eq!(pan_block(&m), 0x0000_1000_0000_0008);
    }

    #[test]
    fn common_keys_zero_the_drn() {
        let mut m = meter(
            "600727000000000009",
            KeyType::Common,
            KeyDerivationAlgorithm::Dkga02,
        );
        m.pan = MeterPan::from_drn("12345678901").unwrap();
        assert_eq!(pan_block(&m), 0x0072_7000_0000_0000);
        m.key_type = KeyType::Unique;
        assert_eq!(pan_block(&m), 0x0072_7123_4567_8901);
    }

    #[test]
    fn refuses_what_is_not_defined() {
        let vk = VendingKey::from_hex("ABABABABABABABAB").unwrap();
        let g = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vk).unwrap();
        let mut m = meter(
            "600727000000000009",
            KeyType::Initialization,
            KeyDerivationAlgorithm::Dkga02,
        );
        assert_eq!(g.derive(&m), Err(DeriveError::InitializationKey));
        m.key_type = KeyType::Unique;
        m.algorithm = EncryptionAlgorithm::Misty1;
        assert!(matches!(g.derive(&m), Err(DeriveError::Unsupported { .. })));
        m.derivation = KeyDerivationAlgorithm::Dkga04;
        assert!(matches!(
            g.derive(&m),
            Err(DeriveError::WrongGenerator { .. })
        ));
        assert!(matches!(
            DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga04, &vk),
            Err(DeriveError::VendingKeyLength {
                expected: 20,
                found: 8,
                ..
            })
        ));
    }

    /// `check` answers as `derive` does, for every generator, meter algorithm pair, key type,
    /// KRN and IIN; and a key it accepts fits the meter's encryption algorithm.
    #[test]
    fn check_agrees_with_derive() {
        use crate::TokenCipher;
        let generators = [
            (KeyDerivationAlgorithm::Dkga01, "0123456789ABCDEF"),
            (KeyDerivationAlgorithm::Dkga02, "0123456789ABCDEF"),
            (
                KeyDerivationAlgorithm::Dkga03,
                "0123456789ABCDEFFEDCBA9876543210",
            ),
            (
                KeyDerivationAlgorithm::Dkga04,
                "0123456789ABCDEF0123456789ABCDEF01234567",
            ),
        ];
        let derivations = generators.map(|(d, _)| d);
        let algorithms = [
            EncryptionAlgorithm::Sta,
            EncryptionAlgorithm::Des,
            EncryptionAlgorithm::Misty1,
        ];
        let key_types = [
            KeyType::Initialization,
            KeyType::Default,
            KeyType::Unique,
            KeyType::Common,
        ];
        let mut accepted = 0;
        for (derivation, hex) in generators {
            let g =
                DecoderKeyGenerator::new(derivation, &VendingKey::from_hex(hex).unwrap()).unwrap();
            for pan in ["600727000000000009", "000001000000000082"] {
                for meter_derivation in derivations {
                    for algorithm in algorithms {
                        for kt in key_types {
                            for krn in ["1", "2"] {
                                let mut m = meter(pan, kt, meter_derivation);
                                m.algorithm = algorithm;
                                m.key_revision = krn.parse().unwrap();
                                let derived = g.derive(&m);
                                assert_eq!(
                                    g.check(&m),
                                    derived.as_ref().map(|_| ()).map_err(Clone::clone),
                                    "{m:?}"
                                );
                                if let Ok(dk) = derived {
                                    assert!(TokenCipher::new(algorithm, &dk).is_ok(), "{m:?}");
                                    accepted += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 0);
    }
}
