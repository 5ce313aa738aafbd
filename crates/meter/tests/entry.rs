//! What reaches the meter before any token rule: malformed entries, class 3, class 1 test
//! tokens and their manufacturer code, and reserved subclasses (STS.md 2 and 5,
//! STS-detail.md 5.3, 9.2, 11.2).

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{
    DataBlock, MeterPan, TokenClass, TokenNumber, TokenSubclass,
    token::{MeterTestFormat, TokenNumberError, seal},
};
use sts_meter::{Applied, FormatProblem, ManufacturerCode, Rejection, Status};

#[test]
fn malformed_entries_are_format_errors() {
    let mut meter = worked_example_meter();
    for (text, problem) in [
        ("1234", TokenNumberError::Length(4)),
        ("", TokenNumberError::Empty),
        ("2371x", TokenNumberError::InvalidCharacter('x')),
        ("73786976294838206464", TokenNumberError::OutOfRange),
    ] {
        let rejection = meter.enter_digits(text, 0).unwrap_err();
        assert_eq!(rejection, Rejection::Format(FormatProblem::Digits(problem)));
        assert_eq!(rejection.status().code(), 6);
        meter.power_cycle();
    }
    assert!(meter.state().tids.is_empty());
}

#[test]
fn class_three_is_not_supported() {
    let mut meter = worked_example_meter();
    let token = TokenNumber::from_block(TokenClass::RESERVED, 0x1234_5678_9ABC_DEF0);
    assert_eq!(
        meter.enter(token, 0),
        Err(Rejection::Function {
            class: TokenClass::RESERVED,
            subclass: None
        })
    );
}

#[test]
fn reserved_and_proprietary_subclasses_are_not_supported() {
    let mut meter = worked_example_meter();
    let cipher = cipher(&meter);
    for (class, sub) in [(0, 8), (0, 15), (2, 11), (2, 15), (1, 3), (1, 6)] {
        let class = TokenClass::from_bits(class);
        let block = DataBlock::new(class, TokenSubclass::from_bits(sub), 0x123);
        let token = seal(block, Some(&cipher)).unwrap();
        assert_eq!(
            meter.enter(token, 0),
            Err(Rejection::Function {
                class,
                subclass: Some(TokenSubclass::from_bits(sub))
            }),
            "{class}/{sub}"
        );
        meter.power_cycle();
    }
}

#[test]
fn class_one_needs_the_meters_manufacturer_code() {
    // STS-detail.md 11.2: all tests with manufacturer 00 (1/0 and 1/1), display KRN (1/0).
    let mut meter = worked_example_meter();
    assert_eq!(
        meter.state().config.manufacturer,
        ManufacturerCode::try_from(0).unwrap()
    );
    assert_eq!(
        meter.enter_digits("56493153725450313471", 0),
        Ok(Applied::MeterTest {
            format: MeterTestFormat::Short,
            control: (1 << 36) - 1
        })
    );
    assert_eq!(
        meter.enter_digits("02305843005052951967", 0),
        Ok(Applied::MeterTest {
            format: MeterTestFormat::Long,
            control: (1 << 28) - 1
        })
    );
    // No TID: the same test token works again and again.
    assert!(meter.enter_digits("18446744073843772416", 0).is_ok());
    assert!(meter.enter_digits("18446744073843772416", 0).is_ok());
    assert!(meter.state().tids.is_empty());

    // A meter of manufacturer 47 refuses them.
    let mut config = meter.state().config;
    config.pan = MeterPan::from_drn("47000000001").unwrap();
    config.manufacturer = ManufacturerCode::from_pan(&config.pan);
    let mut state = *meter.state();
    state.config = config;
    let mut other = sts_meter::Meter::from_parts(state, meter.secrets().clone()).unwrap();
    let rejection = other.enter_digits("56493153725450313471", 0).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::MfrCode {
            expected: ManufacturerCode::try_from(47).unwrap(),
            found: 0
        }
    );
    assert_eq!(rejection.status().code(), 14);
    // Its own code in either layout is accepted.
    for (sub, mfr_bits) in [(0u8, 8), (1, 16)] {
        let block = DataBlock::new(
            TokenClass::INITIATE_METER_TEST,
            TokenSubclass::from_bits(sub),
            (0b1000 << mfr_bits) | 47,
        );
        let token = seal(block, None).unwrap();
        assert!(matches!(
            other.enter(token, 0),
            Ok(Applied::MeterTest {
                control: 0b1000,
                ..
            })
        ));
    }
}

#[test]
fn class_one_crc_and_extended_read() {
    let mut meter = worked_example_meter();
    let good: TokenNumber = "56493153725450313471".parse().unwrap();
    let bad = TokenNumber::from_u128(good.get() ^ 1).unwrap();
    assert_eq!(
        meter.enter(bad, 0),
        Err(Rejection::Crc {
            class: TokenClass::INITIATE_METER_TEST
        })
    );
    // 1/2 extended token read (STS202-5) is not implemented.
    let block = DataBlock::new(
        TokenClass::INITIATE_METER_TEST,
        TokenSubclass::from_bits(2),
        0,
    );
    let rejection = meter.enter(seal(block, None).unwrap(), 0).unwrap_err();
    assert_eq!(rejection.status(), Status::Function);
}

#[test]
fn every_rejection_explains_itself() {
    let mut meter = worked_example_meter();
    let text = meter
        .enter_digits("09109691696351271646", 0)
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "CRC (13): the CRC does not match: the token was mistyped or is for another meter"
    );
    let applied = meter.enter_digits("23716100501183194197", 0).unwrap();
    assert_eq!(
        applied.to_string(),
        "Accept (1): 0.1 kWh of electricity added, balance 0.1"
    );
}
