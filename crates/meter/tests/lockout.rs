//! Keypad lockout: 3 invalid entries lock 10 s, doubling to 1280 s; class 1 still works; a good
//! token or a power cycle resets it (STS-detail.md 9.5, one vendor, not normative).

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too,
// and a panic in them is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber};
use sts_meter::{Applied, KeyAttributes, LockoutPolicy, Meter, MeterConfig, Rejection, Status};

/// Another meter's token: a CRC error here.
const FOREIGN: &str = "09109691696351271646";

fn lock(meter: &mut Meter, at: u64) {
    for i in 0..3 {
        assert_eq!(
            meter.enter_digits(FOREIGN, at + i).unwrap_err().status(),
            Status::Crc
        );
    }
}

#[test]
fn three_crc_errors_lock_for_ten_seconds() {
    let mut meter = worked_example_meter();
    lock(&mut meter, 100);
    assert_eq!(meter.state().lockout.consecutive_invalid(), 3);
    // Locked: a good token is refused without being decrypted, and not counted.
    let good = number("23716100501183194197");
    assert_eq!(
        meter.enter(good, 105),
        Err(Rejection::Lockout {
            remaining_seconds: 7
        })
    );
    assert_eq!(Status::Lockout.code(), 15);
    assert_eq!(meter.state().lockout.consecutive_invalid(), 3);
    assert!(meter.state().tids.is_empty());
    // Garbage text is refused the same way while locked.
    assert!(matches!(
        meter.enter_digits("12", 106),
        Err(Rejection::Lockout { .. })
    ));
    // After the lock a good token is accepted and resets the count.
    meter.enter(good, 112).unwrap();
    assert_eq!(meter.state().lockout.consecutive_invalid(), 0);
    assert_eq!(meter.state().lockout.remaining(112), None);
}

#[test]
fn each_further_error_doubles_the_lock_up_to_1280_seconds() {
    let mut meter = worked_example_meter();
    lock(&mut meter, 0);
    let mut now = 2;
    let mut expected = 10;
    for _ in 0..10 {
        assert_eq!(meter.state().lockout.remaining(now), Some(expected));
        now += expected;
        assert_eq!(
            meter.enter_digits(FOREIGN, now).unwrap_err().status(),
            Status::Crc
        );
        expected = (expected * 2).min(1280);
    }
    assert_eq!(meter.state().lockout.remaining(now), Some(1280));
}

#[test]
fn class_one_tokens_work_while_locked_and_do_not_unlock() {
    let mut meter = worked_example_meter();
    lock(&mut meter, 0);
    // Manufacturer 00 (PAN1's), all tests.
    assert!(matches!(
        meter.enter_digits("56493153725450313471", 3),
        Ok(Applied::MeterTest { .. })
    ));
    assert!(meter.state().lockout.remaining(4).is_some());
    assert_eq!(meter.state().lockout.consecutive_invalid(), 3);
}

#[test]
fn what_counts_and_what_does_not() {
    let mut meter = worked_example_meter();
    let good = number("23716100501183194197");
    meter.enter(good, 0).unwrap();
    // Used (a genuine token entered again) does not count...
    for i in 0..5 {
        assert_eq!(meter.enter(good, i).unwrap_err().status(), Status::Used);
    }
    assert_eq!(meter.state().lockout.consecutive_invalid(), 0);
    // ...format errors do, and so do CRC errors; Used neither counts nor resets.
    assert_eq!(
        meter.enter_digits("1234", 10).unwrap_err().status(),
        Status::Format
    );
    assert_eq!(meter.enter(good, 11).unwrap_err().status(), Status::Used);
    assert_eq!(
        meter.enter_digits(FOREIGN, 12).unwrap_err().status(),
        Status::Crc
    );
    assert_eq!(meter.state().lockout.consecutive_invalid(), 2);
    // A staged key change section is a good token: it resets the count.
    meter.enter_digits("51638423060042734509", 13).unwrap();
    assert_eq!(meter.state().lockout.consecutive_invalid(), 0);
}

#[test]
fn power_cycle_resets_the_lock() {
    let mut meter = worked_example_meter();
    lock(&mut meter, 0);
    meter.power_cycle();
    assert_eq!(meter.state().lockout.remaining(3), None);
    meter.enter_digits("23716100501183194197", 3).unwrap();
}

#[test]
fn the_policy_is_a_setting() {
    let desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    let mut config = MeterConfig::new(pan1());
    config.lockout = LockoutPolicy {
        threshold: 1,
        initial_seconds: 60,
        maximum_seconds: 60,
    };
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&desc, KeyExpiryNumber::NEVER),
        derive(&desc),
    )
    .unwrap();
    assert_eq!(
        meter.enter_digits(FOREIGN, 0).unwrap_err().status(),
        Status::Crc
    );
    assert_eq!(
        meter.enter_digits("23716100501183194197", 30),
        Err(Rejection::Lockout {
            remaining_seconds: 30
        })
    );
}
