//! Test support (the `testing` feature, and the hub's own tests): a store on
//! each back end, a real PostgreSQL server started from Debian's binaries.
//!
//! One PostgreSQL server runs per test process, on a free loopback port
//! with its data in a temp dir; each test gets a database of its own in it.
//! The server is started by a small shell that holds it: when the test
//! process ends, however it ends, that shell reads the end of its stdin,
//! stops the server and removes the data dir. As root (initdb refuses to
//! run as root) the server runs as the `postgres` user.

use crate::store::{Backend, Location};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A database for one test, dropped with it (SQLite) or with the test
/// process (PostgreSQL).
pub struct TestDb {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new, empty database on `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                TestDb {
                    location: Location::Sqlite(dir.path().join("hub.db")),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => TestDb {
                location: Location::Postgres(postgres_database().await),
                _dir: None,
            },
        }
    }
}

/// The running server: its base URL (without a database) and the shell's
/// stdin, whose end stops it.
struct Server {
    base: String,
    _hold: std::sync::Mutex<ChildStdin>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh database in this process's PostgreSQL server; its URL.
pub async fn postgres_database() -> String {
    let base = tokio::task::spawn_blocking(|| SERVER.get_or_init(start_server).base.clone())
        .await
        .expect("starting PostgreSQL");
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    format!("{base}/{name}")
}

/// Debian's PostgreSQL binaries (`/usr/lib/postgresql/N/bin`, newest N), or
/// `WEARLINE_PG_BINDIR`.
fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEARLINE_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's initdb is not in /usr/lib/postgresql/*/bin: run tests/run, which installs \
             Debian's postgresql, or set WEARLINE_PG_BINDIR"
        )
    })
}

const SCRIPT: &str = r#"
set -e
dir="$1"; port="$2"; bin="$3"
"$bin/initdb" -D "$dir/data" -U wearline --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=300" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo ready
read -r _ || true
"$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$dir"
"#;

fn start_server() -> Server {
    let bin = bindir();
    let dir = tempfile::Builder::new()
        .prefix("wearline-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false);
    let mut cmd = if root {
        let status = Command::new("chown")
            .args(["postgres:", &dir.display().to_string()])
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "chown {} to postgres (is Debian's postgresql installed?)",
            dir.display()
        );
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", SCRIPT, "sh"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", SCRIPT, "sh"]);
        c
    };
    cmd.arg(&dir).arg(port.to_string()).arg(&bin);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the PostgreSQL holder shell");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the holder's stdout");
    assert_eq!(
        line.trim(),
        "ready",
        "PostgreSQL did not start (initdb/pg_ctl output above; data in {})",
        dir.display()
    );
    let hold = child.stdin.take().expect("stdin");
    // The holder exits when the test process does; nothing waits for it.
    std::mem::forget(child);
    Server {
        base: format!("postgres://wearline@127.0.0.1:{port}"),
        _hold: std::sync::Mutex::new(hold),
    }
}

/// Runs an async test body once per back end, as two tests:
/// `name::sqlite` and `name::postgres`. The body is an `async fn(TestDb)`.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::testing::TestDb::new($crate::store::Backend::Sqlite).await).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::testing::TestDb::new($crate::store::Backend::Postgres).await).await
                }
            }
        )+
    };
}
