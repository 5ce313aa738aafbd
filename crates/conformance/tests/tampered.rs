//! The checks are not vacuous: a record with any expected value changed fails, naming what
//! differed; a malformed record fails with a reason; unknown kinds are skipped, not passed.

#![allow(clippy::panic)] // test helpers report failures by panicking

use sts_conformance::{Mode, Verdict, run_line};

/// STS 531-1-07 CTSA01/1 (vector V0001).
const CREDIT: &str = r#"{"id":"V0001","v":"token","token":"70630503470028726114","dkga":"04","ea":"07","bd":"2014","vk":"ABABABABABABABAB949494949494949401234567","pan":"600727000000000009","kt":"2","sgc":"201457","ti":"01","krn":"1","class":"0","subclass":"0","time_of_issue":"2014-03-01 13:00","tid":"85740","rnd":"5","units":"1","dk":"87F3ECBB2E46B48F","blocks":"05014EEC00013188"}"#;

/// STS 531-1-07 CTSA05/4 (vector V0019): a 3-token set.
const KCT3: &str = r#"{"id":"V0019","v":"kct_set","tokens":["52506022850399603630","22979178279997208272","39620459059615037790"],"dkga":"04","ea":"07","bd":"2014","vk":"ABABABABABABABAB949494949494949401234567","pan":"600727000000000009","kt":"2","sgc":"201457","ti":"01","krn":"1","new_dkga":"04","new_vk":"ABABABABABABABAB949494949494949401234567","new_kt":"2","new_sgc":"201457","new_ti":"02","new_krn":"1","new_bd":"2014","kenho":"15","kenlo":"15","ro":"0","subclasses":[3,4,8],"dk":"87F3ECBB2E46B48F","new_dk":"7F78CDD220BE39B8","blocks":["3F167F78CDD2390C","4F0220BE39B836F9","80312F10000053D5"]}"#;

fn verdict(line: &str) -> Verdict {
    run_line(line, 1, Mode::Engine).verdict
}

fn fails_on(line: &str, what: &str) {
    match verdict(line) {
        Verdict::Fail(reasons) => {
            assert!(
                reasons.iter().any(|r| r.contains(what)),
                "expected a {what} failure, got {reasons:?}"
            );
        }
        other => panic!("expected a failure about {what}, got {other:?}"),
    }
}

#[test]
fn originals_pass() {
    assert_eq!(verdict(CREDIT), Verdict::Pass);
    assert_eq!(verdict(KCT3), Verdict::Pass);
}

#[test]
fn every_expected_value_is_compared() {
    fails_on(
        &CREDIT.replace("70630503470028726114", "70630503470028726115"),
        "token",
    );
    fails_on(
        &CREDIT.replace("87F3ECBB2E46B48F", "87F3ECBB2E46B48E"),
        "dk",
    );
    fails_on(
        &CREDIT.replace("05014EEC00013188", "05014EEC00013189"),
        "block",
    );
    fails_on(&CREDIT.replace(r#""units":"1""#, r#""units":"2""#), "token");
    fails_on(
        &CREDIT.replace(r#""tid":"85740""#, r#""tid":"85741""#),
        "token",
    );
    fails_on(
        &KCT3.replace("39620459059615037790", "39620459059615037791"),
        "token 2/8",
    );
    fails_on(
        &KCT3.replace("7F78CDD220BE39B8", "7F78CDD220BE39B9"),
        "new_dk",
    );
    fails_on(
        &KCT3.replace(r#""new_ti":"02""#, r#""new_ti":"03""#),
        "token 2/4",
    );
}

#[test]
fn malformed_records_fail_with_a_reason() {
    fails_on(
        &CREDIT.replace("600727000000000009", "600727000000000008"),
        "check digit",
    );
    fails_on(&CREDIT.replace(r#""units":"1""#, r#""units":"x""#), "units");
    fails_on("{not json", "JSON");
    fails_on(r#"{"id":"X","v":"token"}"#, "class");
}

#[test]
fn unknown_kinds_and_unconfirmable_records_are_skipped_with_a_reason() {
    assert!(
        matches!(verdict(r#"{"id":"X","v":"mystery"}"#), Verdict::Skip(r) if r.contains("mystery"))
    );
    assert!(
        matches!(verdict(r#"{"id":"X","v":"token","conf":"NOT CONFIRMABLE: why"}"#), Verdict::Skip(r) if r.contains("why"))
    );
}

#[test]
fn meter_mode_checks_the_effect() {
    let meter = |line: &str| run_line(line, 1, Mode::Meter).verdict;
    assert_eq!(meter(CREDIT), Verdict::Pass);
    assert_eq!(meter(KCT3), Verdict::Pass);
    // A different amount in the inputs: the token is still valid, but its effect differs.
    match meter(&CREDIT.replace(r#""units":"1""#, r#""units":"2""#)) {
        Verdict::Fail(reasons) => assert!(
            reasons.iter().any(|r| r.contains("credit added")),
            "{reasons:?}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A token for another meter is rejected by the meter.
    match meter(&CREDIT.replace("70630503470028726114", "70630503470028726115")) {
        Verdict::Fail(reasons) => assert!(
            reasons.iter().any(|r| r.contains("rejected")),
            "{reasons:?}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // The expected new key is checked against the meter's.
    match meter(&KCT3.replace("7F78CDD220BE39B8", "7F78CDD220BE39B9")) {
        Verdict::Fail(reasons) => {
            assert!(reasons.iter().any(|r| r.contains("new_dk")), "{reasons:?}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(matches!(
        meter(r#"{"id":"X","v":"dkga02"}"#),
        Verdict::Skip(_)
    ));
}
