//! Credit tokens: the worked example, the TID memory (used, out of order, old), overflow,
//! currency credit and debit, DDTK and key expiry (STS.md 3, 4, 8; STS-detail.md 9.2, 11.1).

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too,
// and a panic in them is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{
    BaseDate, CurrencyAmount, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber,
    KeyType, Register, Service, Token,
};
use sts_meter::{Applied, KeyAttributes, Meter, MeterConfig, RangeProblem, Rejection, Status};

#[test]
fn worked_example_is_accepted_then_used() {
    // STS-detail.md 11.1: 0.1 kWh, TID 5871715 (2004-03-01 13:55, base 1993).
    let mut meter = worked_example_meter();
    let token = number("23716100501183194197");
    let applied = meter.enter(token, 0).unwrap();
    assert_eq!(
        applied,
        Applied::Credit {
            service: Service::Electricity,
            tid: tid(5_871_715),
            added: 1,
            new_balance: 1,
        }
    );
    assert_eq!(applied.status(), Status::Accept);
    assert_eq!(
        meter.issue_time(tid(5_871_715)).to_string(),
        "2004-03-01 13:55"
    );
    assert_eq!(
        meter.enter(token, 1),
        Err(Rejection::Used {
            tid: tid(5_871_715)
        })
    );
    assert_eq!(meter.state().registers.units(Service::Electricity), 1);
}

#[test]
fn published_water_and_gas_tokens_credit_their_registers() {
    // STS-detail.md 11.1: water 0.1 at 14:05 and gas 0.1 at 14:15 for the same meter.
    let mut meter = worked_example_meter();
    let water = meter.enter_digits("42502136492215507402", 0).unwrap();
    assert!(matches!(
        water,
        Applied::Credit {
            service: Service::Water,
            added: 1,
            ..
        }
    ));
    let gas = meter.enter_digits("6758 6531 5866 3982 5066", 0).unwrap();
    assert!(matches!(
        gas,
        Applied::Credit {
            service: Service::Gas,
            ..
        }
    ));
    assert_eq!(meter.state().registers.units(Service::Water), 1);
    assert_eq!(meter.state().registers.units(Service::Gas), 1);
    assert_eq!(meter.state().tids.len(), 2);
}

#[test]
fn every_service_and_amount_boundaries() {
    let mut meter = worked_example_meter();
    let mut t = 1000;
    for service in Service::ALL {
        for tenths in [1, 16_383, 16_384, 180_224, 18_201_624] {
            t += 1;
            let before = meter.state().registers.units(service);
            let applied = meter.enter(credit(&meter, service, tenths, t), 0).unwrap();
            let Applied::Credit {
                added, new_balance, ..
            } = applied
            else {
                panic!("{applied:?}");
            };
            assert!(added >= u64::from(tenths), "rounds up: {tenths} -> {added}");
            assert_eq!(new_balance, before + added);
        }
    }
}

#[test]
fn out_of_order_tokens_inside_the_window_are_accepted() {
    let mut meter = worked_example_meter();
    for t in [500, 300, 400, 100, 200] {
        meter.enter(kwh_tenth(&meter, t), 0).unwrap();
    }
    assert_eq!(meter.state().registers.units(Service::Electricity), 5);
    for t in [100, 300, 500] {
        assert_eq!(
            meter.enter(kwh_tenth(&meter, t), 0),
            Err(Rejection::Used { tid: tid(t) })
        );
    }
}

#[test]
fn old_when_the_memory_is_full() {
    let mut config = MeterConfig::new(pan1());
    config.tid_memory_depth = 4;
    let desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&desc, KeyExpiryNumber::NEVER),
        derive(&desc),
    )
    .unwrap();
    for t in [10, 20, 30] {
        meter.enter(kwh_tenth(&meter, t), 0).unwrap();
    }
    // Not full: an older token is still accepted.
    meter.enter(kwh_tenth(&meter, 5), 0).unwrap();
    // Full (5, 10, 20, 30): older than the oldest is old, inside the window is fine.
    assert_eq!(
        meter.enter(kwh_tenth(&meter, 4), 0),
        Err(Rejection::Old {
            tid: tid(4),
            oldest: tid(5)
        })
    );
    meter.enter(kwh_tenth(&meter, 15), 0).unwrap();
    // 5 was evicted: the memory keeps the newest TIDs it has seen.
    assert_eq!(
        meter
            .state()
            .tids
            .iter()
            .map(|t| t.get())
            .collect::<Vec<_>>(),
        [10, 15, 20, 30]
    );
    assert_eq!(
        meter.enter(kwh_tenth(&meter, 5), 0),
        Err(Rejection::Old {
            tid: tid(5),
            oldest: tid(10)
        })
    );
    assert_eq!(meter.state().registers.units(Service::Electricity), 5);
}

#[test]
fn default_depth_is_fifty() {
    let mut meter = worked_example_meter();
    for t in 1..=50 {
        meter.enter(kwh_tenth(&meter, t * 10), 0).unwrap();
    }
    assert_eq!(meter.state().tids.len(), 50);
    assert_eq!(
        meter.enter(kwh_tenth(&meter, 5), 0),
        Err(Rejection::Old {
            tid: tid(5),
            oldest: tid(10)
        })
    );
    meter.enter(kwh_tenth(&meter, 15), 0).unwrap();
    assert_eq!(meter.state().tids.len(), 50);
    assert_eq!(meter.state().tids.oldest(), Some(tid(15)));
}

#[test]
fn overflow_changes_nothing_and_the_token_can_come_back() {
    let mut config = MeterConfig::new(pan1());
    config.unit_maximum = 100;
    let desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&desc, KeyExpiryNumber::NEVER),
        derive(&desc),
    )
    .unwrap();
    meter
        .enter(credit(&meter, Service::Electricity, 60, 1), 0)
        .unwrap();
    let token = credit(&meter, Service::Electricity, 50, 2);
    let before = *meter.state();
    assert_eq!(
        meter.enter(token, 0),
        Err(Rejection::Overflow {
            register: Register::units(Service::Electricity)
        })
    );
    assert_eq!(*meter.state(), before, "a refused token changes nothing");
    // Clearing the register makes room; the same token is then accepted (its TID was not kept).
    meter.enter(clear_credit(&meter, 0, 3), 0).unwrap();
    assert!(meter.enter(token, 0).is_ok());
    // Exactly the maximum is fine.
    meter
        .enter(credit(&meter, Service::Electricity, 50, 4), 0)
        .unwrap();
    assert_eq!(meter.state().registers.units(Service::Electricity), 100);
}

fn currency(meter: &Meter, service: Service, amount: &str, tid_raw: u32) -> sts_core::TokenNumber {
    issue(
        meter,
        Token::CurrencyCredit {
            service,
            tid: tid(tid_raw),
            amount: CurrencyAmount::parse(amount).unwrap(),
        },
    )
}

#[test]
fn currency_credit_and_debit() {
    let mut meter = worked_example_meter();
    let applied = meter
        .enter(currency(&meter, Service::Electricity, "1", 10), 0)
        .unwrap();
    // +1.00000 rounds up to 1.00004 (STS-detail.md 4.3).
    assert_eq!(
        applied,
        Applied::CurrencyCredit {
            service: Service::Electricity,
            tid: tid(10),
            added: 100_004,
            new_balance: 100_004
        }
    );
    // -1.00000 rounds toward zero to -0.99994: allowed while the register stays >= 0.
    let applied = meter
        .enter(currency(&meter, Service::Electricity, "-1", 11), 0)
        .unwrap();
    assert_eq!(
        applied,
        Applied::CurrencyCredit {
            service: Service::Electricity,
            tid: tid(11),
            added: -99_994,
            new_balance: 10
        }
    );
    // A debit below zero is refused (the default minimum) and changes nothing.
    let before = *meter.state();
    assert_eq!(
        meter.enter(currency(&meter, Service::Electricity, "-1", 12), 0),
        Err(Rejection::Range(RangeProblem::BelowMinimum(
            Register::currency(Service::Electricity)
        )))
    );
    assert_eq!(*meter.state(), before);
    // Units and other services are separate registers.
    assert_eq!(meter.state().registers.units(Service::Electricity), 0);
    assert_eq!(meter.state().registers.currency(Service::Water), 0);
}

#[test]
fn currency_limits_are_settings() {
    let mut config = MeterConfig::new(pan1());
    config.currency_minimum = -500_000;
    config.currency_maximum = 1_000_000;
    let desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&desc, KeyExpiryNumber::NEVER),
        derive(&desc),
    )
    .unwrap();
    // Debt down to -5.00000 is allowed by this meter's setting.
    meter
        .enter(currency(&meter, Service::Gas, "-4", 1), 0)
        .unwrap();
    assert!(meter.state().registers.currency(Service::Gas) < 0);
    assert!(matches!(
        meter.enter(currency(&meter, Service::Gas, "-2", 2), 0),
        Err(Rejection::Range(RangeProblem::BelowMinimum(_)))
    ));
    assert_eq!(
        meter.enter(currency(&meter, Service::Gas, "20", 3), 0),
        Err(Rejection::Overflow {
            register: Register::currency(Service::Gas)
        })
    );
}

#[test]
fn published_currency_token_is_accepted() {
    // STS-detail.md 11.4 (POS25 CTSA20): DKGA04, base 2014, SGC 201457, 1.00000 at 2024-04-21.
    let desc = description(
        201_457,
        1,
        BaseDate::Y2014,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga04,
    );
    let mut meter = meter_for(&desc);
    let applied = meter.enter_digits("4233 4201 2699 4723 2996", 0).unwrap();
    assert!(matches!(
        applied,
        Applied::CurrencyCredit {
            service: Service::Electricity,
            added: 100_004,
            ..
        }
    ));
    // The negative one (2025-05-21) takes 0.99994 back.
    assert!(matches!(
        meter.enter_digits("2779 2899 8336 6628 5579", 0),
        Ok(Applied::CurrencyCredit {
            added: -99_994,
            new_balance: 10,
            ..
        })
    ));
    // On an empty register the same debit would be refused.
    let mut empty = meter_for(&desc);
    assert!(matches!(
        empty.enter_digits("2779 2899 8336 6628 5579", 0),
        Err(Rejection::Range(RangeProblem::BelowMinimum(_)))
    ));
}

#[test]
fn ddtk_meter_refuses_credit_but_accepts_management() {
    let mut desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    desc.key_type = KeyType::Default;
    let mut meter = meter_for(&desc);
    let token = kwh_tenth(&meter, 100);
    assert_eq!(meter.enter(token, 0), Err(Rejection::Ddtk));
    assert_eq!(Rejection::Ddtk.status().code(), 12);
    assert!(matches!(
        meter.enter(currency(&meter, Service::Water, "5", 101), 0),
        Err(Rejection::Ddtk)
    ));
    assert!(meter.state().tids.is_empty());
    meter.enter(clear_credit(&meter, 0xFFFF, 102), 0).unwrap();
}

#[test]
fn ditk_meter_refuses_credit_but_accepts_management() {
    // A DITK is a plain manufacturer test key, never derived from a vending key: given directly.
    let mut desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    desc.key_type = KeyType::Initialization;
    let mut meter = Meter::new(
        MeterConfig::new(pan1()),
        KeyAttributes::from_description(&desc, KeyExpiryNumber::NEVER),
        sts_core::DecoderKey::from_hex("0123456789ABCDEF").unwrap(),
    )
    .unwrap();
    let token = kwh_tenth(&meter, 100);
    assert_eq!(meter.enter(token, 0), Err(Rejection::DitkCredit));
    assert_eq!(Rejection::DitkCredit.status().code(), 5);
    assert!(meter.state().tids.is_empty());
    assert_eq!(meter.state().registers.units(Service::Electricity), 0);
    meter.enter(clear_credit(&meter, 0xFFFF, 102), 0).unwrap();
}

#[test]
fn key_expiry_refuses_tokens_past_the_ken() {
    // CTSA16: KEN 85, a token of 2004-04-01 09:30 (TID 5916090, TID >> 16 = 90) is refused.
    let desc = description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    );
    let mut meter = Meter::new(
        MeterConfig::new(pan1()),
        KeyAttributes::from_description(&desc, KeyExpiryNumber::from(85)),
        derive(&desc),
    )
    .unwrap();
    let late = tid_at("2004-04-01 09:30", BaseDate::Y1993);
    assert_eq!(late.get(), 5_916_090);
    assert_eq!(
        meter.enter(kwh_tenth(&meter, late.get()), 0),
        Err(Rejection::KeyExpired {
            tid: late,
            expiry: KeyExpiryNumber::from(85)
        })
    );
    // The last TID under KEN 85 is fine; management tokens are checked too.
    meter
        .enter(kwh_tenth(&meter, (85 << 16) | 0xFFFF), 0)
        .unwrap();
    assert!(matches!(
        meter.enter(clear_credit(&meter, 0, 86 << 16), 0),
        Err(Rejection::KeyExpired { .. })
    ));
}

#[test]
fn a_token_for_another_meter_is_a_crc_error() {
    // PAN2's water token of STS-detail.md 11.1 at the PAN1 meter.
    let mut meter = worked_example_meter();
    let rejection = meter.enter_digits("09109691696351271646", 0).unwrap_err();
    assert_eq!(rejection.status(), Status::Crc);
    assert_eq!(rejection.status().code(), 13);
    assert!(meter.state().tids.is_empty());
}
