//! `sts meter ...`: a meter simulator whose state lives in a file.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::ExitCode,
    time::SystemTime,
};

use serde_json::json;
use sts_core::{Service, UtcMinute};
use sts_meter::{KeyAttributes, ManufacturerCode, Meter, MeterConfig, MeterSecrets, MeterState};

use crate::{
    Outcome,
    args::{MeterCommand, MeterCreateArgs, MeterEnterArgs, MeterFileArgs, StateKeyArgs},
    commands::issue::now,
    failure::{Failure, Hint, fail},
    keys,
    output::print_json,
    state_file::{self, HistoryEntry, Public, StateKey},
};

pub(crate) fn run(command: &MeterCommand, json: bool) -> Outcome {
    match command {
        MeterCommand::Create(args) => create(args, json),
        MeterCommand::Enter(args) => enter(args, json),
        MeterCommand::Show(args) => show(args, json),
        MeterCommand::History(args) => history(args, json),
    }
}

/// The state key: from its file or variable. `create` may make a new key file.
fn state_key(args: &StateKeyArgs, may_create: bool) -> Result<StateKey, Failure> {
    if let Some(path) = &args.state_key_file
        && may_create
        && !path.exists()
    {
        let key = StateKey::generate()?;
        state_file::write_new_key(path, &key)?;
        eprintln!(
            "created state key {} (keep it: it opens the meter's decoder key)",
            path.display()
        );
        return Ok(key);
    }
    let text = keys::read_secret(args.state_key_file.as_deref(), &args.state_key_env)?.ok_or_else(
        || {
            fail(
                "no state key given",
                format!(
                    "pass --state-key-file FILE (meter create makes it if missing) or set {}",
                    args.state_key_env
                ),
            )
        },
    )?;
    StateKey::from_hex(&text)
}

fn open(path: &Path, key: &StateKey) -> Result<(Meter, Vec<HistoryEntry>), Failure> {
    let (public, secrets) = state_file::load(path, key)?;
    let corrupt = |what: &str| format!("meter state {} is corrupt: {what}", path.display());
    let hint = format!(
        "the previous good state, if any, is in {}",
        state_file::prev_path(path).display()
    );
    let state: MeterState =
        serde_json::from_value(public.state).hint(corrupt("its state does not parse"), &hint)?;
    let secrets =
        MeterSecrets::from_bytes(&secrets).hint(corrupt("its secrets do not parse"), &hint)?;
    let meter =
        Meter::from_parts(state, secrets).hint(corrupt("its state is inconsistent"), &hint)?;
    Ok((meter, public.history))
}

fn save(
    path: &Path,
    key: &StateKey,
    meter: &Meter,
    history: Vec<HistoryEntry>,
) -> Result<(), Failure> {
    let state = serde_json::to_value(meter.state()).hint(
        "cannot serialize the meter state",
        "this is a bug: please report it",
    )?;
    let secrets = meter.secrets().to_bytes();
    state_file::save(path, key, &Public { state, history }, secrets.as_ref())
}

fn create(args: &MeterCreateArgs, json: bool) -> Outcome {
    if args.state.exists() && !args.force {
        return Err(fail(
            format!("{} already exists", args.state.display()),
            "pass --force to replace it, or choose another --state path",
        ));
    }
    let resolved = keys::require_meter(&args.meter)?;
    let description = resolved.description.ok_or_else(|| {
        fail(
            "the meter's --pan (or --drn), --sgc, --ti and --krn are needed",
            "a meter is created with its identity and key attributes",
        )
    })?;
    let mut config = MeterConfig::new(description.pan);
    config.tid_memory_depth = args.tid_memory;
    config.extended_tokens = args.extended_tokens;
    if let Some(code) = args.manufacturer {
        config.manufacturer = ManufacturerCode::try_from(code)
            .hint("invalid --manufacturer", "a manufacturer code is 0-9999")?;
    }
    let attributes = KeyAttributes::from_description(&description, args.meter.identity.ken);
    let meter = Meter::new(config, attributes, resolved.key).hint(
        "cannot create the meter",
        "check --tid-memory (1-256) and the key for --ea",
    )?;
    let key = state_key(&args.state_key, true)?;
    save(&args.state, &key, &meter, Vec::new())?;
    if json {
        print_json(
            &json!({ "created": args.state.display().to_string(), "pan": description.pan.to_string() }),
        );
    } else {
        println!(
            "created meter {} (SGC {}, TI {}, KRN {}, KT {}, EA{}, DKGA{}, base date {}) in {}",
            description.pan,
            description.supply_group,
            description.tariff_index,
            description.key_revision,
            description.key_type.code(),
            description.algorithm,
            description.derivation,
            description.base_date,
            args.state.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The tokens to enter: arguments, then the lines of `--file` (blank lines and `#` comments
/// skipped).
fn tokens(args: &MeterEnterArgs) -> Result<Vec<String>, Failure> {
    let mut tokens = args.tokens.clone();
    if let Some(path) = &args.file {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(path)
                .hint(format!("cannot open {}", path.display()), "check the path")?;
            Box::new(BufReader::new(file))
        };
        for line in reader.lines() {
            let line = line.hint(format!("cannot read {}", path.display()), "check the file")?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                tokens.push(line.to_owned());
            }
        }
    }
    if tokens.is_empty() {
        return Err(fail(
            "no tokens to enter",
            "give tokens as arguments or with --file FILE (- for standard input)",
        ));
    }
    Ok(tokens)
}

fn enter(args: &MeterEnterArgs, json: bool) -> Outcome {
    let tokens = tokens(args)?;
    let key = state_key(&args.state_key, false)?;
    let (mut meter, mut history) = open(&args.state, &key)?;
    let clock = args.clock.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let at = match args.clock {
        Some(seconds) => UtcMinute::from_unix_seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        None => now(),
    }
    .to_string();
    let mut rejected = 0usize;
    for token in &tokens {
        let (status, code, detail, accepted) = match meter.enter_digits(token, clock) {
            Ok(applied) => (
                applied.status().name(),
                applied.status().code(),
                applied.to_string(),
                true,
            ),
            Err(rejection) => {
                rejected += 1;
                (
                    rejection.status().name(),
                    rejection.status().code(),
                    rejection.to_string(),
                    false,
                )
            }
        };
        if json {
            print_json(
                &json!({ "token": token, "accepted": accepted, "status": status, "code": code, "detail": detail }),
            );
        } else {
            println!(
                "{} {token}: {detail}",
                if accepted { "accepted" } else { "rejected" }
            );
        }
        history.push(HistoryEntry {
            at: at.clone(),
            token: token.clone(),
            status: status.to_owned(),
            code,
            detail,
        });
    }
    save(&args.state, &key, &meter, history)?;
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(args: &MeterFileArgs, json: bool) -> Outcome {
    let public = state_file::load_public(&args.state)?;
    if json {
        print_json(&public.state);
        return Ok(ExitCode::SUCCESS);
    }
    let hint = format!(
        "the previous good state, if any, is in {}",
        state_file::prev_path(&args.state).display()
    );
    let state: MeterState = serde_json::from_value(public.state).hint(
        format!("meter state {} is corrupt", args.state.display()),
        hint,
    )?;
    let k = &state.key;
    println!("meter {}", state.config.pan);
    println!(
        "  key: SGC {}, TI {}, KRN {}, KT {} ({}), KEN {}, EA{}, DKGA{}, base date {}",
        k.supply_group,
        k.tariff_index,
        k.key_revision,
        k.key_type.code(),
        k.key_type.abbreviation(),
        k.expiry,
        k.algorithm,
        k.derivation,
        k.base_date
    );
    for service in Service::ALL {
        let units = state.registers.units(service);
        let currency = state.registers.currency(service);
        println!(
            "  {:<12} {:>10}.{} {:<4} currency {}",
            service.name(),
            units / 10,
            units % 10,
            service.unit(),
            format_currency(currency)
        );
    }
    let m = &state.management;
    let watts = |w: Option<u32>| w.map_or("not set".to_owned(), |w| format!("{w} W"));
    let raw = |r: Option<u16>| r.map_or("not set".to_owned(), |r| format!("{r:#06x}"));
    println!(
        "  maximum power {}, phase unbalance {}, tariff rate {}, water meter factor {}, tamper {}",
        watts(m.maximum_power_limit),
        watts(m.phase_unbalance_limit),
        raw(m.tariff_rate),
        raw(m.water_meter_factor),
        if m.tamper { "DETECTED" } else { "no" }
    );
    let tids: Vec<u32> = state.tids.iter().map(|t| t.get()).collect();
    match (tids.iter().min(), tids.iter().max()) {
        (Some(oldest), Some(newest)) => println!(
            "  TID memory: {} of {} (oldest {oldest}, newest {newest})",
            tids.len(),
            state.config.tid_memory_depth
        ),
        _ => println!(
            "  TID memory: empty (depth {})",
            state.config.tid_memory_depth
        ),
    }
    if !state.key_change.is_empty() {
        println!("  key change: {} section(s) staged", state.key_change.len());
    }
    if state.lockout.consecutive_invalid() > 0 {
        println!(
            "  consecutive invalid entries: {}",
            state.lockout.consecutive_invalid()
        );
    }
    println!("  tokens entered: {}", public.history.len());
    Ok(ExitCode::SUCCESS)
}

fn format_currency(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    format!("{sign}{}.{:05}", magnitude / 100_000, magnitude % 100_000)
}

fn history(args: &MeterFileArgs, json: bool) -> Outcome {
    let public = state_file::load_public(&args.state)?;
    if json {
        print_json(&serde_json::to_value(&public.history).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if public.history.is_empty() {
        println!("no tokens entered yet");
    }
    for entry in &public.history {
        println!("{}  {}  {}", entry.at, entry.token, entry.detail);
    }
    Ok(ExitCode::SUCCESS)
}
