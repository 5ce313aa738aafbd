//! The TID rollover: base date 1993 ran out on 2024-11-24 20:15; a key change set with RO = 1
//! moves a meter to the next base date with a key derived for it, clearing its TID memory
//! (STS.md 3 and 5, STS-detail.md 3.2, 11.3, 11.4).

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{
    BaseDate, DecoderKey, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber,
    MeterDescription, Service, TidError, TokenIdentifier, TokenSubclass,
};
use sts_meter::{Applied, KeyAttributes, Meter, MeterConfig, RangeProblem, Rejection, Status};

fn dkga04(sgc_code: u32, krn_n: u8, base: BaseDate) -> MeterDescription {
    description(
        sgc_code,
        krn_n,
        base,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga04,
    )
}

#[test]
fn the_2024_rollover() {
    // A 1993 meter: STS-detail.md 11.3, DKGA04, SGC 123457, KRN 1 -> DK AA4BAA8749C10D27.
    let old = dkga04(123_457, 1, BaseDate::Y1993);
    let mut meter = meter_for(&old);
    assert_eq!(
        *meter.secrets().decoder_key(),
        DecoderKey::from_hex("AA4BAA8749C10D27").unwrap()
    );
    // Its published tokens: clear credit (2008-05-26) and 0.1 kWh (2009-01-01).
    let old_credit = number("15697331168573253829");
    meter.enter_digits("08144275084202187413", 0).unwrap();
    meter.enter(old_credit, 0).unwrap();
    // Credit up to the last minute of the base date.
    let last = tid_at("2024-11-24 20:15", BaseDate::Y1993);
    assert_eq!(last.get(), TokenIdentifier::MAX);
    for minutes_before in (0..48).rev() {
        meter
            .enter(kwh_tenth(&meter, last.get() - minutes_before * 60), 0)
            .unwrap();
    }
    assert_eq!(meter.state().tids.len(), 50);
    let balance = meter.state().registers.units(Service::Electricity);
    assert_eq!(balance, 49);

    // After 20:15 no 1993 TID exists; a TID that wrapped round looks ancient: old.
    assert_eq!(
        TokenIdentifier::issue("2024-11-24 20:16".parse().unwrap(), BaseDate::Y1993),
        Err(TidError::AfterRollover)
    );
    let wrapped = "2024-12-01 10:00"
        .parse::<sts_core::UtcMinute>()
        .unwrap()
        .unix_minutes()
        - BaseDate::Y1993.start().unix_minutes();
    let wrapped = (wrapped % (1 << 24)) as u32;
    assert!(matches!(
        meter.enter(kwh_tenth(&meter, wrapped), 0),
        Err(Rejection::Old { .. })
    ));

    // The rollover set: RO = 1, KRN 1 -> 2, the new key derived with base date 2014.
    let new = dkga04(123_457, 2, BaseDate::Y2014);
    let set = key_change_set(&meter, &change_to(&new, true, false));
    let sections: Vec<_> = set.iter().map(|t| t.number).collect();
    assert_eq!(
        meter.enter(sections[1], 0).unwrap().status(),
        Status::FirstKct
    );
    let applied = meter.enter(sections[0], 0).unwrap();
    assert!(matches!(
        applied,
        Applied::KeyChanged {
            rollover: Some(BaseDate::Y2014),
            ..
        }
    ));
    assert!(
        applied
            .to_string()
            .contains("base date 2014, TID memory cleared")
    );
    assert_eq!(meter.state().key.base_date, BaseDate::Y2014);
    assert!(meter.state().tids.is_empty());
    assert_eq!(*meter.secrets().decoder_key(), derive(&new));
    // Credit is kept through the rollover (STS-detail.md 3.2).
    assert_eq!(meter.state().registers.units(Service::Electricity), balance);

    // A token dated after the rollover, issued under base 2014 with the new key: accepted.
    let after = tid_at("2024-12-01 10:00", BaseDate::Y2014);
    let applied = meter.enter(kwh_tenth(&meter, after.get()), 0).unwrap();
    assert_eq!(applied.tid(), Some(after));
    assert_eq!(meter.issue_time(after).to_string(), "2024-12-01 10:00");
    assert_eq!(
        meter.state().registers.units(Service::Electricity),
        balance + 1
    );
    // Replays of the 1993 tokens and of the rollover set itself are refused.
    assert_eq!(
        meter.enter(old_credit, 0).unwrap_err().status(),
        Status::Crc
    );
    assert_eq!(
        meter.enter(kwh_tenth(&meter, after.get()), 0),
        Err(Rejection::Used { tid: after })
    );
    for section in sections {
        assert_eq!(meter.enter(section, 0).unwrap_err().status(), Status::Crc);
    }
    assert_eq!(meter.description().base_date, BaseDate::Y2014);
    assert_eq!(meter.description().key_revision, krn(2));
}

#[test]
fn published_rollover_from_2014_to_2035() {
    // STS-detail.md 11.3 (NEC CTSA26): base 2014 KRN 4 (DK 9DC0722C29A6CC0C) -> base 2035 KRN 5
    // (DK B08205E074AFC5D6), RO = 1, KEN 255.
    let mut meter = meter_for(&dkga04(123_457, 4, BaseDate::Y2014));
    assert_eq!(
        *meter.secrets().decoder_key(),
        DecoderKey::from_hex("9DC0722C29A6CC0C").unwrap()
    );
    // A 2014-base token first (2014-01-01 08:00).
    meter.enter_digits("20324881626382980759", 0).unwrap();
    meter.enter_digits("44163577485799480640", 0).unwrap();
    let applied = meter.enter_digits("26556810679164981397", 0).unwrap();
    assert!(matches!(
        applied,
        Applied::KeyChanged {
            rollover: Some(BaseDate::Y2035),
            ..
        }
    ));
    assert_eq!(
        *meter.secrets().decoder_key(),
        DecoderKey::from_hex("B08205E074AFC5D6").unwrap()
    );
    assert_eq!(meter.state().key.key_revision, krn(5));
    // 2035-01-01 08:00 elec 0.1 kWh under the new key and base date.
    assert!(matches!(
        meter.enter_digits("09239624803025986815", 0),
        Ok(Applied::Credit { tid, .. }) if tid.get() == 480
    ));
    assert_eq!(meter.state().registers.units(Service::Electricity), 2);
}

#[test]
fn published_rollover_with_a_new_supply_group() {
    // STS-detail.md 11.4 (POS25 CTSA05/2): SGC 201457 KRN 1 base 2014 -> SGC 203557 KRN 6
    // TI 02 base 2035, RO = 1, as a 2-token set (the SGC is not carried).
    let mut meter = meter_for(&dkga04(201_457, 1, BaseDate::Y2014));
    meter.enter_digits("6541 3070 5436 8815 6280", 0).unwrap();
    let applied = meter.enter_digits("2746 9374 5674 7695 3413", 0).unwrap();
    assert!(matches!(
        applied,
        Applied::KeyChanged {
            rollover: Some(BaseDate::Y2035),
            supply_group: None,
            ..
        }
    ));
    let mut new = dkga04(203_557, 6, BaseDate::Y2035);
    new.tariff_index = ti(2);
    assert_eq!(*meter.secrets().decoder_key(), derive(&new));
    // A 2-token set leaves the meter's SGC as it was.
    assert_eq!(meter.state().key.supply_group, sgc(201_457));
}

#[test]
fn no_rollover_past_2035() {
    let last = dkga04(123_457, 5, BaseDate::Y2035);
    let mut meter = meter_for(&last);
    let set = key_change_set(
        &meter,
        &change_to(&dkga04(123_457, 6, BaseDate::Y2035), true, false),
    );
    let first = set.by_subclass(TokenSubclass::from_bits(3)).unwrap().number;
    assert_eq!(
        meter.enter(first, 0),
        Err(Rejection::Range(RangeProblem::NoLaterBaseDate))
    );
    assert!(meter.state().key_change.is_empty());
}

#[test]
fn a_change_without_rollover_keeps_the_tid_memory() {
    let old = dkga04(123_457, 1, BaseDate::Y1993);
    let mut meter = Meter::new(
        MeterConfig::new(pan1()),
        KeyAttributes::from_description(&old, KeyExpiryNumber::NEVER),
        derive(&old),
    )
    .unwrap();
    meter.enter(kwh_tenth(&meter, 100), 0).unwrap();
    let new = dkga04(123_457, 2, BaseDate::Y1993);
    for t in key_change_set(&meter, &change_to(&new, false, false)).iter() {
        meter.enter(t.number, 0).unwrap();
    }
    assert_eq!(meter.state().tids.len(), 1);
    assert_eq!(meter.state().key.base_date, BaseDate::Y1993);
    // The same TID under the new key is still used.
    assert_eq!(
        meter.enter(kwh_tenth(&meter, 100), 0),
        Err(Rejection::Used { tid: tid(100) })
    );
}
