//! Criterion benchmarks of the token engine's hot paths: key derivation, each cipher, the
//! whole credit-token path, and decoding. `sts bench` prints the same paths as tokens/s.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sts_core::{
    BaseDate, DecoderKey, DecoderKeyGenerator, EncryptionAlgorithm, KeyDerivationAlgorithm,
    KeyType, MeterDescription, RandomNumber, Service, Token, TokenCipher, TokenIdentifier,
    TransferAmount, VendingKey, decode,
};

fn meter(derivation: KeyDerivationAlgorithm, algorithm: EncryptionAlgorithm) -> MeterDescription {
    MeterDescription {
        pan: "600727000000000009".parse().unwrap(),
        supply_group: "201457".parse().unwrap(),
        tariff_index: "01".parse().unwrap(),
        key_revision: "1".parse().unwrap(),
        key_type: KeyType::Unique,
        base_date: BaseDate::Y2014,
        algorithm,
        derivation,
    }
}

fn credit() -> Token {
    Token::TransferCredit {
        service: Service::Electricity,
        rnd: RandomNumber::from_low_bits(5),
        tid: TokenIdentifier::from_raw(5_871_715).unwrap(),
        amount: TransferAmount::from_value_ceil(125).unwrap(),
    }
}

fn benches(c: &mut Criterion) {
    let vk02 = VendingKey::from_hex("ABABABABABABABAB").unwrap();
    let vk04 = VendingKey::from_hex("ABABABABABABABAB949494949494949401234567").unwrap();
    let dkga02 = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga02, &vk02).unwrap();
    let dkga04 = DecoderKeyGenerator::new(KeyDerivationAlgorithm::Dkga04, &vk04).unwrap();
    let m02 = meter(KeyDerivationAlgorithm::Dkga02, EncryptionAlgorithm::Sta);
    let m11 = meter(KeyDerivationAlgorithm::Dkga04, EncryptionAlgorithm::Misty1);
    let sta = TokenCipher::new(EncryptionAlgorithm::Sta, &dkga02.derive(&m02).unwrap()).unwrap();
    let misty =
        TokenCipher::new(EncryptionAlgorithm::Misty1, &dkga04.derive(&m11).unwrap()).unwrap();
    let des = TokenCipher::new(
        EncryptionAlgorithm::Des,
        &DecoderKey::from_hex("0123456789ABCDEF").unwrap(),
    )
    .unwrap();
    let token = credit();
    let number = token.encode(Some(&sta)).unwrap();

    let mut g = c.benchmark_group("derive");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dkga02", |b| {
        b.iter(|| dkga02.derive(black_box(&m02)).unwrap())
    });
    g.bench_function("dkga04_ea11", |b| {
        b.iter(|| dkga04.derive(black_box(&m11)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("cipher");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ea07_encrypt", |b| {
        b.iter(|| sta.encrypt(black_box(0x0559_9863_0001_19E6)))
    });
    g.bench_function("ea07_decrypt", |b| {
        b.iter(|| sta.decrypt(black_box(0x4920_83C0_AE7C_E455)))
    });
    g.bench_function("ea09_encrypt", |b| {
        b.iter(|| des.encrypt(black_box(0x0559_9863_0001_19E6)))
    });
    g.bench_function("ea11_encrypt", |b| {
        b.iter(|| misty.encrypt(black_box(0x0559_9863_0001_19E6)))
    });
    g.finish();

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("credit_dkga02_ea07_derived", |b| {
        b.iter(|| {
            let key = dkga02.derive(black_box(&m02)).unwrap();
            let cipher = TokenCipher::new(EncryptionAlgorithm::Sta, &key).unwrap();
            token.encode(Some(&cipher)).unwrap().to_digits()
        });
    });
    g.bench_function("credit_ea07_cached_key", |b| {
        b.iter(|| black_box(&token).encode(Some(&sta)).unwrap().to_digits());
    });
    g.bench_function("credit_dkga04_ea11_derived", |b| {
        b.iter(|| {
            let key = dkga04.derive(black_box(&m11)).unwrap();
            let cipher = TokenCipher::new(EncryptionAlgorithm::Misty1, &key).unwrap();
            token.encode(Some(&cipher)).unwrap().to_digits()
        });
    });
    g.bench_function("decode_ea07", |b| {
        b.iter(|| decode(black_box(number), Some(&sta)).unwrap())
    });
    g.bench_function("parse_20_digits", |b| {
        b.iter(|| {
            black_box("7063 0503 4700 2872 6114")
                .parse::<sts_core::TokenNumber>()
                .unwrap()
        });
    });
    g.finish();
}

criterion_group!(tokens, benches);
criterion_main!(tokens);
