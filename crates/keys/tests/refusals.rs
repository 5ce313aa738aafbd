//! Every refusal has its own error, and a refused request changes nothing: the stores' keys,
//! authorizations, credit counters and audit logs are as they were.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{World, attributes, credit, meter, minute, world};
use sts_core::{EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType, Service, TokenNumber};
use sts_keys::{
    CreditLimit, KdfCost, KeyloadError, Kmc, KmcError, Passphrase, SecurityModule,
    SecurityModuleId, SmError, TokenRequest, VendingKeyType,
};

/// Everything a refusal must leave as it was, read through the public API.
async fn snapshot(w: &World) -> String {
    let keys = w.kmc.keys().await.unwrap();
    let mut authorizations = Vec::new();
    for k in &keys {
        authorizations.push(w.kmc.authorizations(k.id).await.unwrap());
    }
    format!(
        "{keys:?}\n{authorizations:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        w.kmc.supply_groups(w.owner).await.unwrap(),
        w.kmc.audit_log().await.unwrap(),
        w.sm.keys().await.unwrap(),
        w.sm.audit_log().await.unwrap(),
    )
}

fn unique_meter(w: &World, krn: u8) -> sts_core::MeterDescription {
    meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        krn,
    )
}

#[tokio::test]
async fn wrong_owner() {
    let w = world().await;
    let key = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
            1,
        ))
        .await;
    let intruder = w
        .kmc
        .register_owner("Other Utility", "x@other.example")
        .await
        .unwrap();
    let before = snapshot(&w).await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Common,
        KeyDerivationAlgorithm::Dkga04,
        1,
    );
    assert!(matches!(
        w.kmc.request_vending_key(intruder, &a).await,
        Err(KmcError::WrongOwner { owner, supply_group }) if owner == intruder && supply_group == w.sgc
    ));
    assert!(matches!(
        w.kmc.authorize(intruder, key, &w.sm_id).await,
        Err(KmcError::WrongOwner { .. })
    ));
    assert!(matches!(
        w.kmc.issue_keyload(intruder, &w.sm_id, &[key]).await,
        Err(KmcError::WrongOwner { .. })
    ));
    assert!(matches!(
        w.kmc.request_key_revision(intruder, key).await,
        Err(KmcError::WrongOwner { .. })
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn no_authorization() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let record = w.kmc.request_vending_key(w.owner, &a).await.unwrap();
    let before = snapshot(&w).await;
    assert!(matches!(
        w.kmc.issue_keyload(w.owner, &w.sm_id, &[record.id]).await,
        Err(KmcError::NotAuthorized { key, .. }) if key == record.id
    ));
    let unknown: SecurityModuleId = "SM-9999".parse().unwrap();
    assert!(matches!(
        w.kmc.authorize(w.owner, record.id, &unknown).await,
        Err(KmcError::UnknownSecurityModule(_))
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn kmc_request_refusals() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        2,
    );
    let record = w.kmc.request_vending_key(w.owner, &a).await.unwrap();
    w.kmc.authorize(w.owner, record.id, &w.sm_id).await.unwrap();
    let before = snapshot(&w).await;
    // Same or older revision.
    for krn in [1, 2] {
        let older = attributes(
            w.sgc,
            VendingKeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
            krn,
        );
        assert!(matches!(
            w.kmc.request_vending_key(w.owner, &older).await,
            Err(KmcError::RevisionNotNewer { .. })
        ));
    }
    // DKGA03 was withdrawn; DKGA01 is legacy.
    let withdrawn = attributes(
        w.sgc,
        VendingKeyType::Common,
        KeyDerivationAlgorithm::Dkga03,
        1,
    );
    assert!(matches!(
        w.kmc.request_vending_key(w.owner, &withdrawn).await,
        Err(KmcError::Generate(_))
    ));
    // Issued-until before activation.
    let mut backwards = attributes(
        w.sgc,
        VendingKeyType::Common,
        KeyDerivationAlgorithm::Dkga04,
        1,
    );
    backwards.issued_until = minute("2025-01-01 00:00");
    assert!(matches!(
        w.kmc.request_vending_key(w.owner, &backwards).await,
        Err(KmcError::Invalid(_))
    ));
    // No keyload file after the key's expiry (EXP).
    w.clock.set(minute("2030-01-01 00:00"));
    assert!(matches!(
        w.kmc.issue_keyload(w.owner, &w.sm_id, &[record.id]).await,
        Err(KmcError::KeyExpired { .. })
    ));
    assert!(matches!(
        w.kmc.issue_keyload(w.owner, &w.sm_id, &[]).await,
        Err(KmcError::Invalid(_))
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn wrong_passphrase() {
    let w = world().await;
    let (kmc_path, sm_path) = (w.kmc_path(), w.sm_path());
    let before = snapshot(&w).await;
    let wrong = Passphrase::new("not the passphrase").unwrap();
    assert!(matches!(
        Kmc::open(&kmc_path, &wrong).await,
        Err(KmcError::WrongPassphrase)
    ));
    assert!(matches!(
        SecurityModule::open(&sm_path, &wrong).await,
        Err(SmError::WrongPassphrase)
    ));
    // The KMC passphrase does not open the SM either.
    let kmc_pass = Passphrase::new(fixture::KMC_PASS).unwrap();
    assert!(matches!(
        SecurityModule::open(&sm_path, &kmc_pass).await,
        Err(SmError::WrongPassphrase)
    ));
    assert!(matches!(
        Kmc::create(&kmc_path, &kmc_pass, KdfCost::INSECURE_FOR_TESTS).await,
        Err(KmcError::AlreadyInitialized)
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn keyload_file_for_another_security_module() {
    let w = world().await;
    let other_id: SecurityModuleId = "SM-0002".parse().unwrap();
    let other = SecurityModule::create(
        &w.dir.path().join("sm2.sqlite"),
        &Passphrase::new("other").unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
        other_id.clone(),
        w.kmc.public_key(),
    )
    .await
    .unwrap();
    w.kmc
        .register_security_module(&other_id, &other.public_key())
        .await
        .unwrap();
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let record = w.kmc.request_vending_key(w.owner, &a).await.unwrap();
    w.kmc
        .authorize(w.owner, record.id, &other_id)
        .await
        .unwrap();
    let file = w
        .kmc
        .issue_keyload(w.owner, &other_id, &[record.id])
        .await
        .unwrap();
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.import_keyload(file.as_bytes()).await,
        Err(SmError::Keyload(KeyloadError::OtherSecurityModule { addressed, this }))
            if addressed == other_id && this == w.sm_id
    ));
    // Readdressing it by editing the header breaks the signature.
    let readdressed = file
        .as_str()
        .replace("security-module: SM-0002", "security-module: SM-0001");
    assert!(matches!(
        w.sm.import_keyload(readdressed.as_bytes()).await,
        Err(SmError::Keyload(KeyloadError::BadSignature))
    ));
    assert_eq!(snapshot(&w).await, before);
    // The module it is for takes it.
    other.import_keyload(file.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn tampered_keyload_file() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let record = w.kmc.request_vending_key(w.owner, &a).await.unwrap();
    w.kmc.authorize(w.owner, record.id, &w.sm_id).await.unwrap();
    let file = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[record.id])
        .await
        .unwrap();
    let before = snapshot(&w).await;
    let text = file.as_str();

    // One changed hex digit anywhere in the ciphertext or signature; a changed header value.
    let cipher_at = text.find("ciphertext: ").unwrap() + "ciphertext: ".len() + 10;
    let sig_at = text.find("signature: ").unwrap() + "signature: ".len() + 5;
    for at in [cipher_at, sig_at] {
        let mut bytes = text.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        assert!(
            matches!(
                w.sm.import_keyload(&bytes).await,
                Err(SmError::Keyload(KeyloadError::BadSignature))
            ),
            "byte {at}"
        );
    }
    for (from, to) in [
        ("serial: 1", "serial: 9"),
        ("keys: 1", "keys: 2"),
        ("created: 2026", "created: 2027"),
    ] {
        let edited = text.replace(from, to);
        assert!(matches!(
            w.sm.import_keyload(edited.as_bytes()).await,
            Err(SmError::Keyload(KeyloadError::BadSignature))
        ));
    }

    // A file signed by another KMC, addressed to this SM, is refused by its signature.
    let rogue = Kmc::create(
        &w.dir.path().join("rogue.sqlite"),
        &Passphrase::new("rogue").unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
    )
    .await
    .unwrap();
    let rogue_owner = rogue
        .register_owner("Rogue", "r@rogue.example")
        .await
        .unwrap();
    let rogue_sgc = rogue.allocate_supply_group(rogue_owner).await.unwrap();
    let ra = attributes(
        rogue_sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let rk = rogue.request_vending_key(rogue_owner, &ra).await.unwrap();
    rogue
        .register_security_module(&w.sm_id, &w.sm.public_key())
        .await
        .unwrap();
    rogue.authorize(rogue_owner, rk.id, &w.sm_id).await.unwrap();
    let forged = rogue
        .issue_keyload(rogue_owner, &w.sm_id, &[rk.id])
        .await
        .unwrap();
    assert!(matches!(
        w.sm.import_keyload(forged.as_bytes()).await,
        Err(SmError::Keyload(KeyloadError::BadSignature))
    ));
    assert_eq!(snapshot(&w).await, before);
    w.sm.import_keyload(file.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn truncated_or_malformed_keyload_file() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga04,
        1,
    );
    let record = w.kmc.request_vending_key(w.owner, &a).await.unwrap();
    w.kmc.authorize(w.owner, record.id, &w.sm_id).await.unwrap();
    let file = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[record.id])
        .await
        .unwrap();
    let before = snapshot(&w).await;
    let bytes = file.as_bytes();
    // Every strict prefix of the file: truncated, never accepted, never a panic.
    for len in 0..bytes.len() {
        let result = w.sm.import_keyload(&bytes[..len]).await;
        assert!(
            matches!(result, Err(SmError::Keyload(KeyloadError::Truncated))),
            "prefix of {len} bytes: {result:?}"
        );
    }
    let mut extended = bytes.to_vec();
    extended.extend_from_slice(b"extra: 1\n");
    for (bad, what) in [
        (extended, "text after the signature"),
        (b"hello\n".to_vec(), "first line"),
        (
            file.as_str()
                .replace("serial: 1\n", "serial: one\n")
                .into_bytes(),
            "serial",
        ),
        (
            file.as_str()
                .replace("keys: 1\n", "count: 1\n")
                .into_bytes(),
            "keys",
        ),
        (vec![0xFF, 0xFE, b'\n'], "not UTF-8 text"),
    ] {
        let result = w.sm.import_keyload(&bad).await;
        assert!(
            matches!(result, Err(SmError::Keyload(KeyloadError::Malformed(m))) if m == what),
            "{what}: {result:?}"
        );
    }
    let v2 = file
        .as_str()
        .replace("STS-KEYLOAD-FILE v1", "STS-KEYLOAD-FILE v2");
    assert!(matches!(
        w.sm.import_keyload(v2.as_bytes()).await,
        Err(SmError::Keyload(KeyloadError::UnsupportedVersion))
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn replayed_older_revision() {
    let w = world().await;
    let a1 = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let k1 = w.kmc.request_vending_key(w.owner, &a1).await.unwrap();
    w.kmc.authorize(w.owner, k1.id, &w.sm_id).await.unwrap();
    let file1 = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[k1.id])
        .await
        .unwrap();
    w.sm.import_keyload(file1.as_bytes()).await.unwrap();
    // The same file again.
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.import_keyload(file1.as_bytes()).await,
        Err(SmError::ReplayedRevision {
            serial: 1,
            held_serial: 1,
            ..
        })
    ));
    assert_eq!(snapshot(&w).await, before);

    let k2 = w.kmc.request_key_revision(w.owner, k1.id).await.unwrap();
    w.kmc.authorize(w.owner, k2.id, &w.sm_id).await.unwrap();
    let file2 = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[k2.id])
        .await
        .unwrap();
    w.sm.import_keyload(file2.as_bytes()).await.unwrap();
    // A fresh file with the older revision is refused too.
    let file1_again = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[k1.id])
        .await
        .unwrap();
    let before = snapshot(&w).await;
    for file in [&file1, &file1_again] {
        let result = w.sm.import_keyload(file.as_bytes()).await;
        assert!(
            matches!(
                &result,
                Err(SmError::ReplayedRevision { offered, held, .. })
                    if offered.get() == 1 && held.get() == 2
            ),
            "{result:?}"
        );
    }
    assert_eq!(snapshot(&w).await, before);
    // A later file with the newest revision updates it.
    let file2_again = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[k2.id])
        .await
        .unwrap();
    w.sm.import_keyload(file2_again.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn key_not_yet_active_and_expired_for_issuing() {
    let w = world().await;
    let mut a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    a.activation = minute("2026-07-01 00:00");
    a.issued_until = minute("2026-08-01 00:00");
    w.load_key(&a).await;
    let m = unique_meter(&w, 1);
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.issue(&m, credit(10)).await,
        Err(SmError::KeyNotYetActive { activation }) if activation == a.activation
    ));
    w.clock.set(minute("2026-08-01 00:00"));
    assert!(matches!(
        w.sm.issue(&m, credit(10)).await,
        Err(SmError::KeyExpiredForIssuing { issued_until }) if issued_until == a.issued_until
    ));
    assert!(matches!(
        w.sm.issue(&m, TokenRequest::ClearTamperCondition).await,
        Err(SmError::KeyExpiredForIssuing { .. })
    ));
    assert_eq!(snapshot(&w).await, before);
    w.clock.set(minute("2026-07-31 23:59"));
    w.sm.issue(&m, credit(10)).await.unwrap();
}

#[tokio::test]
async fn key_expiry_number_passed() {
    let w = world().await;
    let mut a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    // Mid-2026 under base date 2014 is TID >> 16 = 99: KEN 90 has passed.
    a.key_expiry = 90.into();
    w.load_key(&a).await;
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.issue(&unique_meter(&w, 1), credit(10)).await,
        Err(SmError::KeyExpiryNumberPassed { .. })
    ));
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn credit_limit_exceeded() {
    let w = world().await;
    let mut a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    a.credit_limit = CreditLimit::new(1000);
    w.load_key(&a).await;
    let m = unique_meter(&w, 1);
    w.sm.issue(&m, credit(600)).await.unwrap();
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.issue(&m, credit(401)).await,
        Err(SmError::CreditLimitExceeded {
            limit: 1000,
            issued: 600,
            requested: 401
        })
    ));
    assert_eq!(snapshot(&w).await, before);
    // A batch is all or nothing: the second token would pass the limit, so neither is issued.
    let batch = [(m, credit(300)), (m, credit(300))];
    assert!(matches!(
        w.sm.issue_many(&batch).await,
        Err(SmError::CreditLimitExceeded {
            issued: 900,
            requested: 300,
            ..
        })
    ));
    assert_eq!(snapshot(&w).await, before);
    // Management tokens do not count; the rest of the limit can be used.
    w.sm.issue(&m, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();
    w.sm.issue(&m, credit(400)).await.unwrap();
    assert_eq!(w.sm.keys().await.unwrap()[0].credit_issued, 1000);
}

#[tokio::test]
async fn default_key_cannot_issue_credit() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    w.load_key(&a).await;
    let m = meter(
        w.sgc,
        KeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.issue(&m, credit(10)).await,
        Err(SmError::DefaultKeyCredit)
    ));
    let currency = TokenRequest::CurrencyCredit {
        service: Service::Electricity,
        amount: sts_core::CurrencyAmount::from_units(100_000).unwrap(),
    };
    assert!(matches!(
        w.sm.issue(&m, currency).await,
        Err(SmError::DefaultKeyCredit)
    ));
    assert_eq!(snapshot(&w).await, before);
    // Management tokens are allowed with a default key.
    w.sm.issue(&m, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();
}

#[tokio::test]
async fn no_key_for_the_meter_and_tokens_for_another_meter() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    w.load_key(&a).await;
    let before = snapshot(&w).await;
    assert!(matches!(
        w.sm.issue(&unique_meter(&w, 2), credit(10)).await,
        Err(SmError::NoKey { .. })
    ));
    let mut dkga04 = unique_meter(&w, 1);
    dkga04.derivation = KeyDerivationAlgorithm::Dkga04;
    assert!(matches!(
        w.sm.issue(&dkga04, credit(10)).await,
        Err(SmError::KeyMismatch(_))
    ));
    let mut ditk = unique_meter(&w, 1);
    ditk.key_type = KeyType::Initialization;
    assert!(matches!(
        w.sm.issue(&ditk, credit(10)).await,
        Err(SmError::InitializationKey)
    ));
    assert_eq!(snapshot(&w).await, before);

    let issued = w.sm.issue(&unique_meter(&w, 1), credit(10)).await.unwrap();
    let mut other = unique_meter(&w, 1);
    other.pan = "600727000000000017".parse().unwrap();
    assert!(matches!(
        w.sm.verify(&other, issued.number).await,
        Err(SmError::Decode(sts_core::DecodeError::Crc))
    ));
    let garbage: TokenNumber = "12345678901234567890".parse().unwrap();
    assert!(w.sm.verify(&unique_meter(&w, 1), garbage).await.is_err());
}
