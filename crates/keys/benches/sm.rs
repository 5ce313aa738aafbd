//! Tokens per second through the security module API, against the bare engine doing the same
//! work (derive the meter's key, make the cipher, encode a credit token).
//!
//! The SM adds, per token, the attribute checks, the TID and credit bookkeeping and an audit
//! entry, all committed to SQLite; the vending key is unwrapped once and cached. `issue` commits
//! each token (an fsync); `issue_many` commits a batch of 100.

#![allow(missing_docs, clippy::unwrap_used)]

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyType,
    MeterDescription, RandomNumber, Service, Token, TokenCipher, TokenIdentifier, TransferAmount,
    UtcMinute,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, Kmc, ManualClock, Passphrase, SecurityModule,
    TokenRequest, VendingKeyType, generate_vending_key,
};

fn meter(sgc: sts_core::SupplyGroupCode) -> MeterDescription {
    MeterDescription {
        pan: "600727000000000009".parse().unwrap(),
        supply_group: sgc,
        tariff_index: "01".parse().unwrap(),
        key_revision: "1".parse().unwrap(),
        key_type: KeyType::Unique,
        base_date: BaseDate::Y2014,
        algorithm: EncryptionAlgorithm::Sta,
        derivation: KeyDerivationAlgorithm::Dkga02,
    }
}

fn request() -> TokenRequest {
    TokenRequest::TransferCredit {
        service: Service::Electricity,
        amount: TransferAmount::from_value_ceil(125).unwrap(),
    }
}

async fn loaded_sm(dir: &std::path::Path) -> (SecurityModule, MeterDescription) {
    let clock = ManualClock::new("2026-06-01 12:00".parse::<UtcMinute>().unwrap());
    let kmc = Kmc::create(
        &dir.join("kmc.sqlite"),
        &Passphrase::new("bench").unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    let owner = kmc
        .register_owner("Bench", "bench@example.org")
        .await
        .unwrap();
    let sgc = kmc.allocate_supply_group(owner).await.unwrap();
    let key = kmc
        .request_vending_key(
            owner,
            &KeyAttributes {
                supply_group: sgc,
                key_type: VendingKeyType::Unique,
                derivation: KeyDerivationAlgorithm::Dkga02,
                key_revision: "1".parse().unwrap(),
                key_expiry: KeyExpiryNumber::NEVER,
                base_date: BaseDate::Y2014,
                activation: "2026-01-01 00:00".parse().unwrap(),
                expiry: "2030-01-01 00:00".parse().unwrap(),
                issued_until: "2029-01-01 00:00".parse().unwrap(),
                credit_limit: CreditLimit::NONE,
            },
        )
        .await
        .unwrap();
    let sm_id: sts_keys::SecurityModuleId = "SM-BENCH".parse().unwrap();
    let sm = SecurityModule::create(
        &dir.join("sm.sqlite"),
        &Passphrase::new("bench sm").unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
        sm_id.clone(),
        kmc.public_key(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(clock));
    kmc.register_security_module(&sm_id, &sm.public_key())
        .await
        .unwrap();
    kmc.authorize(owner, key.id, &sm_id).await.unwrap();
    let file = kmc.issue_keyload(owner, &sm_id, &[key.id]).await.unwrap();
    sm.import_keyload(file.as_bytes()).await.unwrap();
    (sm, meter(sgc))
}

fn per_second(n: u32, elapsed: Duration) -> f64 {
    f64::from(n) / elapsed.as_secs_f64()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sm, m) = rt.block_on(loaded_sm(dir.path()));
    // Warm the cache: the first token unwraps the vending key.
    rt.block_on(sm.issue(&m, request())).unwrap();

    // The bare engine with a prepared generator, doing per token what the SM does.
    let vk = generate_vending_key(KeyDerivationAlgorithm::Dkga02).unwrap();
    let generator =
        sts_core::DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vk).unwrap();
    let bare = || {
        let dk = generator.derive(black_box(&m)).unwrap();
        let cipher = TokenCipher::new(m.algorithm, &dk).unwrap();
        Token::TransferCredit {
            service: Service::Electricity,
            rnd: RandomNumber::from_low_bits(5),
            tid: TokenIdentifier::from_raw(5_871_715).unwrap(),
            amount: TransferAmount::from_value_ceil(125).unwrap(),
        }
        .encode(Some(&cipher))
        .unwrap()
    };
    let batch: Vec<_> = (0..100).map(|_| (m, request())).collect();

    let mut g = c.benchmark_group("sm");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_engine_credit_token", |b| b.iter(bare));
    g.bench_function("sm_issue_credit_token", |b| {
        b.iter(|| rt.block_on(sm.issue(black_box(&m), request())).unwrap())
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("sm_issue_many_100", |b| {
        b.iter(|| rt.block_on(sm.issue_many(black_box(&batch))).unwrap())
    });
    g.finish();

    // A plain summary in tokens per second.
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        black_box(bare());
    }
    let bare_rate = per_second(n, start.elapsed());
    let n_sm = 500;
    let start = Instant::now();
    for _ in 0..n_sm {
        rt.block_on(sm.issue(&m, request())).unwrap();
    }
    let sm_rate = per_second(n_sm, start.elapsed());
    let n_batches = 20;
    let start = Instant::now();
    for _ in 0..n_batches {
        rt.block_on(sm.issue_many(&batch)).unwrap();
    }
    let batch_rate = per_second(n_batches * 100, start.elapsed());
    println!(
        "tokens/s: bare engine {bare_rate:.0}; SM issue (one commit each) {sm_rate:.0}; SM issue_many (100 per commit) {batch_rate:.0}"
    );
}

criterion_group! {
    name = sm;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sm);
