//! The PKCS#11 key wrapper against SoftHSM2 (Debian package `softhsm2`): a KEK that never
//! leaves the token wraps the KMC's and the security module's keys.
//!
//! Skipped, with a note, where SoftHSM2 is not installed.

#![cfg(feature = "pkcs11")]
// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::{path::PathBuf, process::Command, sync::Arc};

use fixture::{attributes, meter, meter_cipher, minute};
use sts_core::{EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType, decode};
use sts_keys::{
    KeyWrapper, Kmc, KmcError, ManualClock, Passphrase, Pkcs11Wrapper, RecipientSecret,
    SecurityModule, TokenRequest, VendingKeyType, WrapError, keyload,
};

const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];
const PIN: &str = "5678";

/// A fresh SoftHSM2 token, deleted on drop.
struct Token {
    module: PathBuf,
    label: String,
}

impl Token {
    fn new(name: &str) -> Option<Self> {
        let module = MODULES.iter().map(PathBuf::from).find(|p| p.exists())?;
        let label = format!("sts-{name}-{}", std::process::id());
        let status = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                &label,
                "--so-pin",
                "1234",
                "--pin",
                PIN,
            ])
            .output()
            .ok()?;
        if !status.status.success() {
            eprintln!(
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
            return None;
        }
        Some(Self { module, label })
    }

    fn wrapper(&self, pin: &str, generate: bool) -> Result<Pkcs11Wrapper, WrapError> {
        Pkcs11Wrapper::open(
            &self.module,
            &self.label,
            &Passphrase::new(pin).unwrap(),
            "sts-kek",
            generate,
        )
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let _ = Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .output();
    }
}

/// One test on one token: SoftHSM2 does not always see a token that `softhsm2-util` made after
/// the library was initialized in this process.
#[tokio::test]
async fn pkcs11_wrapper_on_softhsm2() {
    // Never skipped: scripts/deps installs SoftHSM2; a machine without it fails here, loudly.
    let Some(token) = Token::new("test") else {
        panic!("SoftHSM2 is not installed: apt-get install softhsm2 (scripts/deps does it)");
    };
    wraps_inside_the_token(&token);
    kmc_and_security_module_on_the_token(&token).await;
}

fn wraps_inside_the_token(token: &Token) {
    assert!(matches!(
        token.wrapper("0000", true),
        Err(WrapError::WrongPin)
    ));
    assert!(matches!(
        token.wrapper(PIN, false),
        Err(WrapError::Backend(_))
    ));
    let w = token.wrapper(PIN, true).unwrap();
    let wrapped = w.wrap(b"vending key bytes", b"record 1").unwrap();
    assert!(!wrapped.windows(17).any(|x| x == b"vending key bytes"));
    assert_eq!(
        w.unwrap(&wrapped, b"record 1").unwrap().expose_secret(),
        b"vending key bytes"
    );
    let other_record = w.unwrap(&wrapped, b"record 2");
    assert!(
        matches!(other_record, Err(WrapError::Unauthentic)),
        "{other_record:?}"
    );
    let mut flipped = wrapped.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        w.unwrap(&flipped, b"record 1"),
        Err(WrapError::Unauthentic)
    ));
    assert!(matches!(
        w.unwrap(&wrapped[..10], b"record 1"),
        Err(WrapError::Malformed)
    ));
    drop(w);
    // The key persists in the token: a new session finds it and opens what the first wrapped.
    let again = token.wrapper(PIN, false).unwrap();
    assert_eq!(
        again.unwrap(&wrapped, b"record 1").unwrap().expose_secret(),
        b"vending key bytes"
    );
}

async fn kmc_and_security_module_on_the_token(token: &Token) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(minute("2026-06-01 12:00"));
    let kmc_path = dir.path().join("kmc.sqlite");
    let kmc = Kmc::create_with_wrapper(&kmc_path, Box::new(token.wrapper(PIN, true).unwrap()))
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let owner = kmc
        .register_owner("HSM Utility", "hsm@example.org")
        .await
        .unwrap();
    let sgc = kmc.allocate_supply_group(owner).await.unwrap();
    let record = kmc
        .request_vending_key(
            owner,
            &attributes(
                sgc,
                VendingKeyType::Unique,
                KeyDerivationAlgorithm::Dkga04,
                1,
            ),
        )
        .await
        .unwrap();
    let sm_id = "SM-HSM".parse().unwrap();
    let sm = SecurityModule::create_with_wrapper(
        &dir.path().join("sm.sqlite"),
        Box::new(token.wrapper(PIN, false).unwrap()),
        sm_id,
        kmc.public_key(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock));
    kmc.register_security_module(sm.id(), &sm.public_key())
        .await
        .unwrap();
    kmc.authorize(owner, record.id, sm.id()).await.unwrap();
    let file = kmc
        .issue_keyload(owner, sm.id(), &[record.id])
        .await
        .unwrap();
    sm.import_keyload(file.as_bytes()).await.unwrap();
    let m = meter(
        sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga04,
        EncryptionAlgorithm::Misty1,
        1,
    );
    let issued = sm
        .issue(&m, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();

    // Independent check through a reader the test controls.
    let reader = RecipientSecret::generate().unwrap();
    let reader_id = "READER".parse().unwrap();
    kmc.register_security_module(&reader_id, &reader.public_key())
        .await
        .unwrap();
    kmc.authorize(owner, record.id, &reader_id).await.unwrap();
    let file = kmc
        .issue_keyload(owner, &reader_id, &[record.id])
        .await
        .unwrap();
    let parsed = keyload::parse(file.as_bytes()).unwrap();
    parsed.verify(&kmc.public_key()).unwrap();
    let key = parsed.open(&reader).unwrap().remove(0).key;
    assert_eq!(
        decode(issued.number, Some(&meter_cipher(&key, &m)))
            .unwrap()
            .token,
        issued.token
    );

    // The store opens only with the token.
    kmc.close().await;
    assert!(matches!(
        Kmc::open(&kmc_path, &Passphrase::new(PIN).unwrap()).await,
        Err(KmcError::WrongKeyWrapper { .. })
    ));
    Kmc::open_with_wrapper(&kmc_path, Box::new(token.wrapper(PIN, false).unwrap()))
        .await
        .unwrap();
}
