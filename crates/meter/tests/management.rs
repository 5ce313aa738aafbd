//! Management tokens (class 2 except key changes): power limits, clear credit, tamper, the
//! reserved tariff rate and water meter factor, and the unsupported extended token set
//! (STS.md 5, STS-detail.md 5.4, 9.4, 11.1).

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{CurrencyAmount, RandomNumber, Register, Service, Token, TransferAmount};
use sts_meter::{Applied, FormatProblem, RangeProblem, Rejection, Status};

fn rnd() -> RandomNumber {
    RandomNumber::from_low_bits(5)
}

#[test]
fn published_management_tokens() {
    // STS-detail.md 11.1 (PAN1): MPL 1000 W, clear all credit, clear tamper, MPPUL 10 W.
    let mut meter = worked_example_meter();
    assert!(matches!(
        meter.enter_digits("50901894209860263092", 0),
        Ok(Applied::MaximumPowerLimit { watts: 1000, .. })
    ));
    assert_eq!(meter.state().management.maximum_power_limit, Some(1000));
    meter.enter_digits("23716100501183194197", 0).unwrap();
    assert_eq!(
        meter.enter_digits("29511990995826640868", 0),
        Ok(Applied::CreditCleared {
            tid: tid_at("2004-03-28 09:15", sts_core::BaseDate::Y1993),
            register: Register::ALL
        })
    );
    assert_eq!(meter.state().registers.units(Service::Electricity), 0);
    meter.report_tamper();
    assert!(matches!(
        meter.enter_digits("37037300014464855694", 0),
        Ok(Applied::TamperCleared {
            was_tampered: true,
            ..
        })
    ));
    assert!(!meter.state().management.tamper);
    assert!(matches!(
        meter.enter_digits("30220533115430798647", 0),
        Ok(Applied::PhaseUnbalanceLimit { watts: 10, .. })
    ));
    assert_eq!(meter.state().management.phase_unbalance_limit, Some(10));
    // Each one is remembered: entering it again is "used".
    assert_eq!(
        meter
            .enter_digits("50901894209860263092", 0)
            .unwrap_err()
            .status(),
        Status::Used
    );
}

#[test]
fn clear_credit_clears_the_named_register_only() {
    let mut meter = worked_example_meter();
    let mut t = 100;
    let mut fill = |meter: &mut sts_meter::Meter| {
        for service in Service::ALL {
            t += 1;
            meter.enter(credit(meter, service, 50, t), 0).unwrap();
            t += 1;
            let token = issue(
                meter,
                Token::CurrencyCredit {
                    service,
                    tid: tid(t),
                    amount: CurrencyAmount::from_units(700_000).unwrap(),
                },
            );
            meter.enter(token, 0).unwrap();
        }
        t
    };
    let mut next = fill(&mut meter);
    for code in 0..8u16 {
        next += 1;
        let before = meter.state().registers;
        meter.enter(clear_credit(&meter, code, next), 0).unwrap();
        let after = meter.state().registers;
        for (i, service) in Service::ALL.into_iter().enumerate() {
            let units_cleared = usize::from(code) == i;
            let currency_cleared = usize::from(code) == i + 4;
            assert_eq!(
                after.units(service),
                if units_cleared {
                    0
                } else {
                    before.units(service)
                }
            );
            assert_eq!(
                after.currency(service),
                if currency_cleared {
                    0
                } else {
                    before.currency(service)
                }
            );
        }
    }
}

#[test]
fn undefined_registers_are_out_of_range() {
    let mut meter = worked_example_meter();
    meter.enter(kwh_tenth(&meter, 1), 0).unwrap();
    for (i, code) in [8u16, 9, 100, 0xFFFE].into_iter().enumerate() {
        let before = *meter.state();
        assert_eq!(
            meter.enter(clear_credit(&meter, code, 10 + i as u32), 0),
            Err(Rejection::Range(RangeProblem::Register(Register(code))))
        );
        assert_eq!(*meter.state(), before);
    }
    assert_eq!(
        Rejection::Range(RangeProblem::KeyRevision).status().code(),
        7
    );
}

#[test]
fn power_limits_decode_the_transfer_amount() {
    let mut meter = worked_example_meter();
    for (i, watts) in [0u32, 1, 16_384, 20_000, 18_201_624]
        .into_iter()
        .enumerate()
    {
        let limit = TransferAmount::from_value_ceil(watts).unwrap();
        let applied = meter
            .enter(
                issue(
                    &meter,
                    Token::SetMaximumPowerLimit {
                        rnd: rnd(),
                        tid: tid(100 + i as u32),
                        limit,
                    },
                ),
                0,
            )
            .unwrap();
        assert_eq!(
            applied,
            Applied::MaximumPowerLimit {
                tid: tid(100 + i as u32),
                watts: limit.value()
            }
        );
        assert_eq!(
            meter.state().management.maximum_power_limit,
            Some(limit.value())
        );
    }
}

#[test]
fn tamper_flag_is_set_by_the_host_and_cleared_by_token() {
    let mut meter = worked_example_meter();
    let clear = |meter: &sts_meter::Meter, t: u32, pad: u16| {
        issue(
            meter,
            Token::ClearTamperCondition {
                rnd: rnd(),
                tid: tid(t),
                pad,
            },
        )
    };
    assert!(matches!(
        meter.enter(clear(&meter, 1, 0), 0),
        Ok(Applied::TamperCleared {
            was_tampered: false,
            ..
        })
    ));
    meter.report_tamper();
    assert!(meter.state().management.tamper);
    // A non-zero pad is malformed; the tamper stays.
    assert_eq!(
        meter.enter(clear(&meter, 2, 7), 0),
        Err(Rejection::Format(FormatProblem::Pad))
    );
    assert!(meter.state().management.tamper);
    assert!(matches!(
        meter.enter(clear(&meter, 3, 0), 0),
        Ok(Applied::TamperCleared {
            was_tampered: true,
            ..
        })
    ));
    assert!(!meter.state().management.tamper);
}

#[test]
fn reserved_fields_are_stored_raw() {
    let mut meter = worked_example_meter();
    let rate = issue(
        &meter,
        Token::SetTariffRate {
            rnd: rnd(),
            tid: tid(1),
            rate: 0xBEEF,
        },
    );
    assert_eq!(
        meter.enter(rate, 0),
        Ok(Applied::TariffRate {
            tid: tid(1),
            raw: 0xBEEF
        })
    );
    let factor = issue(
        &meter,
        Token::SetWaterMeterFactor {
            rnd: rnd(),
            tid: tid(2),
            factor: 1234,
        },
    );
    assert_eq!(
        meter.enter(factor, 0),
        Ok(Applied::WaterMeterFactor {
            tid: tid(2),
            raw: 1234
        })
    );
    assert_eq!(meter.state().management.tariff_rate, Some(0xBEEF));
    assert_eq!(meter.state().management.water_meter_factor, Some(1234));
}

#[test]
fn extended_token_set_is_not_supported() {
    let mut meter = worked_example_meter();
    let token = issue(
        &meter,
        Token::ExtendedTokenSet {
            rnd: rnd(),
            tid: tid(1),
            field: 0xFC00,
        },
    );
    let rejection = meter.enter(token, 0).unwrap_err();
    assert_eq!(rejection.status(), Status::Function);
    assert_eq!(rejection.status().code(), 8);
    assert!(meter.state().tids.is_empty());
}
