//! Explaining tokens to people (text) and programs (JSON).

use serde_json::{Value, json};
use sts_core::{BaseDate, KeyChangeSection, Service, Token, TokenNumber, token::MeterTestFormat};

/// Prints a JSON value on one line.
pub(crate) fn print_json(value: &Value) {
    println!("{value}");
}

fn units(service: Service, tenths: u32) -> String {
    format!("{}.{} {}", tenths / 10, tenths % 10, service.unit())
}

/// A token's meaning: a one-line summary and its fields as JSON.
pub(crate) fn describe(token: &Token, base_date: Option<BaseDate>) -> (String, Value) {
    let tid_fields = |tid: sts_core::TokenIdentifier| -> Value {
        match base_date {
            Some(base) => json!({ "tid": tid.get(), "issued": tid.to_time(base).to_string() }),
            None => json!({ "tid": tid.get() }),
        }
    };
    let when = |tid: sts_core::TokenIdentifier| -> String {
        match base_date {
            Some(base) => format!("TID {} ({} UTC)", tid.get(), tid.to_time(base)),
            None => format!("TID {}", tid.get()),
        }
    };
    let mut fields = json!({
        "class": token.class().get(),
        "subclass": token.subclass().get(),
    });
    let (summary, extra) = match *token {
        Token::TransferCredit {
            service,
            rnd,
            tid,
            amount,
        } => (
            format!(
                "{} credit {}, {}",
                service.name(),
                units(service, amount.value()),
                when(tid)
            ),
            json!({ "kind": "credit", "service": service.name(), "tenths": amount.value(),
                    "amount": units(service, amount.value()), "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::CurrencyCredit {
            service,
            tid,
            amount,
        } => (
            format!(
                "{} currency credit {}, {}",
                service.name(),
                amount,
                when(tid)
            ),
            json!({ "kind": "currency", "service": service.name(), "amount": amount.to_string(),
                    "units_1e5": amount.units().to_string(), "tid_info": tid_fields(tid) }),
        ),
        Token::InitiateMeterTest {
            format,
            control,
            manufacturer,
        } => {
            let format_name = match format {
                MeterTestFormat::Short => "short",
                MeterTestFormat::Long => "long",
                MeterTestFormat::ExtendedRead => "extended read",
            };
            (
                format!(
                    "meter test/display ({format_name}), control {control:#x}, manufacturer {manufacturer}"
                ),
                json!({ "kind": "meter_test", "format": format_name, "control": control, "manufacturer": manufacturer }),
            )
        }
        Token::SetMaximumPowerLimit { rnd, tid, limit } => (
            format!("set maximum power limit {} W, {}", limit.value(), when(tid)),
            json!({ "kind": "max_power_limit", "watts": limit.value(), "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::ClearCredit { rnd, tid, register } => (
            format!(
                "clear credit register {}, {}",
                register_name(register.0),
                when(tid)
            ),
            json!({ "kind": "clear_credit", "register": register.0, "register_name": register_name(register.0),
                    "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::SetTariffRate { rnd, tid, rate } => (
            format!("set tariff rate {rate}, {}", when(tid)),
            json!({ "kind": "tariff_rate", "rate": rate, "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::ClearTamperCondition { rnd, tid, pad } => (
            format!("clear tamper condition, {}", when(tid)),
            json!({ "kind": "clear_tamper", "pad": pad, "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::SetMaximumPhasePowerUnbalanceLimit { rnd, tid, limit } => (
            format!(
                "set maximum phase power unbalance limit {} W, {}",
                limit.value(),
                when(tid)
            ),
            json!({ "kind": "phase_unbalance_limit", "watts": limit.value(), "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::SetWaterMeterFactor { rnd, tid, factor } => (
            format!("set water meter factor {factor}, {}", when(tid)),
            json!({ "kind": "water_meter_factor", "factor": factor, "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::ExtendedTokenSet { rnd, tid, field } => (
            format!(
                "extended token set, index {}, field {field:#06X}, {}",
                field >> 10,
                when(tid)
            ),
            json!({ "kind": "extended_set", "field": field, "index": field >> 10, "rnd": rnd.get(), "tid_info": tid_fields(tid) }),
        ),
        Token::KeyChange(section) => describe_section(section),
        _ => (
            "token of an unknown kind".to_owned(),
            json!({ "kind": "unknown" }),
        ),
    };
    if let (Some(map), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        for (k, v) in extra {
            if k == "tid_info" {
                if let Value::Object(t) = v {
                    map.extend(t);
                }
            } else {
                map.insert(k, v);
            }
        }
    }
    (summary, fields)
}

fn describe_section(section: KeyChangeSection) -> (String, Value) {
    match section {
        KeyChangeSection::First {
            expiry_high,
            key_revision,
            rollover,
            three_sections,
            key_type,
            ..
        } => (
            format!(
                "key change, 1st section: new KRN {key_revision}, KT {} ({}), KENHO {expiry_high}{}{}",
                key_type.code(),
                key_type.abbreviation(),
                if rollover { ", rollover" } else { "" },
                if three_sections { ", 3-token set" } else { "" }
            ),
            json!({ "kind": "key_change_1", "krn": key_revision.get(), "kt": key_type.code(),
                    "kenho": expiry_high, "rollover": rollover, "three_sections": three_sections }),
        ),
        KeyChangeSection::Second {
            expiry_low,
            tariff_index,
            ..
        } => (
            format!("key change, 2nd section: new TI {tariff_index}, KENLO {expiry_low}"),
            json!({ "kind": "key_change_2", "ti": tariff_index.get(), "kenlo": expiry_low }),
        ),
        KeyChangeSection::SupplyGroup { supply_group } => (
            format!("key change, 3rd section: new SGC {supply_group}"),
            json!({ "kind": "key_change_3", "sgc": supply_group.to_string() }),
        ),
        KeyChangeSection::Third {
            supply_group_low, ..
        } => (
            format!("key change, 3rd section (128-bit key): SGC low bits {supply_group_low:#05X}"),
            json!({ "kind": "key_change_3", "sgc_low": supply_group_low }),
        ),
        KeyChangeSection::Fourth {
            supply_group_high, ..
        } => (
            format!(
                "key change, 4th section (128-bit key): SGC high bits {supply_group_high:#05X}"
            ),
            json!({ "kind": "key_change_4", "sgc_high": supply_group_high }),
        ),
    }
}

/// The name of a clear-credit register code.
pub(crate) fn register_name(code: u16) -> String {
    match code {
        0..=3 => format!("{} units", Service::ALL[usize::from(code)].name()),
        4..=7 => format!("{} currency", Service::ALL[usize::from(code - 4)].name()),
        0xFFFF => "all".to_owned(),
        other => format!("{other} (reserved)"),
    }
}

/// A token for people: grouped digits.
pub(crate) fn grouped(number: TokenNumber) -> String {
    number.grouped().to_string()
}

/// A progress bar on standard error for `total` items called `unit` ("meters", "rows"):
/// position, rate per second and ETA. None when standard error is not a terminal (the
/// commands then print a line now and then instead).
pub(crate) fn progress_bar(total: u64, unit: &str) -> Option<indicatif::ProgressBar> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit}, {{rate}}/s, ETA {{eta}}"
            ))
            .map(|s| {
                s.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}", state.per_sec());
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    })
}
