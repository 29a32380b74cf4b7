//! Every file in `configs/` parses, and a bad config stops the binary with
//! the file, the line and the key.

mod support;

use support::*;

#[test]
fn every_file_in_configs_parses() {
    let dir = configs_dir();
    let hub = wearline_hub::HubConfig::load(&dir.join("hub.toml")).expect("hub.toml");
    assert!(hub.profiles.contains_key("air-purifier"));
    let agent = wearline_agent::AgentConfig::load(&dir.join("agent.toml")).expect("agent.toml");
    assert_eq!(agent.devices.len(), 5);
    let mut seen = 2;
    for entry in std::fs::read_dir(dir.join("profiles")).expect("profiles dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let profile = wearline_models::profile::Profile::parse(&path.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Some(profile.name.as_str()),
            path.file_stem().and_then(|s| s.to_str()),
            "file named after its profile"
        );
        seen += 1;
    }
    let total = walk(&dir);
    assert_eq!(seen, total, "a file in configs/ is not covered by this test");
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let p = e.expect("entry").path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}

#[track_caller]
fn check_bad_config(command: &str, text: &str, expected: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write");
    let out = run(&[command, "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "a bad config must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:{expected}", path.display());
    assert!(stderr.contains(&want), "expected {want:?} in:\n{stderr}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let good = std::fs::read_to_string(configs_dir().join("agent.toml")).expect("agent.toml");
    let bad = good.replacen(
        "interval_ms = 1000\ntimeout_ms = 500",
        "interval_ms = 1000\ntimeout_ms = 500\npoll_fast = true",
        1,
    );
    let line = bad
        .lines()
        .position(|l| l.starts_with("poll_fast"))
        .expect("inserted")
        + 1;
    check_bad_config(
        "agent",
        &bad,
        &format!("{line}:1: key `devices[0].poll_fast`: unknown field"),
    );
}

#[test]
fn tenant_topics_need_a_gateway_of_letters_and_digits() {
    let text = "# a certificate gateway\ngateway = \"gw-lab-1\"\ndata_dir = \"d\"\n[uplink]\nbroker = \"127.0.0.1:8883\"\ntenant_topics = true\n";
    check_bad_config(
        "agent",
        text,
        "2: key `gateway`: with `uplink.tenant_topics = true` the gateway id is the broker's tenant",
    );
    check_bad_config(
        "agent",
        &text.replace("tenant_topics = true", "tenant_topics = \"yes\""),
        "6:17: key `uplink.tenant_topics`: invalid type",
    );
}

#[test]
fn a_short_bootstrap_token_is_refused_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin.token"), "secret\n").expect("write");
    let path = dir.path().join("hub.toml");
    let text = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[http]\nbootstrap_token_file = \"admin.token\"\n[store]\nsqlite = \"x.db\"\n";
    std::fs::write(&path, text).expect("write");
    let out = run(&["hub", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "a short token must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:5: key `http.bootstrap_token_file`: ", path.display());
    assert!(
        stderr.contains(&want) && stderr.contains("at least 32 characters") && !stderr.contains("secret"),
        "expected {want:?}, and not the token, in:\n{stderr}"
    );
}

#[test]
fn wrong_type_names_file_line_and_key() {
    let text = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[http]\nlisten = 8080\n[store]\nsqlite = \"x.db\"\n";
    check_bad_config("hub", text, "5:10: key `http.listen`: invalid type");
}

#[test]
fn invalid_value_names_file_line_and_key() {
    let text = "[broker]\nkind = \"embedded\"\naddress = \"localhost\"\n[store]\nsqlite = \"x.db\"\n";
    check_bad_config("hub", text, "3: key `broker.address`");
}

#[test]
fn influx_section_errors_name_file_line_and_key() {
    let base =
        "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n[influx]\n";
    let cases = [
        (
            "url = \"http://h:8086\"\nbucket = \"b\"\nbatch = 10\n",
            "9:1: key `influx.batch`: unknown field",
        ),
        ("url = \"h:8086\"\nbucket = \"b\"\n", "7: key `influx.url`"),
        (
            "url = \"http://h:8086/influx\"\nbucket = \"b\"\n",
            "7: key `influx.url`: the server must be at the root",
        ),
        (
            "url = \"http://h:8086\"\nbucket = \"b\"\nbatch_points = 10\nmax_queue_points = 5\n",
            "10: key `influx.max_queue_points`",
        ),
        (
            "url = \"http://h:8086\"\nbucket = \"b\"\ntoken = \"t\"\ntoken_file = \"t.txt\"\n",
            "10: key `influx.token_file`",
        ),
    ];
    for (section, expected) in cases {
        check_bad_config("hub", &format!("{base}{section}"), expected);
    }
}

#[test]
fn reminders_section_errors_name_file_line_and_key() {
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n";
    let smtp = "[reminders.smtp]\nhost = \"smtp.example.com\"\n";
    let cases = [
        (
            format!("{smtp}from = \"not an address\"\n"),
            "8: key `reminders.smtp.from`: `not an address` is not an e-mail address",
        ),
        (
            format!("{smtp}from = \"a@example.com\"\ntls = \"ssl\"\n"),
            "9:7: key `reminders.smtp.tls`: unknown variant `ssl`",
        ),
        (
            format!("{smtp}from = \"a@example.com\"\nusername = \"u\"\n"),
            "9: key `reminders.smtp.username`: set both `username` and `password_file`",
        ),
        (
            format!("{smtp}from = \"a@example.com\"\nusername = \"u\"\npassword_file = \"none.txt\"\n"),
            "10: key `reminders.smtp.password_file`: cannot read",
        ),
        (
            format!("{smtp}from = \"a@example.com\"\nport = 0\n"),
            "9: key `reminders.smtp.port`",
        ),
        (
            format!("{smtp}from = \"a@example.com\"\nsender = \"x\"\n"),
            "9:1: key `reminders.smtp.sender`: unknown field",
        ),
        (
            "[reminders]\nretry_first_ms = 5\n".to_string(),
            "7: key `reminders.retry_first_ms`: must be between 100 and 3600000",
        ),
    ];
    for (section, expected) in cases {
        check_bad_config("hub", &format!("{base}{section}"), expected);
    }
}

/// The SMTP login: read from its file, never shown, and never sent in clear
/// beyond loopback.
#[test]
fn the_smtp_password_is_read_from_its_file_and_kept_off_plain_networks() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("profiles")).expect("profiles");
    std::fs::write(dir.path().join("smtp.password"), "s3cret-Pa55\n").expect("password");
    let config = |tls: &str, host: &str| {
        format!(
            "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n\
             [reminders.smtp]\nhost = \"{host}\"\ntls = \"{tls}\"\nfrom = \"Wearline <r@example.com>\"\n\
             username = \"wearline\"\npassword_file = \"smtp.password\"\n"
        )
    };
    let parse = |text: &str| wearline_hub::HubConfig::parse("hub.toml", text, dir.path());
    let cfg = parse(&config("starttls", "smtp.example.com")).expect("valid");
    let smtp = cfg.reminders.smtp.as_ref().expect("smtp");
    assert_eq!(smtp.port, 587, "the STARTTLS submission port by default");
    assert_eq!(
        smtp.login,
        Some(("wearline".to_string(), "s3cret-Pa55".to_string()))
    );
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert_eq!(
        parse(&config("tls", "smtp.example.com"))
            .expect("tls")
            .reminders
            .smtp
            .expect("smtp")
            .port,
        465
    );
    let err = parse(&config("none", "smtp.example.com")).expect_err("a password in clear");
    assert!(
        err.to_string()
            .starts_with("hub.toml:8: key `reminders.smtp.tls`: `none` would send the password in clear"),
        "{err}"
    );
    let local = parse(&config("none", "127.0.0.1")).expect("a relay on loopback");
    assert_eq!(local.reminders.smtp.expect("smtp").port, 25);
    assert!(parse(&config("starttls", "smtp.example.com")).is_ok());
}

#[test]
fn store_section_errors_name_file_line_and_key() {
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\n";
    check_bad_config(
        "hub",
        &format!("{base}postgres = \"mysql://h/db\"\n"),
        "5: key `store.postgres`: expected a URL `postgres://",
    );
    check_bad_config(
        "hub",
        &format!("{base}sqlite = \"x.db\"\npostgres = \"postgres://h/db\"\n"),
        "6: key `store.postgres`: set `sqlite` (a file) or `postgres` (a URL), not both",
    );
    check_bad_config("hub", base, "4: key `store.sqlite`: set `sqlite`");
    check_bad_config(
        "hub",
        &format!("{base}url = \"postgres://h/db\"\n"),
        "5:1: key `store.url`: unknown field",
    );
}

#[test]
fn ingest_section_errors_name_file_line_and_key() {
    let base =
        "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n[ingest]\n";
    check_bad_config(
        "hub",
        &format!("{base}unknown_devices = \"reject\"\n"),
        "7: key `ingest.unknown_devices`: `reject` needs `devices_file`",
    );
    check_bad_config(
        "hub",
        &format!("{base}offline_after_secs = 0\n"),
        "7: key `ingest.offline_after_secs`",
    );
    check_bad_config(
        "hub",
        &format!("{base}unknown_devices = \"maybe\"\n"),
        "7:19: key `ingest.unknown_devices`: unknown variant",
    );
}

#[test]
fn indicator_section_errors_name_file_line_and_key() {
    let base =
        "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n[indicator]\n";
    check_bad_config(
        "hub",
        &format!("{base}result_timeout_secs = 0\n"),
        "7: key `indicator.result_timeout_secs`: must be 1 to 86400 seconds",
    );
    check_bad_config(
        "hub",
        &format!("{base}timeout = 5\n"),
        "7:1: key `indicator.timeout`: unknown field",
    );
}

#[test]
fn escalation_section_errors_name_file_line_and_key() {
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n";
    check_bad_config(
        "hub",
        &format!("{base}[escalation]\nnotify_email = [\"service@example.com\"]\n"),
        "7: key `escalation.notify_email`: needs `[reminders.smtp]`",
    );
    let smtp = "[reminders.smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"hub@example.com\"\n";
    check_bad_config(
        "hub",
        &format!("{base}{smtp}[escalation]\nnotify_email = [\"service at example\"]\n"),
        "11: key `escalation.notify_email`: `service at example` is not an e-mail address",
    );
}

#[test]
fn a_bad_device_id_in_the_devices_file_names_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("devices.txt");
    std::fs::write(&list, "# the fleet\npurifier-0001\n\npurifier 0002\n").expect("write");
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n[ingest]\nunknown_devices = \"reject\"\ndevices_file = \"devices.txt\"\n",
    )
    .expect("write");
    let out = run(&["hub", "--config", cfg.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:4: device id `purifier 0002`", list.display());
    assert!(stderr.contains(&want), "expected {want:?} in:\n{stderr}");
}

#[test]
fn broker_security_errors_name_file_line_and_key() {
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n";
    let store = "[store]\nsqlite = \"x.db\"\n";
    let tls = "[broker.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"none.pem\"\nkey_file = \"none.key\"\nclient_ca_file = \"none-ca.pem\"\n";
    let cases = [
        (
            format!("{base}max_connections = 0\n{store}"),
            "4: key `broker.max_connections`: must be between 1 and 100000".to_string(),
        ),
        (
            format!("{base}max_payload_bytes = 10\n{store}"),
            "4: key `broker.max_payload_bytes`".to_string(),
        ),
        (
            format!("{base}backlog_mib = 2\n{store}"),
            "4: key `broker.backlog_mib`: must be between 8 and 4096".to_string(),
        ),
        (
            format!("{base}{tls}{store}"),
            "6: key `broker.tls.cert_file`: cannot read".to_string(),
        ),
        (
            format!("[broker]\nkind = \"embedded\"\naddress = \"0.0.0.0:0\"\n{tls}{store}"),
            "3: key `broker.address`: with `[broker.tls]`, the plain listener must be on loopback"
                .to_string(),
        ),
        (
            format!("[broker]\nkind = \"external\"\naddress = \"mq:1883\"\npassword_file = \"p\"\n{store}"),
            "4: key `broker.password_file`: only for the embedded broker".to_string(),
        ),
        (
            format!(
                "{base}[broker.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n{store}"
            ),
            "4:1: key `broker.tls`: missing field `client_ca_file`".to_string(),
        ),
    ];
    for (text, expected) in cases {
        check_bad_config("hub", &text, &expected);
    }
}

#[test]
fn a_bad_line_in_the_password_file_names_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("passwd");
    std::fs::write(&list, "# fleet\ngw1:s3cret\n").expect("write");
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\npassword_file = \"passwd\"\n[store]\nsqlite = \"x.db\"\n",
    )
    .expect("write");
    let out = run(&["hub", "--config", cfg.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:2: user `gw1`: expected a hash", list.display());
    assert!(stderr.contains(&want), "expected {want:?} in:\n{stderr}");
}

#[test]
fn retention_errors_name_file_line_and_key() {
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n";
    let cases = [
        (
            "[store.retention]\nraw_days = 100\n",
            "7: key `store.retention.raw_days`: keeps 100 days but `minute_days` keeps 90 days",
        ),
        (
            "[store.retention]\nraw_days = 0\n",
            "7: key `store.retention.raw_days`: keeps forever (0) but `minute_days` keeps 90 days",
        ),
        (
            "[store.retention]\nminute_days = 30\nhour_days = 10\n",
            "7: key `store.retention.minute_days`: keeps 30 days but `hour_days` keeps 10 days",
        ),
        (
            "[store.retention]\nraw_days = 1\nraw_hours = 2\n",
            "8:1: key `store.retention.raw_hours`: unknown field",
        ),
        (
            "[store.retention]\nminute_days = \"90d\"\n",
            "7:15: key `store.retention.minute_days`: invalid type",
        ),
        (
            "rollup_every_secs = 0\n",
            "6: key `store.rollup_every_secs`: must be between 1 and 3600",
        ),
    ];
    for (section, expected) in cases {
        check_bad_config("hub", &format!("{base}{section}"), expected);
    }
}

#[test]
fn retention_defaults_and_zero_keep_forever() {
    use std::time::Duration;
    let base = "[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n[store]\nsqlite = \"x.db\"\n";
    let day = |d: u64| Some(Duration::from_secs(d * 86_400));
    let parse = |extra: &str| {
        wearline_hub::HubConfig::parse("hub.toml", &format!("{base}{extra}"), &configs_dir())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let defaults = parse("");
    assert_eq!(
        (
            defaults.retention.raw,
            defaults.retention.minute,
            defaults.retention.hour
        ),
        (day(7), day(90), None)
    );
    assert_eq!(defaults.rollup_every, Duration::from_secs(60));
    let set = parse("rollup_every_secs = 30\n[store.retention]\nraw_days = 2\nminute_days = 0\n");
    assert_eq!(
        (set.retention.raw, set.retention.minute, set.retention.hour),
        (day(2), None, None)
    );
    assert_eq!(set.rollup_every, Duration::from_secs(30));
    let all = parse("[store.retention]\nraw_days = 3\nminute_days = 3\nhour_days = 400\n");
    assert_eq!(all.retention.hour, day(400));
}
