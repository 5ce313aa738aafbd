//! Save and restore: `MeterState` through JSON and `MeterSecrets` through bytes give back a
//! meter that makes the same decisions; inconsistent parts are refused, never a panic.

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too,
// and a panic in them is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sts_core::{
    BaseDate, CurrencyAmount, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber,
    MeterDescription, Service, Token, TokenNumber,
};
use sts_meter::{
    ConfigError, KeyAttributes, Meter, MeterConfig, MeterSecrets, MeterState, RestoreError,
    SecretsError, TidMemory,
};

fn desc(ea: EncryptionAlgorithm) -> MeterDescription {
    description(
        123_457,
        1,
        BaseDate::Y1993,
        ea,
        KeyDerivationAlgorithm::Dkga04,
    )
}

/// A meter with something in every part of its state, and the tokens still to come.
fn busy_meter(ea: EncryptionAlgorithm) -> (Meter, Vec<TokenNumber>) {
    let old = desc(ea);
    let mut config = MeterConfig::new(pan1());
    config.currency_minimum = -10_000_000;
    config.key_change_timeout = Some(600);
    config.tid_memory_depth = 20;
    let mut meter = Meter::new(
        config,
        KeyAttributes::from_description(&old, KeyExpiryNumber::from(200)),
        derive(&old),
    )
    .unwrap();
    for (i, service) in Service::ALL.into_iter().enumerate() {
        let t = 100 + 2 * i as u32;
        meter
            .enter(credit(&meter, service, 123 + i as u32, t), 1)
            .unwrap();
        let debit = issue(
            &meter,
            Token::CurrencyCredit {
                service,
                tid: tid(t + 1),
                amount: CurrencyAmount::parse("-12.5").unwrap(),
            },
        );
        meter.enter(debit, 1).unwrap();
    }
    meter
        .enter_digits("5090 1894 2098 6026 3092", 2)
        .unwrap_err(); // CRC: counted
    meter.report_tamper();
    // Part of a key change set.
    let new = description(
        123_457,
        2,
        BaseDate::Y1993,
        ea,
        KeyDerivationAlgorithm::Dkga04,
    );
    let set = key_change_set(&meter, &change_to(&new, false, true));
    let mut sections: Vec<TokenNumber> = set.iter().map(|t| t.number).collect();
    let later = sections.split_off(sections.len() - 1);
    for s in &sections {
        meter.enter(*s, 3).unwrap();
    }
    meter
        .enter_digits("0000 0000 0000 0000 000", 4)
        .unwrap_err(); // Format: counted
    assert_eq!(meter.state().lockout.consecutive_invalid(), 1);
    // What comes next: the rest of the set, then credit under the new key is not known yet,
    // so replays, fresh credit under the old key and junk.
    let mut future = later;
    future.push(kwh_tenth(&meter, 100));
    future.push(kwh_tenth(&meter, 5000));
    future.push(number("09109691696351271646"));
    future.push(number("56493153725450313471"));
    (meter, future)
}

fn save(meter: &Meter) -> (String, [u8; MeterSecrets::ENCODED_LEN]) {
    (
        serde_json::to_string(meter.state()).unwrap(),
        *meter.secrets().to_bytes(),
    )
}

fn restore(json: &str, bytes: &[u8]) -> Meter {
    let state: MeterState = serde_json::from_str(json).unwrap();
    let secrets = MeterSecrets::from_bytes(bytes).unwrap();
    Meter::from_parts(state, secrets).unwrap()
}

#[test]
fn a_restored_meter_is_the_same_meter() {
    for ea in [EncryptionAlgorithm::Sta, EncryptionAlgorithm::Misty1] {
        let (mut original, future) = busy_meter(ea);
        let (json, bytes) = save(&original);
        let mut restored = restore(&json, &bytes);
        assert_eq!(restored.state(), original.state());
        assert_eq!(restored.secrets(), original.secrets());
        assert!(!restored.state().key_change.is_empty());
        // Same decisions on what follows, ending in the same state.
        for (i, token) in future.iter().enumerate() {
            let now = 10 + i as u64;
            assert_eq!(
                restored.enter(*token, now),
                original.enter(*token, now),
                "{ea:?} #{i}"
            );
        }
        assert_eq!(restored.state(), original.state());
        assert_eq!(restored.secrets(), original.secrets());
        // And again after the key change completed.
        let (json, bytes) = save(&restored);
        let again = restore(&json, &bytes);
        assert_eq!(again.state(), original.state());
        assert_eq!(
            again.secrets().decoder_key(),
            original.secrets().decoder_key()
        );
    }
}

#[test]
fn saved_state_is_readable_and_holds_no_key_material() {
    let (meter, _) = busy_meter(EncryptionAlgorithm::Sta);
    let json = serde_json::to_string_pretty(meter.state()).unwrap();
    for expected in [
        "\"pan\": \"600727000000000009\"",
        "\"base_date\": 1993",
        "\"algorithm\": 7",
        "\"derivation\": 4",
        "\"key_type\": 2",
        "\"supply_group\": 123457",
        "\"tamper\": true",
    ] {
        assert!(json.contains(expected), "{expected} missing from {json}");
    }
    let mut hex = [0u8; 32];
    let key_hex = meter
        .secrets()
        .decoder_key()
        .expose_hex(&mut hex)
        .to_ascii_lowercase();
    let lower = json.to_ascii_lowercase();
    assert!(!lower.contains(&key_hex));
    for byte_window in meter.secrets().decoder_key().expose_secret().windows(4) {
        let word = u32::from_be_bytes(byte_window.try_into().unwrap());
        assert!(
            !json.contains(&word.to_string()),
            "key word {word} in the state"
        );
    }
}

#[test]
fn inconsistent_parts_are_refused() {
    let (meter, _) = busy_meter(EncryptionAlgorithm::Sta);
    let (state, secrets) = meter.into_parts();

    // Staged sections without their words.
    let fresh = MeterSecrets::new(secrets.decoder_key().clone());
    assert_eq!(
        Meter::from_parts(state, fresh.clone()).unwrap_err(),
        RestoreError::StagedWords
    );
    // A 64-bit key for a 128-bit algorithm.
    let mut wide = state;
    wide.key.algorithm = EncryptionAlgorithm::Misty1;
    assert!(matches!(
        Meter::from_parts(wide, secrets.clone()),
        Err(RestoreError::KeyLength { found: 8, .. })
    ));
    // EA11 from DKGA02.
    let mut state11 = MeterState::new(
        MeterConfig::new(pan1()),
        KeyAttributes::from_description(&desc(EncryptionAlgorithm::Misty1), KeyExpiryNumber::NEVER),
    );
    state11.key.derivation = KeyDerivationAlgorithm::Dkga02;
    assert!(matches!(
        Meter::from_parts(
            state11,
            MeterSecrets::new(derive(&desc(EncryptionAlgorithm::Misty1)))
        ),
        Err(RestoreError::Derivation { .. })
    ));
    // More TIDs than the depth.
    let mut shallow = state;
    shallow.config.tid_memory_depth = 3;
    assert!(matches!(
        Meter::from_parts(shallow, secrets.clone()),
        Err(RestoreError::TidMemory { depth: 3, .. })
    ));
    // A balance over the maximum.
    let mut rich = state;
    rich.config.unit_maximum = 10;
    assert!(matches!(
        Meter::from_parts(rich, secrets.clone()),
        Err(RestoreError::Balance(_))
    ));
    // Settings out of range.
    let mut deep = state;
    deep.config.tid_memory_depth = 1000;
    assert_eq!(
        Meter::from_parts(deep, secrets.clone()).unwrap_err(),
        RestoreError::Config(ConfigError::TidMemoryDepth(1000))
    );
    // The consistent pair still restores.
    assert!(Meter::from_parts(state, secrets).is_ok());
}

#[test]
fn damaged_saves_are_errors_not_panics() {
    let (meter, _) = busy_meter(EncryptionAlgorithm::Sta);
    let json = serde_json::to_string(meter.state()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let edits: [(&str, serde_json::Value); 9] = [
        ("/key/key_type", 7.into()),
        ("/key/key_revision", 0.into()),
        ("/key/tariff_index", 100.into()),
        ("/key/supply_group", 1_000_000.into()),
        ("/key/base_date", 2000.into()),
        ("/key/algorithm", 8.into()),
        ("/config/pan", "600727000000000001".into()),
        ("/config/manufacturer", 10_000.into()),
        ("/tids", serde_json::json!([5, 5])),
    ];
    for (path, bad) in edits {
        let mut v = value.clone();
        *v.pointer_mut(path).unwrap() = bad;
        assert!(
            serde_json::from_value::<MeterState>(v).is_err(),
            "{path} accepted"
        );
    }
    for bad_tids in [
        serde_json::json!([1 << 24]),
        serde_json::Value::Array((0..=TidMemory::CAPACITY as u64).map(Into::into).collect()),
    ] {
        let mut v = value.clone();
        *v.pointer_mut("/tids").unwrap() = bad_tids;
        assert!(serde_json::from_value::<MeterState>(v).is_err());
    }
    assert_eq!(
        MeterSecrets::from_bytes(b"not secrets"),
        Err(SecretsError::Length(11))
    );
}

#[test]
fn staged_sections_round_trip_in_the_json() {
    let (meter, _) = busy_meter(EncryptionAlgorithm::Misty1);
    let staged = meter.state().key_change;
    assert_eq!(staged.len(), 3);
    let json = serde_json::to_string(&staged).unwrap();
    let back: sts_meter::StagedKeyChange = serde_json::from_str(&json).unwrap();
    assert_eq!(back, staged);
    assert_eq!(staged.needed(true), 4);
    // Sections 2/3, 2/4 and 2/8 are in; 2/9 is awaited.
    assert!(staged.first().is_some() && staged.second().is_some() && staged.third().is_some());
    assert!(staged.fourth().is_none());
    assert_eq!(meter.secrets().staged_words(), 3);
}
