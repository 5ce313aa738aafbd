//! Runs conformance vector files through the sts token engine.
//!
//! A vector file has one JSON object per line (`shared/vectors/README.md` describes the
//! format). [`run_record`] checks one record and returns a [`Verdict`]; [`run_lines`] runs a
//! whole file and counts the verdicts. [`Mode::Meter`] replays tokens through an `sts-meter`
//! meter instead. Records that cannot be checked (marked `NOT ...`, or not
//! production vectors) are skipped with their reason, never silently.

mod engine;
mod record;
mod replay;

use std::io::BufRead;

pub use record::Record;

/// The result of checking one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every compared value matched.
    Pass,
    /// At least one value differed, or the record's inputs were rejected: the reasons, one per
    /// difference.
    Fail(Vec<String>),
    /// The record cannot be checked: the reason.
    Skip(String),
}

/// What to check a record against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The token engine: build every value from the inputs and compare.
    #[default]
    Engine,
    /// The meter: replay `token` and `kct_set` records through a fresh meter configured from
    /// each record's key inputs and check the effect; other kinds are skipped.
    Meter,
}

/// One record's id and verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The record's `id`, or `line N` when it has none.
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Counts of verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records that passed.
    pub passed: usize,
    /// Records that failed.
    pub failed: usize,
    /// Records skipped.
    pub skipped: usize,
}

impl Summary {
    /// Adds one verdict.
    pub fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
    }

    /// Adds another summary.
    pub fn merge(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

impl std::fmt::Display for Summary {
    /// The closing line: `N passed, N failed, N skipped`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Checks one line of a vector file (`line_no` counts from 1, for records without an id).
#[must_use]
pub fn run_line(line: &str, line_no: usize, mode: Mode) -> Outcome {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value) => run_record(&Record::new(value, line_no), mode),
        Err(e) => Outcome {
            id: format!("line {line_no}"),
            verdict: Verdict::Fail(vec![format!("not a JSON object: {e}")]),
        },
    }
}

/// Checks one record.
#[must_use]
pub fn run_record(record: &Record, mode: Mode) -> Outcome {
    let verdict = if let Some(reason) = record.unconfirmable() {
        Verdict::Skip(reason)
    } else {
        match mode {
            Mode::Engine => engine::check(record),
            Mode::Meter => replay::check(record),
        }
    };
    Outcome {
        id: record.id(),
        verdict,
    }
}

/// Runs every non-blank line of a reader, calling `report` with each outcome in order.
///
/// # Errors
/// Reading failed (the summary so far is lost; the caller reports the I/O error).
pub fn run_lines<R: BufRead>(
    reader: R,
    mode: Mode,
    mut report: impl FnMut(&Outcome),
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let outcome = run_line(&line, index + 1, mode);
        summary.add(&outcome.verdict);
        report(&outcome);
    }
    Ok(summary)
}
