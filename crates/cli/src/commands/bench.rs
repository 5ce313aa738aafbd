//! `sts bench`: tokens per second on one core, for the paths a vending system runs.
//!
//! Each case runs for `--seconds` and counts complete tokens, including their 20 digits.
//! The criterion benchmarks in `crates/core/benches` measure the same paths in finer detail.

use std::{
    hint::black_box,
    process::ExitCode,
    time::{Duration, Instant},
};

use serde_json::json;
use sts_core::{
    BaseDate, DecoderKeyGenerator, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType,
    MeterDescription, MeterPan, RandomNumber, Service, Token, TokenCipher, TokenIdentifier,
    TransferAmount, VendingKey, decode,
};

use crate::{
    Outcome,
    args::BenchArgs,
    failure::{Failure, Hint, fail},
    output::print_json,
};

/// 1024 meters with distinct PANs, so key derivation is per meter, as in a real vend stream.
fn meters(
    derivation: KeyDerivationAlgorithm,
    algorithm: EncryptionAlgorithm,
) -> Result<Vec<MeterDescription>, Failure> {
    (0..1024u32)
        .map(|i| {
            Ok(MeterDescription {
                pan: MeterPan::from_drn(&format!("{:011}", 10_000_000 + i * 7919))?,
                supply_group: "201457".parse()?,
                tariff_index: "01".parse()?,
                key_revision: "1".parse()?,
                key_type: KeyType::Unique,
                base_date: BaseDate::Y2014,
                algorithm,
                derivation,
            })
        })
        .collect::<Result<_, sts_core::IdentifierError>>()
        .hint(
            "building benchmark meters",
            "this is a bug: please report it",
        )
}

fn credit(i: u32) -> Result<Token, Failure> {
    Ok(Token::TransferCredit {
        service: Service::Electricity,
        rnd: RandomNumber::from_low_bits(i as u8),
        tid: TokenIdentifier::from_raw(5_000_000 + (i & 0xF_FFFF))
            .hint("benchmark TID", "this is a bug")?,
        amount: TransferAmount::from_value_ceil(100 + (i & 0xFFF))
            .hint("benchmark amount", "this is a bug")?,
    })
}

/// Runs `step` until `seconds` pass; returns tokens per second.
fn measure(seconds: f64, mut step: impl FnMut(u32) -> Result<(), Failure>) -> Result<f64, Failure> {
    let budget = Duration::from_secs_f64(seconds);
    // Warm up caches and branch predictors.
    for i in 0..10_000 {
        step(i)?;
    }
    let start = Instant::now();
    let mut count: u64 = 0;
    loop {
        for _ in 0..1024 {
            step(count as u32)?;
            count += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Ok(count as f64 / elapsed.as_secs_f64());
        }
    }
}

pub(crate) fn run(args: &BenchArgs, json: bool) -> Outcome {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 600.0) {
        return Err(fail(
            "--seconds must be between 0 and 600",
            "e.g. --seconds 1",
        ));
    }
    // Public STS 531 test vending keys: no secret is measured here.
    let vk02 = VendingKey::from_hex("ABABABABABABABAB")?;
    let vk04 = VendingKey::from_hex("ABABABABABABABAB949494949494949401234567")?;
    let dkga02 = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vk02)?;
    let dkga04 = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga04, &vk04)?;
    let meters02 = meters(KeyDerivationAlgorithm::Dkga02, EncryptionAlgorithm::Sta)?;
    let meters11 = meters(KeyDerivationAlgorithm::Dkga04, EncryptionAlgorithm::Misty1)?;
    let cached = TokenCipher::new(EncryptionAlgorithm::Sta, &dkga02.derive(&meters02[0])?)?;
    let sample = credit(1)?.encode(Some(&cached))?;
    let mut results = Vec::new();

    let seconds = args.seconds;
    let mut record = |name: &'static str, target: Option<f64>, rate: f64| {
        if !json {
            let verdict = match target {
                Some(t) if rate >= t => format!("  (target {t:.0}: met)"),
                Some(t) => format!("  (target {t:.0}: NOT met)"),
                None => String::new(),
            };
            println!(
                "{name:<52} {rate:>12.0} tokens/s {:>8.1} ns/token{verdict}",
                1e9 / rate
            );
        }
        results.push(json!({ "case": name, "tokens_per_second": rate.round(), "ns_per_token": 1e9 / rate, "target": target }));
    };

    let rate = measure(seconds, |i| {
        let key = dkga02.derive(&meters02[(i & 1023) as usize])?;
        let cipher = TokenCipher::new(EncryptionAlgorithm::Sta, &key)?;
        black_box(credit(i)?.encode(Some(&cipher))?.to_digits());
        Ok(())
    })?;
    record(
        "credit token, DKGA02 + EA07, key derived per token",
        Some(1_000_000.0),
        rate,
    );

    let rate = measure(seconds, |i| {
        black_box(credit(i)?.encode(Some(&cached))?.to_digits());
        Ok(())
    })?;
    record("credit token, EA07, cached decoder key", None, rate);

    let rate = measure(seconds, |i| {
        let key = dkga04.derive(&meters11[(i & 1023) as usize])?;
        let cipher = TokenCipher::new(EncryptionAlgorithm::Misty1, &key)?;
        black_box(credit(i)?.encode(Some(&cipher))?.to_digits());
        Ok(())
    })?;
    record(
        "credit token, DKGA04 + EA11, key derived per token",
        Some(500_000.0),
        rate,
    );

    let rate = measure(seconds, |_| {
        black_box(decode(black_box(sample), Some(&cached))?);
        Ok(())
    })?;
    record("decode and verify, EA07, cached decoder key", None, rate);

    if json {
        print_json(&json!({ "seconds_per_case": seconds, "results": results }));
    }
    Ok(ExitCode::SUCCESS)
}
