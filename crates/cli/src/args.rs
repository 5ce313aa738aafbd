//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber,
    KeyType, MeterPan, SupplyGroupCode, TariffIndex, UtcMinute,
};

const AFTER_HELP: &str = "\
Key material is never taken from the command line (it would show in the process list and
the shell history). Put hex digits in a file and pass its path, or set the environment
variable named in each option's help.

Examples:
  # An electricity token of 12.5 kWh for a DKGA04/EA07 meter, key from a file
  sts issue credit --amount 12.5 --pan 600727000000000009 --sgc 201457 --ti 01 --krn 1 \\
      --vending-key-file vk.hex
  # Decode what a customer reads out
  sts decode '7063 0503 4700 2872 6114' --pan 600727000000000009 --sgc 201457 --ti 01 \\
      --krn 1 --vending-key-file vk.hex
  # Run the conformance vectors
  sts conformance ../shared/vectors/sts-vectors.jsonl

Exit codes: 0 success, 1 negative answer (token rejected, conformance failure), 2 error.";

/// Issue, decode and verify STS (IEC 62055-41) prepaid meter tokens.
#[derive(Debug, Parser)]
#[command(name = "sts", version, after_help = AFTER_HELP, propagate_version = true)]
pub(crate) struct Cli {
    /// Print results as JSON (one object) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Derive a meter's decoder key from a vending key (DKGA01-04).
    ///
    /// Prints the decoder key in hex: treat the output as a secret.
    DeriveKey(DeriveKeyArgs),
    /// Issue a token: credit, currency, management or meter test.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Issue a key change token set (2, 3 or 4 tokens) moving a meter to a new key.
    KeyChange(KeyChangeArgs),
    /// Decode a 20-digit token for a meter and explain it.
    ///
    /// Exit 0 when the token is valid for the meter, 1 when it is not (CRC mismatch, reserved
    /// class ...), 2 when the input is malformed.
    Decode(DecodeArgs),
    /// Run conformance vector files (JSON lines) and report `N passed, N failed, N skipped`.
    Conformance(ConformanceArgs),
    /// Measure tokens per second on one core.
    Bench(BenchArgs),
    /// Simulate a meter: create one, enter tokens, show its state and history.
    ///
    /// The state lives in a JSON file written atomically (the previous version is kept as
    /// FILE.prev). Its decoder key is sealed under a state key from --state-key-file or
    /// STS_METER_STATE_KEY; registers and history stay readable without it.
    #[command(subcommand)]
    Meter(MeterCommand),
    /// Key management centre: SGC owners, supply group codes, vending keys, authorizations and
    /// keyload files for security modules.
    ///
    /// The store is an SQLite file whose keys are wrapped under a key from the passphrase
    /// (--passphrase-file, or STS_KMC_PASSPHRASE); every change is in its audit log.
    #[command(subcommand)]
    Kmc(crate::commands::kmc::KmcCommand),
    /// Security module: imports keyload files addressed to it, issues and verifies tokens.
    ///
    /// The store is an SQLite file whose keys are wrapped under a key from the passphrase
    /// (--passphrase-file, or STS_SM_PASSPHRASE).
    #[command(subcommand)]
    Sm(crate::commands::sm::SmCommand),
    /// Run the vending service: an HTTP API over a database (SQLite by default, PostgreSQL
    /// with --database postgres://...) and a security module. Stops cleanly on Ctrl-C or
    /// SIGTERM, finishing requests in flight.
    Serve(crate::commands::serve::ServeArgs),
    /// Create or revoke the vending service's API keys.
    #[command(subcommand)]
    ApiKey(crate::commands::serve::ApiKeyCommand),
    /// Set and list the vending service's tariff versions (price per unit per utility and
    /// tariff index, from an effective time; optional monthly free allowance).
    #[command(subcommand)]
    Tariff(crate::commands::tariff::TariffCommand),
    /// The vending service's sales reports (daily per vendor and tariff, text, JSON or CSV).
    #[command(subcommand)]
    Report(crate::commands::report::ReportCommand),
    /// Load a running `sts serve` with concurrent credit vends: vends per second, p50/p99/max
    /// latency, errors by status, and a check that no meter got a TID twice (exit 1 if so).
    Loadtest(crate::commands::loadtest::LoadtestArgs),
    /// Key change campaigns: move many meters to a new key record (the 2024 TID rollover,
    /// a new KRN or SGC), their sets computed ahead and handed out with each meter's next
    /// purchase, or exported for field teams.
    #[command(subcommand)]
    Campaign(crate::commands::campaign::CampaignCommand),
    /// Vend through a running `sts serve`: `sts vend bulk --file sales.csv` sells credit to
    /// many meters at once, safe to run again (request IDs make repeats reprints).
    #[command(subcommand)]
    Vend(crate::commands::vend::VendCommand),
}

/// Where the key sealing a meter state file comes from.
#[derive(Debug, Args, Clone)]
pub(crate) struct StateKeyArgs {
    /// File holding the state key (64 hex digits). `meter create` makes it when it does not
    /// exist yet, readable by its owner only.
    #[arg(long, value_name = "FILE")]
    pub(crate) state_key_file: Option<PathBuf>,
    /// Environment variable holding the state key.
    #[arg(long, value_name = "NAME", default_value = "STS_METER_STATE_KEY")]
    pub(crate) state_key_env: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MeterCommand {
    /// Create a meter from its key (derived from a vending key, or given directly).
    Create(MeterCreateArgs),
    /// Enter tokens, as a customer would on the keypad; exit 1 if any is rejected.
    Enter(MeterEnterArgs),
    /// Show the meter's registers, settings, key attributes and TID memory (no key needed).
    Show(MeterFileArgs),
    /// Show every token entered and the meter's answer (no key needed).
    History(MeterFileArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MeterFileArgs {
    /// The meter's state file.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct MeterCreateArgs {
    /// The state file to create.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: PathBuf,
    #[command(flatten)]
    pub(crate) state_key: StateKeyArgs,
    /// The meter: its PAN, SGC, TI, KRN, KT, EA, DKGA, base date, KEN and key material.
    #[command(flatten)]
    pub(crate) meter: MeterArgs,
    /// How many TIDs the meter remembers (1-256).
    #[arg(long, value_name = "N", default_value = "50")]
    pub(crate) tid_memory: u16,
    /// The manufacturer code class 1 tokens must carry. Default: the one in the DRN.
    #[arg(long, value_name = "CODE")]
    pub(crate) manufacturer: Option<u16>,
    /// The meter implements the STS202-5 extended tokens (2/10 set, 1/2 read); without it they
    /// are refused with Function.
    #[arg(long)]
    pub(crate) extended_tokens: bool,
    /// Replace an existing state file.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MeterEnterArgs {
    /// The meter's state file.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: PathBuf,
    #[command(flatten)]
    pub(crate) state_key: StateKeyArgs,
    /// Tokens, in the order entered.
    #[arg(value_name = "TOKEN")]
    pub(crate) tokens: Vec<String>,
    /// Also read tokens from a file, one per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// The meter's clock for the keypad lockout, in seconds. Default: the host's Unix time.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) clock: Option<u64>,
}

/// Where the vending key comes from.
#[derive(Debug, Args, Clone)]
pub(crate) struct VendingKeySource {
    /// File holding the vending key in hex (16 digits for DKGA02, 40 for DKGA04).
    #[arg(long, value_name = "FILE")]
    pub(crate) vending_key_file: Option<PathBuf>,
    /// Environment variable holding the vending key in hex.
    #[arg(long, value_name = "NAME", default_value = "STS_VENDING_KEY")]
    pub(crate) vending_key_env: String,
}

/// Where the decoder key comes from, when given directly rather than derived.
#[derive(Debug, Args, Clone)]
pub(crate) struct DecoderKeySource {
    /// File holding the meter's decoder key in hex (16 digits, or 32 for EA11); used instead
    /// of deriving it from a vending key.
    #[arg(long, value_name = "FILE")]
    pub(crate) decoder_key_file: Option<PathBuf>,
    /// Environment variable holding the decoder key in hex.
    #[arg(long, value_name = "NAME", default_value = "STS_DECODER_KEY")]
    pub(crate) decoder_key_env: String,
}

/// A meter's identity: the inputs of its decoder key.
#[derive(Debug, Args, Clone)]
pub(crate) struct MeterIdentityArgs {
    /// Meter PAN: 18 digits with its Luhn check digit (or give --drn).
    #[arg(long, value_name = "PAN", conflicts_with = "drn")]
    pub(crate) pan: Option<MeterPan>,
    /// Decoder reference number (11 or 13 digits); the PAN's check digit is computed.
    #[arg(long, value_name = "DRN")]
    pub(crate) drn: Option<String>,
    /// Supply group code, 6 digits.
    #[arg(long, value_name = "SGC")]
    pub(crate) sgc: Option<SupplyGroupCode>,
    /// Tariff index, 00-99.
    #[arg(long, value_name = "TI")]
    pub(crate) ti: Option<TariffIndex>,
    /// Key revision number, 1-9.
    #[arg(long, value_name = "KRN")]
    pub(crate) krn: Option<KeyRevisionNumber>,
    /// Key type: 1 DDTK, 2 DUTK (unique, the usual), 3 DCTK.
    #[arg(long, value_name = "KT", default_value = "2")]
    pub(crate) kt: KeyType,
    /// Encryption algorithm: 07 STA, 09 DES (deprecated), 11 MISTY1.
    #[arg(long, value_name = "EA", default_value = "07")]
    pub(crate) ea: EncryptionAlgorithm,
    /// Decoder key generation algorithm: 02 or 04 (01 and 03 are unverified). Default: 02 for
    /// a 64-bit vending key, 04 for a 160-bit one.
    #[arg(long, value_name = "DKGA")]
    pub(crate) dkga: Option<KeyDerivationAlgorithm>,
    /// Base date: 1993, 2014 or 2035. It dates the TID and is an input of DKGA04.
    #[arg(long, value_name = "YEAR", default_value = "2014")]
    pub(crate) base_date: BaseDate,
    /// Key expiry number, 0-255: tokens whose TID is past it are refused (255 never expires).
    #[arg(long, value_name = "KEN", default_value = "255")]
    pub(crate) ken: KeyExpiryNumber,
}

/// The meter a token is for, and where its key comes from.
#[derive(Debug, Args, Clone)]
pub(crate) struct MeterArgs {
    #[command(flatten)]
    pub(crate) identity: MeterIdentityArgs,
    #[command(flatten)]
    pub(crate) vending_key: VendingKeySource,
    #[command(flatten)]
    pub(crate) decoder_key: DecoderKeySource,
}

/// When a token is issued and how it is made unique.
#[derive(Debug, Args, Clone)]
pub(crate) struct IssueTimeArgs {
    /// Issue time, `YYYY-MM-DD HH:MM` in UTC. Default: now.
    #[arg(long, value_name = "TIME")]
    pub(crate) time: Option<UtcMinute>,
    /// Token identifier (minutes since the base date) to use instead of --time.
    #[arg(long, value_name = "TID", conflicts_with = "time")]
    pub(crate) tid: Option<u32>,
    /// The random nibble, 0-15. Default: random.
    #[arg(long, value_name = "RND", value_parser = clap::value_parser!(u8).range(0..16))]
    pub(crate) rnd: Option<u8>,
}

#[derive(Debug, Args)]
pub(crate) struct DeriveKeyArgs {
    #[command(flatten)]
    pub(crate) meter: MeterArgs,
}

/// A utility service.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ServiceArg {
    /// Electricity, in kWh.
    Electricity,
    /// Water, in kL.
    Water,
    /// Gas, in m3.
    Gas,
    /// Connection time, in minutes.
    Time,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IssueCommand {
    /// Credit in units: kWh, kL, m3 or minutes, resolution 0.1 (class 0, subclasses 0-3).
    ///
    /// The amount is rounded up to the next value a token can carry (never below the request).
    Credit {
        /// The amount, e.g. 12.5.
        #[arg(long)]
        amount: String,
        /// The service.
        #[arg(long, value_enum, default_value = "electricity")]
        service: ServiceArg,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Currency credit (negative: debit), resolution 0.00001 (class 0, subclasses 4-7).
    Currency {
        /// The amount, e.g. 50.00 or -1.5.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// The service.
        #[arg(long, value_enum, default_value = "electricity")]
        service: ServiceArg,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Set the maximum power limit in watts (2/0).
    MaxPower {
        /// The limit in watts.
        #[arg(long)]
        watts: u32,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Clear a credit register (2/1).
    ClearCredit {
        /// electricity, water, gas, time (unit registers), electricity-currency ...
        /// time-currency, all, or a register number.
        #[arg(long, default_value = "all")]
        register: String,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Set the tariff rate (2/2; content reserved by the STS Association).
    TariffRate {
        /// The 16-bit rate field.
        #[arg(long)]
        rate: u16,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Clear the tamper condition (2/5).
    ClearTamper {
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Set the maximum phase power unbalance limit in watts (2/6).
    PhaseUnbalance {
        /// The limit in watts.
        #[arg(long)]
        watts: u32,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Set the water meter factor (2/7; content reserved by the STS Association).
    WaterFactor {
        /// The 16-bit factor field.
        #[arg(long)]
        factor: u16,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Extended token set (2/10, STS202-5): a 16-bit field, index(6) then index-specific bits.
    Extended {
        /// The field in hex, e.g. FC00.
        #[arg(long, value_parser = parse_hex_u16)]
        field: u16,
        #[command(flatten)]
        meter: MeterArgs,
        #[command(flatten)]
        time: IssueTimeArgs,
    },
    /// Initiate a meter test or display (class 1): not encrypted, needs no key.
    Test {
        /// Control bits: `all`, or a number (bit 0 load switch, 1 display, 2 total energy,
        /// 3 KRN, 4 TI, 5 token reader, 6 max power, 7 tamper, 8 power, 9 software version ...).
        #[arg(long, default_value = "all")]
        control: String,
        /// The manufacturer code: 2 digits (short format) or 4 digits (long format).
        #[arg(long, default_value = "0")]
        manufacturer: u16,
        /// Token format: short (36 control bits, 2-digit code) or long (28 bits, 4 digits).
        #[arg(long, value_enum, default_value = "short")]
        format: TestFormatArg,
    },
}

/// Class 1 layouts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TestFormatArg {
    /// Subclass 0: 36 control bits, 8-bit manufacturer code.
    Short,
    /// Subclass 1: 28 control bits, 16-bit manufacturer code.
    Long,
}

fn parse_hex_u16(text: &str) -> Result<u16, String> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    u16::from_str_radix(digits, 16).map_err(|e| format!("not a 16-bit hex number: {e}"))
}

#[derive(Debug, Args)]
pub(crate) struct KeyChangeArgs {
    /// The meter as it is now: its current key encrypts the set.
    #[command(flatten)]
    pub(crate) meter: MeterArgs,
    /// New supply group code. Default: unchanged.
    #[arg(long, value_name = "SGC")]
    pub(crate) new_sgc: Option<SupplyGroupCode>,
    /// New tariff index. Default: unchanged.
    #[arg(long, value_name = "TI")]
    pub(crate) new_ti: Option<TariffIndex>,
    /// New key revision number. Default: unchanged.
    #[arg(long, value_name = "KRN")]
    pub(crate) new_krn: Option<KeyRevisionNumber>,
    /// New key type. Default: unchanged.
    #[arg(long, value_name = "KT")]
    pub(crate) new_kt: Option<KeyType>,
    /// New base date. A later base date sets the rollover bit (the meter clears its TIDs).
    #[arg(long, value_name = "YEAR")]
    pub(crate) new_base_date: Option<BaseDate>,
    /// New key expiry number.
    #[arg(long, value_name = "KEN", default_value = "255")]
    pub(crate) new_ken: KeyExpiryNumber,
    /// New decoder key generation algorithm. Default: unchanged.
    #[arg(long, value_name = "DKGA")]
    pub(crate) new_dkga: Option<KeyDerivationAlgorithm>,
    /// Send the SGC too (3-token set) for a 64-bit key; 128-bit (EA11) sets always carry it.
    #[arg(long)]
    pub(crate) with_sgc: bool,
    /// Set the rollover bit even if the base date does not change.
    #[arg(long)]
    pub(crate) rollover: bool,
    /// File holding the new vending key in hex. Default: the current vending key.
    #[arg(long, value_name = "FILE")]
    pub(crate) new_vending_key_file: Option<PathBuf>,
    /// Environment variable holding the new vending key in hex.
    #[arg(long, value_name = "NAME", default_value = "STS_NEW_VENDING_KEY")]
    pub(crate) new_vending_key_env: String,
}

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The token: 20 digits, spaces or dashes allowed between them.
    pub(crate) token: String,
    /// The meter, for encrypted tokens (class 0 and 2); a class 1 token needs none.
    #[command(flatten)]
    pub(crate) meter: MeterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConformanceArgs {
    /// Vector files: one JSON object per line.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Also print a line for every record that passes.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Replay `token` and `kct_set` records through a fresh meter configured from each
    /// record's key inputs, and check the effect instead of the encoding.
    #[arg(long)]
    pub(crate) meter: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Seconds to measure each case.
    #[arg(long, default_value = "1.0")]
    pub(crate) seconds: f64,
}
