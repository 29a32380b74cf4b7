//! `wearline rul-eval` as a user runs it: bad input gets a clear error naming
//! the file and line, and a small synthetic fleet trains and scores.

mod support;

use support::run;

/// A C-MAPSS row: unit, cycle, 3 settings, 21 sensors; the sensors drift with `wear`.
fn row(unit: u32, cycle: u32, wear: f64) -> String {
    let mut f = vec![
        unit.to_string(),
        cycle.to_string(),
        "0".into(),
        "0".into(),
        "100".into(),
    ];
    f.extend((0..21).map(|s| format!("{:.4}", 500.0 + f64::from(s) + wear * f64::from(s % 3))));
    f.join(" ")
}

fn cmapss(dir: &std::path::Path, train: &str, test: &str, truth: &str) -> std::process::Output {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let (a, b, c) = (
        write("train.txt", train),
        write("test.txt", test),
        write("RUL.txt", truth),
    );
    run(&["rul-eval", "cmapss", "--train", &a, "--test", &b, "--truth", &c])
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = |n: u32, len: u32| {
        (1..=n)
            .flat_map(|u| (1..=len).map(move |c| row(u, c, f64::from(c) / f64::from(len))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let good = units(6, 40);

    // A missing file.
    let o = run(&[
        "rul-eval",
        "cmapss",
        "--train",
        "/nonexistent/train_FD001.txt",
        "--test",
        "t",
        "--truth",
        "r",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("reading /nonexistent/train_FD001.txt"),
        "{}",
        stderr(&o)
    );

    // A row with a column too few, on line 3 of the test file.
    let mut lines: Vec<String> = units(2, 3).lines().map(String::from).collect();
    lines[2] = lines[2].rsplit_once(' ').expect("columns").0.to_string();
    let o = cmapss(dir.path(), &good, &lines.join("\n"), "10\n12\n");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("test.txt:3: 25 fields, expected 26"),
        "{}",
        stderr(&o)
    );

    // A training unit with a single cycle, on line 241.
    let one = format!("{good}\n{}\n", row(7, 1, 0.0));
    let o = cmapss(dir.path(), &one, &units(2, 3), "10\n12\n");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("train.txt:241: unit 7 has a single cycle"),
        "{}",
        stderr(&o)
    );

    // A non-numeric truth.
    let o = cmapss(dir.path(), &good, &units(2, 3), "10\nabc\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("RUL.txt:2:"), "{}", stderr(&o));
}

#[test]
fn the_simulated_fleet_is_scored() {
    let o = run(&[
        "rul-eval",
        "fleet",
        "--train-devices",
        "20",
        "--devices",
        "30",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().expect("a line")).expect("json");
    assert_eq!(last["devices"], 30);
    assert_eq!(last["train_lives"], 20);
    let within = last["within_10pct"].as_f64().expect("share");
    assert!(within >= 0.8, "{last}");
    let coverage = last["coverage_90"].as_f64().expect("share");
    assert!((0.7..=1.0).contains(&coverage), "{last}");
    let o = run(&["rul-eval", "fleet", "--at", "1.5"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--at must be a fraction of life in (0, 1)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cross_validation_alone_prints_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lives = [40u32, 46, 52, 58, 64, 70];
    let train: Vec<String> = lives
        .iter()
        .zip(1u32..)
        .flat_map(|(&len, u)| (1..=len).map(move |c| row(u, c, f64::from(c) / f64::from(len))))
        .collect();
    let path = dir.path().join("train.txt");
    std::fs::write(&path, train.join("\n")).expect("write");
    let p = path.to_str().expect("utf-8");
    let o = run(&[
        "rul-eval",
        "cmapss",
        "--train",
        p,
        "--cv",
        "3",
        "--trees",
        "20",
        "--members",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().expect("a line")).expect("json");
    assert_eq!(last["folds"], 3);
    assert_eq!(last["units"], 6 * 8, "6 units cut 8 times: {last}");
    let (rmse, capped) = (
        last["rmse"].as_f64().expect("rmse"),
        last["rmse_capped"].as_f64().expect("capped"),
    );
    assert!(rmse.is_finite() && capped <= rmse, "{last}");

    // Without --cv the test file and the truth are needed.
    let o = run(&["rul-eval", "cmapss", "--train", p]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--test"), "{}", stderr(&o));
    // One fold is no cross-validation.
    let o = run(&["rul-eval", "cmapss", "--train", p, "--cv", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at least 2"), "{}", stderr(&o));
}
