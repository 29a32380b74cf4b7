//! Helpers shared by the integration tests: run the real `wearline` binary,
//! read what it prints, query its API, and clean up on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `wearline` process, killed on drop. Its stderr goes to a file
/// that is printed when the test fails.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
    name: String,
}

impl Proc {
    /// Starts `wearline` with `args`.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wearline"));
        cmd.args(args).env("RUST_LOG", "info,rumqttd=off");
        Proc::spawn(dir, name, cmd, None)
    }

    /// Starts any program, feeding `stdin` to it when given.
    pub fn spawn(dir: &Path, name: &str, mut cmd: Command, stdin: Option<&str>) -> Proc {
        let stderr = dir.join(format!("{name}.stderr"));
        let err_file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = cmd
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name} ({cmd:?}): {e}; run tests/run, which installs the test peers")
            });
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            stderr,
            name: name.to_string(),
        }
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest.
    pub fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "{}: no line starting with {prefix:?} within {timeout:?}",
            self.name
        );
    }

    /// Waits for the process to exit and returns its status and remaining stdout.
    pub fn wait(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let rest: Vec<String> =
                    std::iter::from_fn(|| self.lines.recv_timeout(Duration::from_secs(2)).ok()).collect();
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`TERM`, `STOP`…) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot send {signal} to {}", self.name);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} stderr -----\n{}", self.name, self.stderr());
        }
    }
}

/// Runs `wearline` to completion with `args`.
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wearline"))
        .args(args)
        .output()
        .expect("run wearline")
}

/// The admin token every hub started by [`write_hub_config`] takes (its
/// `http.bootstrap_token_file`).
pub const ADMIN_TOKEN: &str = "wl_test_admin_0000000000000000000000000000000000000000";

/// `Authorization` header value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Writes the admin token file `admin.token` in `dir`; the `[http]` key
/// that names it.
pub fn write_admin_token(dir: &Path) -> &'static str {
    std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).expect("write admin token");
    "bootstrap_token_file = \"admin.token\"\n"
}

/// GETs JSON from the API as an admin.
pub fn get_json(url: &str) -> serde_json::Value {
    ureq::get(url)
        .header("Authorization", &bearer(ADMIN_TOKEN))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GETs from the API with `token` (or none): the status code and the JSON
/// answer (errors too), and the `WWW-Authenticate` header.
pub fn get_as(url: &str, token: Option<&str>) -> (u16, serde_json::Value, Option<String>) {
    let mut req = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json = resp
        .into_body()
        .read_json()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (status, json, challenge)
}

/// POSTs JSON to the API as an admin: the status code and the JSON answer (errors too).
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    post_json_as(url, ADMIN_TOKEN, body)
}

/// POSTs JSON to the API with `token`: the status code and the JSON answer.
pub fn post_json_as(url: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = ureq::post(url)
        .header("Authorization", &bearer(token))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let json = resp
        .into_body()
        .read_json()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (status, json)
}

/// Runs `wearline token create --config cfg ARGS` and returns the token it printed.
pub fn create_token(cfg: &Path, args: &[&str]) -> String {
    let mut all = vec!["token", "create", "--config", cfg.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "token create {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
#[track_caller]
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free loopback port (bound, then released) for peers that cannot report theirs.
pub fn free_port() -> u16 {
    closed_port().port()
}

/// A loopback address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The repository's `configs/` folder.
pub fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// Writes a hub config using the repository's profiles, with an embedded
/// broker and API on free ports, then `extra` (more sections); returns its path.
pub fn write_hub_config(dir: &Path, extra: &str) -> PathBuf {
    write_hub_config_broker(dir, "", extra)
}

/// Like [`write_hub_config`], with more `[broker]` keys (`broker_keys`).
/// The hub takes [`ADMIN_TOKEN`] as its bootstrap token.
pub fn write_hub_config_broker(dir: &Path, broker_keys: &str, extra: &str) -> PathBuf {
    write_hub_config_full(dir, &configs_dir().join("profiles"), broker_keys, extra)
}

/// Like [`write_hub_config_broker`], with the device profiles of `profiles`.
pub fn write_hub_config_full(dir: &Path, profiles: &Path, broker_keys: &str, extra: &str) -> PathBuf {
    let path = dir.join("hub.toml");
    let text = format!(
        "profiles_dir = {profiles:?}\n[broker]\nkind = \"embedded\"\naddress = \"127.0.0.1:0\"\n{broker_keys}\n[http]\nlisten = \"127.0.0.1:0\"\n{}[store]\nsqlite = \"hub.db\"\n{extra}",
        write_admin_token(dir)
    );
    std::fs::write(&path, text).expect("write hub config");
    path
}

/// A started hub: its process, API base URL and broker address.
pub struct TestHub {
    pub proc: Proc,
    pub api: String,
    pub broker: String,
}

pub fn start_hub(dir: &Path) -> TestHub {
    start_hub_with(dir, "")
}

/// Starts a hub whose config ends with `extra` (e.g. an `[influx]` section).
pub fn start_hub_with(dir: &Path, extra: &str) -> TestHub {
    start_hub_config(dir, &write_hub_config(dir, extra))
}

/// Starts a hub with the config file `cfg`.
pub fn start_hub_config(dir: &Path, cfg: &Path) -> TestHub {
    let proc = Proc::start(
        dir,
        "hub",
        &["hub", "--config", cfg.to_str().expect("utf-8 path")],
    );
    let api = proc.expect_line("api:", Duration::from_secs(30));
    let broker = proc.expect_line("broker:", Duration::from_secs(5));
    TestHub { proc, api, broker }
}

/// Runs openssl in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian) is needed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA `{name}-ca.pem` (key `{name}-ca.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    let (key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=wearline test CA",
        ],
    );
}

/// Makes `{cert}.pem` and `{cert}.key` in `dir` with `subject`, signed by the
/// CA `{ca}-ca.pem`; `ext` is the extensions file's text (e.g.
/// `subjectAltName=IP:127.0.0.1`).
pub fn make_cert(dir: &Path, ca: &str, cert: &str, subject: &str, ext: &str) {
    let (key, csr, crt, extfile) = (
        format!("{cert}.key"),
        format!("{cert}.csr"),
        format!("{cert}.pem"),
        format!("{cert}.ext"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    std::fs::write(dir.join(&extfile), ext).expect("ext file");
    let (ca_pem, ca_key) = (format!("{ca}-ca.pem"), format!("{ca}-ca.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    );
}

/// Writes a mosquitto password file at `path` with Debian's
/// `mosquitto_passwd` (`users`: name and password).
pub fn mosquitto_passwd(path: &Path, users: &[(&str, &str)]) {
    std::fs::write(path, "").expect("password file");
    let bin = if Path::new("/usr/bin/mosquitto_passwd").exists() {
        "/usr/bin/mosquitto_passwd"
    } else {
        "mosquitto_passwd"
    };
    for (user, password) in users {
        let out = Command::new(bin)
            .arg("-b")
            .arg(path)
            .args([user, password])
            .output()
            .expect("mosquitto_passwd (Debian's mosquitto) is needed");
        assert!(
            out.status.success(),
            "mosquitto_passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts Debian's mosquitto with `conf` (listeners and the like) and waits
/// until every port in `ports` accepts connections. `user root` keeps the
/// broker able to read its files in our private temp dir when the tests run
/// as root (it has no effect otherwise).
pub fn start_mosquitto(dir: &Path, name: &str, conf: &str, ports: &[u16]) -> Proc {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, format!("user root\n{conf}")).expect("write mosquitto.conf");
    let mut cmd = Command::new("mosquitto");
    cmd.arg("-c").arg(&path);
    let p = Proc::spawn(dir, name, cmd, None);
    for &port in ports {
        eventually(Duration::from_secs(10), "mosquitto to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
    }
    p
}

/// Starts mosquitto with one anonymous plain listener on a free loopback
/// port; returns it and the port.
pub fn start_plain_mosquitto(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let conf = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
    (start_mosquitto(dir, "mosquitto", &conf, &[port]), port)
}

/// Starts Debian's victoria-metrics on `port` with its data in `data`, and
/// waits until it answers `/ready`. The same port and folder restart it.
pub fn start_victoria_metrics(dir: &Path, name: &str, port: u16, data: &Path) -> Proc {
    let bin = if Path::new("/usr/bin/victoria-metrics").exists() {
        "/usr/bin/victoria-metrics"
    } else {
        "victoria-metrics"
    };
    let mut cmd = Command::new(bin);
    cmd.arg("-httpListenAddr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-storageDataPath")
        .arg(data)
        .arg("-loggerLevel")
        .arg("WARN");
    let p = Proc::spawn(dir, name, cmd, None);
    let ready = format!("http://127.0.0.1:{port}/ready");
    eventually(Duration::from_secs(20), "victoria-metrics to be ready", || {
        ureq::get(&ready).call().ok().map(|_| ())
    });
    p
}

/// GETs a Prometheus text page (`/metrics`); `None` while it does not answer.
pub fn scrape(url: &str) -> Option<String> {
    ureq::get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// The value of an unlabelled metric in a Prometheus text page.
pub fn prom_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
