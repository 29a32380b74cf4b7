//! `wearline-agent`, the agent-only gateway binary, takes the same arguments
//! as `wearline agent` and runs the same code: `check-config` accepts the
//! shipped example and exits 2, naming file, line and key, on an error.

use std::path::Path;
use std::process::Command;

fn check_config(file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wearline-agent"))
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run wearline-agent")
}

#[test]
fn check_config_behaves_as_in_the_full_binary() {
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/agent.toml");
    let out = check_config(&good);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 devices"));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("agent.toml");
    std::fs::write(
        &bad,
        "gateway = \"gw\"\ndata_dir = \"d\"\n[uplink]\nbroker = \"127.0.0.1:1883\"\nbatch_max_samples = 0\n",
    )
    .expect("write");
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5", bad.display())) && stderr.contains("uplink.batch_max_samples"),
        "{stderr}"
    );
}
