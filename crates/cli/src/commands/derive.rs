//! `sts derive-key`.

use std::process::ExitCode;

use serde_json::json;

use crate::{Outcome, args::DeriveKeyArgs, failure::fail, keys, output::print_json};

pub(crate) fn run(args: &DeriveKeyArgs, json: bool) -> Outcome {
    let meter = &args.meter;
    let vending_key = keys::vending_key(meter)?.ok_or_else(|| {
        fail(
            "no vending key given",
            format!(
                "pass --vending-key-file FILE or set {}",
                meter.vending_key.vending_key_env
            ),
        )
    })?;
    let description = keys::description(
        &meter.identity,
        keys::derivation(&meter.identity, &vending_key),
    )?;
    let key = keys::derive(&vending_key, &description)?;
    let mut buf = [0u8; 32];
    let hex = key.expose_hex(&mut buf);
    if json {
        print_json(&json!({
            "decoder_key": hex,
            "bits": key.bits(),
            "dkga": description.derivation.to_string(),
            "ea": description.algorithm.to_string(),
            "pan": description.pan.to_string(),
            "sgc": description.supply_group.to_string(),
            "ti": description.tariff_index.to_string(),
            "krn": description.key_revision.get(),
            "kt": description.key_type.code(),
            "base_date": description.base_date.year(),
        }));
    } else {
        println!("{hex}");
        eprintln!(
            "decoder key (DKGA{}, EA{}, {}-bit) for PAN {}: keep it secret",
            description.derivation,
            description.algorithm,
            key.bits(),
            description.pan
        );
    }
    zeroize::Zeroize::zeroize(&mut buf);
    Ok(ExitCode::SUCCESS)
}
