//! Keys at rest: a wrapped key is bound to its record and attributes, so swapping wrapped keys
//! between records or editing an attribute in the store makes the key unusable; the wrapping
//! backend is pluggable.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::{path::Path, sync::Arc};

use fixture::{attributes, meter, world};
use sqlx::{Connection, SqliteConnection};
use sts_core::{EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType};
use sts_keys::{
    KdfCost, KdfParams, KeyWrapper, Kmc, KmcError, Passphrase, PassphraseWrapper, SecretBytes,
    SecurityModule, SmError, TokenRequest, VendingKeyType, WrapError,
};

async fn execute(path: &Path, statements: &[&str]) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for s in statements {
        sqlx::query(s).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

const SWAP_SM_KEYS: [&str; 3] = [
    "CREATE TEMP TABLE w AS SELECT krn, wrapped FROM keys",
    "UPDATE keys SET wrapped = (SELECT wrapped FROM w WHERE w.krn = '2') WHERE krn = '1'",
    "UPDATE keys SET wrapped = (SELECT wrapped FROM w WHERE w.krn = '1') WHERE krn = '2'",
];

#[tokio::test]
async fn swapped_or_edited_records_do_not_open() {
    let w = world().await;
    let k1 = w
        .load_key(&attributes(
            w.sgc,
            VendingKeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
            1,
        ))
        .await;
    w.load_key(&attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        2,
    ))
    .await;
    let (kmc_path, sm_path, clock) = (w.kmc_path(), w.sm_path(), w.clock.clone());
    w.kmc.close().await;
    w.sm.close().await;

    // The SM store: two revisions with their wrapped keys swapped.
    execute(&sm_path, &SWAP_SM_KEYS).await;
    let sm = SecurityModule::open(&sm_path, &Passphrase::new(fixture::SM_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let m = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    assert!(matches!(
        sm.issue(&m, TokenRequest::ClearTamperCondition).await,
        Err(SmError::Wrap(WrapError::Unauthentic))
    ));
    sm.close().await;
    // Swapped back, then a later issued-until written into the store.
    execute(&sm_path, &SWAP_SM_KEYS).await;
    execute(
        &sm_path,
        &["UPDATE keys SET issued_until = '2099-01-01 00:00' WHERE krn = '1'"],
    )
    .await;
    let sm = SecurityModule::open(&sm_path, &Passphrase::new(fixture::SM_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    assert!(matches!(
        sm.issue(&m, TokenRequest::ClearTamperCondition).await,
        Err(SmError::Wrap(WrapError::Unauthentic))
    ));
    let m2 = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        2,
    );
    sm.issue(&m2, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();
    sm.close().await;

    // The KMC store: a raised credit limit makes the key unusable for keyload files.
    execute(
        &kmc_path,
        &["UPDATE vending_keys SET credit_limit = '1' WHERE krn = '1'"],
    )
    .await;
    let kmc = Kmc::open(&kmc_path, &Passphrase::new(fixture::KMC_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(clock));
    assert!(matches!(
        kmc.issue_keyload(w.owner, &w.sm_id, &[k1]).await,
        Err(KmcError::Wrap(WrapError::Unauthentic))
    ));
}

/// A stand-in for an HSM backend: the KEK lives in the "device" (here, memory).
struct DeviceWrapper(PassphraseWrapper);

impl KeyWrapper for DeviceWrapper {
    fn scheme(&self) -> &'static str {
        "test-device-v1"
    }
    fn wrap(&self, secret: &[u8], binding: &[u8]) -> Result<Vec<u8>, WrapError> {
        self.0.wrap(secret, binding)
    }
    fn unwrap(&self, wrapped: &[u8], binding: &[u8]) -> Result<SecretBytes, WrapError> {
        self.0.unwrap(wrapped, binding)
    }
}

fn device(pin: &str, params: &KdfParams) -> Box<dyn KeyWrapper> {
    Box::new(DeviceWrapper(
        PassphraseWrapper::derive(&Passphrase::new(pin).unwrap(), params).unwrap(),
    ))
}

#[tokio::test]
async fn another_wrapping_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmc.sqlite");
    let params = KdfParams::generate(KdfCost::INSECURE_FOR_TESTS).unwrap();
    let kmc = Kmc::create_with_wrapper(&path, device("1234", &params))
        .await
        .unwrap();
    let public = kmc.public_key();
    kmc.close().await;
    let kmc = Kmc::open_with_wrapper(&path, device("1234", &params))
        .await
        .unwrap();
    assert_eq!(kmc.public_key(), public);
    kmc.close().await;
    assert!(matches!(
        Kmc::open_with_wrapper(&path, device("0000", &params)).await,
        Err(KmcError::WrongPassphrase)
    ));
    assert!(matches!(
        Kmc::open(&path, &Passphrase::new("1234").unwrap()).await,
        Err(KmcError::WrongKeyWrapper { .. })
    ));

    let sm_path = dir.path().join("sm.sqlite");
    let sm = SecurityModule::create_with_wrapper(
        &sm_path,
        device("9", &params),
        "SM-1".parse().unwrap(),
        public,
    )
    .await
    .unwrap();
    sm.close().await;
    assert!(matches!(
        SecurityModule::open(&sm_path, &Passphrase::new("9").unwrap()).await,
        Err(SmError::WrongKeyWrapper { .. })
    ));
    let sm = SecurityModule::open_with_wrapper(&sm_path, device("9", &params))
        .await
        .unwrap();
    assert_eq!(sm.trusted_kmc(), public);
}
