//! The API's OpenAPI document against the real hub: it is served without a
//! token, is valid OpenAPI 3.1 (checked by `openapi-spec-validator`), lists
//! exactly the endpoints of the README's table, and every `/api/v1`
//! operation declares the bearer scheme and answers 401 without a token.
//! Then schemathesis (PyPI, installed by `tests/run`) fuzzes every operation
//! with a token of each role against a hub holding a demo fleet's data: no
//! 5xx, every answer as documented.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The schemathesis release `tests/run` installs.
const SCHEMATHESIS: &str = "4.32.5";

/// Test cases per operation in the fuzzing phase, per role: bounds the run
/// (20 operations, four roles, about 1 500 requests each) to about a minute
/// on two cores. The seed is fixed, so a failure reproduces.
const MAX_EXAMPLES: &str = "50";

/// The document, fetched without a token.
fn document(api: &str) -> Value {
    let (code, doc, _) = get_as(&format!("{api}/api/v1/openapi.json"), None);
    assert_eq!(code, 200, "the document needs no token: {doc}");
    doc
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `(METHOD, path)` of every endpoint in the README's API table: a row's
/// first cell is `` `GET /path[?query]` `` or `` `GET`/`PUT /path` ``.
fn readme_endpoints() -> BTreeSet<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let mut out = BTreeSet::new();
    for line in readme.lines() {
        let Some(cell) = line.strip_prefix("| `").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        let Some((methods, rest)) = cell.split_once(" /") else {
            continue;
        };
        let path: String = rest.chars().take_while(|c| !matches!(c, '[' | '`')).collect();
        for m in methods.split(['`', '/']).filter(|w| !w.is_empty()) {
            assert!(
                ["GET", "PUT", "POST", "DELETE", "PATCH"].contains(&m),
                "README: `{m}` in {line:?} is not a method"
            );
            out.insert((m.to_string(), format!("/{path}")));
        }
    }
    out
}

#[test]
fn the_document_is_valid_openapi_3_1_lists_every_route_and_secures_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(dir.path());
    let doc = document(&hub.api);

    // Valid OpenAPI 3.1, by the reference validator (a dependency of schemathesis).
    assert_eq!(doc["openapi"], "3.1.0", "{}", doc["openapi"]);
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write the document");
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 is needed; run tests/run, which installs schemathesis and its validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Exactly the README's endpoints, so neither can drift from the code.
    let documented = operations(&doc);
    let readme = readme_endpoints();
    assert!(readme.len() >= 20, "the README's table was not read: {readme:?}");
    assert_eq!(
        documented, readme,
        "the document's operations (left) and the README's API table (right) differ"
    );

    // The bearer scheme, declared and required by every /api/v1 operation
    // but the document itself; none for the open ones.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        let open = !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json";
        let url = format!(
            "{}{}",
            hub.api,
            path.replace("{id}", "1").replace("{name}", "tom")
        );
        let status = anonymous(method, &url);
        if open {
            assert!(op.get("security").is_none(), "{method} {path}: {op}");
            assert_ne!(status, 401, "{method} {path} is open");
        } else {
            assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
            assert!(op["responses"]["401"].is_object(), "{method} {path}: {op}");
            // The route exists and sits behind the token check.
            assert_eq!(status, 401, "{method} {path} without a token");
        }
        assert!(
            !op["tags"].as_array().expect("tags").is_empty(),
            "{method} {path}"
        );
        assert!(op["summary"].is_string(), "{method} {path}: a short description");
        assert!(
            op["responses"]["200"].is_object() || op["responses"]["201"].is_object(),
            "{method} {path}: a success answer"
        );
        for code in op["responses"].as_object().expect("responses").keys() {
            if code.starts_with('4') || code == "500" {
                assert_eq!(
                    op["responses"][code]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
    }

    // A flattened view is its row (a reference) and its own fields; the
    // tuple interval is two items; JSON kept as text is served parsed.
    let schemas = &doc["components"]["schemas"];
    let view = &schemas["ConsumableView"]["allOf"];
    assert_eq!(view[0]["$ref"], "#/components/schemas/ConsumableRow", "{view}");
    let row = &schemas["ConsumableRow"]["properties"];
    assert!(row["device_id"].is_object() && row["limit"].is_object(), "{row}");
    for hidden in ["state", "limit_kind", "explanation"] {
        assert!(
            row.get(hidden).is_none(),
            "{hidden} is not served as a row field: {row}"
        );
    }
    let own = &view[1]["properties"];
    assert_eq!(
        own["interval"]["prefixItems"].as_array().map(Vec::len),
        Some(2),
        "{own}"
    );
    assert_eq!(own["explanation"]["type"], json!(["object", "null"]), "{own}");
}

/// A schemathesis.toml section: the `{id}` of the paths matching `regex`
/// comes from the dictionary `name` half the time.
fn ids_from(regex: &str, name: &str) -> String {
    format!(
        "[[operations]]\ninclude-path-regex = {regex:?}\n\
         parameters = {{ \"path.id\" = {{ dictionary = {name:?}, probability = 0.5 }} }}\n"
    )
}

/// The last `n` bytes of `text` or so (schemathesis reports run long).
fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The status of `method url` with no token and an empty JSON body.
fn anonymous(method: &str, url: &str) -> u16 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let resp = match method {
        "GET" => agent.get(url).call(),
        "PUT" => agent.put(url).send_json(json!({})),
        "POST" => agent.post(url).send_json(json!({})),
        other => panic!("teach `anonymous` the method {other}"),
    };
    resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"))
        .status()
        .as_u16()
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer_for_any_role() {
    let version = Command::new("schemathesis")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("schemathesis is needed ({e}); run tests/run, which installs it"));
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains(SCHEMATHESIS),
        "schemathesis {SCHEMATHESIS} is pinned (tests/run installs it), found {version}"
    );

    // A demo fleet's data: devices, consumables with predictions, work orders,
    // a customer owning a device, a manager and a customer token.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let demo = Proc::start(
        dir.path(),
        "demo",
        &[
            "demo",
            "--devices",
            "6",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    );
    let manager = demo.expect_line("manager token:", Duration::from_secs(30));
    let customer = demo.expect_line(
        "customer token (acme, owns purifier-0001):",
        Duration::from_secs(5),
    );
    // Two orders opened: enough to read, assign and act on. Then a clean stop.
    for _ in 0..2 {
        demo.expect_line("work order #", Duration::from_secs(60));
    }
    demo.signal("TERM");
    let (status, _) = demo.wait(Duration::from_secs(60));
    assert!(status.success(), "demo exited with {status}");

    // The same store behind a hub of our own, with the admin token and a technician.
    let db = data.join("hub.db");
    // An SMTP relay in the config (never reached: no reminder falls due),
    // so that the `email` channel the document lists is available.
    let cfg = write_hub_config(
        dir.path(),
        "[reminders.smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"Wearline <reminders@example.com>\"\n",
    );
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace("sqlite = \"hub.db\"", &format!("sqlite = {:?}", db)),
    )
    .expect("config");
    let hub = start_hub_config(dir.path(), &cfg);
    let technician = create_token(
        &cfg,
        &[
            "--role",
            "technician",
            "--name",
            "tom-phone",
            "--technician",
            "tom",
        ],
    );
    let api = format!("{}/api/v1", hub.api);
    let (_, orders, _) = get_as(&format!("{api}/work-orders"), Some(&manager));
    let first = orders[0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the demo opened orders: {orders}"));
    let (code, body) = post_json_as(
        &format!("{api}/work-orders/{first}/transitions"),
        &manager,
        &json!({"action": "assign", "assignee": "tom"}),
    );
    assert_eq!(code, 200, "{body}");

    // Half the ids schemathesis sends are real ones, so the runs read and
    // change stored devices, orders and settings, not only 404s.
    let (_, devices, _) = get_as(&format!("{api}/devices"), Some(&manager));
    let devices = devices.as_array().expect("devices").clone();
    let device_ids: Vec<Value> = devices.iter().map(|d| d["id"].clone()).collect();
    let customer_ids: BTreeSet<i64> = devices.iter().filter_map(|d| d["customer_id"].as_i64()).collect();
    let order_ids: Vec<Value> = orders
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert!(
        device_ids.len() >= 2 && !customer_ids.is_empty() && order_ids.len() >= 2,
        "{devices:?}"
    );
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[dictionaries.devices]\nvalues = {}\n[dictionaries.orders]\nvalues = {}\n\
             [dictionaries.customers]\nvalues = {}\n\
             {}{}{}",
            json!(device_ids),
            json!(order_ids),
            json!(customer_ids),
            ids_from("^/api/v1/devices/", "devices"),
            ids_from("^/api/v1/work-orders/", "orders"),
            ids_from("^/api/v1/customers/", "customers"),
        ),
    )
    .expect("write schemathesis.toml");

    for (role, token) in [
        ("admin", ADMIN_TOKEN),
        ("manager", manager.as_str()),
        ("technician", technician.as_str()),
        ("customer", customer.as_str()),
    ] {
        let started = Instant::now();
        let report = dir.path().join(format!("schemathesis-{role}"));
        let out = Command::new("schemathesis")
            .current_dir(dir.path())
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("{api}/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all"])
            .args(["--max-examples", MAX_EXAMPLES])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--workers", "1", "--seed", "1", "--no-color"])
            .args(["--generation-database", "none"])
            .arg("--report-dir")
            .arg(&report)
            .output()
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {role} failed after {:?}:\n{}\n{}",
            started.elapsed(),
            tail(&stdout, 20_000),
            tail(&String::from_utf8_lossy(&out.stderr), 4_000)
        );
        assert!(
            stdout.contains("passed") && !stdout.contains(" 0 passed"),
            "schemathesis as {role} tested nothing:\n{stdout}"
        );
        eprintln!(
            "schemathesis as {role}, {:?}:\n{}",
            started.elapsed(),
            tail(&stdout, 1_500)
        );
    }
    // The hub survived it all.
    assert_eq!(get_as(&format!("{}/health", hub.api), None).0, 200);
}
