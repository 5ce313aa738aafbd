//! `sts key-change`: the 2, 3 or 4 tokens that move a meter to a new key.

use std::process::ExitCode;

use serde_json::json;
use sts_core::{KeyChange, MeterDescription, Token};

use crate::{
    Outcome,
    args::KeyChangeArgs,
    failure::{Failure, Hint, fail},
    keys,
    output::{describe, grouped, print_json},
};

/// The meter after the change: the current description with the new values.
fn new_description(args: &KeyChangeArgs, current: &MeterDescription) -> MeterDescription {
    MeterDescription {
        supply_group: args.new_sgc.unwrap_or(current.supply_group),
        tariff_index: args.new_ti.unwrap_or(current.tariff_index),
        key_revision: args.new_krn.unwrap_or(current.key_revision),
        key_type: args.new_kt.unwrap_or(current.key_type),
        base_date: args.new_base_date.unwrap_or(current.base_date),
        derivation: args.new_dkga.unwrap_or(current.derivation),
        ..*current
    }
}

/// The rollover bit: set when the base date moves to the next one.
fn rollover(
    args: &KeyChangeArgs,
    current: &MeterDescription,
    new: &MeterDescription,
) -> Result<bool, Failure> {
    if new.base_date == current.base_date {
        return Ok(args.rollover);
    }
    if current.base_date.next() != Some(new.base_date) {
        return Err(fail(
            format!(
                "cannot move a meter from base date {} to {}",
                current.base_date, new.base_date
            ),
            "a rollover key change moves a meter to the next base date only (1993 to 2014, 2014 to 2035)",
        ));
    }
    Ok(true)
}

pub(crate) fn run(args: &KeyChangeArgs, json: bool) -> Outcome {
    let meter = keys::require_meter(&args.meter)?;
    let current = meter.description.ok_or_else(|| {
        fail(
            "the meter's --pan (or --drn), --sgc, --ti and --krn are needed",
            "the new key is derived from them with the new values",
        )
    })?;
    let new = new_description(args, &current);
    let new_vending_key = match keys::read_secret(
        args.new_vending_key_file.as_deref(),
        &args.new_vending_key_env,
    )? {
        Some(text) => sts_core::VendingKey::from_hex(text.as_str()).hint(
            "invalid new vending key",
            "a vending key is 16 hex digits (DKGA02) or 40 (DKGA04)",
        )?,
        None => keys::vending_key(&args.meter)?.ok_or_else(|| {
            fail(
                "no vending key to derive the new decoder key from",
                "pass --new-vending-key-file FILE (or --vending-key-file for the same vending key)",
            )
        })?,
    };
    let change = KeyChange {
        key: keys::derive(&new_vending_key, &new)?,
        key_type: new.key_type,
        key_revision: new.key_revision,
        tariff_index: new.tariff_index,
        expiry: args.new_ken,
        supply_group: new.supply_group,
        rollover: rollover(args, &current, &new)?,
        include_supply_group: args.with_sgc,
    };
    let set = change.encode(&meter.cipher).hint(
        "cannot encode the key change",
        "this is a bug: please report it",
    )?;
    let tokens: Vec<_> = set
        .iter()
        .map(|t| {
            let (summary, fields) = describe(&Token::KeyChange(t.section), None);
            (t.number, summary, fields)
        })
        .collect();
    if json {
        print_json(&json!({
            "tokens": tokens.iter().map(|(n, _, _)| n.to_string()).collect::<Vec<_>>(),
            "sections": tokens.iter().map(|(n, _, f)| {
                let mut f = f.clone();
                if let Some(map) = f.as_object_mut() {
                    map.insert("token".into(), json!(n.to_string()));
                    map.insert("grouped".into(), json!(grouped(*n)));
                }
                f
            }).collect::<Vec<_>>(),
            "rollover": change.rollover,
            "new_krn": new.key_revision.get(),
            "new_kt": new.key_type.code(),
            "new_ti": new.tariff_index.to_string(),
            "new_sgc": new.supply_group.to_string(),
            "new_base_date": new.base_date.year(),
            "new_ken": args.new_ken.get(),
        }));
    } else {
        for (number, summary, _) in &tokens {
            println!("{}", grouped(*number));
            eprintln!("  {summary}");
        }
        eprintln!(
            "{} tokens: enter them all, in any order, before any token made with the new key{}",
            tokens.len(),
            if change.rollover {
                " (rollover: the meter clears its TID memory)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
