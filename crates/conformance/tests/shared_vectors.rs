//! Runs every record of `shared/vectors/sts-vectors.jsonl` through the engine checks.
//!
//! Source: the project's conformance vectors (`../shared/vectors/README.md`): STS 531 test
//! specifications as transcribed publicly, RFC 2994, FIPS 81 and public implementations' tests.

use std::{fs::File, io::BufReader, path::PathBuf};

use sts_conformance::{Mode, Verdict, run_lines};

fn vectors() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.join("../../../shared/vectors/sts-vectors.jsonl")
}

#[test]
fn shared_vectors_all_pass_but_the_two_unconfirmable() {
    let path = vectors();
    let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut failures = Vec::new();
    let mut skips = Vec::new();
    let summary = run_lines(
        BufReader::new(file),
        Mode::Engine,
        |outcome| match &outcome.verdict {
            Verdict::Pass => {}
            Verdict::Fail(reasons) => {
                failures.push(format!("{}: {}", outcome.id, reasons.join("; ")))
            }
            Verdict::Skip(reason) => skips.push(format!("{}: {reason}", outcome.id)),
        },
    )
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        summary.to_string(),
        "702 passed, 0 failed, 2 skipped",
        "skips: {skips:?}"
    );
    assert!(
        skips.iter().any(|s| s.contains("NOT CONFIRMABLE")),
        "{skips:?}"
    );
    assert!(
        skips
            .iter()
            .any(|s| s.to_lowercase().contains("not a production vector")),
        "{skips:?}"
    );
}
