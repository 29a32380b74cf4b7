//! The agent's commissioning commands as a device maker runs them:
//! `check-config` and `probe` against a simulated purifier.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn check_config_accepts_the_example_and_exits_2_on_errors() {
    let good = configs_dir().join("agent.toml");
    let out = run(&["agent", "check-config", good.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 devices"));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("agent.toml");
    let text = std::fs::read_to_string(&good).expect("read").replacen(
        "tcp = \"127.0.0.1:5021\"",
        "tcp = \"127.0.0.1:99999\"",
        1,
    );
    std::fs::write(&bad, &text).expect("write");
    let out = run(&["agent", "check-config", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let line = text
        .lines()
        .position(|l| l.contains("99999"))
        .expect("edited line")
        + 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:{line}", bad.display())) && stderr.contains("devices[1].tcp"),
        "{stderr}"
    );
}

#[test]
fn probe_shows_the_simulators_float_under_its_word_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Proc::start(
        dir.path(),
        "sim",
        &[
            "sim",
            "--devices",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--pm25",
            "35.5",
        ],
    );
    let line = sim.expect_line("purifier-0001", Duration::from_secs(10));
    let addr = line.split_whitespace().next().expect("address");
    let out = run(&[
        "agent", "probe", "--tcp", addr, "--start", "6", "--count", "2", "--kind", "input",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let abcd = stdout
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["6", "ABCD"]))
        .expect("ABCD row");
    let pm25: f64 = abcd
        .split_whitespace()
        .last()
        .expect("f32 column")
        .parse()
        .expect("number");
    assert!((pm25 - 35.5).abs() < 3.0, "pm25 reads {pm25} in:\n{stdout}");

    let out = run(&[
        "agent", "probe", "--tcp", addr, "--start", "200", "--count", "2", "--kind", "input",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("IllegalDataAddress"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
