//! The tokens the security module issues are accepted by the meter (sts-meter): a key change
//! from the default key, credit, management tokens; replays and other meters' tokens refused.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{attributes, meter, world};
use sts_core::{
    EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyType, MeterDescription,
    Register, Service, TransferAmount, derive_decoder_key,
};
use sts_keys::{TokenRequest, VendingKeyType};
use sts_meter::{Applied, KeyAttributes, Meter, MeterConfig, Status};

fn credit(tenths: u32) -> TokenRequest {
    TokenRequest::TransferCredit {
        service: Service::Electricity,
        amount: TransferAmount::from_value_ceil(tenths).unwrap(),
    }
}

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
