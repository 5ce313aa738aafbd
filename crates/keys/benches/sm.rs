//! Tokens per second through the security module API, against the bare engine doing the same
//! work per token (derive the meter's decoder key, make the cipher, encode the token).
//!
//! The SM adds the attribute checks, the TID and credit bookkeeping and the audit record, all
//! committed to SQLite with `synchronous = FULL` (one fsync per commit); the vending keys are
//! unwrapped once and cached. `issue` commits each token when it is called alone, and shares
//! commits when callers run concurrently (64 tasks calling it 20 times each, or 1,000 tasks
//! 5 times each, every task for its own meter); `issue_many`
//! commits a batch: 100 tokens for one meter, and 1,000 or 10,000 tokens for as many meters.
//! `issue_key_change_many` commits 10,000 key change sets (DKGA02, default to unique key: two
//! tokens each) per batch.
//!
//! The summary at the end prints each case's rate next to the bare engine's and their ratio.
//! The machine is shared: the cases take turns for five rounds and each keeps its best round,
//! so that load from other processes weighs on them alike.

#![allow(missing_docs, clippy::unwrap_used)]

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sts_core::{
    BaseDate, DecoderKeyGenerator, EncryptionAlgorithm, KeyChange, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyType, MeterDescription, MeterPan, RandomNumber, Service, Token,
    TokenCipher, TokenIdentifier, TransferAmount, UtcMinute,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, KeyChangeRequest, Kmc, ManualClock, Passphrase,
    SecurityModule, TokenRequest, VendingKeyType, generate_vending_key,
};

fn meter(sgc: sts_core::SupplyGroupCode, key_type: KeyType, n: u64) -> MeterDescription {
    MeterDescription {
        pan: MeterPan::from_drn(&format!("{n:011}")).unwrap(),
        supply_group: sgc,
        tariff_index: "01".parse().unwrap(),
        key_revision: "1".parse().unwrap(),
        key_type,
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

fn attributes(sgc: sts_core::SupplyGroupCode, key_type: VendingKeyType) -> KeyAttributes {
    KeyAttributes {
        supply_group: sgc,
        key_type,
        derivation: KeyDerivationAlgorithm::Dkga02,
        key_revision: "1".parse().unwrap(),
        key_expiry: KeyExpiryNumber::NEVER,
        base_date: BaseDate::Y2014,
        activation: "2026-01-01 00:00".parse().unwrap(),
        expiry: "2030-01-01 00:00".parse().unwrap(),
        issued_until: "2029-01-01 00:00".parse().unwrap(),
        credit_limit: CreditLimit::NONE,
    }
}

/// A security module holding a VUDK and a VDDK for one SGC.
async fn loaded_sm(dir: &std::path::Path) -> (SecurityModule, sts_core::SupplyGroupCode) {
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
    let mut ids = Vec::new();
    for kt in [VendingKeyType::Unique, VendingKeyType::Default] {
        let key = kmc
            .request_vending_key(owner, &attributes(sgc, kt))
            .await
            .unwrap();
        kmc.authorize(owner, key.id, &sm_id).await.unwrap();
        ids.push(key.id);
    }
    let file = kmc.issue_keyload(owner, &sm_id, &ids).await.unwrap();
    sm.import_keyload(file.as_bytes()).await.unwrap();
    (sm, sgc)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Runs `f` (which does `per_call` items) for about `budget`; returns items per second.
fn rate(per_call: usize, budget: Duration, f: &mut dyn FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut calls = 0;
    while calls < 3 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    per_second(calls * per_call, start.elapsed())
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sm, sgc) = rt.block_on(loaded_sm(dir.path()));
    let sm = Arc::new(sm);
    let one = meter(sgc, KeyType::Unique, 0);
    // Warm the cache: the first token unwraps the vending key.
    rt.block_on(sm.issue(&one, request())).unwrap();

    // The bare engine with prepared generators, doing per token what the SM does.
    let vudk = generate_vending_key(KeyDerivationAlgorithm::Dkga02).unwrap();
    let vddk = generate_vending_key(KeyDerivationAlgorithm::Dkga02).unwrap();
    let unique = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vudk).unwrap();
    let default = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vddk).unwrap();
    let bare = |m: &MeterDescription| {
        let dk = unique.derive(black_box(m)).unwrap();
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
    let bare_key_change = |current: &MeterDescription, new: &MeterDescription| {
        let change = KeyChange {
            key: unique.derive(black_box(new)).unwrap(),
            key_type: new.key_type,
            key_revision: new.key_revision,
            tariff_index: new.tariff_index,
            expiry: KeyExpiryNumber::NEVER,
            supply_group: new.supply_group,
            rollover: false,
            include_supply_group: false,
        };
        let dk = default.derive(black_box(current)).unwrap();
        change
            .encode(&TokenCipher::new(current.algorithm, &dk).unwrap())
            .unwrap()
    };

    let one_meter: Vec<_> = (0..100).map(|_| (one, request())).collect();
    let distinct = |n: u64| -> Vec<_> {
        (0..n)
            .map(|i| (meter(sgc, KeyType::Unique, i), request()))
            .collect()
    };
    let (thousand, ten_thousand) = (distinct(1000), distinct(10_000));
    // `callers` tasks at once, each issuing `each` tokens for its own meter with `issue`, one
    // call after the other: the module groups the calls that wait into shared commits.
    let concurrent = |callers: usize, each: usize| {
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (m, r) in &thousand[..callers] {
                let (sm, m, r) = (Arc::clone(&sm), *m, *r);
                set.spawn(async move {
                    for _ in 0..each {
                        black_box(sm.issue(&m, r).await.unwrap());
                    }
                });
            }
            while let Some(done) = set.join_next().await {
                done.unwrap();
            }
        })
    };
    let campaign: Vec<_> = (0..10_000)
        .map(|i| KeyChangeRequest {
            current: meter(sgc, KeyType::Default, i),
            new: meter(sgc, KeyType::Unique, i),
            include_supply_group: false,
        })
        .collect();

    let mut g = c.benchmark_group("sm");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_engine_credit_token", |b| b.iter(|| bare(&one)));
    g.bench_function("bare_engine_key_change_set", |b| {
        b.iter(|| bare_key_change(&campaign[0].current, &campaign[0].new))
    });
    g.bench_function("sm_issue_credit_token", |b| {
        b.iter(|| rt.block_on(sm.issue(black_box(&one), request())).unwrap())
    });
    g.throughput(Throughput::Elements(1000 * 5));
    g.bench_function("sm_issue_1000_callers_5_each", |b| {
        b.iter(|| concurrent(1000, 5))
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("sm_issue_many_100_one_meter", |b| {
        b.iter(|| rt.block_on(sm.issue_many(black_box(&one_meter))).unwrap())
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("sm_issue_many_1000_meters", |b| {
        b.iter(|| rt.block_on(sm.issue_many(black_box(&thousand))).unwrap())
    });
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("sm_issue_key_change_many_10000_meters", |b| {
        b.iter(|| {
            rt.block_on(sm.issue_key_change_many(black_box(&campaign)))
                .unwrap()
        })
    });
    g.finish();

    // The summary: items per second, against the bare engine doing the same tokens. The
    // machine is shared: the cases take turns, five rounds, and each keeps its best round.
    type Case<'a> = (&'static str, usize, Box<dyn FnMut() + 'a>);
    let mut cases: Vec<Case<'_>> = vec![
        (
            "bare engine, credit tokens",
            1000,
            Box::new(|| {
                for (m, _) in &thousand {
                    black_box(bare(m));
                }
            }),
        ),
        (
            "SM issue (one commit each)",
            1,
            Box::new(|| {
                rt.block_on(sm.issue(&one, request())).unwrap();
            }),
        ),
        (
            "SM issue, 64 callers at once",
            64 * 20,
            Box::new(|| concurrent(64, 20)),
        ),
        (
            "SM issue, 1,000 callers at once",
            1000 * 5,
            Box::new(|| concurrent(1000, 5)),
        ),
        (
            "SM issue_many, 100 for one meter",
            100,
            Box::new(|| {
                rt.block_on(sm.issue_many(&one_meter)).unwrap();
            }),
        ),
        (
            "SM issue_many, 1,000 meters",
            1000,
            Box::new(|| {
                rt.block_on(sm.issue_many(&thousand)).unwrap();
            }),
        ),
        (
            "SM issue_many, 10,000 meters",
            10_000,
            Box::new(|| {
                rt.block_on(sm.issue_many(&ten_thousand)).unwrap();
            }),
        ),
        (
            "bare engine, key change sets",
            1000,
            Box::new(|| {
                for r in &campaign[..1000] {
                    black_box(bare_key_change(&r.current, &r.new));
                }
            }),
        ),
        (
            "SM issue_key_change_many, 10,000 meters",
            10_000,
            Box::new(|| {
                rt.block_on(sm.issue_key_change_many(&campaign)).unwrap();
            }),
        ),
    ];
    let mut best = vec![0f64; cases.len()];
    for _ in 0..5 {
        for ((_, per_call, f), best) in cases.iter_mut().zip(&mut best) {
            *best = best.max(rate(*per_call, Duration::from_millis(600), f));
        }
    }
    let rate_of = |name: &str| {
        cases
            .iter()
            .zip(&best)
            .find(|((n, ..), _)| *n == name)
            .map_or(f64::NAN, |(_, rate)| *rate)
    };
    let (bare_credit, bare_key_change) = (
        rate_of("bare engine, credit tokens"),
        rate_of("bare engine, key change sets"),
    );
    println!("summary (per second, best of 5 rounds; ratio = bare engine / SM):");
    for ((name, ..), rate) in cases.iter().zip(&best) {
        let bare = if name.contains("key_change") || name.contains("key change") {
            bare_key_change
        } else {
            bare_credit
        };
        if name.starts_with("bare") {
            println!("  {name:<40} {rate:>10.0}");
        } else {
            println!("  {name:<40} {rate:>10.0}  ratio {:.2}", bare / rate);
        }
    }
    println!(
        "  1,000,000 key change sets through the SM: {:.1} s",
        1_000_000.0 / rate_of("SM issue_key_change_many, 10,000 meters")
    );
}

criterion_group! {
    name = sm;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sm);
