//! Property tests: every encoding round trips, amounts round in the customer's favour, and a
//! wrong key is caught (STS.md sections 2, 4, 5 and 7).
//!
//! Keys are generated as bytes and turned into ciphers inside each test, so a failing case prints
//! the key it used.

// clippy.toml allows unwrap in `#[test]` functions only; the strategies and helpers below are
// test code too, and a panic there is a test failure with a message.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sts_core::{
    CurrencyAmount, DataBlock, DecodeError, DecoderKey, EncodeError, EncryptionAlgorithm,
    KeyChange, KeyChangeSection, KeyExpiryNumber, KeyRevisionNumber, KeyType, MeterPan,
    RandomNumber, Register, Service, SupplyGroupCode, TariffIndex, Token, TokenCipher, TokenClass,
    TokenIdentifier, TokenNumber, TokenSubclass, TransferAmount, UtcMinute,
    cipher::sta::{PRODUCTION, SAMPLE},
    decode,
    token::{MeterTestFormat, TokenNumberError, open},
};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// A decoder key and the algorithm it is for; the cipher is built in the test.
#[derive(Clone, Debug)]
struct KeySpec {
    algorithm: EncryptionAlgorithm,
    bytes: Vec<u8>,
}

impl KeySpec {
    fn cipher(&self) -> TokenCipher {
        let key = DecoderKey::from_bytes(&self.bytes).unwrap();
        TokenCipher::new(self.algorithm, &key).unwrap()
    }

    /// True for a 128-bit (EA11) key: selects the 4-token key change layout of 2/8.
    fn is_wide(&self) -> bool {
        self.bytes.len() == 16
    }

    /// The bits the algorithm actually uses: DES ignores the parity bit of every key byte, so
    /// two DES keys that differ only there are the same key.
    fn effective_bytes(&self) -> Vec<u8> {
        match self.algorithm {
            EncryptionAlgorithm::Des => self.bytes.iter().map(|b| b & 0xFE).collect(),
            _ => self.bytes.clone(),
        }
    }
}

fn key_for(algorithm: EncryptionAlgorithm) -> impl Strategy<Value = KeySpec> {
    prop::collection::vec(any::<u8>(), algorithm.key_len())
        .prop_map(move |bytes| KeySpec { algorithm, bytes })
}

fn any_key() -> impl Strategy<Value = KeySpec> {
    prop_oneof![
        key_for(EncryptionAlgorithm::Sta),
        key_for(EncryptionAlgorithm::Des),
        key_for(EncryptionAlgorithm::Misty1),
    ]
}

/// A key and a second, different key for the same algorithm.
fn key_pair() -> impl Strategy<Value = (KeySpec, KeySpec)> {
    prop_oneof![
        Just(EncryptionAlgorithm::Sta),
        Just(EncryptionAlgorithm::Des),
        Just(EncryptionAlgorithm::Misty1),
    ]
    .prop_flat_map(|algorithm| (key_for(algorithm), key_for(algorithm)))
    .prop_filter("the keys must differ", |(a, b)| {
        a.effective_bytes() != b.effective_bytes()
    })
}

fn service() -> impl Strategy<Value = Service> {
    prop::sample::select(Service::ALL.to_vec())
}

fn rnd() -> impl Strategy<Value = RandomNumber> {
    (0u8..16).prop_map(RandomNumber::from_low_bits)
}

fn tid() -> impl Strategy<Value = TokenIdentifier> {
    (0..=TokenIdentifier::MAX).prop_map(|v| TokenIdentifier::from_raw(v).unwrap())
}

fn transfer_amount() -> impl Strategy<Value = TransferAmount> {
    any::<u16>().prop_map(TransferAmount::from_field)
}

fn currency_field() -> impl Strategy<Value = CurrencyAmount> {
    (0u32..1 << 20).prop_map(CurrencyAmount::from_field)
}

/// (format, control bits, manufacturer bits) per STS.md section 5.
fn meter_test_format() -> impl Strategy<Value = (MeterTestFormat, u32, u32)> {
    prop::sample::select(vec![
        (MeterTestFormat::Short, 36, 8),
        (MeterTestFormat::Long, 28, 16),
        (MeterTestFormat::ExtendedRead, 36, 8),
    ])
}

fn initiate_meter_test() -> impl Strategy<Value = Token> {
    (meter_test_format(), any::<u64>(), any::<u16>()).prop_map(
        |((format, control_bits, mfr_bits), control, manufacturer)| Token::InitiateMeterTest {
            format,
            control: control & ((1 << control_bits) - 1),
            manufacturer: (u32::from(manufacturer) & ((1 << mfr_bits) - 1)) as u16,
        },
    )
}

fn credit_token() -> impl Strategy<Value = Token> {
    prop_oneof![
        (service(), rnd(), tid(), transfer_amount()).prop_map(|(service, rnd, tid, amount)| {
            Token::TransferCredit {
                service,
                rnd,
                tid,
                amount,
            }
        }),
        (service(), tid(), currency_field()).prop_map(|(service, tid, amount)| {
            Token::CurrencyCredit {
                service,
                tid,
                amount,
            }
        }),
    ]
}

/// Class 2 tokens other than key change sections.
fn management_token() -> impl Strategy<Value = Token> {
    prop_oneof![
        (rnd(), tid(), transfer_amount())
            .prop_map(|(rnd, tid, limit)| Token::SetMaximumPowerLimit { rnd, tid, limit }),
        (rnd(), tid(), any::<u16>()).prop_map(|(rnd, tid, r)| Token::ClearCredit {
            rnd,
            tid,
            register: Register(r),
        }),
        (rnd(), tid(), any::<u16>()).prop_map(|(rnd, tid, rate)| Token::SetTariffRate {
            rnd,
            tid,
            rate
        }),
        (rnd(), tid(), any::<u16>()).prop_map(|(rnd, tid, pad)| Token::ClearTamperCondition {
            rnd,
            tid,
            pad
        }),
        (rnd(), tid(), transfer_amount()).prop_map(|(rnd, tid, limit)| {
            Token::SetMaximumPhasePowerUnbalanceLimit { rnd, tid, limit }
        }),
        (rnd(), tid(), any::<u16>()).prop_map(|(rnd, tid, factor)| Token::SetWaterMeterFactor {
            rnd,
            tid,
            factor
        }),
        (rnd(), tid(), any::<u16>()).prop_map(|(rnd, tid, field)| Token::ExtendedTokenSet {
            rnd,
            tid,
            field
        }),
    ]
}

fn key_revision() -> impl Strategy<Value = KeyRevisionNumber> {
    (1u8..=9).prop_map(|v| KeyRevisionNumber::try_from(v).unwrap())
}

fn tariff_index() -> impl Strategy<Value = TariffIndex> {
    (0..=TariffIndex::MAX).prop_map(|v| TariffIndex::try_from(v).unwrap())
}

fn supply_group() -> impl Strategy<Value = SupplyGroupCode> {
    (0..=SupplyGroupCode::MAX).prop_map(|v| SupplyGroupCode::try_from(v).unwrap())
}

fn key_type() -> impl Strategy<Value = KeyType> {
    (0u8..4).prop_map(KeyType::from_bits)
}

/// A key change section; `wide` picks the 2/8 layout (Third for a 128-bit key, SupplyGroup for
/// a 64-bit key), because a 2/8 token is read by the width of the key it is decoded under.
fn key_change_section(wide: bool) -> impl Strategy<Value = KeyChangeSection> {
    let first = (
        0u8..16,
        key_revision(),
        any::<bool>(),
        any::<bool>(),
        key_type(),
        any::<u32>(),
    )
        .prop_map(
            |(expiry_high, key_revision, rollover, three_sections, key_type, key_word)| {
                KeyChangeSection::First {
                    expiry_high,
                    key_revision,
                    rollover,
                    three_sections,
                    key_type,
                    key_word,
                }
            },
        );
    let second =
        (0u8..16, tariff_index(), any::<u32>()).prop_map(|(expiry_low, tariff_index, key_word)| {
            KeyChangeSection::Second {
                expiry_low,
                tariff_index,
                key_word,
            }
        });
    let third = if wide {
        (0u16..1 << 12, any::<u32>())
            .prop_map(|(supply_group_low, key_word)| KeyChangeSection::Third {
                supply_group_low,
                key_word,
            })
            .boxed()
    } else {
        supply_group()
            .prop_map(|supply_group| KeyChangeSection::SupplyGroup { supply_group })
            .boxed()
    };
    let fourth = (0u16..1 << 12, any::<u32>()).prop_map(|(supply_group_high, key_word)| {
        KeyChangeSection::Fourth {
            supply_group_high,
            key_word,
        }
    });
    prop_oneof![first, second, third, fourth]
}

/// Any encrypted token (classes 0 and 2) that decodes back to itself under a key of this width.
fn encrypted_token(wide: bool) -> impl Strategy<Value = Token> {
    prop_oneof![
        credit_token(),
        management_token(),
        key_change_section(wide).prop_map(Token::KeyChange),
    ]
}

/// A key and any token the codec supports that round trips under it.
fn key_and_token() -> impl Strategy<Value = (KeySpec, Token)> {
    any_key().prop_flat_map(|key| {
        let wide = key.is_wide();
        (
            Just(key),
            prop_oneof![4 => encrypted_token(wide), 1 => initiate_meter_test()],
        )
    })
}

/// Values spread over all four exponents, not just the top one.
fn transfer_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..20_000,
        0u32..200_000,
        0u32..2_000_000,
        0..=TransferAmount::MAX_VALUE,
    ]
}

/// The largest magnitude a currency field holds: exponent 31, mantissa 16383.
fn currency_max_units() -> i128 {
    CurrencyAmount::from_field(0x7_FFFF).units()
}

/// Signed unit counts spread over every decimal magnitude up to the field's maximum.
fn currency_units() -> impl Strategy<Value = i128> {
    let max = currency_max_units();
    (0u32..=36, any::<u128>(), any::<bool>()).prop_map(move |(digits, raw, negative)| {
        let magnitude = (raw % 10u128.pow(digits)).min(max.unsigned_abs()) as i128;
        if negative { -magnitude } else { magnitude }
    })
}

// ---------------------------------------------------------------------------------------------
// Token codec
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// STS.md 2 and 5: encode then decode gives back the token, its plain block, and a 20-digit
    /// number that survives printing and parsing.
    #[test]
    fn token_round_trips_under_every_algorithm((key, token) in key_and_token()) {
        let cipher = key.cipher();
        let number = token.encode(Some(&cipher)).unwrap();
        prop_assert!(number.get() <= TokenNumber::MAX);
        prop_assert_eq!(number.class(), token.class());

        let decoded = decode(number, Some(&cipher)).unwrap();
        prop_assert_eq!(decoded.token, token);
        prop_assert_eq!(decoded.block, token.to_block().unwrap());
        prop_assert_eq!(decoded.token.subclass(), token.subclass());

        let text = number.to_string();
        prop_assert_eq!(text.len(), 20);
        prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(text.parse::<TokenNumber>(), Ok(number));
        prop_assert_eq!(number.grouped().to_string().parse::<TokenNumber>(), Ok(number));
        let reparsed = decode(text.parse().unwrap(), Some(&cipher)).unwrap();
        prop_assert_eq!(reparsed.token, token);
    }

    /// Class 1 is not encrypted: the same number with or without a key, and decodable without.
    #[test]
    fn meter_test_tokens_need_no_key(token in initiate_meter_test(), key in any_key()) {
        let number = token.encode(None).unwrap();
        prop_assert_eq!(token.encode(Some(&key.cipher())), Ok(number));
        prop_assert_eq!(decode(number, None).unwrap().token, token);
        prop_assert_eq!(number.block(), token.to_block().unwrap().bits());
    }

    /// Encrypted classes refuse to encode or decode without a key.
    #[test]
    fn encrypted_tokens_need_a_key(token in encrypted_token(false)) {
        prop_assert_eq!(token.encode(None), Err(sts_core::EncodeError::KeyRequired));
        let number = TokenNumber::from_block(token.class(), token.to_block().unwrap().bits());
        prop_assert_eq!(decode(number, None), Err(DecodeError::KeyRequired));
    }

    /// Class 1 fields wider than their format are refused, never truncated.
    #[test]
    fn meter_test_fields_wider_than_the_format_are_refused(
        (format, control_bits, mfr_bits) in meter_test_format(),
        extra in 0u32..8,
    ) {
        let too_wide = Token::InitiateMeterTest {
            format,
            control: 1 << (control_bits + extra),
            manufacturer: 0,
        };
        prop_assert!(too_wide.to_block().is_err());
        if mfr_bits + extra < 16 {
            let too_wide = Token::InitiateMeterTest {
                format,
                control: 0,
                manufacturer: 1 << (mfr_bits + extra),
            };
            prop_assert!(too_wide.to_block().is_err());
        }
    }

    /// The class transposition (STS.md 2) is lossless for every class and block.
    #[test]
    fn class_transposition_round_trips(class in 0u8..4, block in any::<u64>()) {
        let class = TokenClass::from_bits(class);
        let number = TokenNumber::from_block(class, block);
        prop_assert!(number.get() <= TokenNumber::MAX);
        prop_assert_eq!(number.class(), class);
        prop_assert_eq!(number.block(), block);
        prop_assert_eq!(TokenNumber::from_u128(number.get()), Ok(number));
    }

    /// Any block with a valid CRC and a defined class/subclass re-encodes to itself.
    #[test]
    fn plain_blocks_round_trip_through_the_token(
        class in prop::sample::select(vec![0u8, 2]),
        subclass in 0u8..16,
        data in 0u64..1 << 44,
        key in any_key(),
    ) {
        let cipher = key.cipher();
        let block = DataBlock::new(TokenClass::from_bits(class), TokenSubclass::from_bits(subclass), data);
        prop_assert!(block.crc_is_valid());
        let number = sts_core::token::seal(block, Some(&cipher)).unwrap();
        prop_assert_eq!(open(number, Some(&cipher)), Ok(block));
        if let Ok(decoded) = decode(number, Some(&cipher)) {
            prop_assert_eq!(decoded.block, block);
            prop_assert_eq!(decoded.token.to_block(), Ok(block));
            prop_assert_eq!(decoded.token.encode(Some(&cipher)), Ok(number));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ciphers
// ---------------------------------------------------------------------------------------------

proptest! {
    /// STS.md 7: decryption inverts encryption under every algorithm, in both orders.
    #[test]
    fn ciphers_invert(key in any_key(), block in any::<u64>()) {
        let cipher = key.cipher();
        prop_assert_eq!(cipher.decrypt(cipher.encrypt(block)), block);
        prop_assert_eq!(cipher.encrypt(cipher.decrypt(block)), block);
        prop_assert_eq!(cipher.algorithm(), key.algorithm);
    }

    /// The same for STA with the IEC sample tables, and the production tables are the default.
    #[test]
    fn sta_inverts_with_either_table_set(key in key_for(EncryptionAlgorithm::Sta), block in any::<u64>()) {
        let decoder_key = DecoderKey::from_bytes(&key.bytes).unwrap();
        let sample = TokenCipher::with_sta_tables(EncryptionAlgorithm::Sta, &decoder_key, &SAMPLE).unwrap();
        prop_assert_eq!(sample.decrypt(sample.encrypt(block)), block);
        prop_assert_eq!(sample.encrypt(sample.decrypt(block)), block);
        let production = TokenCipher::with_sta_tables(EncryptionAlgorithm::Sta, &decoder_key, &PRODUCTION).unwrap();
        prop_assert_eq!(production.encrypt(block), key.cipher().encrypt(block));
    }

    /// A key of the wrong length for the algorithm is refused.
    #[test]
    fn cipher_refuses_wrong_key_length(key in any_key()) {
        let decoder_key = DecoderKey::from_bytes(&key.bytes).unwrap();
        let other = match key.algorithm {
            EncryptionAlgorithm::Misty1 => EncryptionAlgorithm::Sta,
            _ => EncryptionAlgorithm::Misty1,
        };
        prop_assert!(TokenCipher::new(other, &decoder_key).is_err());
    }

    /// A token decoded under another key is refused by its CRC, or (on a 2^-16 CRC collision)
    /// at least does not come out as the token that was issued.
    #[test]
    fn wrong_key_does_not_give_the_token(
        (key, other) in key_pair(),
        token in encrypted_token(false),
    ) {
        let number = token.encode(Some(&key.cipher())).unwrap();
        match decode(number, Some(&other.cipher())) {
            Err(_) => {}
            Ok(decoded) => prop_assert_ne!(decoded.token, token),
        }
    }
}

/// Over many tokens and wrong keys, the CRC refuses nearly all: about one in 65536 slips
/// through. Deterministic inputs, so the bound cannot flake.
#[test]
fn wrong_key_is_caught_by_the_crc_nearly_always() {
    let mut state = 0x5354_5321_u64;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    const TRIALS: usize = 3000;
    for algorithm in [
        EncryptionAlgorithm::Sta,
        EncryptionAlgorithm::Des,
        EncryptionAlgorithm::Misty1,
    ] {
        let mut passed_crc = 0;
        for _ in 0..TRIALS {
            let mut key = [0u8; 16];
            let mut wrong = [0u8; 16];
            key[..8].copy_from_slice(&next().to_be_bytes());
            key[8..].copy_from_slice(&next().to_be_bytes());
            wrong[..8].copy_from_slice(&next().to_be_bytes());
            wrong[8..].copy_from_slice(&next().to_be_bytes());
            let len = algorithm.key_len();
            let right =
                TokenCipher::new(algorithm, &DecoderKey::from_bytes(&key[..len]).unwrap()).unwrap();
            let wrong =
                TokenCipher::new(algorithm, &DecoderKey::from_bytes(&wrong[..len]).unwrap())
                    .unwrap();
            let r = next();
            let token = Token::TransferCredit {
                service: Service::ALL[(r & 3) as usize],
                rnd: RandomNumber::from_low_bits((r >> 2) as u8),
                tid: TokenIdentifier::from_raw(((r >> 8) as u32) & TokenIdentifier::MAX).unwrap(),
                amount: TransferAmount::from_field((r >> 32) as u16),
            };
            let number = token.encode(Some(&right)).unwrap();
            match decode(number, Some(&wrong)) {
                Err(DecodeError::Crc) => {}
                Err(_) => passed_crc += 1,
                Ok(decoded) => {
                    passed_crc += 1;
                    assert_ne!(
                        decoded.token, token,
                        "EA{algorithm}: wrong key gave the token"
                    );
                }
            }
        }
        // Expected TRIALS / 65536 (about 0.05); P(more than 3) is below 1e-6 for a fair CRC.
        assert!(
            passed_crc <= 3,
            "EA{algorithm}: {passed_crc} of {TRIALS} wrong-key decodes passed the CRC"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Key change sets
// ---------------------------------------------------------------------------------------------

/// The fields of a key change, with the new key as bytes so failures print it.
#[derive(Clone, Debug)]
struct ChangeSpec {
    new_key: Vec<u8>,
    key_type: KeyType,
    key_revision: KeyRevisionNumber,
    tariff_index: TariffIndex,
    expiry: u8,
    supply_group: SupplyGroupCode,
    rollover: bool,
    include_supply_group: bool,
}

impl ChangeSpec {
    fn change(&self) -> KeyChange {
        KeyChange {
            key: DecoderKey::from_bytes(&self.new_key).unwrap(),
            key_type: self.key_type,
            key_revision: self.key_revision,
            tariff_index: self.tariff_index,
            expiry: KeyExpiryNumber::from(self.expiry),
            supply_group: self.supply_group,
            rollover: self.rollover,
            include_supply_group: self.include_supply_group,
        }
    }
}

fn key_change(new_key_len: usize) -> impl Strategy<Value = ChangeSpec> {
    (
        prop::collection::vec(any::<u8>(), new_key_len),
        key_type(),
        key_revision(),
        tariff_index(),
        any::<u8>(),
        supply_group(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                new_key,
                key_type,
                key_revision,
                tariff_index,
                expiry,
                supply_group,
                rollover,
                include_supply_group,
            )| ChangeSpec {
                new_key,
                key_type,
                key_revision,
                tariff_index,
                expiry,
                supply_group,
                rollover,
                include_supply_group,
            },
        )
}

/// What a meter rebuilds from the decoded sections of a set.
#[derive(Debug, Default)]
struct Reassembled {
    key: [Option<[u8; 4]>; 4],
    key_revision: Option<KeyRevisionNumber>,
    key_type: Option<KeyType>,
    rollover: Option<bool>,
    three_sections: Option<bool>,
    expiry_high: Option<u8>,
    expiry_low: Option<u8>,
    tariff_index: Option<TariffIndex>,
    supply_group: Option<u32>,
    supply_group_low: Option<u16>,
    supply_group_high: Option<u16>,
}

impl Reassembled {
    fn add(&mut self, section: KeyChangeSection, wide: bool) {
        match section {
            KeyChangeSection::First {
                expiry_high,
                key_revision,
                rollover,
                three_sections,
                key_type,
                key_word,
            } => {
                self.key[0] = Some(key_word.to_be_bytes());
                self.expiry_high = Some(expiry_high);
                self.key_revision = Some(key_revision);
                self.rollover = Some(rollover);
                self.three_sections = Some(three_sections);
                self.key_type = Some(key_type);
            }
            KeyChangeSection::Second {
                expiry_low,
                tariff_index,
                key_word,
            } => {
                self.key[if wide { 3 } else { 1 }] = Some(key_word.to_be_bytes());
                self.expiry_low = Some(expiry_low);
                self.tariff_index = Some(tariff_index);
            }
            KeyChangeSection::SupplyGroup { supply_group } => {
                self.supply_group = Some(supply_group.get());
            }
            KeyChangeSection::Third {
                supply_group_low,
                key_word,
            } => {
                self.key[1] = Some(key_word.to_be_bytes());
                self.supply_group_low = Some(supply_group_low);
            }
            KeyChangeSection::Fourth {
                supply_group_high,
                key_word,
            } => {
                self.key[2] = Some(key_word.to_be_bytes());
                self.supply_group_high = Some(supply_group_high);
            }
        }
    }

    fn key_bytes(&self) -> Vec<u8> {
        self.key.iter().flatten().flatten().copied().collect()
    }

    fn supply_group(&self) -> Option<u32> {
        match (self.supply_group_high, self.supply_group_low) {
            (Some(high), Some(low)) => Some((u32::from(high) << 12) | u32::from(low)),
            _ => self.supply_group,
        }
    }
}

/// Decodes every token of the set with `read` and checks it is the section it came from, then
/// checks the sections rebuild the change.
fn check_key_change_set(
    spec: &ChangeSpec,
    old: &TokenCipher,
    read: impl Fn(TokenNumber) -> Result<Token, DecodeError>,
) -> Result<(), TestCaseError> {
    let wide = spec.new_key.len() == 16;
    let set = spec.change().encode(old).unwrap();
    let expected_len = match (wide, spec.include_supply_group) {
        (true, _) => 4,
        (false, true) => 3,
        (false, false) => 2,
    };
    prop_assert_eq!(set.len(), expected_len);
    let mut rebuilt = Reassembled::default();
    let mut last_subclass = None;
    for kct in set.iter() {
        prop_assert_eq!(kct.number.class(), TokenClass::MANAGEMENT);
        prop_assert!(
            last_subclass < Some(kct.section.subclass()),
            "subclass order"
        );
        last_subclass = Some(kct.section.subclass());
        prop_assert_eq!(
            set.by_subclass(kct.section.subclass()).map(|t| t.number),
            Some(kct.number)
        );
        let token = read(kct.number).map_err(|e| {
            TestCaseError::fail(format!("section {:?} does not decode: {e}", kct.section))
        })?;
        prop_assert_eq!(token, Token::KeyChange(kct.section));
        prop_assert_eq!(token.to_block(), Ok(kct.block));
        prop_assert_eq!(token.tid(), None);
        if let Token::KeyChange(section) = token {
            rebuilt.add(section, wide);
        }
    }
    prop_assert_eq!(rebuilt.key_bytes(), spec.new_key.clone());
    prop_assert_eq!(rebuilt.key_revision, Some(spec.key_revision));
    prop_assert_eq!(rebuilt.key_type, Some(spec.key_type));
    prop_assert_eq!(rebuilt.tariff_index, Some(spec.tariff_index));
    prop_assert_eq!(rebuilt.rollover, Some(spec.rollover));
    prop_assert_eq!(
        rebuilt
            .expiry_high
            .zip(rebuilt.expiry_low)
            .map(|(h, l)| (h << 4) | l),
        Some(spec.expiry)
    );
    // STS.md 5: the 3KCT bit is set only for a 64-bit set carrying the SGC, never for EA11.
    prop_assert_eq!(
        rebuilt.three_sections,
        Some(!wide && spec.include_supply_group)
    );
    let carries_supply_group = wide || spec.include_supply_group;
    prop_assert_eq!(
        rebuilt.supply_group(),
        carries_supply_group.then_some(spec.supply_group.get())
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// STS.md 5: a 64-bit key change set (EA07 or EA09 meter) decodes under the old key, section
    /// by section, and rebuilds the new key, KRN, KT, TI, KEN, RO and (3KCT) SGC.
    #[test]
    fn key_change_set_64_bit(
        old in prop_oneof![key_for(EncryptionAlgorithm::Sta), key_for(EncryptionAlgorithm::Des)],
        spec in key_change(8),
    ) {
        let cipher = old.cipher();
        check_key_change_set(&spec, &cipher, |n| decode(n, Some(&cipher)).map(|d| d.token))?;
    }

    /// The same for a 128-bit key change set on an EA11 meter (4 tokens, SGC split 12/12).
    #[test]
    fn key_change_set_128_bit(old in key_for(EncryptionAlgorithm::Misty1), spec in key_change(16)) {
        let cipher = old.cipher();
        check_key_change_set(&spec, &cipher, |n| decode(n, Some(&cipher)).map(|d| d.token))?;
    }

    /// A set whose new key is not the width of the old one (a move between EA07/EA09 and EA11):
    /// `decode` reads 2/8 by the old key's width, so the caller reads the sections with
    /// `Token::from_block` and the new key's width.
    #[test]
    fn key_change_set_across_key_widths_is_refused(
        (old, spec) in prop_oneof![
            (key_for(EncryptionAlgorithm::Misty1), key_change(8)),
            (key_for(EncryptionAlgorithm::Sta), key_change(16)),
            (key_for(EncryptionAlgorithm::Des), key_change(16)),
        ],
    ) {
        // A meter's algorithm is fixed: its new key has the width of the current one.
        let cipher = old.cipher();
        let change = spec.change();
        prop_assert_eq!(change.encode(&cipher), Err(EncodeError::KeyWidth));
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// STS.md 4: the encoding is the smallest transfer amount at or above the value.
    #[test]
    fn transfer_amount_rounds_up_to_the_nearest_encoding(v in transfer_value()) {
        let amount = TransferAmount::from_value_ceil(v).unwrap();
        prop_assert!(amount.value() >= v, "{} encodes as {}", v, amount.value());
        if amount.field() > 0 {
            let below = TransferAmount::from_field(amount.field() - 1).value();
            prop_assert!(below < v, "{v} encodes as {}, but {below} also covers it", amount.value());
        }
        // An encodable value is its own encoding.
        prop_assert_eq!(TransferAmount::from_value_ceil(amount.value()), Ok(amount));
    }

    /// A sale's token never carries more than was paid for, and no closer encoding exists.
    #[test]
    fn transfer_amount_floor_is_the_nearest_encoding_below(v in transfer_value()) {
        let amount = TransferAmount::from_value_floor(v).unwrap();
        prop_assert!(amount.value() <= v, "{} floors to {}", v, amount.value());
        if amount.field() < u16::MAX {
            let above = TransferAmount::from_field(amount.field() + 1).value();
            prop_assert!(above > v, "{v} floors to {}, but {above} is also at most it", amount.value());
        }
    }

    /// Encoding is monotone.
    #[test]
    fn transfer_amount_is_monotone(a in transfer_value(), b in transfer_value()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let lo_value = TransferAmount::from_value_ceil(lo).unwrap().value();
        let hi_value = TransferAmount::from_value_ceil(hi).unwrap().value();
        prop_assert!(lo_value <= hi_value, "{lo} -> {lo_value}, {hi} -> {hi_value}");
    }

    /// Field order is value order, so "the next-lower field" is the next-lower value.
    #[test]
    fn transfer_amount_fields_increase(field in 0u16..u16::MAX) {
        prop_assert!(
            TransferAmount::from_field(field).value() < TransferAmount::from_field(field + 1).value()
        );
    }

    /// Values above the maximum are refused, not wrapped.
    #[test]
    fn transfer_amount_above_maximum_is_refused(v in TransferAmount::MAX_VALUE + 1..) {
        prop_assert!(TransferAmount::from_value_ceil(v).is_err());
    }

    /// STS.md 4: currency rounds in the customer's favour: a credit never encodes below the
    /// request, a debit never above it in magnitude; and no closer encoding exists.
    #[test]
    fn currency_amount_favours_the_customer(units in currency_units()) {
        let amount = CurrencyAmount::from_units(units).unwrap();
        let got = amount.units();
        prop_assert!(got >= units, "{units} encodes as {got}");
        prop_assert_eq!(amount.is_negative(), units < 0);
        prop_assert_eq!(amount.field() >> 20, 0);
        let magnitude = amount.field() & 0x7_FFFF;
        if units >= 0 {
            if magnitude > 0 {
                let below = CurrencyAmount::from_field(magnitude - 1).units();
                prop_assert!(below < units, "{units} encodes as {got}, but {below} also covers it");
            }
        } else {
            prop_assert!(got.unsigned_abs() <= units.unsigned_abs());
            if magnitude < 0x7_FFFF {
                let beyond = CurrencyAmount::from_field((1 << 19) | (magnitude + 1)).units();
                prop_assert!(beyond < units, "{units} encodes as {got}, but {beyond} is closer");
            }
        }
        // An encodable amount is its own encoding, and Display/parse keep it.
        prop_assert_eq!(CurrencyAmount::from_units(got).map(CurrencyAmount::units), Ok(got));
        prop_assert_eq!(CurrencyAmount::parse(&amount.to_string()).map(CurrencyAmount::units), Ok(got));
    }

    /// Encoding is monotone across both signs.
    #[test]
    fn currency_amount_is_monotone(a in currency_units(), b in currency_units()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let lo_units = CurrencyAmount::from_units(lo).unwrap().units();
        let hi_units = CurrencyAmount::from_units(hi).unwrap().units();
        prop_assert!(lo_units <= hi_units, "{lo} -> {lo_units}, {hi} -> {hi_units}");
    }

    /// A credit above the largest field is refused rather than rounded down.
    #[test]
    fn currency_credit_above_maximum_is_refused(excess in 1i128..=i128::MAX - currency_max_units()) {
        prop_assert!(CurrencyAmount::from_units(currency_max_units() + excess).is_err());
    }

    /// A debit beyond the largest field rounds down in magnitude to the largest debit, or is
    /// refused once no exponent fits; it never wraps or panics.
    #[test]
    fn currency_debit_beyond_maximum(excess in 1i128..=i128::MAX - currency_max_units()) {
        let units = -currency_max_units() - excess;
        if let Ok(amount) = CurrencyAmount::from_units(units) {
            prop_assert_eq!(amount.units(), -currency_max_units());
        }
        prop_assert!(CurrencyAmount::from_units(i128::MIN).is_err());
    }

    /// Every 20-bit field decodes to units that encode back to the same units.
    #[test]
    fn currency_fields_are_fixed_points(amount in currency_field()) {
        let units = amount.units();
        let again = CurrencyAmount::from_units(units).unwrap();
        prop_assert_eq!(again.units(), units);
        // Negative zero (sign bit with magnitude 0) is the only field that is not canonical.
        if amount.field() != 1 << 19 {
            prop_assert_eq!(again, amount);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Token numbers and identifiers as text
// ---------------------------------------------------------------------------------------------

proptest! {
    /// Parsing never panics, and accepts exactly what it documents.
    #[test]
    fn token_number_parse_is_total(s in any::<String>()) {
        let result = s.parse::<TokenNumber>();
        if let Ok(number) = result {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(number.to_string(), digits);
        }
    }

    /// Digits, spaces and dashes: valid iff there are 20 digits whose value is below 2^66.
    #[test]
    fn token_number_parses_iff_below_2_pow_66(s in "[0-9 -]{0,30}") {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        let result = s.parse::<TokenNumber>();
        match digits.len() {
            0 => prop_assert_eq!(result, Err(TokenNumberError::Empty)),
            20 => {
                let value: u128 = digits.parse().unwrap();
                if value <= TokenNumber::MAX {
                    prop_assert_eq!(result.map(TokenNumber::get), Ok(value));
                } else {
                    prop_assert_eq!(result, Err(TokenNumberError::OutOfRange));
                }
            }
            n => prop_assert_eq!(result, Err(TokenNumberError::Length(n))),
        }
    }

    /// Exactly 20 digits, over the whole range (most are >= 2^66, so bias toward small ones).
    #[test]
    fn twenty_digit_strings(s in prop_oneof!["[0-9]{20}", "[0-7][0-9]{19}", "0[0-9]{19}"]) {
        let value: u128 = s.parse().unwrap();
        let result = s.parse::<TokenNumber>();
        prop_assert_eq!(result.is_ok(), value < 1 << 66);
        if let Ok(number) = result {
            prop_assert_eq!(number.get(), value);
            prop_assert_eq!(number.to_string(), s);
        }
    }

    /// Every number below 2^66 prints as 20 digits and parses back, plain or grouped.
    #[test]
    fn token_number_display_round_trips(value in 0..=TokenNumber::MAX) {
        let number = TokenNumber::from_u128(value).unwrap();
        prop_assert_eq!(number.to_string().parse::<TokenNumber>(), Ok(number));
        prop_assert_eq!(number.grouped().to_string().parse::<TokenNumber>(), Ok(number));
        prop_assert_eq!(number.to_digits().len(), 20);
    }

    /// A meter PAN built from a DRN prints and parses back to itself with the same DRN.
    #[test]
    fn meter_pan_round_trips(drn in prop_oneof!["[0-9]{11}", "[0-9]{13}"]) {
        let pan = MeterPan::from_drn(&drn).unwrap();
        prop_assert_eq!(pan.drn(), drn.as_str());
        prop_assert_eq!(pan.to_string().parse::<MeterPan>(), Ok(pan));
        // Any other check digit is refused.
        let mut wrong = pan.to_string().into_bytes();
        wrong[17] = b'0' + (pan.check_digit() + 1) % 10;
        prop_assert!(String::from_utf8(wrong).unwrap().parse::<MeterPan>().is_err());
    }

    /// SGC and TI print with their leading zeros and parse back.
    #[test]
    fn identifiers_round_trip(sgc in supply_group(), ti in tariff_index()) {
        prop_assert_eq!(sgc.to_string().len(), 6);
        prop_assert_eq!(sgc.to_string().parse::<SupplyGroupCode>(), Ok(sgc));
        prop_assert_eq!(ti.to_string().parse::<TariffIndex>(), Ok(ti));
    }

    /// A civil minute in years 1-9999 prints and parses back.
    #[test]
    fn utc_minute_round_trips(
        days in 0i64..3_652_059,
        minute in 0i64..UtcMinute::MINUTES_PER_DAY,
    ) {
        let start = UtcMinute::from_civil(1, 1, 1, 0, 0).unwrap();
        let t = start.add_minutes(days * UtcMinute::MINUTES_PER_DAY + minute);
        prop_assert_eq!(t.to_string().parse::<UtcMinute>(), Ok(t));
    }
}
