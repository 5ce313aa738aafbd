//! A meter fed any sequence of tokens: raw 66-bit numbers, blocks with a valid CRC under the
//! meter's key, credit tokens and key change sections. Asserts, for every entry:
//! - the meter never panics;
//! - a rejected token changes no register, TID, setting or key attribute, nor the decoder key;
//! - an accepted credit token adds exactly what it reports, and nothing else changes credit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sts_core::{
    BaseDate, DataBlock, DecoderKey, EncryptionAlgorithm, KeyChange, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyRevisionNumber, KeyType, MeterDescription, RandomNumber, Service,
    SupplyGroupCode, TariffIndex, Token, TokenCipher, TokenClass, TokenIdentifier, TokenNumber,
    TokenSubclass, TransferAmount, token::seal,
};
use sts_meter::{Applied, KeyAttributes, Meter, MeterConfig};

const KEY: u64 = 0x87F3_ECBB_2E46_B48F;

fn meter(depth: u8) -> Option<Meter> {
    let description = MeterDescription {
        pan: "600727000000000009".parse().ok()?,
        supply_group: SupplyGroupCode::try_from(201_457).ok()?,
        tariff_index: TariffIndex::try_from(1).ok()?,
        key_revision: KeyRevisionNumber::try_from(1).ok()?,
        key_type: KeyType::Unique,
        base_date: BaseDate::Y1993,
        algorithm: EncryptionAlgorithm::Sta,
        derivation: KeyDerivationAlgorithm::Dkga02,
    };
    let mut config = MeterConfig::new(description.pan);
    config.tid_memory_depth = u16::from(depth % 8) + 1;
    config.lockout.threshold = 1000;
    let attributes = KeyAttributes::from_description(&description, KeyExpiryNumber::NEVER);
    Meter::new(config, attributes, DecoderKey::from_u64(KEY)).ok()
}

fn u64_of(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// The tokens one chunk of input stands for.
fn tokens(chunk: &[u8], cipher: &TokenCipher) -> Vec<TokenNumber> {
    let body = u64_of(&chunk[1..]);
    match chunk[0] % 4 {
        0 => TokenNumber::from_u128(u128::from(body) | (u128::from(chunk[1] & 3) << 64))
            .into_iter()
            .collect(),
        1 => {
            let block = DataBlock::new(
                TokenClass::from_bits(chunk[1]),
                TokenSubclass::from_bits(chunk[2]),
                body,
            );
            seal(block, Some(cipher)).into_iter().collect()
        }
        2 => {
            let Ok(tid) = TokenIdentifier::from_raw((body as u32) & 0xFF_FFFF) else {
                return Vec::new();
            };
            let token = Token::TransferCredit {
                service: Service::ALL[usize::from(chunk[1] % 4)],
                rnd: RandomNumber::from_low_bits(chunk[2]),
                tid,
                amount: TransferAmount::from_field((body >> 24) as u16),
            };
            token.encode(Some(cipher)).into_iter().collect()
        }
        _ => {
            // A key change set to a fuzzed key; sections entered in a fuzzed subset and order.
            let (Ok(revision), Ok(tariff_index), Ok(supply_group)) = (
                KeyRevisionNumber::try_from(chunk[1] % 9 + 1),
                TariffIndex::try_from(chunk[2] % 100),
                SupplyGroupCode::try_from(u32::from(chunk[4]) * 1000),
            ) else {
                return Vec::new();
            };
            let change = KeyChange {
                key: DecoderKey::from_u64(body ^ KEY),
                key_type: KeyType::from_bits(chunk[2]),
                key_revision: revision,
                tariff_index,
                expiry: KeyExpiryNumber::from(chunk[3]),
                supply_group,
                rollover: chunk[5] & 1 == 1,
                include_supply_group: chunk[5] & 2 == 2,
            };
            let Ok(set) = change.encode(cipher) else {
                return Vec::new();
            };
            let mut numbers: Vec<TokenNumber> = set.iter().map(|t| t.number).collect();
            if chunk[6] & 1 == 1 {
                numbers.reverse();
            }
            numbers.truncate(usize::from(chunk[6] % 4) + 1);
            numbers
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&depth, rest)) = data.split_first() else {
        return;
    };
    let Some(mut meter) = meter(depth) else {
        return;
    };
    let mut clock = 0u64;
    for chunk in rest.chunks_exact(10) {
        clock += u64::from(chunk[9]);
        // The cipher of the meter's current key: sections and credit made for it get deep.
        let Ok(cipher) = TokenCipher::new(EncryptionAlgorithm::Sta, meter.secrets().decoder_key())
        else {
            return;
        };
        for number in tokens(chunk, &cipher) {
            let before = *meter.state();
            let key_before = meter.secrets().decoder_key().clone();
            match meter.enter(number, clock) {
                Err(_) => {
                    let after = meter.state();
                    assert_eq!(
                        before.registers, after.registers,
                        "a rejected token changed credit"
                    );
                    assert_eq!(
                        before.tids, after.tids,
                        "a rejected token changed the TID memory"
                    );
                    assert_eq!(
                        before.management, after.management,
                        "a rejected token changed a setting"
                    );
                    assert_eq!(
                        before.key, after.key,
                        "a rejected token changed the key attributes"
                    );
                    assert!(
                        key_before == *meter.secrets().decoder_key(),
                        "a rejected token changed the key"
                    );
                }
                Ok(Applied::Credit {
                    service,
                    added,
                    new_balance,
                    ..
                }) => {
                    assert_eq!(before.registers.units(service) + added, new_balance);
                    assert_eq!(meter.state().registers.units(service), new_balance);
                }
                Ok(Applied::CreditCleared { .. }) => {}
                Ok(_) => {
                    for service in Service::ALL {
                        assert_eq!(
                            before.registers.units(service),
                            meter.state().registers.units(service),
                            "only credit and clear credit tokens change credit"
                        );
                    }
                }
            }
        }
    }
});
