//! Every token the engine can produce is accepted once by a meter with the right key, then
//! refused as used (TID-carrying tokens), under each of EA07, EA09 and EA11.

#![allow(clippy::unwrap_used)]

use sts_core::{
    BaseDate, CurrencyAmount, DecoderKey, EncryptionAlgorithm, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyType, MeterDescription, RandomNumber, Register, Service, Token,
    TokenCipher, TokenIdentifier, TransferAmount, token::MeterTestFormat,
};
use sts_meter::{KeyAttributes, Meter, MeterConfig, Status};

fn meter(algorithm: EncryptionAlgorithm, key: &DecoderKey, extended: bool) -> Meter {
    let description = MeterDescription {
        pan: "600727000000000009".parse().unwrap(),
        supply_group: "201457".parse().unwrap(),
        tariff_index: "01".parse().unwrap(),
        key_revision: "1".parse().unwrap(),
        key_type: KeyType::Unique,
        base_date: BaseDate::Y2014,
        algorithm,
        derivation: if algorithm == EncryptionAlgorithm::Misty1 {
            KeyDerivationAlgorithm::Dkga04
        } else {
            KeyDerivationAlgorithm::Dkga02
        },
    };
    let mut config = MeterConfig::new(description.pan);
    config.extended_tokens = extended;
    config.currency_minimum = -config.currency_maximum;
    Meter::new(
        config,
        KeyAttributes::from_description(&description, KeyExpiryNumber::NEVER),
        key.clone(),
    )
    .unwrap()
}

/// Every TID-carrying token kind of the engine, with distinct TIDs.
fn tokens() -> Vec<Token> {
    let mut next = 1_000_000u32;
    let mut tid = move || {
        next += 7;
        TokenIdentifier::from_raw(next).unwrap()
    };
    let rnd = RandomNumber::from_low_bits(9);
    let mut all = Vec::new();
    for service in Service::ALL {
        all.push(Token::TransferCredit {
            service,
            rnd,
            tid: tid(),
            amount: TransferAmount::from_value_ceil(1234).unwrap(),
        });
        all.push(Token::CurrencyCredit {
            service,
            tid: tid(),
            amount: CurrencyAmount::parse("12.5").unwrap(),
        });
        all.push(Token::CurrencyCredit {
            service,
            tid: tid(),
            amount: CurrencyAmount::parse("-1").unwrap(),
        });
    }
    all.extend([
        Token::SetMaximumPowerLimit {
            rnd,
            tid: tid(),
            limit: TransferAmount::from_value_ceil(5000).unwrap(),
        },
        Token::ClearCredit {
            rnd,
            tid: tid(),
            register: Register::units(Service::Water),
        },
        Token::ClearCredit {
            rnd,
            tid: tid(),
            register: Register::ALL,
        },
        Token::SetTariffRate {
            rnd,
            tid: tid(),
            rate: 42,
        },
        Token::ClearTamperCondition {
            rnd,
            tid: tid(),
            pad: 0,
        },
        Token::SetMaximumPhasePowerUnbalanceLimit {
            rnd,
            tid: tid(),
            limit: TransferAmount::from_value_ceil(300).unwrap(),
        },
        Token::SetWaterMeterFactor {
            rnd,
            tid: tid(),
            factor: 3,
        },
        Token::ExtendedTokenSet {
            rnd,
            tid: tid(),
            field: 0xFC00,
        },
    ]);
    all
}

fn keys() -> [(EncryptionAlgorithm, DecoderKey); 3] {
    [
        (
            EncryptionAlgorithm::Sta,
            DecoderKey::from_hex("87F3ECBB2E46B48F").unwrap(),
        ),
        (
            EncryptionAlgorithm::Des,
            DecoderKey::from_hex("0123456789ABCDEF").unwrap(),
        ),
        (
            EncryptionAlgorithm::Misty1,
            DecoderKey::from_hex("F94B6ED353C3BFDB113E2D3A7EA3C41D").unwrap(),
        ),
    ]
}

#[test]
fn accepted_once_then_used() {
    for (algorithm, key) in keys() {
        let cipher = TokenCipher::new(algorithm, &key).unwrap();
        let mut m = meter(algorithm, &key, true);
        for token in tokens() {
            let number = token.encode(Some(&cipher)).unwrap();
            let applied = m
                .enter(number, 0)
                .unwrap_or_else(|r| panic!("EA{algorithm} {token:?}: {r}"));
            assert_eq!(applied.tid(), token.tid(), "EA{algorithm} {token:?}");
            let again = m.enter(number, 0).unwrap_err();
            assert_eq!(
                again.status(),
                Status::Used,
                "EA{algorithm} {token:?}: {again}"
            );
        }
    }
}

#[test]
fn class_one_tokens_carry_no_tid_and_are_accepted_every_time() {
    let (algorithm, key) = keys().into_iter().next().unwrap();
    let mut m = meter(algorithm, &key, true);
    for format in [
        MeterTestFormat::Short,
        MeterTestFormat::Long,
        MeterTestFormat::ExtendedRead,
    ] {
        let number = Token::InitiateMeterTest {
            format,
            control: 0b1010,
            manufacturer: 0,
        }
        .encode(None)
        .unwrap();
        for _ in 0..2 {
            assert_eq!(
                m.enter(number, 0).unwrap().status(),
                Status::Accept,
                "{format:?}"
            );
        }
    }
}

#[test]
fn without_sts202_5_the_extended_tokens_are_function_errors() {
    let (algorithm, key) = keys().into_iter().next().unwrap();
    let cipher = TokenCipher::new(algorithm, &key).unwrap();
    let mut m = meter(algorithm, &key, false);
    let set = Token::ExtendedTokenSet {
        rnd: RandomNumber::from_low_bits(1),
        tid: TokenIdentifier::from_raw(77).unwrap(),
        field: 0xFC00,
    };
    assert_eq!(
        m.enter(set.encode(Some(&cipher)).unwrap(), 0)
            .unwrap_err()
            .status(),
        Status::Function
    );
    let read = Token::InitiateMeterTest {
        format: MeterTestFormat::ExtendedRead,
        control: 63 << 30,
        manufacturer: 0,
    };
    assert_eq!(
        m.enter(read.encode(None).unwrap(), 0).unwrap_err().status(),
        Status::Function
    );
    assert!(m.state().tids.is_empty(), "a refused token leaves no TID");
}
