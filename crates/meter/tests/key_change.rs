//! Key change sets: 2, 3 and 4 sections in every order, published sets, interrupted and mixed
//! sets, key type rules, and what KCTs are not checked against (STS.md 5 and 8,
//! STS-detail.md 5.5, 9.3, 11.1, 11.4, 11.5).

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too,
// and a panic in them is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{
    BaseDate, DataBlock, DecoderKey, EncryptionAlgorithm, KeyChangeSection, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyType, Token, TokenClass, TokenNumber, TokenSubclass, token::seal,
};
use sts_meter::{
    Applied, FormatProblem, KeyAttributes, Meter, MeterConfig, MismatchProblem, RangeProblem,
    Rejection, Status,
};

fn dkga04(
    sgc_code: u32,
    krn_n: u8,
    base: BaseDate,
    ea: EncryptionAlgorithm,
) -> sts_core::MeterDescription {
    description(sgc_code, krn_n, base, ea, KeyDerivationAlgorithm::Dkga04)
}

/// Enters `tokens` in order and checks each partial status, then the final change.
fn enter_set(meter: &mut Meter, tokens: &[TokenNumber]) -> Applied {
    let n = tokens.len();
    for (i, token) in tokens[..n - 1].iter().enumerate() {
        let applied = meter.enter(*token, 0).unwrap();
        let Applied::KeyChangeStaged { have, .. } = applied else {
            panic!("section {i}: {applied:?}");
        };
        assert_eq!(usize::from(have), i + 1);
        let expected = if i == 0 {
            Status::FirstKct
        } else {
            Status::SecondKct
        };
        assert_eq!(applied.status(), expected);
        assert_eq!(applied.status().code(), if i == 0 { 2 } else { 3 });
    }
    let last = meter.enter(tokens[n - 1], 0).unwrap();
    assert_eq!(last.status(), Status::Accept);
    assert!(meter.state().key_change.is_empty());
    assert_eq!(meter.secrets().staged_words(), 0);
    last
}

#[test]
fn published_pair_changes_the_tariff_index() {
    // STS-detail.md 11.1: TI 01 -> 02, new DK 060B8643C59A27F1.
    let pair = [
        number("51638423060042734509"),
        number("15361891762113502242"),
    ];
    for order in permutations(&pair) {
        let mut meter = worked_example_meter();
        let applied = enter_set(&mut meter, &order);
        assert_eq!(
            applied,
            Applied::KeyChanged {
                key_type: KeyType::Unique,
                key_revision: krn(1),
                tariff_index: ti(2),
                expiry: KeyExpiryNumber::NEVER,
                supply_group: None,
                rollover: None,
                sections: 2,
            }
        );
        assert_eq!(
            *meter.secrets().decoder_key(),
            DecoderKey::from_hex("060B8643C59A27F1").unwrap()
        );
        assert_eq!(meter.state().key.tariff_index, ti(2));
        assert_eq!(meter.state().key.supply_group, sgc(123_456));
        // The old key's tokens no longer decrypt; the new key's do.
        assert_eq!(
            meter
                .enter_digits("23716100501183194197", 0)
                .unwrap_err()
                .status(),
            Status::Crc
        );
        meter.enter(kwh_tenth(&meter, 5_871_715), 0).unwrap();
        // The KCTs themselves are now another key's tokens.
        assert_eq!(meter.enter(order[0], 0).unwrap_err().status(), Status::Crc);
    }
}

#[test]
fn published_three_section_set_in_every_order() {
    // STS-detail.md 11.4 / vector V0019 (POS25 CTSA05/4): DKGA04 EA07 base 2014 SGC 201457,
    // TI 01 -> 02 with the 3KCT bit; new DK 7F78CDD220BE39B8.
    let set = [
        number("52506022850399603630"),
        number("22979178279997208272"),
        number("39620459059615037790"),
    ];
    for order in permutations(&set) {
        let mut meter = meter_for(&dkga04(
            201_457,
            1,
            BaseDate::Y2014,
            EncryptionAlgorithm::Sta,
        ));
        assert_eq!(
            *meter.secrets().decoder_key(),
            DecoderKey::from_hex("87F3ECBB2E46B48F").unwrap()
        );
        let applied = enter_set(&mut meter, &order);
        assert!(matches!(
            applied,
            Applied::KeyChanged {
                sections: 3,
                supply_group: Some(s),
                ..
            } if s == sgc(201_457)
        ));
        assert_eq!(
            *meter.secrets().decoder_key(),
            DecoderKey::from_hex("7F78CDD220BE39B8").unwrap()
        );
        assert_eq!(meter.state().key.tariff_index, ti(2));
    }
}

#[test]
fn published_four_section_set_in_every_order() {
    // Vector V0156 (S11 CTSA05/1): DKGA04 EA11 base 2014 SGC 201457, TI 01 -> 02.
    let set = [
        number("03854447086453451911"),
        number("02791799436242461152"),
        number("67118070329353977190"),
        number("19019128690902932218"),
    ];
    let orders = permutations(&set);
    assert_eq!(orders.len(), 24);
    for order in orders {
        let mut meter = meter_for(&dkga04(
            201_457,
            1,
            BaseDate::Y2014,
            EncryptionAlgorithm::Misty1,
        ));
        assert_eq!(
            *meter.secrets().decoder_key(),
            DecoderKey::from_hex("929BD3A415C9420A05EC5EE9F3CE91C3").unwrap()
        );
        let applied = enter_set(&mut meter, &order);
        assert!(matches!(
            applied,
            Applied::KeyChanged {
                sections: 4,
                supply_group: Some(s),
                ..
            } if s == sgc(201_457)
        ));
        assert_eq!(
            *meter.secrets().decoder_key(),
            DecoderKey::from_hex("B199270A77AF96D3156C51B0964A8782").unwrap()
        );
    }
}

#[test]
fn published_sgc_change_in_a_four_section_set() {
    // Vector V0222 (S11 CTSA16/4): SGC 201460 KRN 7 -> SGC 201461 KRN 8 (PAN 600727111111111153).
    let desc = sts_core::MeterDescription {
        pan: "600727111111111153".parse().unwrap(),
        ..dkga04(201_460, 7, BaseDate::Y2014, EncryptionAlgorithm::Misty1)
    };
    let mut meter = meter_for(&desc);
    let set = [
        number("42459678114844702446"),
        number("69527545380820046989"),
        number("04734524228726387550"),
        number("33434270821941461228"),
    ];
    enter_set(&mut meter, &set);
    assert_eq!(meter.state().key.supply_group, sgc(201_461));
    assert_eq!(meter.state().key.key_revision, krn(8));
    assert_eq!(
        *meter.secrets().decoder_key(),
        DecoderKey::from_hex("246DF53C9F61CBEBE9A701CFCFDD5EF1").unwrap()
    );
}

#[test]
fn generated_sets_of_every_size_in_every_order() {
    for (ea, three) in [
        (EncryptionAlgorithm::Sta, false),
        (EncryptionAlgorithm::Sta, true),
        (EncryptionAlgorithm::Misty1, false),
    ] {
        let old = dkga04(123_457, 1, BaseDate::Y1993, ea);
        let new = sts_core::MeterDescription {
            key_type: KeyType::Common,
            ..dkga04(654_321, 3, BaseDate::Y1993, ea)
        };
        let probe = meter_for(&old);
        let mut change = change_to(&new, false, three);
        change.expiry = KeyExpiryNumber::from(0xA5);
        let set = key_change_set(&probe, &change);
        let tokens: Vec<TokenNumber> = set.iter().map(|t| t.number).collect();
        let carries_sgc = three || ea == EncryptionAlgorithm::Misty1;
        for order in permutations(&tokens) {
            let mut meter = meter_for(&old);
            let applied = enter_set(&mut meter, &order);
            assert_eq!(
                applied,
                Applied::KeyChanged {
                    key_type: KeyType::Common,
                    key_revision: krn(3),
                    tariff_index: ti(1),
                    expiry: KeyExpiryNumber::from(0xA5),
                    supply_group: carries_sgc.then(|| sgc(654_321)),
                    rollover: None,
                    sections: tokens.len() as u8,
                },
                "{ea:?} {order:?}"
            );
            assert_eq!(*meter.secrets().decoder_key(), derive(&new));
            let expected_sgc = if carries_sgc { 654_321 } else { 123_457 };
            assert_eq!(meter.state().key.supply_group, sgc(expected_sgc));
            assert_eq!(meter.state().key.expiry, KeyExpiryNumber::from(0xA5));
            meter.enter(kwh_tenth(&meter, 1), 0).unwrap();
        }
    }
}

#[test]
fn other_tokens_between_sections_keep_the_staged_ones() {
    let mut meter = worked_example_meter();
    let first = number("51638423060042734509");
    assert_eq!(meter.enter(first, 0).unwrap().status(), Status::FirstKct);
    // Credit, management and class 1 tokens in between.
    meter.enter_digits("23716100501183194197", 1).unwrap();
    meter.enter_digits("56493153725450313471", 2).unwrap();
    meter.enter_digits("50901894209860263092", 3).unwrap();
    // A refused token in between too.
    assert!(meter.enter_digits("23716100501183194197", 4).is_err());
    assert_eq!(meter.state().key_change.len(), 1);
    assert!(matches!(
        meter.enter_digits("15361891762113502242", 5),
        Ok(Applied::KeyChanged { .. })
    ));
}

#[test]
fn an_abandoned_set_gives_way_to_a_new_one() {
    // Set A's first section, then set B entirely: B's first section replaces A's.
    let old = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let mut meter = meter_for(&old);
    let a = key_change_set(
        &meter,
        &change_to(
            &dkga04(123_457, 2, BaseDate::Y1993, EncryptionAlgorithm::Sta),
            false,
            false,
        ),
    );
    let b_desc = dkga04(123_457, 3, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let b = key_change_set(&meter, &change_to(&b_desc, false, false));
    let sub = |set: &sts_core::KeyChangeSet, n: u8| {
        set.by_subclass(TokenSubclass::from_bits(n)).unwrap().number
    };
    meter.enter(sub(&a, 3), 0).unwrap();
    assert_eq!(
        meter.enter(sub(&b, 3), 1).unwrap().status(),
        Status::FirstKct
    );
    assert_eq!(meter.state().key_change.len(), 1);
    assert!(matches!(
        meter.enter(sub(&b, 4), 2),
        Ok(Applied::KeyChanged { key_revision, .. }) if key_revision == krn(3)
    ));
    assert_eq!(*meter.secrets().decoder_key(), derive(&b_desc));
}

#[test]
fn an_identical_section_again_changes_nothing() {
    let mut meter = worked_example_meter();
    let first = number("51638423060042734509");
    meter.enter(first, 0).unwrap();
    let before = *meter.state();
    assert!(matches!(
        meter.enter(first, 1),
        Ok(Applied::KeyChangeStaged {
            have: 1,
            need: 2,
            ..
        })
    ));
    assert_eq!(meter.state().key_change, before.key_change);
}

#[test]
fn a_supply_group_section_without_the_3kct_bit_is_a_mismatch() {
    let old = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let meter = meter_for(&old);
    let new = dkga04(123_458, 2, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let two = key_change_set(&meter, &change_to(&new, false, false));
    let three = key_change_set(&meter, &change_to(&new, false, true));
    let sgc_section = three
        .by_subclass(TokenSubclass::from_bits(8))
        .unwrap()
        .number;
    let first = two.by_subclass(TokenSubclass::from_bits(3)).unwrap().number;
    for order in [[first, sgc_section], [sgc_section, first]] {
        let mut meter = meter_for(&old);
        meter.enter(order[0], 0).unwrap();
        let rejection = meter.enter(order[1], 0).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::KeyChangeMismatch(MismatchProblem::SupplyGroupWithoutThreeSections)
        );
        assert_eq!(rejection.status().code(), 17);
        assert!(meter.state().key_change.is_empty());
        assert_eq!(meter.secrets().staged_words(), 0);
        assert_eq!(*meter.secrets().decoder_key(), derive(&old));
    }
    // A 128-bit meter never takes the 3KCT bit.
    let wide = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Misty1);
    let mut meter = meter_for(&wide);
    let section = KeyChangeSection::First {
        expiry_high: 0xF,
        key_revision: krn(2),
        rollover: false,
        three_sections: true,
        key_type: KeyType::Unique,
        key_word: 1,
    };
    assert_eq!(
        meter.enter(issue(&meter, Token::KeyChange(section)), 0),
        Err(Rejection::KeyChangeMismatch(
            MismatchProblem::ThreeSectionsOnWideKey
        ))
    );
    meter.enter(kwh_tenth(&meter, 1), 0).unwrap();
    meter.enter(kwh_tenth(&meter, 2), 0).unwrap();
}

#[test]
fn key_type_rules() {
    // To DITK from a DUTK: refused when the first section arrives, nothing staged.
    let old = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let mut meter = meter_for(&old);
    let mut change = change_to(
        &dkga04(123_457, 2, BaseDate::Y1993, EncryptionAlgorithm::Sta),
        false,
        false,
    );
    change.key_type = KeyType::Initialization;
    let set = key_change_set(&meter, &change);
    let first = set.by_subclass(TokenSubclass::from_bits(3)).unwrap().number;
    let second = set.by_subclass(TokenSubclass::from_bits(4)).unwrap().number;
    let rejection = meter.enter(first, 0).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::KeyType {
            current: KeyType::Unique,
            requested: KeyType::Initialization
        }
    );
    assert_eq!(rejection.status().code(), 5);
    assert!(meter.state().key_change.is_empty());
    // The second section alone waits, and never completes without its first.
    assert_eq!(meter.enter(second, 0).unwrap().status(), Status::FirstKct);

    // A DITK meter may change to another DITK, and from a DITK to anything.
    let ditk_key = DecoderKey::from_hex("0123456789ABCDEF").unwrap();
    let ditk = || {
        let mut attributes = KeyAttributes::from_description(&old, KeyExpiryNumber::NEVER);
        attributes.key_type = KeyType::Initialization;
        Meter::new(MeterConfig::new(pan1()), attributes, ditk_key.clone()).unwrap()
    };
    let mut meter = ditk();
    let set = key_change_set(&meter, &change);
    for t in set.iter() {
        meter.enter(t.number, 0).unwrap();
    }
    assert_eq!(meter.state().key.key_type, KeyType::Initialization);
    let mut meter = ditk();
    let set = key_change_set(&meter, &change_to(&old, false, false));
    for t in set.iter() {
        meter.enter(t.number, 0).unwrap();
    }
    assert_eq!(meter.state().key.key_type, KeyType::Unique);

    // A DDTK meter takes a change to a DUTK (what default keys are for).
    let default = sts_core::MeterDescription {
        key_type: KeyType::Default,
        ..old
    };
    let mut meter = meter_for(&default);
    let set = key_change_set(&meter, &change_to(&old, false, false));
    for t in set.iter() {
        meter.enter(t.number, 0).unwrap();
    }
    assert_eq!(meter.state().key.key_type, KeyType::Unique);
    meter.enter(kwh_tenth(&meter, 1), 0).unwrap();
}

#[test]
fn kcts_are_not_checked_against_ken_or_tid_memory() {
    let old = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let mut config = MeterConfig::new(pan1());
    config.tid_memory_depth = 2;
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&old, KeyExpiryNumber::from(0)),
        derive(&old),
    )
    .unwrap();
    meter.enter(kwh_tenth(&meter, 0xFFF0), 0).unwrap();
    meter.enter(kwh_tenth(&meter, 0xFFF1), 0).unwrap();
    assert!(matches!(
        meter.enter(kwh_tenth(&meter, 0x1_0000), 0),
        Err(Rejection::KeyExpired { .. })
    ));
    let new = dkga04(123_457, 2, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let set = key_change_set(&meter, &change_to(&new, false, false));
    for t in set.iter() {
        meter.enter(t.number, 0).unwrap();
    }
    assert_eq!(meter.state().key.expiry, KeyExpiryNumber::NEVER);
    assert_eq!(meter.state().tids.len(), 2, "KCTs store no TID");
    meter.enter(kwh_tenth(&meter, 0x1_0000), 0).unwrap();
}

#[test]
fn fourth_section_at_a_64_bit_meter_is_not_supported() {
    let mut meter = worked_example_meter();
    let token = issue(
        &meter,
        Token::KeyChange(KeyChangeSection::Fourth {
            supply_group_high: 1,
            key_word: 2,
        }),
    );
    assert_eq!(
        meter.enter(token, 0),
        Err(Rejection::Function {
            class: TokenClass::MANAGEMENT,
            subclass: Some(TokenSubclass::from_bits(9))
        })
    );
}

#[test]
fn a_supply_group_above_999999_is_out_of_range() {
    let wide = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Misty1);
    let mut meter = meter_for(&wide);
    let sections = [
        KeyChangeSection::First {
            expiry_high: 0xF,
            key_revision: krn(2),
            rollover: false,
            three_sections: false,
            key_type: KeyType::Unique,
            key_word: 1,
        },
        KeyChangeSection::Second {
            expiry_low: 0xF,
            tariff_index: ti(1),
            key_word: 2,
        },
        KeyChangeSection::Third {
            supply_group_low: 0xFFF,
            key_word: 3,
        },
        KeyChangeSection::Fourth {
            supply_group_high: 0xFFF,
            key_word: 4,
        },
    ];
    for section in &sections[..3] {
        meter
            .enter(issue(&meter, Token::KeyChange(*section)), 0)
            .unwrap();
    }
    let key_before = meter.secrets().decoder_key().clone();
    assert_eq!(
        meter.enter(issue(&meter, Token::KeyChange(sections[3])), 0),
        Err(Rejection::Range(RangeProblem::SupplyGroup))
    );
    assert_eq!(*meter.secrets().decoder_key(), key_before);
    assert!(
        meter.state().key_change.is_empty(),
        "a refused complete set is dropped"
    );
}

#[test]
fn malformed_key_change_fields() {
    let mut meter = worked_example_meter();
    let cipher = cipher(&meter);
    let class2 = TokenClass::MANAGEMENT;
    // KRN 0 in a 2/3 section.
    let krn0 = seal(
        DataBlock::new(class2, TokenSubclass::from_bits(3), 0xF02_0000_0001),
        Some(&cipher),
    )
    .unwrap();
    assert_eq!(
        meter.enter(krn0, 0),
        Err(Rejection::Range(RangeProblem::KeyRevision))
    );
    // TI 100 in a 2/4 section.
    let ti100 = seal(
        DataBlock::new(class2, TokenSubclass::from_bits(4), 0xF64_0000_0001),
        Some(&cipher),
    )
    .unwrap();
    assert_eq!(
        meter.enter(ti100, 0),
        Err(Rejection::Range(RangeProblem::TariffIndex))
    );
    // An SGC section with stray low bits.
    let stray = seal(
        DataBlock::new(class2, TokenSubclass::from_bits(8), (201_457 << 20) | 1),
        Some(&cipher),
    )
    .unwrap();
    assert_eq!(
        meter.enter(stray, 0),
        Err(Rejection::Format(FormatProblem::SupplyGroupPadding))
    );
    assert!(meter.state().key_change.is_empty());
    // None of these count toward the lockout except the format error.
    assert_eq!(meter.state().lockout.consecutive_invalid(), 1);
}

#[test]
fn a_partial_set_times_out_when_configured() {
    let old = dkga04(123_457, 1, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let mut config = MeterConfig::new(pan1());
    config.key_change_timeout = Some(90);
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&old, KeyExpiryNumber::NEVER),
        derive(&old),
    )
    .unwrap();
    let new = dkga04(123_457, 2, BaseDate::Y1993, EncryptionAlgorithm::Sta);
    let set = key_change_set(&meter, &change_to(&new, false, false));
    let first = set.by_subclass(TokenSubclass::from_bits(3)).unwrap().number;
    let second = set.by_subclass(TokenSubclass::from_bits(4)).unwrap().number;
    meter.enter(first, 1000).unwrap();
    // 91 s later the first section is gone: the second starts a new set.
    assert_eq!(
        meter.enter(second, 1091).unwrap().status(),
        Status::FirstKct
    );
    assert_eq!(meter.state().key_change.started_at(), Some(1091));
    // Within 90 s of that the set completes.
    assert!(matches!(
        meter.enter(first, 1180),
        Ok(Applied::KeyChanged { .. })
    ));
    assert_eq!(*meter.secrets().decoder_key(), derive(&new));
}
