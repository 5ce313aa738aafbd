//! The tokens the security module issues are accepted by the meter (sts-meter): a key change
//! from the default key, a key change campaign, credit, management tokens; replays and other
//! meters' tokens refused.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{attributes, credit, meter, meter_cipher, world};
use sts_core::{
    EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyType, MeterDescription,
    MeterPan, Register, Service, TransferAmount, decode, derive_decoder_key,
};
use sts_keys::{KeyChangeRequest, SmError, TokenRequest, VendingKeyType, audit::BatchRecords};
use sts_meter::{Applied, KeyAttributes, Meter, MeterConfig, Status};

fn new_meter(description: &MeterDescription, key: &sts_core::VendingKey) -> Meter {
    Meter::new(
        MeterConfig::new(description.pan),
        KeyAttributes::from_description(description, KeyExpiryNumber::NEVER),
        derive_decoder_key(key, description).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_meter_on_its_default_key_is_moved_to_its_unique_key_and_takes_credit() {
    let w = world().await;
    let vddk = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Default,
            KeyDerivationAlgorithm::Dkga02,
            1,
        ))
        .await;
    w.load_key(&attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    ))
    .await;
    let default = meter(
        w.sgc,
        KeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    let unique = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    // The meter leaves the factory on the default key (DDTK), which the test derives itself.
    let mut m = new_meter(&default, &w.read_key_independently(vddk).await);

    // Credit under the default key is refused by the SM; a management token is accepted.
    assert!(w.sm.issue(&default, credit(10)).await.is_err());
    let tamper =
        w.sm.issue(&default, TokenRequest::ClearTamperCondition)
            .await
            .unwrap();
    assert!(m.enter(tamper.number, 0).is_ok());

    // Key change to the unique key: the meter takes the set.
    let change =
        w.sm.issue_key_change(&default, &unique, false)
            .await
            .unwrap();
    let mut last = None;
    for t in change.set.iter() {
        last = Some(m.enter(t.number, 1).unwrap());
    }
    assert!(
        matches!(last, Some(Applied::KeyChanged { sections: 2, .. })),
        "{last:?}"
    );
    assert_eq!(m.state().key.key_type, KeyType::Unique);

    // Credit and management under the new key.
    let first = w.sm.issue(&unique, credit(125)).await.unwrap();
    let applied = m.enter(first.number, 2).unwrap();
    assert!(
        matches!(
            applied,
            Applied::Credit {
                service: Service::Electricity,
                added: 125,
                ..
            }
        ),
        "{applied:?}"
    );
    let second = w.sm.issue(&unique, credit(5)).await.unwrap();
    m.enter(second.number, 3).unwrap();
    let limit =
        w.sm.issue(
            &unique,
            TokenRequest::SetMaximumPowerLimit {
                limit: TransferAmount::from_value_ceil(4000).unwrap(),
            },
        )
        .await
        .unwrap();
    m.enter(limit.number, 4).unwrap();
    let clear =
        w.sm.issue(
            &unique,
            TokenRequest::ClearCredit {
                register: Register::ALL,
            },
        )
        .await
        .unwrap();
    m.enter(clear.number, 5).unwrap();

    // A replay is refused as used; a token for another meter fails its CRC.
    let replay = m.enter(first.number, 6).unwrap_err();
    assert_eq!(replay.status(), Status::Used, "{replay:?}");
    let mut other = unique;
    other.pan = "600727000000000017".parse().unwrap();
    let foreign = w.sm.issue(&other, credit(10)).await.unwrap();
    let refused = m.enter(foreign.number, 7).unwrap_err();
    assert_eq!(refused.status(), Status::Crc, "{refused:?}");
}

#[tokio::test]
async fn a_misty1_meter_on_a_dkga04_key() {
    let w = world().await;
    let id = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Unique,
            KeyDerivationAlgorithm::Dkga04,
            1,
        ))
        .await;
    let description = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga04,
        EncryptionAlgorithm::Misty1,
        1,
    );
    let mut m = new_meter(&description, &w.read_key_independently(id).await);
    let requests = [
        credit(1000),
        TokenRequest::CurrencyCredit {
            service: Service::Electricity,
            amount: sts_core::CurrencyAmount::from_units(2_500_000).unwrap(),
        },
        TokenRequest::ClearTamperCondition,
    ];
    let batch: Vec<_> = requests.iter().map(|r| (description, *r)).collect();
    for (i, t) in w.sm.issue_many(&batch).await.unwrap().iter().enumerate() {
        let applied = m.enter(t.number, i as u64);
        assert!(applied.is_ok(), "{:?}: {applied:?}", t.token);
    }
}

#[tokio::test]
async fn a_key_change_campaign_in_one_batch_is_taken_by_every_meter() {
    let w = world().await;
    let vddk = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Default,
            KeyDerivationAlgorithm::Dkga02,
            1,
        ))
        .await;
    let vudk = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
            1,
        ))
        .await;
    let default_key = w.read_key_independently(vddk).await;
    let unique_key = w.read_key_independently(vudk).await;
    let mut requests = Vec::new();
    let mut meters = Vec::new();
    for n in 0..40u64 {
        let mut current = meter(
            w.sgc,
            KeyType::Default,
            KeyDerivationAlgorithm::Dkga02,
            EncryptionAlgorithm::Sta,
            1,
        );
        current.pan = MeterPan::from_drn(&format!("{n:011}")).unwrap();
        let mut new = current;
        new.key_type = KeyType::Unique;
        // Every fourth meter also moves to another tariff index.
        if n % 4 == 0 {
            new.tariff_index = "02".parse().unwrap();
        }
        requests.push(KeyChangeRequest {
            current,
            new,
            include_supply_group: n % 2 == 1,
        });
        meters.push(new_meter(&current, &default_key));
    }
    let before = w.sm.audit_log().await.unwrap().len() as u64;
    let issued = w.sm.issue_key_change_many(&requests).await.unwrap();
    assert_eq!(issued.len(), 40);
    for (i, ((r, change), m)) in requests.iter().zip(&issued).zip(&mut meters).enumerate() {
        assert_eq!(change.set.len(), if i % 2 == 1 { 3 } else { 2 });
        let mut last = None;
        for (k, t) in change.set.iter().enumerate() {
            last = Some(m.enter(t.number, k as u64).unwrap());
        }
        assert!(
            matches!(last, Some(Applied::KeyChanged { .. })),
            "{i}: {last:?}"
        );
        assert_eq!(m.state().key.key_type, KeyType::Unique);
        assert_eq!(m.state().key.tariff_index, r.new.tariff_index);
        // The meter now takes the SM's credit under its new key, which the test derives too.
        let token = w.sm.issue(&r.new, credit(10)).await.unwrap();
        assert!(m.enter(token.number, 10).is_ok(), "{i}");
        let decoded = decode(token.number, Some(&meter_cipher(&unique_key, &r.new))).unwrap();
        assert_eq!(decoded.token, token.token);
        assert_eq!(change.audit_sequence, before + 1);
        assert_eq!(change.audit_record as usize, i);
        assert_eq!(change.new_check_value, issued[0].new_check_value);
    }
    // A set for one meter is refused by another (its CRC fails under that meter's key).
    let mut other = new_meter(&requests[1].current, &default_key);
    let refused = other.enter(issued[0].set.iter().next().unwrap().number, 0);
    assert_eq!(refused.unwrap_err().status(), Status::Crc);

    // One audit entry, a record per meter.
    let log = w.sm.audit_log().await.unwrap();
    let entry = &log[before as usize];
    assert_eq!(entry.action, "token.key-change-batch");
    let Some(BatchRecords::KeyChanges(records)) = entry.batch_records().unwrap() else {
        panic!("{entry:?}")
    };
    assert_eq!(records.len(), 40);
    for ((r, change), record) in requests.iter().zip(&issued).zip(&records) {
        assert_eq!((record.current, record.new), (r.current, r.new));
        assert_eq!(usize::from(record.tokens), change.set.len());
        assert_eq!(record.current_check_value, change.current_check_value);
        assert_eq!(record.new_check_value, change.new_check_value);
    }
    w.sm.verify_audit().await.unwrap();
}

#[tokio::test]
async fn a_key_change_campaign_is_refused_as_a_whole() {
    let w = world().await;
    w.load_key(&attributes(
        w.sgc,
        VendingKeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        1,
    ))
    .await;
    let mut late = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    late.activation = "2026-07-01 00:00".parse().unwrap();
    w.load_key(&late).await;
    let current = meter(
        w.sgc,
        KeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    let mut to_common = current;
    to_common.key_type = KeyType::Common;
    let mut to_unique = current;
    to_unique.key_type = KeyType::Unique;
    let mut other_pan = to_common;
    other_pan.pan = "600727000000000017".parse().unwrap();
    let change = |new| KeyChangeRequest {
        current,
        new,
        include_supply_group: false,
    };
    let log = w.sm.audit_log().await.unwrap();
    // No VCDK held; the VUDK is not active yet; a new description for another PAN.
    type Refused = fn(&SmError) -> bool;
    let cases: [(&[KeyChangeRequest], Refused); 3] = [
        (&[change(current), change(to_common)], |e| {
            matches!(e, SmError::NoKey { .. })
        }),
        (&[change(current), change(to_unique)], |e| {
            matches!(e, SmError::KeyNotYetActive { .. })
        }),
        (&[change(current), change(other_pan)], |e| {
            matches!(e, SmError::KeyMismatch(_))
        }),
    ];
    for (batch, expected) in cases {
        let many = w.sm.issue_key_change_many(batch).await.unwrap_err();
        assert!(expected(&many), "{many:?}");
        // issue_key_change refuses the same way.
        let one =
            w.sm.issue_key_change(&batch[1].current, &batch[1].new, false)
                .await
                .unwrap_err();
        assert_eq!(format!("{one:?}"), format!("{many:?}"));
    }
    // Nothing was issued: the audit log is as it was.
    assert_eq!(w.sm.audit_log().await.unwrap(), log);
    // An empty campaign issues nothing and writes nothing.
    assert!(w.sm.issue_key_change_many(&[]).await.unwrap().is_empty());
    assert_eq!(w.sm.audit_log().await.unwrap(), log);
}
