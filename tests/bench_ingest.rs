//! `wearline bench ingest` as a user runs it, small and paced: the hub keeps
//! up with 200 messages/s, so it processes what the bare subscriber gets, and
//! its probes are queryable through the API.

mod support;

use support::run;

#[test]
fn bench_ingest_reports_rates_ratio_rss_and_latency() {
    let out = run(&[
        "bench",
        "ingest",
        "--devices",
        "40",
        "--publishers",
        "2",
        "--seconds",
        "3",
        "--warmup",
        "1",
        "--rate",
        "200",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a line")).expect("JSON last line");
    let f = |k: &str| last[k].as_f64().unwrap_or_else(|| panic!("{k} in {last}"));
    // 200 messages/s of 20 values, paced: about 4 000 points/s at both ends.
    assert!((1_000.0..=8_000.0).contains(&f("points_per_sec")), "{last}");
    assert!(
        (1_000.0..=8_000.0).contains(&f("bare_subscriber_points_per_sec")),
        "{last}"
    );
    assert!(
        (0.6..=1.4).contains(&f("ratio")),
        "the hub keeps up at this rate: {last}"
    );
    assert!(f("peak_rss_mb") > 1.0, "{last}");
    assert!(
        f("latency_probes") >= 100.0,
        "one probe per 20 ms over 3 s: {last}"
    );
    assert!(
        f("latency_p99_ms") >= f("latency_p50_ms") && f("latency_p50_ms") > 0.0,
        "{last}"
    );
    // A hub that keeps up loses nothing between the broker and its store.
    assert_eq!(last["lost_samples"], 0, "{last}");
    // The history's backlog is read from the hub's `/health`: the run is
    // shorter than the hub's merge period, so some of it still waits.
    let backlog = last["rollup_backlog_points"]
        .as_i64()
        .expect("rollup_backlog_points read");
    assert!(backlog > 0, "{last}");
}
