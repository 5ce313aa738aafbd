//! A KMC, a security module with loaded keys, and the vending service over a SQLite file in a
//! temporary directory, with an API key per role. Requests go through the real router.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::panic
)]

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use sts_core::{
    BaseDate, DecodeError, KeyDerivationAlgorithm, KeyExpiryNumber, MeterDescription,
    SupplyGroupCode, Token, TokenCipher, TokenNumber, UtcMinute, VendingKey, decode,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, KeyId, Kmc, ManualClock, OwnerId, Passphrase,
    RecipientSecret, SecurityModule, SecurityModuleId, VendingKeyType, keyload,
};
use sts_vend::{AppState, Config, Database, KeyChangePolicy, Role, router};
use tower::ServiceExt;

#[path = "postgres.rs"]
mod postgres;

pub const PAN: &str = "600727000000000009";

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the test binary's PostgreSQL server.
    Postgres,
}

/// Runs each scenario `fn(Engine)` once on SQLite (`sqlite::NAME`) and once on PostgreSQL
/// (`postgres::NAME`).
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::support::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::support::Engine::Postgres).await;
                }
            )*
        }
    };
}

pub fn minute(text: &str) -> UtcMinute {
    text.parse().unwrap()
}

/// The PAN of DRN `n` (11 digits, IIN 600727).
pub fn pan(n: u64) -> String {
    sts_core::MeterPan::from_drn(&format!("{n:011}"))
        .unwrap()
        .to_string()
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub kmc: Kmc,
    pub owner: OwnerId,
    /// DKGA02 keys: KRN 1 (base 1993), 2 and 3 (base 2014).
    pub sgc: SupplyGroupCode,
    /// A DKGA04 key, KRN 1, base 2014.
    pub sgc04: SupplyGroupCode,
    pub key_ids: HashMap<(u32, u8), KeyId>,
    pub url: String,
    pub state: AppState,
    pub router: Router,
    pub admin: String,
    pub vendor: String,
    pub engineer: String,
    pub auditor: String,
}

pub fn attributes(
    sgc: SupplyGroupCode,
    derivation: KeyDerivationAlgorithm,
    krn: u8,
    base_date: BaseDate,
) -> KeyAttributes {
    KeyAttributes {
        supply_group: sgc,
        key_type: VendingKeyType::Unique,
        derivation,
        key_revision: krn.try_into().unwrap(),
        key_expiry: KeyExpiryNumber::NEVER,
        base_date,
        activation: minute("2026-01-01 00:00"),
        expiry: minute("2030-01-01 00:00"),
        issued_until: minute("2029-01-01 00:00"),
        credit_limit: CreditLimit::NONE,
    }
}

pub async fn world(engine: Engine) -> World {
    world_with(engine, KeyChangePolicy::IssueFirst).await
}

pub async fn world_with(engine: Engine, policy: KeyChangePolicy) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(minute("2026-06-01 12:00"));
    let kmc = Kmc::create(
        &dir.path().join("kmc.sqlite"),
        &Passphrase::new("kmc passphrase for tests").unwrap(),
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
    let sgc04 = kmc.allocate_supply_group(owner).await.unwrap();
    let sm_id: SecurityModuleId = "SM-VEND-1".parse().unwrap();
    let sm = SecurityModule::create(
        &dir.path().join("sm.sqlite"),
        &Passphrase::new("sm passphrase for tests").unwrap(),
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
    let mut key_ids = HashMap::new();
    let mut ids = Vec::new();
    for (s, dkga, krn, base) in [
        (sgc, KeyDerivationAlgorithm::Dkga02, 1, BaseDate::Y1993),
        (sgc, KeyDerivationAlgorithm::Dkga02, 2, BaseDate::Y2014),
        (sgc, KeyDerivationAlgorithm::Dkga02, 3, BaseDate::Y2014),
        (sgc04, KeyDerivationAlgorithm::Dkga04, 1, BaseDate::Y2014),
    ] {
        let record = kmc
            .request_vending_key(owner, &attributes(s, dkga, krn, base))
            .await
            .unwrap();
        kmc.authorize(owner, record.id, &sm_id).await.unwrap();
        key_ids.insert((s.get(), krn), record.id);
        ids.push(record.id);
    }
    let file = kmc.issue_keyload(owner, &sm_id, &ids).await.unwrap();
    sm.import_keyload(file.as_bytes()).await.unwrap();

    let url = match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.path().join("vend.sqlite").display()),
        Engine::Postgres => postgres::fresh_database().await,
    };
    let db = Database::connect(&url)
        .await
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let admin = db
        .create_api_key(Role::Admin, "admin", None)
        .await
        .unwrap()
        .key;
    let vendor = db
        .create_api_key(Role::Vendor, "pos", None)
        .await
        .unwrap()
        .key;
    let engineer = db
        .create_api_key(Role::Engineer, "field", None)
        .await
        .unwrap()
        .key;
    let auditor = db
        .create_api_key(Role::Auditor, "audit", None)
        .await
        .unwrap()
        .key;
    let state = AppState::new(db, sm, policy, Config::DEFAULT_BODY_LIMIT);
    let url = url.clone();
    let router = router(state.clone());
    World {
        dir,
        clock,
        kmc,
        owner,
        sgc,
        sgc04,
        key_ids,
        url,
        state,
        router,
        admin,
        vendor,
        engineer,
        auditor,
    }
}

/// An HTTP answer: status and JSON body (or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl World {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        call(&self.router, method, path, key, body).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// A second server process's state over the same database, with its own security module
    /// `id` holding the same keys.
    pub async fn second_server(&self, id: &str) -> (AppState, Router) {
        let sm_id: SecurityModuleId = id.parse().unwrap();
        let sm = SecurityModule::create(
            &self.dir.path().join(format!("{id}.sqlite")),
            &Passphrase::new("sm passphrase for tests").unwrap(),
            KdfCost::INSECURE_FOR_TESTS,
            sm_id.clone(),
            self.kmc.public_key(),
        )
        .await
        .unwrap()
        .with_clock(Arc::new(self.clock.clone()));
        self.kmc
            .register_security_module(&sm_id, &sm.public_key())
            .await
            .unwrap();
        // Oldest revision first: the SM takes a file's keys in order.
        let mut slots: Vec<_> = self.key_ids.iter().collect();
        slots.sort();
        let ids: Vec<KeyId> = slots.into_iter().map(|(_, id)| *id).collect();
        for key in &ids {
            self.kmc.authorize(self.owner, *key, &sm_id).await.unwrap();
        }
        let file = self
            .kmc
            .issue_keyload(self.owner, &sm_id, &ids)
            .await
            .unwrap();
        sm.import_keyload(file.as_bytes()).await.unwrap();
        let db = Database::connect(&self.url)
            .await
            .unwrap()
            .with_clock(Arc::new(self.clock.clone()));
        let state = AppState::new(
            db,
            sm,
            KeyChangePolicy::IssueFirst,
            Config::DEFAULT_BODY_LIMIT,
        );
        let router = router(state.clone());
        (state, router)
    }

    /// The server after a restart: a new pool over the same database and the same security
    /// module store, opened again.
    pub async fn restarted_server(&self) -> (AppState, Router) {
        let sm = SecurityModule::open(
            &self.dir.path().join("sm.sqlite"),
            &Passphrase::new("sm passphrase for tests").unwrap(),
        )
        .await
        .unwrap()
        .with_clock(Arc::new(self.clock.clone()));
        let db = Database::connect(&self.url)
            .await
            .unwrap()
            .with_clock(Arc::new(self.clock.clone()));
        let state = AppState::new(
            db,
            sm,
            KeyChangePolicy::IssueFirst,
            Config::DEFAULT_BODY_LIMIT,
        );
        let router = router(state.clone());
        (state, router)
    }

    /// The DKGA02 meter body: `krn` 2, base 2014, EA07, DUTK.
    pub fn meter_body(&self, pan: &str) -> Value {
        json!({"pan": pan, "sgc": self.sgc.to_string(), "ti": "01", "krn": "2", "kt": "2",
               "ea": "07", "dkga": "02", "base_date": "2014"})
    }

    pub async fn register(&self, body: Value) {
        let a = self.post("/v1/meters", &self.admin, body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }

    pub async fn vend(&self, key: &str, request_id: &str, meter: &str, token: Value) -> Answer {
        self.post(
            "/v1/vends",
            key,
            json!({"request_id": request_id, "meter": meter, "token": token}),
        )
        .await
    }

    /// The vending key of (SGC, KRN), read independently of the SM: through a keyload file
    /// addressed to a reader whose secret the test holds.
    pub async fn vending_key(&self, sgc: SupplyGroupCode, krn: u8) -> VendingKey {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let key = self.key_ids[&(sgc.get(), krn)];
        let reader_id: SecurityModuleId = format!("READER-{}", N.fetch_add(1, Ordering::SeqCst))
            .parse()
            .unwrap();
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
        parsed.open(&reader).unwrap().remove(0).key
    }

    /// The meter's decoder key made ready, derived here from the vending key.
    pub async fn cipher_for(&self, meter: &MeterDescription) -> TokenCipher {
        let vk = self
            .vending_key(meter.supply_group, meter.key_revision.get())
            .await;
        let dk = sts_core::derive_decoder_key(&vk, meter).unwrap();
        TokenCipher::new(meter.algorithm, &dk).unwrap()
    }

    /// Decodes `number` for `meter` with a decoder key derived here from the vending key.
    pub async fn decode_for(
        &self,
        meter: &MeterDescription,
        number: &str,
    ) -> Result<Token, DecodeError> {
        let vk = self
            .vending_key(meter.supply_group, meter.key_revision.get())
            .await;
        let dk = sts_core::derive_decoder_key(&vk, meter).unwrap();
        let cipher = TokenCipher::new(meter.algorithm, &dk).unwrap();
        decode(number.parse::<TokenNumber>().unwrap(), Some(&cipher)).map(|d| d.token)
    }
}

pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer { status, body }
}

/// The description of a meter as the JSON API shows it.
pub fn description(meter: &Value) -> MeterDescription {
    let f = |n: &str| meter[n].as_str().unwrap().to_owned();
    MeterDescription {
        pan: f("pan").parse().unwrap(),
        supply_group: f("sgc").parse().unwrap(),
        tariff_index: f("ti").parse().unwrap(),
        key_revision: f("krn").parse().unwrap(),
        key_type: f("kt").parse().unwrap(),
        base_date: f("base_date").parse().unwrap(),
        algorithm: f("ea").parse().unwrap(),
        derivation: f("dkga").parse().unwrap(),
    }
}

/// The token numbers of a vend answer.
pub fn numbers(vend: &Value) -> Vec<String> {
    vend["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_str().unwrap().to_owned())
        .collect()
}

/// A simulated meter for `description`, its decoder key derived here from the vending key.
pub async fn sim_meter(w: &World, description: &MeterDescription) -> sts_meter::Meter {
    let vk = w
        .vending_key(description.supply_group, description.key_revision.get())
        .await;
    let dk = sts_core::derive_decoder_key(&vk, description).unwrap();
    sts_meter::Meter::new(
        sts_meter::MeterConfig::new(description.pan),
        sts_meter::KeyAttributes::from_description(description, KeyExpiryNumber::NEVER),
        dk,
    )
    .unwrap()
}

/// Enters every token of a vend answer into `meter`; returns what each did.
pub fn enter_all(meter: &mut sts_meter::Meter, vend: &Value) -> Vec<sts_meter::Applied> {
    numbers(vend)
        .iter()
        .map(|n| {
            meter
                .enter(n.parse().unwrap(), 1_780_000_000)
                .unwrap_or_else(|e| panic!("meter rejected {n}: {e:?}"))
        })
        .collect()
}
