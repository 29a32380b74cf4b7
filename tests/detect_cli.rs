//! `wearline detect` on small synthetic CSV files: one output row per input
//! row with the timestamp echoed, scores in [0, 1], an alert on a step, and
//! errors that name the line.

use std::path::Path;
use std::process::{Command, Output};

fn detect(dir: &Path, csv: &str, extra: &[&str]) -> Output {
    let input = dir.join("in.csv");
    std::fs::write(&input, csv).expect("writing the input");
    Command::new(env!("CARGO_BIN_EXE_wearline"))
        .arg("detect")
        .arg("--input")
        .arg(&input)
        .args(extra)
        .output()
        .expect("running wearline detect")
}

/// 600 five-minute temperatures: quiet around 40 °C, then 8 °C hotter from row 500.
fn temperatures() -> String {
    let mut s = String::from("timestamp,value\n");
    let mut seed: u64 = 42;
    for i in 0..600 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let v = 40.0 + noise + if i >= 500 { 8.0 } else { 0.0 };
        s.push_str(&format!(
            "2024-01-01 {:02}:{:02}:00,{v:.3}\n",
            (i * 5) / 60 % 24,
            (i * 5) % 60
        ));
    }
    s
}

#[test]
fn scores_every_row_and_flags_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let input = temperatures();
    let out = detect(dir.path(), &input, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("timestamp,anomaly_score,is_anomaly"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 600);
    for (row, inp) in rows.iter().zip(input.lines().skip(1)) {
        assert_eq!(row[0], inp.split(',').next().unwrap());
        let score: f64 = row[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
    let first_alert = rows.iter().position(|r| r[2] == "1");
    assert!(
        matches!(first_alert, Some(i) if (500..520).contains(&i)),
        "{first_alert:?}"
    );
}

#[test]
fn config_and_separator_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("d.toml");
    std::fs::write(&cfg, "train_rows = 20\n").unwrap();
    let mut csv = String::from("t;a;b\n");
    for i in 0..40 {
        csv.push_str(&format!("{i};{};{}\n", i % 3, 100 + i % 2));
    }
    let out = detect(
        dir.path(),
        &csv,
        &[
            "--separator",
            ";",
            "--columns",
            "a",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 41);
}

#[test]
fn errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = detect(dir.path(), "ts,value\n1,2\n2,x\n", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in.csv:3") && err.contains("`x` is not a number"),
        "{err}"
    );
    let out = detect(dir.path(), "ts,value\n1,2\n", &["--columns", "temp"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":1: no column `temp`"), "{err}");
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "\nsmoothing = 0\n").unwrap();
    let out = detect(
        dir.path(),
        "ts,value\n1,2\n",
        &["--config", bad_cfg.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("smoothing"));
}
