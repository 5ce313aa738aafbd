//! `sts decode`: what a token means for a meter, or why it is not valid for it.

use std::process::ExitCode;

use serde_json::json;
use sts_core::{DecodeError, TokenNumber, decode};

use crate::{
    Outcome,
    args::DecodeArgs,
    failure::{Hint, fail},
    keys,
    output::{describe, grouped, print_json},
};

pub(crate) fn run(args: &DecodeArgs, json: bool) -> Outcome {
    let number: TokenNumber = args.token.parse().hint(
        format!("invalid token {:?}", args.token),
        "a token is 20 digits; spaces and dashes between them are fine",
    )?;
    let meter = keys::meter(&args.meter)?;
    if number.class().is_encrypted() && meter.is_none() {
        return Err(fail(
            format!(
                "token class {} is encrypted: the meter's key is needed to decode it",
                number.class()
            ),
            "pass --vending-key-file FILE with --pan, --sgc, --ti and --krn, or --decoder-key-file FILE",
        ));
    }
    match decode(number, meter.as_ref().map(|m| &m.cipher)) {
        Ok(decoded) => {
            let (summary, mut fields) =
                describe(&decoded.token, Some(args.meter.identity.base_date));
            if json {
                if let Some(map) = fields.as_object_mut() {
                    map.insert("valid".into(), json!(true));
                    map.insert("token".into(), json!(number.to_string()));
                    map.insert(
                        "block".into(),
                        json!(format!("{:016X}", decoded.block.bits())),
                    );
                }
                print_json(&fields);
            } else {
                println!("valid: {summary}");
                eprintln!(
                    "token {}, class {} subclass {}, block {:016X}",
                    grouped(number),
                    decoded.block.class(),
                    decoded.block.subclass(),
                    decoded.block.bits()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let reason = match error {
                DecodeError::Crc => "crc",
                DecodeError::ReservedClass | DecodeError::ReservedSubclass { .. } => "reserved",
                DecodeError::ProprietarySubclass { .. } => "proprietary",
                DecodeError::Field(_) => "range",
                _ => "invalid",
            };
            if json {
                print_json(
                    &json!({ "valid": false, "token": number.to_string(), "reason": reason, "error": error.to_string() }),
                );
            } else {
                println!("rejected: {error}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
