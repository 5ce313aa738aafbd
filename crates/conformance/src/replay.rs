//! Meter mode: replays `token` and `kct_set` records through a fresh `sts-meter` meter built
//! from each record's key inputs, and checks that the meter accepts the token with the effect
//! the record's inputs describe (amount, TID, register, new key ...).
//!
//! The expected effect is computed from the block the engine builds from the record's inputs,
//! not from the meter's own decoding, so a decoding fault in the meter shows up as a mismatch.
//! The conformance meter differs from a default one in two documented ways: its currency
//! registers hold any amount a token can carry, either sign (so the largest credits and debit
//! tokens show their effect), and its manufacturer code is the one the record's class 1 token
//! carries (CTSA02/CTSA11 test meters of that code).

use sts_core::{
    BaseDate, CurrencyAmount, DataBlock, DecoderKey, EncryptionAlgorithm, KeyDerivationAlgorithm,
    KeyExpiryNumber, KeyType, MeterDescription, MeterPan, Register, Service, TransferAmount,
};
use sts_meter::{Applied, KeyAttributes, ManufacturerCode, Meter, MeterConfig};

use crate::{
    Verdict,
    engine::{Diffs, base_date, decoder_key, key_hex, token_record},
    record::Record,
};

pub(crate) fn check(r: &Record) -> Verdict {
    let mut d = Diffs::default();
    let result = match r.kind().as_deref() {
        Some("token") => token(r, &mut d),
        Some("kct_set") => kct_set(r, &mut d),
        Some(other) => {
            return Verdict::Skip(format!(
                "meter mode replays token and kct_set records, not {other}"
            ));
        }
        None => Err(Outcome::Fail("record has no kind (field v)".to_owned())),
    };
    match result {
        Err(Outcome::Skip(reason)) => Verdict::Skip(reason),
        Err(Outcome::Fail(message)) => Verdict::Fail(vec![message]),
        Ok(()) if d.0.is_empty() => Verdict::Pass,
        Ok(()) => Verdict::Fail(d.0),
    }
}

enum Outcome {
    Skip(String),
    Fail(String),
}

impl From<String> for Outcome {
    fn from(message: String) -> Self {
        Self::Fail(message)
    }
}

impl From<&str> for Outcome {
    fn from(message: &str) -> Self {
        Self::Fail(message.to_owned())
    }
}

/// A meter for the record's key inputs (defaults where a record gives only a decoder key).
fn meter_for(
    inputs: &Record,
    prefix: &str,
    key: DecoderKey,
    algorithm: EncryptionAlgorithm,
    manufacturer: Option<u16>,
) -> Result<Meter, String> {
    let field = |name: &str| format!("{prefix}{name}");
    let pan = inputs
        .parse::<MeterPan>("pan")?
        .map_or_else(|| "600727000000000009".parse::<MeterPan>(), Ok)
        .map_err(|e| e.to_string())?;
    let derivation = match inputs.parse::<KeyDerivationAlgorithm>(&field("dkga"))? {
        Some(dkga) => dkga,
        None if key.bits() == 128 => KeyDerivationAlgorithm::Dkga04,
        None => KeyDerivationAlgorithm::Dkga02,
    };
    let description = MeterDescription {
        pan,
        supply_group: inputs
            .parse(&field("sgc"))?
            .map_or_else(|| "000000".parse(), Ok)
            .map_err(|e: sts_core::IdentifierError| e.to_string())?,
        tariff_index: inputs
            .parse(&field("ti"))?
            .map_or_else(|| "01".parse(), Ok)
            .map_err(|e: sts_core::IdentifierError| e.to_string())?,
        key_revision: inputs
            .parse(&field("krn"))?
            .map_or_else(|| "1".parse(), Ok)
            .map_err(|e: sts_core::IdentifierError| e.to_string())?,
        key_type: inputs.parse(&field("kt"))?.unwrap_or(KeyType::Unique),
        base_date: base_date(inputs)?,
        algorithm,
        derivation,
    };
    let mut config = MeterConfig::new(pan);
    // Wide enough for the largest currency token (about 1.8e35 units of 10^-5), either sign.
    config.currency_maximum = i128::MAX / 4;
    config.currency_minimum = -config.currency_maximum;
    if let Some(code) = manufacturer {
        config.manufacturer = ManufacturerCode::try_from(code).map_err(|e| e.to_string())?;
    }
    Meter::new(
        config,
        KeyAttributes::from_description(&description, KeyExpiryNumber::NEVER),
        key,
    )
    .map_err(|e| format!("cannot build the meter: {e}"))
}

/// What accepting the block should do to a fresh meter.
fn compare_effect(block: &DataBlock, applied: &Applied, d: &mut Diffs) {
    let data = block.data();
    let tid = ((data >> 16) & 0xFF_FFFF) as u32;
    let value = data as u16;
    let sub = block.subclass().get();
    let mut check_tid = |got: Option<sts_core::TokenIdentifier>| {
        d.compare("TID", tid, got.map_or(u32::MAX, |t| t.get()));
    };
    match (block.class().get(), sub, *applied) {
        (
            0,
            0..=3,
            Applied::Credit {
                service,
                tid: got,
                added,
                ..
            },
        ) => {
            check_tid(Some(got));
            d.compare(
                "service",
                Service::ALL[usize::from(sub)].name(),
                service.name(),
            );
            d.compare(
                "credit added",
                TransferAmount::from_field(value).value(),
                added,
            );
        }
        (
            0,
            4..=7,
            Applied::CurrencyCredit {
                service,
                tid: got,
                added,
                ..
            },
        ) => {
            check_tid(Some(got));
            d.compare(
                "service",
                Service::ALL[usize::from(sub - 4)].name(),
                service.name(),
            );
            let field = ((((data >> 40) & 0xF) << 16) | (data & 0xFFFF)) as u32;
            d.compare(
                "currency added",
                CurrencyAmount::from_field(field).units(),
                added,
            );
        }
        (1, s, Applied::MeterTest { control, .. }) => {
            let mfr_bits = if s == 1 { 16 } else { 8 };
            d.compare("control", data >> mfr_bits, control);
        }
        (2, 0, Applied::MaximumPowerLimit { tid: got, watts }) => {
            check_tid(Some(got));
            d.compare(
                "maximum power limit",
                TransferAmount::from_field(value).value(),
                watts,
            );
        }
        (2, 1, Applied::CreditCleared { tid: got, register }) => {
            check_tid(Some(got));
            d.compare("register", Register(value).0, register.0);
        }
        (2, 2, Applied::TariffRate { tid: got, raw })
        | (2, 7, Applied::WaterMeterFactor { tid: got, raw }) => {
            check_tid(Some(got));
            d.compare("field", value, raw);
        }
        (2, 5, Applied::TamperCleared { tid: got, .. }) => check_tid(Some(got)),
        (2, 6, Applied::PhaseUnbalanceLimit { tid: got, watts }) => {
            check_tid(Some(got));
            d.compare(
                "phase unbalance limit",
                TransferAmount::from_field(value).value(),
                watts,
            );
        }
        (2, 3 | 4 | 8 | 9, Applied::KeyChangeStaged { section, have, .. }) => {
            d.compare("staged section", sub, section.get());
            d.compare("sections staged", 1, have);
        }
        (class, subclass, other) => d.note(format!(
            "class {class} subclass {subclass}: unexpected effect: {other}"
        )),
    }
}

fn token(outer: &Record, d: &mut Diffs) -> Result<(), Outcome> {
    let record = token_record(outer, d)?;
    let class = record.expected.class();
    let block = match record.built {
        Some((block, _)) => block,
        None => {
            // A class 1 record with only its decoded form: the block is the token itself.
            DataBlock::from_bits(class, record.expected.block())
        }
    };
    let (key, algorithm, manufacturer) = match record.key {
        Some((key, algorithm)) => (key, algorithm, None),
        None if !class.is_encrypted() => {
            // Class 1 is not encrypted: the meter gets a placeholder key, and the manufacturer
            // code the token carries.
            let s = block.subclass().get();
            let mfr_bits = if s == 1 { 16 } else { 8 };
            let mfr = (block.data() & ((1 << mfr_bits) - 1)) as u16;
            (DecoderKey::from_u64(0), EncryptionAlgorithm::Sta, Some(mfr))
        }
        None => {
            return Err(Outcome::Skip(
                "no decoder key: the record gives neither dk nor vk".to_owned(),
            ));
        }
    };
    let mut meter = meter_for(&record.inputs, "", key, algorithm, manufacturer)?;
    match meter.enter(record.expected, 0) {
        Ok(applied) => compare_effect(&block, &applied, d),
        Err(rejection) => d.note(format!(
            "the meter rejected {}: {rejection}",
            record.expected
        )),
    }
    Ok(())
}

fn kct_set(r: &Record, d: &mut Diffs) -> Result<(), Outcome> {
    let Some((old_key, algorithm)) = decoder_key(r, "", d)? else {
        return Err(Outcome::Skip(
            "no current key: the record gives neither dk nor vk".to_owned(),
        ));
    };
    let Some((new_key, _)) = decoder_key(r, "new_", d)? else {
        return Err(Outcome::Skip(
            "no new key: the record gives neither new_dk nor new_vk".to_owned(),
        ));
    };
    let wide = old_key.bits() == 128;
    let mut meter = meter_for(r, "", old_key, algorithm, None)?;
    let tokens = r.list("tokens").ok_or("field tokens is missing")?;
    let subclasses = r.subclasses()?;
    let complete = if wide {
        subclasses.len() == 4
    } else {
        subclasses.contains(&3)
            && subclasses.contains(&4)
            && subclasses.len() == 2 + usize::from(subclasses.contains(&8))
    };
    let mut last = None;
    for (token, subclass) in tokens.iter().zip(&subclasses) {
        match meter.enter_digits(token, 0) {
            Ok(applied) => last = Some(applied),
            Err(rejection) => {
                d.note(format!(
                    "the meter rejected section 2/{subclass} {token}: {rejection}"
                ));
                return Ok(());
            }
        }
    }
    let Some(applied) = last else {
        return Err(Outcome::Fail("the record has no tokens".to_owned()));
    };
    if !complete {
        match applied {
            Applied::KeyChangeStaged { have, .. } => {
                d.compare("sections staged", subclasses.len(), have)
            }
            other => d.note(format!("a partial set should stay staged, got: {other}")),
        }
        return Ok(());
    }
    let ro = r.integer("ro")?.unwrap_or(0) == 1;
    let old_base = base_date(r)?;
    match applied {
        Applied::KeyChanged {
            key_type,
            key_revision,
            tariff_index,
            expiry,
            supply_group,
            rollover,
            sections,
        } => {
            d.compare(
                "new KT",
                r.text("new_kt").unwrap_or_default(),
                key_type.code(),
            );
            d.compare(
                "new KRN",
                r.text("new_krn").unwrap_or_default(),
                key_revision.get(),
            );
            d.compare(
                "new TI",
                r.parse::<sts_core::TariffIndex>("new_ti")?
                    .map(|t| t.get())
                    .unwrap_or(0),
                tariff_index.get(),
            );
            d.compare(
                "new KEN",
                KeyExpiryNumber::from_nibbles(r.nibble("kenho")?, r.nibble("kenlo")?).get(),
                expiry.get(),
            );
            d.compare("sections", subclasses.len(), sections);
            let carried = wide || subclasses.contains(&8);
            let expected_sgc = if carried {
                r.text("new_sgc").unwrap_or_default()
            } else {
                "unchanged".to_owned()
            };
            d.compare(
                "new SGC",
                expected_sgc,
                supply_group.map_or("unchanged".to_owned(), |s| s.to_string()),
            );
            let expected_rollover = if ro {
                old_base.next().map_or("none".to_owned(), |b| b.to_string())
            } else {
                "none".to_owned()
            };
            d.compare(
                "rollover to",
                expected_rollover,
                rollover.map_or("none".to_owned(), |b: BaseDate| b.to_string()),
            );
            d.compare(
                "meter's new key",
                key_hex(&new_key),
                key_hex(meter.secrets().decoder_key()),
            );
            if ro {
                d.compare("TID memory after rollover", 0, meter.state().tids.len());
            }
        }
        other => d.note(format!(
            "a complete set should change the key, got: {other}"
        )),
    }
    Ok(())
}
