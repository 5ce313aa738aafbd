//! The whole KMC process, steps 1 to 8, and the tokens the security module issues, decoded by
//! the engine with a decoder key derived independently.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{attributes, meter, meter_cipher, minute, world};
use sts_core::{
    CurrencyAmount, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType, Register, Service, Token,
    TransferAmount, decode, token::MeterTestFormat,
};
use sts_keys::{
    KeyCheckValue, TokenRequest, VendingKeyType,
    audit::{BatchRecords, TokenRecord},
    verify_audit,
};

#[tokio::test]
async fn steps_one_to_eight_then_tokens_that_decode() {
    let w = world().await;
    // Steps 1-2 ran in the fixture: an owner with a fresh six-digit SGC.
    assert_eq!(w.kmc.supply_groups(w.owner).await.unwrap(), vec![w.sgc]);
    let owners = w.kmc.owners().await.unwrap();
    assert_eq!(
        (owners[0].id, owners[0].name.as_str()),
        (w.owner, "Utility One")
    );
    assert_eq!(
        w.kmc.security_modules().await.unwrap(),
        vec![(w.sm_id.clone(), w.sm.public_key())]
    );
    assert!((100_000..=999_999).contains(&w.sgc.get()));

    // Steps 3-4: a VUDK for DKGA02 and one for DKGA04.
    let des_attrs = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let des = w
        .kmc
        .request_vending_key(w.owner, &des_attrs)
        .await
        .unwrap();
    let common = attributes(
        w.sgc,
        VendingKeyType::Common,
        KeyDerivationAlgorithm::Dkga04,
        1,
    );
    let long = w.kmc.request_vending_key(w.owner, &common).await.unwrap();

    // Step 5: authorize the SM; step 6-7: the keyload file; step 8: import.
    for id in [des.id, long.id] {
        w.kmc.authorize(w.owner, id, &w.sm_id).await.unwrap();
    }
    let file = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[des.id, long.id])
        .await
        .unwrap();
    assert!(
        file.as_str()
            .starts_with("STS-KEYLOAD-FILE v1\nserial: 1\nsecurity-module: SM-0001\n")
    );
    let report = w.sm.import_keyload(file.as_bytes()).await.unwrap();
    assert_eq!(report.keys.len(), 2);
    let held = w.sm.keys().await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().any(|k| k.check_value == des.check_value));
    assert!(held.iter().any(|k| k.check_value == long.check_value));

    // The keys, read independently through a keyload file for a reader the test controls.
    let des_key = w.read_key_independently(des.id).await;
    let long_key = w.read_key_independently(long.id).await;
    assert_eq!(KeyCheckValue::of(&des_key), des.check_value);
    assert_eq!(KeyCheckValue::of(&long_key), long.check_value);

    // Credit and management tokens for a DUTK/EA07 meter.
    let m = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    let cipher = meter_cipher(&des_key, &m);
    let requests = [
        TokenRequest::TransferCredit {
            service: Service::Electricity,
            amount: TransferAmount::from_value_ceil(255).unwrap(),
        },
        TokenRequest::CurrencyCredit {
            service: Service::Water,
            amount: CurrencyAmount::from_units(1_234_500_000).unwrap(),
        },
        TokenRequest::SetMaximumPowerLimit {
            limit: TransferAmount::from_value_ceil(5000).unwrap(),
        },
        TokenRequest::ClearCredit {
            register: Register::ALL,
        },
        TokenRequest::SetTariffRate { rate: 0x1234 },
        TokenRequest::ClearTamperCondition,
        TokenRequest::SetMaximumPhasePowerUnbalanceLimit {
            limit: TransferAmount::from_value_ceil(300).unwrap(),
        },
        TokenRequest::SetWaterMeterFactor { factor: 7 },
        TokenRequest::ExtendedTokenSet { field: 0x0042 },
    ];
    let mut last_tid = 0;
    for request in requests {
        let issued = w.sm.issue(&m, request).await.unwrap();
        assert_eq!(issued.check_value, Some(des.check_value));
        assert_eq!(issued.security_module, w.sm_id);
        let decoded = decode(issued.number, Some(&cipher)).unwrap();
        assert_eq!(decoded.token, issued.token, "{request:?}");
        // Nine tokens in one minute: successive TIDs.
        let tid = issued.token.tid().unwrap().get();
        assert!(tid > last_tid);
        last_tid = tid;
        let verified = w.sm.verify(&m, issued.number).await.unwrap();
        assert_eq!(verified.token, issued.token);
        assert_eq!(verified.check_value, des.check_value);
    }

    // A batch for one meter in one minute: successive TIDs, one audit entry with a record
    // per token.
    let batch: Vec<_> = (1..=3)
        .map(|i| {
            (
                m,
                TokenRequest::TransferCredit {
                    service: Service::Electricity,
                    amount: TransferAmount::from_value_ceil(i).unwrap(),
                },
            )
        })
        .collect();
    let issued = w.sm.issue_many(&batch).await.unwrap();
    for pair in issued.windows(2) {
        assert!(pair[1].token.tid().unwrap() > pair[0].token.tid().unwrap());
        assert_eq!(pair[1].audit_sequence, pair[0].audit_sequence);
        assert_eq!(pair[1].audit_record, pair[0].audit_record + 1);
    }
    assert_eq!(issued[0].audit_record, 0);
    let batch_sequence = issued[0].audit_sequence;
    let batch_tids: Vec<_> = issued.iter().map(|t| t.token.tid()).collect();
    assert!(issued[0].token.tid().unwrap().get() > last_tid);
    for t in &issued {
        assert_eq!(decode(t.number, Some(&cipher)).unwrap().token, t.token);
    }

    // A DCTK meter on DKGA04 with MISTY1, and one with STA.
    for ea in [EncryptionAlgorithm::Misty1, EncryptionAlgorithm::Sta] {
        let m = meter(
            w.sgc,
            KeyType::Common,
            KeyDerivationAlgorithm::Dkga04,
            ea,
            1,
        );
        let issued =
            w.sm.issue(
                &m,
                TokenRequest::TransferCredit {
                    service: Service::Gas,
                    amount: TransferAmount::from_value_ceil(10).unwrap(),
                },
            )
            .await
            .unwrap();
        assert_eq!(issued.check_value, Some(long.check_value));
        let decoded = decode(issued.number, Some(&meter_cipher(&long_key, &m))).unwrap();
        assert_eq!(decoded.token, issued.token);
    }

    // Class 1 needs no key.
    let test =
        w.sm.issue(
            &m,
            TokenRequest::InitiateMeterTest {
                format: MeterTestFormat::Short,
                control: 1,
                manufacturer: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(test.check_value, None);
    assert_eq!(decode(test.number, None).unwrap().token, test.token);

    // Every token is in the SM's audit log with the SM ID and the KCV: one entry per batch
    // (a single `issue` is a batch of one), one record per token.
    let log = w.sm.audit_log().await.unwrap();
    let issues: Vec<_> = log
        .iter()
        .filter(|e| e.action == "token.issue-batch")
        .collect();
    assert_eq!(issues.len(), 13);
    let records: Vec<TokenRecord> = issues
        .iter()
        .flat_map(|e| match e.batch_records().unwrap() {
            Some(BatchRecords::Tokens(records)) => records,
            other => panic!("entry {}: {other:?}", e.sequence),
        })
        .collect();
    assert_eq!(records.len(), 15);
    assert!(issues[0].details.contains("\"sm\":\"SM-0001\""));
    assert!(
        issues[0]
            .details
            .contains(&format!("\"kcv\":[\"{}\"]", des.check_value))
    );
    assert!(
        records[..12]
            .iter()
            .all(|r| r.meter == m && r.check_value == Some(des.check_value))
    );
    assert_eq!(records[0].credit_units, Some(255));
    assert_eq!(records[0].class.get(), 0);
    assert_eq!(records[2].subclass.get(), 0);
    assert_eq!(records[2].class.get(), 2);
    assert_eq!(records[2].credit_units, None);
    let batch = log.iter().find(|e| e.sequence == batch_sequence).unwrap();
    let Some(BatchRecords::Tokens(in_batch)) = batch.batch_records().unwrap() else {
        panic!("{batch:?}")
    };
    assert_eq!(
        in_batch.iter().map(|r| r.tid).collect::<Vec<_>>(),
        batch_tids
    );
    assert_eq!(records[14].check_value, None);
    assert_eq!(records[14].class.get(), 1);
    // The listing shows every record, and no token number.
    let listed = batch.to_json_line();
    assert!(listed.contains("\"records\":[{"), "{listed}");
    for t in &issued {
        assert!(!listed.contains(&t.number.to_string()), "{listed}");
    }
    assert_eq!(w.sm.verify_audit().await.unwrap(), log.len() as u64);
    assert!(w.kmc.verify_audit().await.unwrap() >= 8);
    let sm_path = w.sm_path();
    let kmc_path = w.kmc_path();
    let sm_entries = log.len() as u64;
    w.sm.close().await;
    w.kmc.close().await;
    assert_eq!(verify_audit(&sm_path).await.unwrap(), sm_entries);
    assert!(verify_audit(&kmc_path).await.unwrap() >= 8);
}

#[tokio::test]
async fn key_change_from_default_key_to_unique_key_and_a_new_revision() {
    let w = world().await;
    let vddk = attributes(
        w.sgc,
        VendingKeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let vddk_id = w.load_key(&vddk).await;
    let vudk = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    let vudk_id = w.load_key(&vudk).await;
    let default_meter = meter(
        w.sgc,
        KeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    let unique_meter = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );

    let change =
        w.sm.issue_key_change(&default_meter, &unique_meter, false)
            .await
            .unwrap();
    assert_eq!(change.set.len(), 2);
    let old_key = w.read_key_independently(vddk_id).await;
    let new_key = w.read_key_independently(vudk_id).await;
    let old_cipher = meter_cipher(&old_key, &default_meter);
    let new_dk = sts_core::derive_decoder_key(&new_key, &unique_meter).unwrap();
    let mut words = Vec::new();
    for t in change.set.iter() {
        let decoded = decode(t.number, Some(&old_cipher)).unwrap();
        match decoded.token {
            Token::KeyChange(sts_core::KeyChangeSection::First {
                key_word, key_type, ..
            }) => {
                assert_eq!(key_type, KeyType::Unique);
                words.insert(0, key_word);
            }
            Token::KeyChange(sts_core::KeyChangeSection::Second { key_word, .. }) => {
                words.push(key_word)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let carried: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    assert_eq!(carried, new_dk.expose_secret());
    assert_eq!(change.current_check_value, KeyCheckValue::of(&old_key));

    // A new revision: KRN 2, same attributes, a new key.
    let rev = w.kmc.request_key_revision(w.owner, vudk_id).await.unwrap();
    assert_eq!(rev.attributes.key_revision.get(), 2);
    assert_ne!(rev.check_value, KeyCheckValue::of(&new_key));
    w.kmc.authorize(w.owner, rev.id, &w.sm_id).await.unwrap();
    let file = w
        .kmc
        .issue_keyload(w.owner, &w.sm_id, &[rev.id])
        .await
        .unwrap();
    w.sm.import_keyload(file.as_bytes()).await.unwrap();
    let next_meter = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        2,
    );
    let change =
        w.sm.issue_key_change(&unique_meter, &next_meter, true)
            .await
            .unwrap();
    assert_eq!(change.set.len(), 3);
    assert_eq!(change.new_check_value, rev.check_value);
    w.clock.set(minute("2026-06-01 12:05"));
    let credit =
        w.sm.issue(
            &next_meter,
            TokenRequest::TransferCredit {
                service: Service::Electricity,
                amount: TransferAmount::from_value_ceil(1).unwrap(),
            },
        )
        .await
        .unwrap();
    let rev_key = w.read_key_independently(rev.id).await;
    assert_eq!(
        decode(credit.number, Some(&meter_cipher(&rev_key, &next_meter)))
            .unwrap()
            .token,
        credit.token
    );
}

#[tokio::test]
async fn stores_reopen_with_their_passphrases() {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga04,
        1,
    );
    w.load_key(&a).await;
    let (kmc_path, sm_path) = (w.kmc_path(), w.sm_path());
    let public = w.kmc.public_key();
    let sm_public = w.sm.public_key();
    w.kmc.close().await;
    w.sm.close().await;
    let kmc = sts_keys::Kmc::open(
        &kmc_path,
        &sts_keys::Passphrase::new(fixture::KMC_PASS).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(kmc.public_key(), public);
    assert_eq!(kmc.keys().await.unwrap().len(), 1);
    let sm = sts_keys::SecurityModule::open(
        &sm_path,
        &sts_keys::Passphrase::new(fixture::SM_PASS).unwrap(),
    )
    .await
    .unwrap()
    .with_clock(std::sync::Arc::new(w.clock.clone()));
    assert_eq!(sm.public_key(), sm_public);
    assert_eq!(sm.trusted_kmc(), public);
    let m = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga04,
        EncryptionAlgorithm::Misty1,
        1,
    );
    sm.issue(&m, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();
}
