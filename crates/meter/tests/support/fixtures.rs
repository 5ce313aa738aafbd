//! Meters and tokens shared by the scenario tests. Included with `#[path]` by each test file.
// Each test file uses some of these helpers; clippy.toml allows unwrap in `#[test]` functions
// only, and these helpers are test code whose panics are test failures.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use sts_core::{
    BaseDate, DecoderKey, DecoderKeyGenerator, EncryptionAlgorithm, KeyChange, KeyChangeSet,
    KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber, KeyType, MeterDescription,
    MeterPan, RandomNumber, Register, Service, SupplyGroupCode, TariffIndex, Token, TokenCipher,
    TokenIdentifier, TokenNumber, TransferAmount, VendingKey,
};
use sts_meter::{KeyAttributes, Meter, MeterConfig};

/// PAN1 of the conformance tests: IIN 600727, DRN 00000000000 (manufacturer 00).
pub(crate) const PAN1: &str = "600727000000000009";
/// The DKGA02 vending key of STS-detail.md 11.1.
pub(crate) const VK_DKGA02: &str = "ABABABABABABABAB";
/// The DKGA04 vending key of STS-detail.md 11.3-11.5.
pub(crate) const VK_DKGA04: &str = "ABABABABABABABAB949494949494949401234567";

pub(crate) fn pan1() -> MeterPan {
    PAN1.parse().unwrap()
}

pub(crate) fn number(digits: &str) -> TokenNumber {
    digits.parse().unwrap()
}

pub(crate) fn tid(raw: u32) -> TokenIdentifier {
    TokenIdentifier::from_raw(raw).unwrap()
}

pub(crate) fn tid_at(time: &str, base: BaseDate) -> TokenIdentifier {
    TokenIdentifier::issue(time.parse().unwrap(), base).unwrap()
}

pub(crate) fn krn(n: u8) -> KeyRevisionNumber {
    KeyRevisionNumber::try_from(n).unwrap()
}

pub(crate) fn ti(n: u8) -> TariffIndex {
    TariffIndex::try_from(n).unwrap()
}

pub(crate) fn sgc(n: u32) -> SupplyGroupCode {
    SupplyGroupCode::try_from(n).unwrap()
}

/// The key inputs of a meter.
pub(crate) fn description(
    sgc_code: u32,
    krn_n: u8,
    base_date: BaseDate,
    algorithm: EncryptionAlgorithm,
    derivation: KeyDerivationAlgorithm,
) -> MeterDescription {
    MeterDescription {
        pan: pan1(),
        supply_group: sgc(sgc_code),
        tariff_index: ti(1),
        key_revision: krn(krn_n),
        key_type: KeyType::Unique,
        base_date,
        algorithm,
        derivation,
    }
}

/// The key a vending system derives for `meter`.
pub(crate) fn derive(meter: &MeterDescription) -> DecoderKey {
    let vk = match meter.derivation {
        KeyDerivationAlgorithm::Dkga04 => VK_DKGA04,
        _ => VK_DKGA02,
    };
    DecoderKeyGenerator::new(meter.derivation, &VendingKey::from_hex(vk).unwrap())
        .unwrap()
        .derive(meter)
        .unwrap()
}

/// A meter for `meter` with its derived key, KEN 255 and default settings.
pub(crate) fn meter_for(meter: &MeterDescription) -> Meter {
    Meter::new(
        MeterConfig::new(meter.pan),
        KeyAttributes::from_description(meter, KeyExpiryNumber::NEVER),
        derive(meter),
    )
    .unwrap()
}

/// The meter of STS-detail.md 11.1: DKGA02, VK ABAB..., PAN1, KT 2, SGC 123456, TI 01, KRN 1,
/// base date 1993, EA07; decoder key E653341F9D5BF36F.
pub(crate) fn worked_example_meter() -> Meter {
    let meter = meter_for(&description(
        123_456,
        1,
        BaseDate::Y1993,
        EncryptionAlgorithm::Sta,
        KeyDerivationAlgorithm::Dkga02,
    ));
    assert_eq!(
        *meter.secrets().decoder_key(),
        DecoderKey::from_hex("E653341F9D5BF36F").unwrap()
    );
    meter
}

/// The meter's current cipher, as a vending system holding its key would have it.
pub(crate) fn cipher(meter: &Meter) -> TokenCipher {
    TokenCipher::new(meter.state().key.algorithm, meter.secrets().decoder_key()).unwrap()
}

/// A token encrypted for the meter's current key.
pub(crate) fn issue(meter: &Meter, token: Token) -> TokenNumber {
    token.encode(Some(&cipher(meter))).unwrap()
}

/// A unit credit token: `tenths` of the service's unit, with `tid`.
pub(crate) fn credit(meter: &Meter, service: Service, tenths: u32, tid_raw: u32) -> TokenNumber {
    issue(
        meter,
        Token::TransferCredit {
            service,
            rnd: RandomNumber::from_low_bits(5),
            tid: tid(tid_raw),
            amount: TransferAmount::from_value_ceil(tenths).unwrap(),
        },
    )
}

/// An electricity credit token of 0.1 kWh with `tid`.
pub(crate) fn kwh_tenth(meter: &Meter, tid_raw: u32) -> TokenNumber {
    credit(meter, Service::Electricity, 1, tid_raw)
}

/// A clear credit token.
pub(crate) fn clear_credit(meter: &Meter, register: u16, tid_raw: u32) -> TokenNumber {
    issue(
        meter,
        Token::ClearCredit {
            rnd: RandomNumber::from_low_bits(5),
            tid: tid(tid_raw),
            register: Register(register),
        },
    )
}

/// A key change to `new` (same SGC unless `supply_group` differs), encrypted with the meter's
/// current key.
pub(crate) fn key_change_set(meter: &Meter, change: &KeyChange) -> KeyChangeSet {
    change.encode(&cipher(meter)).unwrap()
}

/// The change that installs the key derived for `new`.
pub(crate) fn change_to(new: &MeterDescription, rollover: bool, three_sections: bool) -> KeyChange {
    KeyChange {
        key: derive(new),
        key_type: new.key_type,
        key_revision: new.key_revision,
        tariff_index: new.tariff_index,
        expiry: KeyExpiryNumber::NEVER,
        supply_group: new.supply_group,
        rollover,
        include_supply_group: three_sections,
    }
}

/// Every ordering of `items`.
pub(crate) fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let head = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, head.clone());
            out.push(tail);
        }
    }
    out
}
