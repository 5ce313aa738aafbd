//! `sts conformance FILE...`.

use std::{fs::File, io::BufReader, process::ExitCode};

use serde_json::json;
use sts_conformance::{Mode, Summary, Verdict, run_lines};

use crate::{Outcome, args::ConformanceArgs, failure::Hint, output::print_json};

pub(crate) fn run(args: &ConformanceArgs, json: bool) -> Outcome {
    let mode = if args.meter {
        Mode::Meter
    } else {
        Mode::Engine
    };
    let mut total = Summary::default();
    for path in &args.files {
        let file =
            File::open(path).hint(format!("cannot open {}", path.display()), "check the path")?;
        let summary = run_lines(BufReader::new(file), mode, |outcome| {
            let (status, detail) = match &outcome.verdict {
                Verdict::Pass if !args.verbose => return,
                Verdict::Pass => ("PASS", String::new()),
                Verdict::Fail(reasons) => ("FAIL", reasons.join("; ")),
                Verdict::Skip(reason) => ("SKIP", reason.clone()),
            };
            if json {
                print_json(&json!({ "file": path.display().to_string(), "id": outcome.id, "status": status, "detail": detail }));
            } else if detail.is_empty() {
                println!("{status} {}", outcome.id);
            } else {
                println!("{status} {}: {detail}", outcome.id);
            }
        })
        .hint(format!("cannot read {}", path.display()), "check the file")?;
        total.merge(summary);
    }
    if json {
        print_json(
            &json!({ "passed": total.passed, "failed": total.failed, "skipped": total.skipped }),
        );
    }
    // The closing line, also in JSON mode: CI and people read it.
    println!("{total}");
    Ok(if total.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
