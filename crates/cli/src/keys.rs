//! Key material from files or environment variables, and the meter it belongs to.
//!
//! # Security
//! Keys never come from the command line. Text read from a file or variable is wiped after
//! parsing; the parsed keys wipe themselves on drop.

use std::{fs, path::Path};

use sts_core::{
    DecoderKey, DecoderKeyGenerator, EncryptionAlgorithm, KeyDerivationAlgorithm, MeterDescription,
    MeterPan, TokenCipher, VendingKey,
};
use zeroize::Zeroizing;

use crate::{
    args::{MeterArgs, MeterIdentityArgs},
    failure::{Failure, Hint, fail},
};

/// Reads hex key text from `file`, else from the environment variable `env`. Lines starting
/// with `#` in a file are comments. `Ok(None)` when neither holds anything.
pub(crate) fn read_secret(
    file: Option<&Path>,
    env: &str,
) -> Result<Option<Zeroizing<String>>, Failure> {
    if let Some(path) = file {
        let text = Zeroizing::new(fs::read_to_string(path).hint(
            format!("cannot read key file {}", path.display()),
            "check the path and its permissions",
        )?);
        let mut key = Zeroizing::new(String::with_capacity(text.len()));
        for line in text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
        {
            key.push_str(line.trim());
        }
        return Ok(Some(key));
    }
    match std::env::var(env) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Zeroizing::new(value.trim().to_owned()))),
        _ => Ok(None),
    }
}

/// The vending key of `meter`'s arguments, if given.
pub(crate) fn vending_key(meter: &MeterArgs) -> Result<Option<VendingKey>, Failure> {
    let source = &meter.vending_key;
    let Some(text) = read_secret(source.vending_key_file.as_deref(), &source.vending_key_env)?
    else {
        return Ok(None);
    };
    VendingKey::from_hex(&text)
        .hint(
            "invalid vending key",
            "a vending key is 16 hex digits (DKGA02) or 40 (DKGA04)",
        )
        .map(Some)
}

/// A meter as the arguments describe it, with its decoder key.
pub(crate) struct Meter {
    /// The key derivation inputs, when they were given in full.
    pub(crate) description: Option<MeterDescription>,
    /// The decoder key.
    pub(crate) key: DecoderKey,
    /// The cipher for the meter's algorithm.
    pub(crate) cipher: TokenCipher,
}

/// The PAN from `--pan` or `--drn`.
pub(crate) fn pan(meter: &MeterIdentityArgs) -> Result<Option<MeterPan>, Failure> {
    if let Some(pan) = meter.pan {
        return Ok(Some(pan));
    }
    match &meter.drn {
        Some(drn) => MeterPan::from_drn(drn)
            .hint(
                "invalid --drn",
                "a decoder reference number has 11 digits (IIN 600727) or 13 (IIN 0000)",
            )
            .map(Some),
        None => Ok(None),
    }
}

/// The full key derivation inputs, or an error naming what is missing.
pub(crate) fn description(
    meter: &MeterIdentityArgs,
    derivation: KeyDerivationAlgorithm,
) -> Result<MeterDescription, Failure> {
    let missing = |what: &str| {
        fail(
            format!("{what} is required to derive the decoder key"),
            "give --pan (or --drn), --sgc, --ti and --krn, or the decoder key itself with --decoder-key-file",
        )
    };
    Ok(MeterDescription {
        pan: pan(meter)?.ok_or_else(|| missing("--pan or --drn"))?,
        supply_group: meter.sgc.ok_or_else(|| missing("--sgc"))?,
        tariff_index: meter.ti.ok_or_else(|| missing("--ti"))?,
        key_revision: meter.krn.ok_or_else(|| missing("--krn"))?,
        key_type: meter.kt,
        base_date: meter.base_date,
        algorithm: meter.ea,
        derivation,
    })
}

/// The derivation algorithm: `--dkga`, else by the vending key's length.
pub(crate) fn derivation(
    meter: &MeterIdentityArgs,
    vending_key: &VendingKey,
) -> KeyDerivationAlgorithm {
    meter.dkga.unwrap_or(if vending_key.bits() == 160 {
        KeyDerivationAlgorithm::Dkga04
    } else {
        KeyDerivationAlgorithm::Dkga02
    })
}

/// Derives a decoder key, with a hint for each way it can fail.
pub(crate) fn derive(
    vending_key: &VendingKey,
    description: &MeterDescription,
) -> Result<DecoderKey, Failure> {
    DecoderKeyGenerator::new(description.derivation, vending_key)
        .and_then(|generator| generator.derive(description))
        .hint(
            "cannot derive the decoder key",
            "DKGA02 takes a 16-hex-digit vending key and makes EA07/EA09 keys; DKGA04 takes 40 hex digits and makes EA07/EA11 keys",
        )
}

/// The meter's decoder key: given directly, or derived from the vending key.
///
/// `Ok(None)` when no key material was given at all.
pub(crate) fn meter(args: &MeterArgs) -> Result<Option<Meter>, Failure> {
    let source = &args.decoder_key;
    let direct = read_secret(source.decoder_key_file.as_deref(), &source.decoder_key_env)?;
    let (key, description) = if let Some(text) = direct {
        let key = DecoderKey::from_hex(&text).hint(
            "invalid decoder key",
            "a decoder key is 16 hex digits (EA07, EA09) or 32 (EA11)",
        )?;
        // The inputs are optional with a direct key; keep them when complete, for display.
        let description = match (
            pan(&args.identity)?,
            args.identity.sgc,
            args.identity.ti,
            args.identity.krn,
        ) {
            (Some(pan), Some(supply_group), Some(tariff_index), Some(key_revision)) => {
                Some(MeterDescription {
                    pan,
                    supply_group,
                    tariff_index,
                    key_revision,
                    key_type: args.identity.kt,
                    base_date: args.identity.base_date,
                    algorithm: args.identity.ea,
                    derivation: args.identity.dkga.unwrap_or(KeyDerivationAlgorithm::Dkga02),
                })
            }
            _ => None,
        };
        (key, description)
    } else if let Some(vending_key) = vending_key(args)? {
        let description = description(&args.identity, derivation(&args.identity, &vending_key))?;
        (derive(&vending_key, &description)?, Some(description))
    } else {
        return Ok(None);
    };
    let cipher = cipher(args.identity.ea, &key)?;
    Ok(Some(Meter {
        description,
        key,
        cipher,
    }))
}

/// As [`meter`], but the key is required.
pub(crate) fn require_meter(args: &MeterArgs) -> Result<Meter, Failure> {
    meter(args)?.ok_or_else(|| {
        fail(
            "no key material given",
            format!(
                "pass --vending-key-file FILE (or set {}) with the meter's --pan, --sgc, --ti and --krn, or --decoder-key-file FILE (or set {})",
                args.vending_key.vending_key_env, args.decoder_key.decoder_key_env
            ),
        )
    })
}

/// The cipher for an algorithm and key, with a hint when the key length does not fit.
pub(crate) fn cipher(
    algorithm: EncryptionAlgorithm,
    key: &DecoderKey,
) -> Result<TokenCipher, Failure> {
    TokenCipher::new(algorithm, key).hint(
        format!("the decoder key does not fit EA{algorithm}"),
        "EA07 and EA09 take 64-bit keys (16 hex digits), EA11 a 128-bit key (32 hex digits): check --ea",
    )
}
