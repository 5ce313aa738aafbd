//! The per-token records of a security module's batch audit entry.
//!
//! A batch of tokens (or of key change sets) is one audit entry: one row, one hash step. The
//! entry's `records` carry one compact binary record per token or set, and the entry's hash
//! covers them (see [`super::entry_hash_with_records`]), so every token stays under the hash
//! chain. A record names the meter, the vending key (by check value), the token's class,
//! subclass, TID and credit: never the token number or any key.
//!
//! Format version 1; integers big-endian:
//!
//! ```text
//! kind u8 (1 tokens, 2 key change sets) | version u8 (1)
//! profile count u32, then per profile (14 bytes):
//!     SGC u32 | KT u8 | KRN u8 | base date (year) u16 | DKGA u8 | EA u8 | has KCV u8 | KCV [3]
//! record count u32, then per record:
//!     token (26 bytes):      PAN u64 | profile u32 | TI u8 | class << 4 | subclass (u8)
//!                            | flags u8 (1: has TID, 2: has credit) | TID u24 | credit units u64
//!     key change (19 bytes): PAN u64 | current profile u32 | new profile u32 | current TI u8
//!                            | new TI u8 | tokens in the set u8
//! ```
//!
//! A profile is what the records of an entry share: the meter description without PAN and
//! TI, and the check value of the vending key used (none for class 1, which uses no key); a
//! batch usually has one or two. The PAN is its 18 digits as a number. Decoding checks every
//! field (a PAN's check digit, every code, the lengths) and never panics.

use std::collections::HashMap;

use serde_json::json;
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyRevisionNumber, KeyType,
    MeterDescription, MeterPan, SupplyGroupCode, TariffIndex, TokenClass, TokenIdentifier,
    TokenSubclass,
};

use crate::KeyCheckValue;

const VERSION: u8 = 1;
const KIND_TOKENS: u8 = 1;
const KIND_KEY_CHANGES: u8 = 2;
const PROFILE_LEN: usize = 4 + 1 + 1 + 2 + 1 + 1 + 1 + 3;
/// PAN u64 | profile u32 | TI u8 | class/subclass u8 | flags u8 | TID u24 | credit u64.
const TOKEN_LEN: usize = 8 + 4 + 1 + 1 + 1 + 3 + 8;
/// PAN u64 | current profile u32 | new profile u32 | current TI u8 | new TI u8 | tokens u8.
const CHANGE_LEN: usize = 8 + 4 + 4 + 1 + 1 + 1;
const FLAG_TID: u8 = 1;
const FLAG_CREDIT: u8 = 2;

/// One token of a batch, as its audit entry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRecord {
    /// The meter it was issued for.
    pub meter: MeterDescription,
    /// The check value of the vending key used (none for class 1).
    pub check_value: Option<KeyCheckValue>,
    /// The token class.
    pub class: TokenClass,
    /// The token subclass.
    pub subclass: TokenSubclass,
    /// The TID (none for class 1).
    pub tid: Option<TokenIdentifier>,
    /// The credit it carries in credit units (see [`crate::CreditLimit`]), for credit tokens.
    pub credit_units: Option<u64>,
}

/// One key change set of a batch, as its audit entry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChangeRecord {
    /// The meter on its current key.
    pub current: MeterDescription,
    /// The meter on its new key.
    pub new: MeterDescription,
    /// The check value of the vending key of the current key.
    pub current_check_value: KeyCheckValue,
    /// The check value of the vending key of the new key.
    pub new_check_value: KeyCheckValue,
    /// The number of tokens in the set (2, 3 or 4).
    pub tokens: u8,
}

/// The records of one batch audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRecords {
    /// Tokens (`token.issue-batch`).
    Tokens(Vec<TokenRecord>),
    /// Key change sets (`token.key-change-batch`).
    KeyChanges(Vec<KeyChangeRecord>),
}

/// Records that do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed batch records: {0}")]
pub struct RecordsError(&'static str);

impl BatchRecords {
    /// Decodes the `records` of an audit entry.
    ///
    /// # Errors
    /// [`RecordsError`] for anything but a well-formed version 1 encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordsError> {
        let mut r = Reader(bytes);
        let kind = r.u8()?;
        if r.u8()? != VERSION {
            return Err(RecordsError("unknown version"));
        }
        let profile_count = r.u32()? as usize;
        if profile_count > r.0.len() / PROFILE_LEN {
            return Err(RecordsError("truncated profiles"));
        }
        let profiles = (0..profile_count)
            .map(|_| Profile::read(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let count = r.u32()? as usize;
        let len = match kind {
            KIND_TOKENS => TOKEN_LEN,
            KIND_KEY_CHANGES => CHANGE_LEN,
            _ => return Err(RecordsError("unknown kind")),
        };
        if r.0.len() != count.checked_mul(len).ok_or(RecordsError("count"))? {
            return Err(RecordsError("the record count does not match the length"));
        }
        let profile = |index: u32| {
            profiles
                .get(index as usize)
                .ok_or(RecordsError("profile index out of range"))
        };
        if kind == KIND_TOKENS {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let pan = read_pan(&mut r)?;
                let p = profile(r.u32()?)?;
                let tariff_index = read_tariff_index(&mut r)?;
                let class_subclass = r.u8()?;
                let flags = r.u8()?;
                let tid = r.u24()?;
                let credit = r.u64()?;
                // One encoding per record: unknown bits and absent fields are zero.
                if flags & !(FLAG_TID | FLAG_CREDIT) != 0 || class_subclass >> 6 != 0 {
                    return Err(RecordsError("unknown flags"));
                }
                if (flags & FLAG_TID == 0 && tid != 0) || (flags & FLAG_CREDIT == 0 && credit != 0)
                {
                    return Err(RecordsError("a field marked absent is not zero"));
                }
                out.push(TokenRecord {
                    meter: p.meter(pan, tariff_index),
                    check_value: p.check_value(),
                    class: TokenClass::from_bits(class_subclass >> 4),
                    subclass: TokenSubclass::from_bits(class_subclass),
                    tid: if flags & FLAG_TID == 0 {
                        None
                    } else {
                        Some(TokenIdentifier::from_raw(tid).map_err(|_| RecordsError("TID"))?)
                    },
                    credit_units: (flags & FLAG_CREDIT != 0).then_some(credit),
                });
            }
            Ok(Self::Tokens(out))
        } else {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let pan = read_pan(&mut r)?;
                let current = profile(r.u32()?)?;
                let new = profile(r.u32()?)?;
                let current_ti = read_tariff_index(&mut r)?;
                let new_ti = read_tariff_index(&mut r)?;
                let tokens = r.u8()?;
                let (Some(current_check_value), Some(new_check_value)) =
                    (current.check_value(), new.check_value())
                else {
                    return Err(RecordsError("a key change without a key check value"));
                };
                out.push(KeyChangeRecord {
                    current: current.meter(pan, current_ti),
                    new: new.meter(pan, new_ti),
                    current_check_value,
                    new_check_value,
                    tokens,
                });
            }
            Ok(Self::KeyChanges(out))
        }
    }

    /// The number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Tokens(t) => t.len(),
            Self::KeyChanges(k) => k.len(),
        }
    }

    /// True when there is no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records as a JSON array, one object per token or set (for audit listings).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Tokens(tokens) => tokens
                .iter()
                .map(|t| {
                    json!({
                        "meter": meter_json(&t.meter),
                        "kcv": t.check_value.map(KeyCheckValue::to_hex),
                        "class": t.class.get(),
                        "subclass": t.subclass.get(),
                        "tid": t.tid.map(TokenIdentifier::get),
                        "credit_units": t.credit_units,
                    })
                })
                .collect(),
            Self::KeyChanges(changes) => changes
                .iter()
                .map(|k| {
                    json!({
                        "meter": meter_json(&k.current),
                        "new_meter": meter_json(&k.new),
                        "kcv": k.current_check_value.to_hex(),
                        "new_kcv": k.new_check_value.to_hex(),
                        "tokens": k.tokens,
                    })
                })
                .collect(),
        }
    }
}

/// A meter description as audit details name it.
pub(crate) fn meter_json(meter: &MeterDescription) -> serde_json::Value {
    json!({
        "pan": meter.pan.as_str(),
        "sgc": meter.supply_group.to_string(),
        "ti": meter.tariff_index.to_string(),
        "krn": meter.key_revision.to_string(),
        "kt": meter.key_type.to_string(),
        "base_date": meter.base_date.to_string(),
        "ea": meter.algorithm.to_string(),
        "dkga": meter.derivation.to_string(),
    })
}

/// What the records of a batch share: the meter description without PAN and TI, and the
/// vending key's check value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Profile {
    supply_group: SupplyGroupCode,
    key_type: KeyType,
    key_revision: KeyRevisionNumber,
    base_date: BaseDate,
    derivation: KeyDerivationAlgorithm,
    algorithm: EncryptionAlgorithm,
    check_value: Option<[u8; 3]>,
}

impl Profile {
    fn of(meter: &MeterDescription, check_value: Option<KeyCheckValue>) -> Self {
        Self {
            supply_group: meter.supply_group,
            key_type: meter.key_type,
            key_revision: meter.key_revision,
            base_date: meter.base_date,
            derivation: meter.derivation,
            algorithm: meter.algorithm,
            check_value: check_value.map(KeyCheckValue::to_bytes),
        }
    }

    fn meter(&self, pan: MeterPan, tariff_index: TariffIndex) -> MeterDescription {
        MeterDescription {
            pan,
            supply_group: self.supply_group,
            tariff_index,
            key_revision: self.key_revision,
            key_type: self.key_type,
            base_date: self.base_date,
            algorithm: self.algorithm,
            derivation: self.derivation,
        }
    }

    fn check_value(&self) -> Option<KeyCheckValue> {
        self.check_value.map(KeyCheckValue::from_bytes)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.supply_group.get().to_be_bytes());
        out.push(self.key_type.code());
        out.push(self.key_revision.get());
        out.extend_from_slice(&self.base_date.year().to_be_bytes());
        out.push(self.derivation.code());
        out.push(self.algorithm.code());
        match self.check_value {
            Some(kcv) => {
                out.push(1);
                out.extend_from_slice(&kcv);
            }
            None => out.extend_from_slice(&[0; 4]),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, RecordsError> {
        let supply_group = SupplyGroupCode::try_from(r.u32()?).map_err(|_| RecordsError("SGC"))?;
        let key_type = KeyType::try_from(r.u8()?).map_err(|_| RecordsError("key type"))?;
        let key_revision = KeyRevisionNumber::try_from(r.u8()?).map_err(|_| RecordsError("KRN"))?;
        let base_date = r
            .u16()?
            .to_string()
            .parse()
            .map_err(|_| RecordsError("base date"))?;
        let derivation = format!("{:02}", r.u8()?)
            .parse()
            .map_err(|_| RecordsError("DKGA"))?;
        let algorithm = format!("{:02}", r.u8()?)
            .parse()
            .map_err(|_| RecordsError("EA"))?;
        let check_value = match (r.u8()?, r.array::<3>()?) {
            (0, [0, 0, 0]) => None,
            (1, kcv) => Some(kcv),
            _ => return Err(RecordsError("KCV flag")),
        };
        Ok(Self {
            supply_group,
            key_type,
            key_revision,
            base_date,
            derivation,
            algorithm,
            check_value,
        })
    }
}

fn read_pan(r: &mut Reader<'_>) -> Result<MeterPan, RecordsError> {
    let value = r.u64()?;
    if value >= 1_000_000_000_000_000_000 {
        return Err(RecordsError("PAN"));
    }
    format!("{value:018}")
        .parse()
        .map_err(|_| RecordsError("PAN"))
}

fn read_tariff_index(r: &mut Reader<'_>) -> Result<TariffIndex, RecordsError> {
    TariffIndex::try_from(r.u8()?).map_err(|_| RecordsError("TI"))
}

/// The PAN's 18 digits as a number (below 10^18 < 2^60).
pub(crate) fn pan_number(pan: &MeterPan) -> u64 {
    let d = pan.as_bytes();
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&d[..8]);
    low.copy_from_slice(&d[8..16]);
    let tail = u64::from(d[16].wrapping_sub(b'0')) * 10 + u64::from(d[17].wrapping_sub(b'0'));
    (eight_digits(high) * 100_000_000 + eight_digits(low)) * 100 + tail
}

/// Eight ASCII digits as a number, three multiplications for all of them (the SWAR method of
/// simdjson and fast_float): bytes to digits, then pairs, quadruples and the whole.
fn eight_digits(digits: [u8; 8]) -> u64 {
    let v = u64::from_le_bytes(digits).wrapping_sub(0x3030_3030_3030_3030);
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordsError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(RecordsError("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, RecordsError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RecordsError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u24(&mut self) -> Result<u32, RecordsError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    fn u32(&mut self) -> Result<u32, RecordsError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RecordsError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// The most records in one audit entry: a larger batch takes several entries (in the same
/// transaction), so that no entry grows without bound.
pub(crate) const MAX_RECORDS_PER_ENTRY: usize = 65_536;

/// Builds the records of one batch entry.
pub(crate) struct RecordsWriter {
    kind: u8,
    profiles: Vec<Profile>,
    index: HashMap<Profile, u32>,
    last: Option<(Profile, u32)>,
    records: Vec<u8>,
    count: u32,
}

impl RecordsWriter {
    /// Records for up to `capacity` tokens.
    pub(crate) fn tokens(capacity: usize) -> Self {
        Self::new(KIND_TOKENS, capacity.min(MAX_RECORDS_PER_ENTRY) * TOKEN_LEN)
    }

    /// Records for up to `capacity` key change sets.
    pub(crate) fn key_changes(capacity: usize) -> Self {
        Self::new(
            KIND_KEY_CHANGES,
            capacity.min(MAX_RECORDS_PER_ENTRY) * CHANGE_LEN,
        )
    }

    fn new(kind: u8, bytes: usize) -> Self {
        Self {
            kind,
            profiles: Vec::new(),
            index: HashMap::new(),
            last: None,
            records: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// The number of records so far.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first record.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when the entry is full: start another.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= MAX_RECORDS_PER_ENTRY
    }

    fn profile(&mut self, profile: Profile) -> u32 {
        if let Some((last, i)) = self.last
            && last == profile
        {
            return i;
        }
        let next = self.profiles.len() as u32;
        let i = *self.index.entry(profile).or_insert(next);
        if i == next {
            self.profiles.push(profile);
        }
        self.last = Some((profile, i));
        i
    }

    /// Adds a token's record.
    pub(crate) fn push_token(&mut self, record: &TokenRecord) {
        let profile = self.profile(Profile::of(&record.meter, record.check_value));
        let r = &mut self.records;
        r.extend_from_slice(&pan_number(&record.meter.pan).to_be_bytes());
        r.extend_from_slice(&profile.to_be_bytes());
        r.push(record.meter.tariff_index.get());
        r.push(record.class.get() << 4 | record.subclass.get());
        let mut flags = 0;
        if record.tid.is_some() {
            flags |= FLAG_TID;
        }
        if record.credit_units.is_some() {
            flags |= FLAG_CREDIT;
        }
        r.push(flags);
        r.extend_from_slice(&record.tid.map_or(0, TokenIdentifier::get).to_be_bytes()[1..]);
        r.extend_from_slice(&record.credit_units.unwrap_or(0).to_be_bytes());
        self.count += 1;
    }

    /// Adds a key change set's record; the two descriptions share the PAN.
    pub(crate) fn push_key_change(&mut self, record: &KeyChangeRecord) {
        let current = self.profile(Profile::of(
            &record.current,
            Some(record.current_check_value),
        ));
        let new = self.profile(Profile::of(&record.new, Some(record.new_check_value)));
        let r = &mut self.records;
        r.extend_from_slice(&pan_number(&record.current.pan).to_be_bytes());
        r.extend_from_slice(&current.to_be_bytes());
        r.extend_from_slice(&new.to_be_bytes());
        r.push(record.current.tariff_index.get());
        r.push(record.new.tariff_index.get());
        r.push(record.tokens);
        self.count += 1;
    }

    /// The encoded records.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(10 + self.profiles.len() * PROFILE_LEN + self.records.len());
        out.push(self.kind);
        out.push(VERSION);
        out.extend_from_slice(&(self.profiles.len() as u32).to_be_bytes());
        for p in &self.profiles {
            p.write(&mut out);
        }
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.records);
        out
    }

    /// The distinct check values of the vending keys recorded, in first-use order.
    pub(crate) fn check_values(&self) -> Vec<KeyCheckValue> {
        let mut out: Vec<KeyCheckValue> = Vec::new();
        for kcv in self.profiles.iter().filter_map(Profile::check_value) {
            if !out.contains(&kcv) {
                out.push(kcv);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sts_core::KeyType;

    use super::*;

    fn meter(pan: &str, kt: KeyType, ea: EncryptionAlgorithm) -> MeterDescription {
        MeterDescription {
            pan: pan.parse().unwrap(),
            supply_group: "123457".parse().unwrap(),
            tariff_index: "07".parse().unwrap(),
            key_revision: "2".parse().unwrap(),
            key_type: kt,
            base_date: BaseDate::Y2014,
            algorithm: ea,
            derivation: KeyDerivationAlgorithm::Dkga02,
        }
    }

    fn tokens() -> Vec<TokenRecord> {
        let kcv = KeyCheckValue::from_bytes([0xAB, 0xCD, 0xEF]);
        vec![
            TokenRecord {
                meter: meter(
                    "600727000000000009",
                    KeyType::Unique,
                    EncryptionAlgorithm::Sta,
                ),
                check_value: Some(kcv),
                class: TokenClass::TRANSFER_CREDIT,
                subclass: TokenSubclass::from_bits(0),
                tid: Some(TokenIdentifier::from_raw(5_871_715).unwrap()),
                credit_units: Some(1250),
            },
            TokenRecord {
                meter: meter(
                    "000001000000000082",
                    KeyType::Unique,
                    EncryptionAlgorithm::Sta,
                ),
                check_value: Some(kcv),
                class: TokenClass::MANAGEMENT,
                subclass: TokenSubclass::from_bits(5),
                tid: Some(TokenIdentifier::from_raw(TokenIdentifier::MAX).unwrap()),
                credit_units: None,
            },
            TokenRecord {
                meter: meter(
                    "600727000000000017",
                    KeyType::Initialization,
                    EncryptionAlgorithm::Misty1,
                ),
                check_value: None,
                class: TokenClass::INITIATE_METER_TEST,
                subclass: TokenSubclass::from_bits(1),
                tid: None,
                credit_units: None,
            },
        ]
    }

    #[test]
    fn tokens_round_trip_with_shared_profiles() {
        let records = tokens();
        let mut w = RecordsWriter::tokens(records.len());
        for r in &records {
            w.push_token(r);
        }
        assert_eq!(
            w.check_values(),
            vec![KeyCheckValue::from_bytes([0xAB, 0xCD, 0xEF])]
        );
        let bytes = w.finish();
        // Two profiles (the first two tokens share one), three records.
        assert_eq!(bytes.len(), 2 + 4 + 2 * PROFILE_LEN + 4 + 3 * TOKEN_LEN);
        assert_eq!(
            BatchRecords::decode(&bytes),
            Ok(BatchRecords::Tokens(records))
        );
    }

    #[test]
    fn key_changes_round_trip() {
        let current = meter(
            "600727000000000009",
            KeyType::Default,
            EncryptionAlgorithm::Sta,
        );
        let mut new = meter(
            "600727000000000009",
            KeyType::Unique,
            EncryptionAlgorithm::Sta,
        );
        new.base_date = BaseDate::Y2035;
        new.tariff_index = "12".parse().unwrap();
        let record = KeyChangeRecord {
            current,
            new,
            current_check_value: KeyCheckValue::from_bytes([1, 2, 3]),
            new_check_value: KeyCheckValue::from_bytes([4, 5, 6]),
            tokens: 3,
        };
        let mut w = RecordsWriter::key_changes(1);
        w.push_key_change(&record);
        let decoded = BatchRecords::decode(&w.finish()).unwrap();
        assert_eq!(decoded, BatchRecords::KeyChanges(vec![record]));
        assert_eq!(decoded.to_json()[0]["new_meter"]["base_date"], "2035");
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let mut w = RecordsWriter::tokens(1);
        w.push_token(&tokens()[0]);
        let good = w.finish();
        let refused = |bytes: &[u8]| BatchRecords::decode(bytes).is_err();
        assert!(!refused(&good));
        assert!(refused(&good[..good.len() - 1]), "truncated");
        assert!(refused(&[good.as_slice(), &[0]].concat()), "trailing byte");
        let mut bad = good.clone();
        bad[1] = 2;
        assert!(refused(&bad), "version");
        let mut bad = good.clone();
        bad[0] = 3;
        assert!(refused(&bad), "kind");
        // The PAN's last digit: its check digit no longer matches.
        let pan_at = 2 + 4 + PROFILE_LEN + 4;
        let mut bad = good.clone();
        bad[pan_at + 7] ^= 1;
        assert!(refused(&bad), "PAN check digit");
        // Profile index out of range.
        let mut bad = good.clone();
        bad[pan_at + 11] = 1;
        assert!(refused(&bad), "profile index");
    }

    #[test]
    fn pan_numbers() {
        for drn in [
            "00000000000",
            "0100000000008",
            "99999999999",
            "9999999999999",
        ] {
            let pan = MeterPan::from_drn(drn).unwrap();
            assert_eq!(
                pan_number(&pan),
                pan.as_str().parse::<u64>().unwrap(),
                "{pan}"
            );
        }
    }

    proptest! {
        #[test]
        fn pan_number_is_the_digits(drn in 0u64..100_000_000_000) {
            let pan = MeterPan::from_drn(&format!("{drn:011}")).unwrap();
            prop_assert_eq!(pan_number(&pan), pan.as_str().parse::<u64>().unwrap());
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BatchRecords::decode(&bytes);
        }

        #[test]
        fn any_changed_byte_of_a_good_encoding_never_panics(at in 0usize..200, xor in 1u8..) {
            let mut w = RecordsWriter::tokens(3);
            for r in &tokens() {
                w.push_token(r);
            }
            let mut bytes = w.finish();
            let at = at % bytes.len();
            bytes[at] ^= xor;
            if let Ok(decoded) = BatchRecords::decode(&bytes) {
                // What still decodes is a different set of records.
                prop_assert_ne!(decoded, BatchRecords::Tokens(tokens()));
            }
        }
    }
}
