//! A KMC and a security module in a temporary directory, with a manual clock.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::{path::PathBuf, sync::Arc};

use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyType,
    MeterDescription, MeterPan, Service, SupplyGroupCode, TokenCipher, TokenIdentifier,
    TransferAmount, UtcMinute, VendingKey,
};
use sts_keys::{
    Clock, CreditLimit, KdfCost, KeyAttributes, KeyId, Kmc, ManualClock, OwnerId, Passphrase,
    RecipientSecret, SecurityModule, SecurityModuleId, TokenRequest, VendingKeyType, keyload,
};

pub const KMC_PASS: &str = "kmc passphrase for tests";
pub const SM_PASS: &str = "sm passphrase for tests";

pub fn minute(text: &str) -> UtcMinute {
    text.parse().unwrap()
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub kmc: Kmc,
    pub sm: SecurityModule,
    pub sm_id: SecurityModuleId,
    pub owner: OwnerId,
    pub sgc: SupplyGroupCode,
}

impl World {
    pub fn kmc_path(&self) -> PathBuf {
        self.dir.path().join("kmc.sqlite")
    }

    pub fn sm_path(&self) -> PathBuf {
        self.dir.path().join("sm.sqlite")
    }

    /// Requests a key, authorizes the SM, issues a keyload file and imports it.
    pub async fn load_key(&self, attributes: &KeyAttributes) -> KeyId {
        let record = self
            .kmc
            .request_vending_key(self.owner, attributes)
            .await
            .unwrap();
        self.kmc
            .authorize(self.owner, record.id, &self.sm_id)
            .await
            .unwrap();
        let file = self
            .kmc
            .issue_keyload(self.owner, &self.sm_id, &[record.id])
            .await
            .unwrap();
        self.sm.import_keyload(file.as_bytes()).await.unwrap();
        record.id
    }

    /// The vending key, read the only way the design allows: through a keyload file
    /// addressed to a reader whose X25519 secret the test holds.
    pub async fn read_key_independently(&self, key: KeyId) -> VendingKey {
        let reader_id: SecurityModuleId = format!("READER-{}", rand_suffix()).parse().unwrap();
        let reader = RecipientSecret::generate().unwrap();
        self.kmc
            .register_security_module(&reader_id, &reader.public_key())
            .await
            .unwrap();
        self.kmc
            .authorize(self.owner, key, &reader_id)
            .await
            .unwrap();
        let file = self
            .kmc
            .issue_keyload(self.owner, &reader_id, &[key])
            .await
            .unwrap();
        let parsed = keyload::parse(file.as_bytes()).unwrap();
        parsed.verify(&self.kmc.public_key()).unwrap();
        let mut keys = parsed.open(&reader).unwrap();
        keys.remove(0).key
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(minute("2026-06-01 12:00"));
    let kmc = Kmc::create(
        &dir.path().join("kmc.sqlite"),
        &Passphrase::new(KMC_PASS).unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    let owner = kmc
        .register_owner("Utility One", "keys@utility-one.example")
        .await
        .unwrap();
    let sgc = kmc.allocate_supply_group(owner).await.unwrap();
    let sm_id: SecurityModuleId = "SM-0001".parse().unwrap();
    let sm = SecurityModule::create(
        &dir.path().join("sm.sqlite"),
        &Passphrase::new(SM_PASS).unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
        sm_id.clone(),
        kmc.public_key(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    kmc.register_security_module(&sm_id, &sm.public_key())
        .await
        .unwrap();
    World {
        dir,
        clock,
        kmc,
        sm,
        sm_id,
        owner,
        sgc,
    }
}

pub fn attributes(
    sgc: SupplyGroupCode,
    key_type: VendingKeyType,
    derivation: KeyDerivationAlgorithm,
    krn: u8,
) -> KeyAttributes {
    KeyAttributes {
        supply_group: sgc,
        key_type,
        derivation,
        key_revision: krn.try_into().unwrap(),
        key_expiry: KeyExpiryNumber::NEVER,
        base_date: BaseDate::Y2014,
        activation: minute("2026-01-01 00:00"),
        expiry: minute("2030-01-01 00:00"),
        issued_until: minute("2029-01-01 00:00"),
        credit_limit: CreditLimit::NONE,
    }
}

pub fn meter(
    sgc: SupplyGroupCode,
    key_type: KeyType,
    derivation: KeyDerivationAlgorithm,
    algorithm: EncryptionAlgorithm,
    krn: u8,
) -> MeterDescription {
    MeterDescription {
        pan: "600727000000000009".parse().unwrap(),
        supply_group: sgc,
        tariff_index: "01".parse().unwrap(),
        key_revision: krn.try_into().unwrap(),
        key_type,
        base_date: BaseDate::Y2014,
        algorithm,
        derivation,
    }
}

/// The meter's decoder key made ready, from a vending key the test read.
pub fn meter_cipher(key: &VendingKey, meter: &MeterDescription) -> TokenCipher {
    let dk = sts_core::derive_decoder_key(key, meter).unwrap();
    TokenCipher::new(meter.algorithm, &dk).unwrap()
}

/// A credit token request of `tenths` (of the service unit).
pub fn credit(tenths: u32) -> TokenRequest {
    TokenRequest::TransferCredit {
        service: Service::Electricity,
        amount: TransferAmount::from_value_ceil(tenths).unwrap(),
    }
}

/// Meter `n` on the world's VUDK revision 1 (DKGA02, EA07), its PAN made from `n`.
pub fn unique_meter(w: &World, n: u64) -> MeterDescription {
    let mut m = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    m.pan = MeterPan::from_drn(&format!("{n:011}")).unwrap();
    m
}

/// The TID of the world clock's current minute (base date 2014).
pub fn tid_now(w: &World) -> u32 {
    TokenIdentifier::issue(w.clock.now(), BaseDate::Y2014)
        .unwrap()
        .get()
}

/// A world whose module holds the VUDK revision 1 (DKGA02) that [`unique_meter`]s use,
/// under `limit`.
pub async fn loaded_world(limit: CreditLimit) -> World {
    let w = world().await;
    let mut a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    a.credit_limit = limit;
    w.load_key(&a).await;
    w
}
