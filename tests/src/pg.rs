//! The two portal backends under test: SQLite (a file in the portal's data
//! directory) and PostgreSQL (a private server this test process starts,
//! one new database per portal), and a backend-neutral way to edit what a
//! portal stored (a portal whose storage was changed under it).
//!
//! The PostgreSQL server: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/*/bin`), `initdb` into a temporary directory and
//! `postgres` on a free loopback port, as `nobody` when the tests run as
//! root (PostgreSQL refuses root). One server per test process, started on
//! first use; it gets SIGINT (fast shutdown) when the process exits
//! (`setpriv --pdeathsig`, from a thread that lives as long as the
//! process), and the directories of servers whose process is gone are
//! removed by the next run. Without the binaries the PostgreSQL half of a
//! test is skipped with a message, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Which store a portal under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `--data DIR`.
    Sqlite,
    /// `--database postgres://…`.
    Postgres,
}

impl Backend {
    /// Whether PostgreSQL can be used here; under `CI=true` it must be.
    pub fn postgres_available() -> bool {
        server().is_some()
    }
}

/// The database of one portal (any number of processes may serve it).
#[derive(Debug, Clone)]
pub enum PortalDb {
    /// The directory holding `portal.sqlite`.
    Sqlite(PathBuf),
    /// A database URL.
    Postgres(String),
}

/// A parameter or a column value of [`PortalDb`] SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// TEXT.
    Text(String),
    /// INTEGER / BIGINT.
    Int(i64),
}

impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}

impl Val {
    /// The text, or panic.
    pub fn text(&self) -> String {
        match self {
            Val::Text(s) => s.clone(),
            Val::Int(i) => panic!("expected text, got {i}"),
        }
    }
    /// The integer, or panic.
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            Val::Text(s) => panic!("expected an integer, got {s}"),
        }
    }
}

/// `$1`, `$2`… (PostgreSQL) as `?1`, `?2`… (SQLite).
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl PortalDb {
    /// A new database for a portal on `backend` (`data`: the SQLite directory).
    pub fn new(backend: Backend, data: &Path) -> PortalDb {
        match backend {
            Backend::Sqlite => PortalDb::Sqlite(data.to_path_buf()),
            Backend::Postgres => PortalDb::Postgres(
                server()
                    .expect("PostgreSQL is not available (check Backend::postgres_available)")
                    .database(),
            ),
        }
    }

    /// The `mesh-portal serve` arguments naming it.
    pub fn args(&self) -> Vec<String> {
        match self {
            PortalDb::Sqlite(d) => vec!["--data".into(), d.display().to_string()],
            PortalDb::Postgres(url) => vec!["--database".into(), url.clone()],
        }
    }

    /// Run a statement (`$1`… parameters); returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[Val]) -> u64 {
        match self {
            PortalDb::Sqlite(d) => {
                let db = rusqlite::Connection::open(d.join("portal.sqlite")).expect("sqlite");
                let p: Vec<Box<dyn rusqlite::ToSql>> = params
                    .iter()
                    .map(|v| -> Box<dyn rusqlite::ToSql> {
                        match v {
                            Val::Text(s) => Box::new(s.clone()),
                            Val::Int(i) => Box::new(*i),
                        }
                    })
                    .collect();
                let n = db
                    .execute(
                        &sqlite_sql(sql),
                        rusqlite::params_from_iter(p.iter().map(|b| b.as_ref())),
                    )
                    .expect("edit");
                n as u64
            }
            PortalDb::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("postgres");
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                c.execute(sql, &refs).expect("edit")
            }
        }
    }

    /// Every row a query returns (TEXT and integer columns).
    pub fn query(&self, sql: &str, params: &[Val]) -> Vec<Vec<Val>> {
        match self {
            PortalDb::Sqlite(d) => {
                let db = rusqlite::Connection::open(d.join("portal.sqlite")).expect("sqlite");
                let p: Vec<Box<dyn rusqlite::ToSql>> = params
                    .iter()
                    .map(|v| -> Box<dyn rusqlite::ToSql> {
                        match v {
                            Val::Text(s) => Box::new(s.clone()),
                            Val::Int(i) => Box::new(*i),
                        }
                    })
                    .collect();
                let mut st = db.prepare(&sqlite_sql(sql)).expect("prepare");
                let n = st.column_count();
                let rows = st
                    .query_map(
                        rusqlite::params_from_iter(p.iter().map(|b| b.as_ref())),
                        |r| {
                            (0..n)
                                .map(|i| {
                                    Ok(match r.get_ref(i)? {
                                        rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                                        rusqlite::types::ValueRef::Text(t) => {
                                            Val::Text(String::from_utf8_lossy(t).into_owned())
                                        }
                                        other => panic!("column type {:?}", other.data_type()),
                                    })
                                })
                                .collect::<Result<Vec<_>, rusqlite::Error>>()
                        },
                    )
                    .expect("query");
                rows.collect::<Result<Vec<_>, _>>().expect("rows")
            }
            PortalDb::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("postgres");
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                c.query(sql, &refs)
                    .expect("query")
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                use postgres::types::Type;
                                let t = r.columns()[i].type_().clone();
                                if t == Type::INT8 {
                                    Val::Int(r.get(i))
                                } else if t == Type::INT4 {
                                    Val::Int(i64::from(r.get::<_, i32>(i)))
                                } else {
                                    Val::Text(r.get(i))
                                }
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The one row a query returns.
    pub fn row(&self, sql: &str, params: &[Val]) -> Vec<Val> {
        let mut rows = self.query(sql, params);
        assert_eq!(rows.len(), 1, "{sql}: {} rows", rows.len());
        rows.remove(0)
    }

    /// The Access store of `account` whole, (index, JSON) as the portal
    /// serves it: the portal stores most lists as their change from the
    /// one before (a row with a `whole_len`), every 16th whole.
    pub fn access_lists(&self, account: &str) -> Vec<(i64, String)> {
        use mesh_core::envelope::Signed;
        let rows = self.query(
            "SELECT idx, data, COALESCE(whole_len, -1) FROM entries
             WHERE account = $1 AND store = 'Access' ORDER BY idx",
            &[account.into()],
        );
        let mut prev: Option<Signed> = None;
        let mut out = Vec::new();
        for r in rows {
            let (idx, data) = (r[0].int(), r[1].text());
            let whole = if r[2].int() < 0 {
                data
            } else {
                let d: mesh_core::changes::AccessDelta =
                    serde_json::from_str(&data).expect("a stored change");
                let w = d.apply(prev.as_ref().expect("a base")).expect("applies");
                serde_json::to_string(&w).expect("json")
            };
            prev = Some(serde_json::from_str(&whole).expect("an envelope"));
            out.push((idx, whole));
        }
        out
    }

    /// One access list of `account` whole (JSON), as the portal serves it.
    pub fn access_list(&self, account: &str, idx: i64) -> String {
        self.access_lists(account)
            .into_iter()
            .find(|(i, _)| *i == idx)
            .map(|(_, d)| d)
            .expect("an access list at that index")
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Val::Text(s) => Box::new(s.clone()),
                Val::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

/// The private PostgreSQL server of this test process.
#[derive(Debug)]
pub struct PgServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (data, socket, log).
    pub dir: PathBuf,
    made: Mutex<u32>,
}

/// The directory holding `initdb` and `postgres`: Debian's newest version.
pub fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `nobody`'s uid and gid (PostgreSQL refuses to run as root).
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("id of nobody")
    };
    (id("-u"), id("-g"))
}

/// Remove the directories of test servers whose process is gone.
fn remove_stale(tmp: &Path) {
    let Ok(dir) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("mesh-pg-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The server, started on first use; `None` (with a message) when
/// PostgreSQL is not installed, a failure under `CI=true`.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(start).as_ref()
}

fn start() -> Option<PgServer> {
    let Some(bin) = pg_bin() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL (/usr/lib/postgresql/*/bin) is required under CI=true but is not installed"
        );
        eprintln!("skipping the PostgreSQL backend: PostgreSQL is not installed (apt-get install postgresql)");
        return None;
    };
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("mesh-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("pg dir");
    // As root, everything runs as nobody, which must own the directory.
    let as_user: Vec<String> = if is_root() {
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown pg dir");
        vec![
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
        ]
    } else {
        Vec::new()
    };
    let o = Command::new("setpriv")
        .args(&as_user)
        .arg("--")
        .arg(bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .env("LC_ALL", "C")
        .output()
        .expect("initdb");
    assert!(
        o.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let port = crate::free_port();
    let log = std::fs::File::create(dir.join("log")).expect("log");
    let mut cmd = Command::new("setpriv");
    cmd.args(&as_user)
        .args(["--pdeathsig", "INT", "--"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(&dir)
        .args(["-p", &port.to_string()])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
        ])
        // The scale benchmark counts the statements the portal sends.
        .args(if std::env::var_os("MESH_PG_LOG_STATEMENTS").is_some() {
            &["-c", "log_statement=all"][..]
        } else {
            &[][..]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // The parent-death signal follows the thread that forks: a thread that
    // never ends, so the server lives as long as this process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let ok = child.is_ok();
        let _ = tx.send(child.map(|c| c.id()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().expect("spawn thread").expect("start postgres");
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while postgres::Client::connect(&admin, postgres::NoTls).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(PgServer {
        port,
        dir,
        made: Mutex::new(0),
    })
}

impl PgServer {
    /// Statements logged so far (with `MESH_PG_LOG_STATEMENTS` set), once
    /// the log has caught up: a marker statement is run and waited for
    /// (the server writes its log asynchronously); markers are not counted.
    pub fn statements(&self) -> usize {
        static MARK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mark = format!(
            "mesh-log-mark-{}",
            MARK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("postgres");
        c.batch_execute(&format!("SELECT '{mark}'"))
            .expect("marker");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            if log.contains(&mark) {
                return log
                    .lines()
                    .filter(|l| l.contains("LOG:  statement: ") || l.contains("LOG:  execute "))
                    .filter(|l| !l.contains("mesh-log-mark-"))
                    .count();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the PostgreSQL log did not catch up"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let mut n = self.made.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        let name = format!("mesh_{}", *n);
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// Run a test body on each backend: `on_both_backends!(f, g)` makes the
/// tests `sqlite::f`, `postgres::f`, … calling `f(Backend)`. The
/// PostgreSQL half skips (with a message) where PostgreSQL is missing,
/// and fails under `CI=true`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if $crate::Backend::postgres_available() {
                        super::$name($crate::Backend::Postgres)
                    }
                }
            )*
        }
    };
}
