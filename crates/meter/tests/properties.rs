//! Property tests: no sequence of entries panics the meter, credit changes only by what
//! accepted tokens say they did, a refused token changes nothing that matters, and the saved
//! state round-trips.
//!
//! Sequences mix genuine tokens for the meter's current key, tokens under another key, key
//! change sets entered partly and in any order, class 1 tokens, random 20-digit numbers,
//! random text, the passing of time and power cycles.

// clippy.toml allows unwrap in `#[test]` functions only; the strategies and helpers below are
// test code too, and a panic there is a test failure.
#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use proptest::prelude::*;
use sts_core::{
    CurrencyAmount, DecoderKey, EncryptionAlgorithm, KeyChange, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyType, RandomNumber, Register, Service, SupplyGroupCode, TariffIndex, Token,
    TokenCipher, TokenIdentifier, TokenNumber, TransferAmount, token::MeterTestFormat,
};
use sts_meter::{
    Applied, CreditRegisters, KeyAttributes, Meter, MeterConfig, MeterSecrets, MeterState,
};

#[derive(Clone, Debug)]
enum Op {
    Credit {
        service: u8,
        tenths: u32,
        tid: u32,
        genuine: bool,
    },
    Currency {
        service: u8,
        units: i64,
        tid: u32,
        genuine: bool,
    },
    Management {
        kind: u8,
        value: u16,
        tid: u32,
        genuine: bool,
    },
    KeyChange {
        key: [u8; 16],
        kt: u8,
        krn: u8,
        ti: u8,
        ken: u8,
        sgc: u32,
        rollover: bool,
        three: bool,
        order: Vec<usize>,
        genuine: bool,
    },
    ClassOne {
        control: u64,
        manufacturer: u16,
        long: bool,
    },
    Number(u128),
    Text(String),
    Wait(u64),
    PowerCycle,
    Tamper,
}

fn op() -> impl Strategy<Value = Op> {
    let tid = 0u32..(1 << 24);
    prop_oneof![
        4 => (0u8..4, prop_oneof![0u32..2000, 0u32..=TransferAmount::MAX_VALUE], tid.clone(), prop::bool::weighted(0.9))
            .prop_map(|(service, tenths, tid, genuine)| Op::Credit { service, tenths, tid, genuine }),
        2 => (0u8..4, -5_000_000_000i64..5_000_000_000, tid.clone(), prop::bool::weighted(0.85))
            .prop_map(|(service, units, tid, genuine)| Op::Currency { service, units, tid, genuine }),
        3 => (0u8..8, any::<u16>(), tid, prop::bool::weighted(0.85))
            .prop_map(|(kind, value, tid, genuine)| Op::Management { kind, value, tid, genuine }),
        2 => (any::<[u8; 16]>(), 0u8..4, 1u8..=9, 0u8..=99, any::<u8>(), 0u32..=999_999,
              prop::bool::weighted(0.2), any::<bool>(),
              prop::sample::subsequence(vec![0usize, 1, 2, 3], 0..=4).prop_shuffle(),
              prop::bool::weighted(0.9))
            .prop_map(|(key, kt, krn, ti, ken, sgc, rollover, three, order, genuine)| Op::KeyChange {
                key, kt, krn, ti, ken, sgc, rollover, three, order, genuine,
            }),
        1 => (any::<u64>(), prop_oneof![Just(0u16), any::<u16>()], any::<bool>())
            .prop_map(|(control, manufacturer, long)| Op::ClassOne { control, manufacturer, long }),
        1 => (0u128..(1 << 66)).prop_map(Op::Number),
        1 => "[0-9 -]{0,24}|.{0,8}".prop_map(Op::Text),
        2 => (0u64..2000).prop_map(Op::Wait),
        2 => Just(Op::PowerCycle),
        1 => Just(Op::Tamper),
    ]
}

/// A meter: EA07 or EA11, with small limits so overflow, old and lockout happen.
fn meter() -> impl Strategy<Value = Meter> {
    (
        any::<bool>(),
        1u16..=60,
        1u64..=2_000_000,
        0i128..=50_000_000,
        prop_oneof![Just(255u8), 80u8..=255],
        0u8..4,
    )
        .prop_map(|(wide, depth, unit_max, debt, ken, kt)| {
            let (algorithm, derivation, key) = if wide {
                (
                    EncryptionAlgorithm::Misty1,
                    KeyDerivationAlgorithm::Dkga04,
                    "F94B6ED353C3BFDB113E2D3A7EA3C41D",
                )
            } else {
                (
                    EncryptionAlgorithm::Sta,
                    KeyDerivationAlgorithm::Dkga02,
                    "E653341F9D5BF36F",
                )
            };
            let desc = description(123_456, 1, sts_core::BaseDate::Y1993, algorithm, derivation);
            let mut config = MeterConfig::new(pan1());
            config.tid_memory_depth = depth;
            config.unit_maximum = unit_max;
            config.currency_minimum = -debt;
            config.currency_maximum = 100_000_000_000;
            config.key_change_timeout = if depth % 2 == 0 { Some(600) } else { None };
            let mut attributes = KeyAttributes::from_description(&desc, KeyExpiryNumber::from(ken));
            attributes.key_type = KeyType::from_bits(kt);
            Meter::new(config, attributes, DecoderKey::from_hex(key).unwrap()).unwrap()
        })
}

/// The meter's cipher, or a cipher under a key it does not hold.
fn cipher_for(meter: &Meter, genuine: bool) -> TokenCipher {
    if genuine {
        return cipher(meter);
    }
    let len = meter.state().key.algorithm.key_len();
    let other = DecoderKey::from_bytes(&[0x5A; 16][..len]).unwrap();
    TokenCipher::new(meter.state().key.algorithm, &other).unwrap()
}

fn service(i: u8) -> Service {
    Service::ALL[usize::from(i % 4)]
}

/// The entries an op makes, each to be entered at the current time.
fn entries(meter: &Meter, op: &Op) -> Vec<TokenNumber> {
    let rnd = RandomNumber::from_low_bits(7);
    let token =
        |genuine: bool, token: Token| token.encode(Some(&cipher_for(meter, genuine))).unwrap();
    let t = |raw: u32| TokenIdentifier::from_raw(raw).unwrap();
    match op {
        Op::Credit {
            service: s,
            tenths,
            tid,
            genuine,
        } => vec![token(
            *genuine,
            Token::TransferCredit {
                service: service(*s),
                rnd,
                tid: t(*tid),
                amount: TransferAmount::from_value_ceil(*tenths).unwrap(),
            },
        )],
        Op::Currency {
            service: s,
            units,
            tid,
            genuine,
        } => vec![token(
            *genuine,
            Token::CurrencyCredit {
                service: service(*s),
                tid: t(*tid),
                amount: CurrencyAmount::from_units(i128::from(*units)).unwrap(),
            },
        )],
        Op::Management {
            kind,
            value,
            tid,
            genuine,
        } => {
            let (tid, value) = (t(*tid), *value);
            let m = match kind {
                0 => Token::SetMaximumPowerLimit {
                    rnd,
                    tid,
                    limit: TransferAmount::from_field(value),
                },
                1 => Token::ClearCredit {
                    rnd,
                    tid,
                    register: Register(if value % 3 == 0 { 0xFFFF } else { value % 10 }),
                },
                2 => Token::SetTariffRate {
                    rnd,
                    tid,
                    rate: value,
                },
                3 => Token::ClearTamperCondition {
                    rnd,
                    tid,
                    pad: value % 2,
                },
                4 => Token::SetMaximumPhasePowerUnbalanceLimit {
                    rnd,
                    tid,
                    limit: TransferAmount::from_field(value),
                },
                5 => Token::SetWaterMeterFactor {
                    rnd,
                    tid,
                    factor: value,
                },
                6 => Token::ExtendedTokenSet {
                    rnd,
                    tid,
                    field: value,
                },
                _ => Token::ClearCredit {
                    rnd,
                    tid,
                    register: Register(value % 8),
                },
            };
            vec![token(*genuine, m)]
        }
        Op::KeyChange {
            key,
            kt,
            krn,
            ti,
            ken,
            sgc,
            rollover,
            three,
            order,
            genuine,
        } => {
            let len = meter.state().key.algorithm.key_len();
            let change = KeyChange {
                key: DecoderKey::from_bytes(&key[..len]).unwrap(),
                key_type: KeyType::from_bits(*kt),
                key_revision: (*krn).try_into().unwrap(),
                tariff_index: TariffIndex::try_from(*ti).unwrap(),
                expiry: KeyExpiryNumber::from(*ken),
                supply_group: SupplyGroupCode::try_from(*sgc).unwrap(),
                rollover: *rollover,
                include_supply_group: *three,
            };
            let set = change.encode(&cipher_for(meter, *genuine)).unwrap();
            let tokens: Vec<_> = set.iter().map(|t| t.number).collect();
            order
                .iter()
                .filter_map(|&i| tokens.get(i).copied())
                .collect()
        }
        Op::ClassOne {
            control,
            manufacturer,
            long,
        } => {
            let (format, control_bits, mfr_bits) = if *long {
                (MeterTestFormat::Long, 28, 16)
            } else {
                (MeterTestFormat::Short, 36, 8)
            };
            vec![
                Token::InitiateMeterTest {
                    format,
                    control: control & ((1 << control_bits) - 1),
                    manufacturer: (u32::from(*manufacturer) & ((1 << mfr_bits) - 1)) as u16,
                }
                .encode(None)
                .unwrap(),
            ]
        }
        Op::Number(n) => vec![TokenNumber::from_u128(*n).unwrap()],
        Op::Text(_) | Op::Wait(_) | Op::PowerCycle | Op::Tamper => vec![],
    }
}

/// Checks one decision against the state before and after it, and books it in `ledger`.
fn check(
    before: &MeterState,
    before_key: &DecoderKey,
    after: &Meter,
    result: &Result<Applied, sts_meter::Rejection>,
    ledger: &mut CreditRegisters,
) -> Result<(), TestCaseError> {
    let state = after.state();
    match result {
        Err(_) => {
            prop_assert_eq!(
                &state.registers,
                &before.registers,
                "refused token changed credit"
            );
            prop_assert_eq!(&state.tids, &before.tids);
            prop_assert_eq!(&state.management, &before.management);
            prop_assert_eq!(&state.key, &before.key);
            prop_assert_eq!(after.secrets().decoder_key(), before_key);
        }
        Ok(applied) => {
            match *applied {
                Applied::Credit {
                    service,
                    added,
                    new_balance,
                    ..
                } => {
                    *ledger.units.get_mut(service) += added;
                    prop_assert_eq!(new_balance, before.registers.units(service) + added);
                }
                Applied::CurrencyCredit {
                    service,
                    added,
                    new_balance,
                    ..
                } => {
                    *ledger.currency.get_mut(service) += added;
                    prop_assert_eq!(new_balance, before.registers.currency(service) + added);
                }
                Applied::CreditCleared { register, .. } => {
                    for s in Service::ALL {
                        if register == Register::ALL || register == Register::units(s) {
                            *ledger.units.get_mut(s) = 0;
                        }
                        if register == Register::ALL || register == Register::currency(s) {
                            *ledger.currency.get_mut(s) = 0;
                        }
                    }
                }
                _ => prop_assert_eq!(&state.registers, &before.registers),
            }
            if let Some(tid) = applied.tid() {
                prop_assert!(state.tids.contains(tid));
            }
        }
    }
    prop_assert_eq!(
        &state.registers,
        ledger,
        "credit differs from what accepted tokens said"
    );
    prop_assert!(state.tids.len() <= usize::from(state.config.tid_memory_depth));
    for s in Service::ALL {
        prop_assert!(state.registers.units(s) <= state.config.unit_maximum);
        prop_assert!(state.registers.currency(s) >= state.config.currency_minimum);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_panics_or_loses_credit(mut meter in meter(), ops in prop::collection::vec(op(), 1..40)) {
        let mut ledger = meter.state().registers;
        let mut now = 0u64;
        for op in &ops {
            now += 1;
            match op {
                Op::Wait(s) => now += s,
                Op::PowerCycle => meter.power_cycle(),
                Op::Tamper => meter.report_tamper(),
                Op::Text(text) => {
                    let before = *meter.state();
                    let key = meter.secrets().decoder_key().clone();
                    let result = meter.enter_digits(text, now);
                    check(&before, &key, &meter, &result, &mut ledger)?;
                }
                _ => {}
            }
            for number in entries(&meter, op) {
                let before = *meter.state();
                let key = meter.secrets().decoder_key().clone();
                let result = meter.enter(number, now);
                check(&before, &key, &meter, &result, &mut ledger)?;
                // The status code and message never fail.
                let _ = match &result {
                    Ok(a) => (a.status().code(), a.to_string()),
                    Err(r) => (r.status().code(), r.to_string()),
                };
            }
        }
    }

    #[test]
    fn saved_state_and_secrets_round_trip(mut meter in meter(), ops in prop::collection::vec(op(), 0..25)) {
        let mut now = 0;
        for op in &ops {
            now += 7;
            for number in entries(&meter, op) {
                let _ = meter.enter(number, now);
            }
        }
        let json = serde_json::to_string(meter.state()).unwrap();
        let state: MeterState = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&state, meter.state());
        let secrets = MeterSecrets::from_bytes(&meter.secrets().to_bytes()[..]).unwrap();
        prop_assert_eq!(&secrets, meter.secrets());
        let mut restored = Meter::from_parts(state, secrets).unwrap();
        // Same decisions afterwards: replay the whole sequence against both.
        for op in &ops {
            for number in entries(&meter, op) {
                prop_assert_eq!(restored.enter(number, now), meter.enter(number, now));
            }
        }
        prop_assert_eq!(restored.state(), meter.state());
    }

    #[test]
    fn secrets_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = MeterSecrets::from_bytes(&bytes);
    }
}
