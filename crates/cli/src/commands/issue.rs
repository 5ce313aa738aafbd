//! `sts issue ...`: one token.

use std::{process::ExitCode, time::SystemTime};

use serde_json::json;
use sts_core::{
    CurrencyAmount, RandomNumber, Register, Service, Token, TokenIdentifier, TransferAmount,
    UtcMinute, amount::parse_fixed, token::MeterTestFormat,
};

use crate::{
    Outcome,
    args::{IssueCommand, IssueTimeArgs, MeterArgs, ServiceArg, TestFormatArg},
    failure::{Failure, Hint, fail},
    keys,
    output::{describe, grouped, print_json},
};

impl From<ServiceArg> for Service {
    fn from(service: ServiceArg) -> Self {
        match service {
            ServiceArg::Electricity => Self::Electricity,
            ServiceArg::Water => Self::Water,
            ServiceArg::Gas => Self::Gas,
            ServiceArg::Time => Self::Time,
        }
    }
}

/// The current UTC minute from the system clock.
pub(crate) fn now() -> UtcMinute {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    UtcMinute::from_unix_seconds(seconds)
}

/// The TID for a token: `--tid`, or `--time` (default now) under the meter's base date;
/// refused when the meter's key has expired (KEN, CTSA16).
fn tid(time: &IssueTimeArgs, meter: &MeterArgs) -> Result<TokenIdentifier, Failure> {
    let tid = match time.tid {
        Some(raw) => {
            TokenIdentifier::from_raw(raw).hint("invalid --tid", "a TID is 0 to 16777215")?
        }
        None => {
            let at = time.time.unwrap_or_else(now);
            TokenIdentifier::issue(at, meter.identity.base_date).hint(
                format!("no TID for {at} under base date {}", meter.identity.base_date),
                "check --time and --base-date; a meter past its base date's last minute needs a rollover key change",
            )?
        }
    };
    if tid.is_expired_under(meter.identity.ken) {
        return Err(fail(
            format!(
                "the meter's key has expired: TID {tid} is past key expiry number {}",
                meter.identity.ken
            ),
            "issue a key change with a later --new-ken first, or check --time",
        ));
    }
    Ok(tid)
}

fn rnd(time: &IssueTimeArgs) -> Result<RandomNumber, Failure> {
    if let Some(rnd) = time.rnd {
        return Ok(RandomNumber::from_low_bits(rnd));
    }
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .hint("the system random number generator failed", "try again")?;
    Ok(RandomNumber::from_low_bits(byte[0]))
}

pub(crate) fn watts(value: u32) -> Result<TransferAmount, Failure> {
    TransferAmount::from_value_ceil(value)
        .hint("invalid --watts", "a power limit is at most 18201624 W")
}

pub(crate) fn parse_register(text: &str) -> Result<Register, Failure> {
    let named = [
        ("electricity", Register::units(Service::Electricity)),
        ("water", Register::units(Service::Water)),
        ("gas", Register::units(Service::Gas)),
        ("time", Register::units(Service::Time)),
        (
            "electricity-currency",
            Register::currency(Service::Electricity),
        ),
        ("water-currency", Register::currency(Service::Water)),
        ("gas-currency", Register::currency(Service::Gas)),
        ("time-currency", Register::currency(Service::Time)),
        ("all", Register::ALL),
    ];
    if let Some((_, register)) = named
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(*register);
    }
    let code: u16 = text.parse().hint(
        format!("invalid --register {text:?}"),
        "use electricity, water, gas, time, electricity-currency ... time-currency, all, or 0-7 / 65535",
    )?;
    let register = Register(code);
    if !register.is_defined() {
        return Err(fail(
            format!("register {code} is reserved"),
            "the standard defines registers 0-7 and 65535 (all)",
        ));
    }
    Ok(register)
}

/// The token a subcommand asks for, and the meter arguments it carries (none for class 1).
fn token(command: &IssueCommand) -> Result<(Token, Option<&MeterArgs>), Failure> {
    Ok(match command {
        IssueCommand::Credit {
            amount,
            service,
            meter,
            time,
        } => {
            let service = Service::from(*service);
            let tenths = parse_fixed(amount, 1).hint(
                format!("invalid --amount {amount:?}"),
                format!(
                    "give {} with at most one decimal place, e.g. 12.5",
                    service.unit()
                ),
            )?;
            let amount = TransferAmount::from_value_ceil(tenths).hint(
                format!("invalid --amount {amount:?}"),
                format!("one token carries at most 1820162.4 {}", service.unit()),
            )?;
            (
                Token::TransferCredit {
                    service,
                    rnd: rnd(time)?,
                    tid: tid(time, meter)?,
                    amount,
                },
                Some(meter),
            )
        }
        IssueCommand::Currency {
            amount,
            service,
            meter,
            time,
        } => {
            let amount = CurrencyAmount::parse(amount).hint(
                format!("invalid --amount {amount:?}"),
                "give a decimal amount such as 50.00 or -1.5",
            )?;
            let service = Service::from(*service);
            (
                Token::CurrencyCredit {
                    service,
                    tid: tid(time, meter)?,
                    amount,
                },
                Some(meter),
            )
        }
        IssueCommand::MaxPower {
            watts: w,
            meter,
            time,
        } => (
            Token::SetMaximumPowerLimit {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                limit: watts(*w)?,
            },
            Some(meter),
        ),
        IssueCommand::ClearCredit {
            register: r,
            meter,
            time,
        } => (
            Token::ClearCredit {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                register: parse_register(r)?,
            },
            Some(meter),
        ),
        IssueCommand::TariffRate { rate, meter, time } => (
            Token::SetTariffRate {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                rate: *rate,
            },
            Some(meter),
        ),
        IssueCommand::ClearTamper { meter, time } => (
            Token::ClearTamperCondition {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                pad: 0,
            },
            Some(meter),
        ),
        IssueCommand::PhaseUnbalance {
            watts: w,
            meter,
            time,
        } => (
            Token::SetMaximumPhasePowerUnbalanceLimit {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                limit: watts(*w)?,
            },
            Some(meter),
        ),
        IssueCommand::WaterFactor {
            factor,
            meter,
            time,
        } => (
            Token::SetWaterMeterFactor {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                factor: *factor,
            },
            Some(meter),
        ),
        IssueCommand::Extended { field, meter, time } => (
            Token::ExtendedTokenSet {
                rnd: rnd(time)?,
                tid: tid(time, meter)?,
                field: *field,
            },
            Some(meter),
        ),
        IssueCommand::Test {
            control,
            manufacturer,
            format,
        } => {
            let format = match format {
                TestFormatArg::Short => MeterTestFormat::Short,
                TestFormatArg::Long => MeterTestFormat::Long,
            };
            let bits = if matches!(format, MeterTestFormat::Long) {
                28
            } else {
                36
            };
            let control = if control.eq_ignore_ascii_case("all") {
                (1u64 << bits) - 1
            } else {
                control.parse::<u64>().hint(
                    format!("invalid --control {control:?}"),
                    format!("give `all` or a number below 2^{bits}"),
                )?
            };
            (
                Token::InitiateMeterTest {
                    format,
                    control,
                    manufacturer: *manufacturer,
                },
                None,
            )
        }
    })
}

pub(crate) fn run(command: &IssueCommand, json: bool) -> Outcome {
    let (token, meter_args) = token(command)?;
    let meter = match meter_args {
        Some(args) => Some(keys::require_meter(args)?),
        None => None,
    };
    let number = token.encode(meter.as_ref().map(|m| &m.cipher)).hint(
        "cannot encode the token",
        "for a meter test, the control bits and manufacturer code must fit the format (short: 36 bits and 0-255, long: 28 bits and 0-65535)",
    )?;
    let (summary, mut fields) = describe(&token, meter_args.map(|m| m.identity.base_date));
    if json {
        if let Some(map) = fields.as_object_mut() {
            map.insert("token".into(), json!(number.to_string()));
            map.insert("grouped".into(), json!(grouped(number)));
        }
        print_json(&fields);
    } else {
        println!("{}", grouped(number));
        eprintln!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}
