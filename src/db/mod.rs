//! The database: one connection enum over SQLite and PostgreSQL, its pool, migrations,
//! and `run`, the one way handlers reach it.

pub mod schema;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use diesel::connection::{
    AnsiTransactionManager, Instrumentation, InstrumentationEvent, SimpleConnection,
    TransactionManager,
};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::Semaphore;

use crate::config::DatabaseSettings;
use crate::error::ApiError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A multi-row INSERT of `$rows` (a `Vec` of value tuples) into `$table`. Diesel's
/// MultiConnection cannot batch-insert, so each backend gets its own arm.
#[macro_export]
macro_rules! insert_many {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite(c) => {
                diesel::insert_into($table).values($rows).execute(c)?
            }
            $crate::db::DbConn::Postgres(c) => {
                diesel::insert_into($table).values($rows).execute(c)?
            }
        }
    };
}
pub use insert_many;

/// Serializes concurrent `rally` processes migrating one PostgreSQL database.
const MIGRATION_LOCK_KEY: i64 = 0x7261_6c6c_795f_6d67; // "rally_mg"

/// A connection to either backend; queries in Diesel's common subset run on it directly.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// The pool every request borrows from: r2d2's pool (reached through `Deref`) and one
/// permit per connection, which `run` takes on the async side before it asks for a thread.
#[derive(Clone)]
pub struct Pool {
    connections: r2d2::Pool<Manager>,
    permits: Arc<Semaphore>,
}

impl std::ops::Deref for Pool {
    type Target = r2d2::Pool<Manager>;

    fn deref(&self) -> &Self::Target {
        &self.connections
    }
}

/// What `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Postgres(String),
    /// A file path (`:memory:` is refused: each pooled connection would get its own database).
    Sqlite(String),
}

impl DbUrl {
    /// `postgres://…`/`postgresql://…` is PostgreSQL; `sqlite://path` or a bare path is SQLite.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("expected a SQLite file path or a postgres:// URL".into());
        }
        if path == ":memory:" || path.contains("mode=memory") {
            return Err(
                "an in-memory SQLite database cannot be shared by a pool; use a file path".into(),
            );
        }
        if path.contains("://") {
            return Err(format!(
                "unsupported scheme in {:?}: use a SQLite path or postgres://",
                redact(raw)
            ));
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    /// Two connections per core on SQLite, four on PostgreSQL (at most 8 and 16). SQLite's
    /// work is CPU in this process, and one writer at a time anyway; a PostgreSQL
    /// connection also waits on the server. More connections than that only added threads
    /// taking turns on the cores: on 2 cores, 4 and 8 served more than 8 and 16 did, with
    /// a shorter tail (bench/README.md).
    pub fn default_pool_size(&self) -> u32 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        match self {
            Self::Sqlite(_) => (2 * cores).clamp(2, 8),
            Self::Postgres(_) => (4 * cores).clamp(4, 16),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The URL for log lines: a password in it is hidden.
    pub fn redacted(&self) -> String {
        match self {
            Self::Postgres(u) => redact(u),
            Self::Sqlite(p) => p.clone(),
        }
    }
}

fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

/// r2d2 manager that picks the backend from the URL, so a bad PostgreSQL URL reports
/// libpq's own error, and sets SQLite's pragmas on every new connection.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DbUrl,
}

impl Manager {
    pub fn new(url: DbUrl) -> Self {
        Self { url }
    }
}

/// Per-connection SQLite settings: WAL lets readers run beside the writer, foreign keys
/// enforce cascades (the wait for the write lock is `wait_for_write_lock`). The WAL is
/// copied back into the database every 10,000 pages (40 MiB) rather than SQLite's 1,000:
/// a create writes about ten pages, so under write load the committing request ran a
/// checkpoint every hundred creates, copying the same hot pages each time (28 % of the CPU
/// of a create benchmark).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 10000;";

/// Per-connection PostgreSQL settings for request work.
const PG_SESSION_SETTINGS: &str =
    "SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s';";

/// Process-wide SQLite settings, made once before the first connection opens.
///
/// - Multi-thread mode: a connection is only ever used by one thread at a time (the pool
///   hands it out whole), so SQLite's per-call connection mutex (serialized mode, the
///   bundled default) is pure cost.
/// - The query planner stability guarantee on every connection: without it SQLite 3.50
///   re-prepares a cached statement each time a new value is bound to a parameter its
///   plan looked at, which `LIMIT ?` is, so every list page was parsed and planned again.
/// - `wait_for_write_lock` as every connection's busy handler.
fn sqlite_process_setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    unsafe extern "C" fn configure_connection(
        db: *mut libsqlite3_sys::sqlite3,
        _error: *mut *mut std::os::raw::c_char,
        _api: *const libsqlite3_sys::sqlite3_api_routines,
    ) -> std::os::raw::c_int {
        // SAFETY: SQLite calls this with the connection it is opening.
        unsafe {
            libsqlite3_sys::sqlite3_db_config(
                db,
                libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as std::os::raw::c_int,
                std::ptr::null_mut::<std::os::raw::c_int>(),
            );
            libsqlite3_sys::sqlite3_busy_handler(
                db,
                Some(wait_for_write_lock),
                std::ptr::null_mut(),
            );
        }
        libsqlite3_sys::SQLITE_OK
    }
    ONCE.call_once(|| {
        // SAFETY: both are process-wide settings made before any connection is opened
        // here; `sqlite3_config` answers SQLITE_MISUSE, changing nothing, if SQLite was
        // already initialized by other code, and the mode then stays serialized (safe).
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
            libsqlite3_sys::sqlite3_auto_extension(Some(configure_connection));
        }
    });
}

/// How long a SQLite writer waits for another connection's write lock before SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The first waits are short: a write transaction here holds the lock for tens of
/// microseconds.
const SQLITE_BUSY_FAST_WAIT: Duration = Duration::from_micros(50);
const SQLITE_BUSY_FAST_ATTEMPTS: u32 = 200;
const SQLITE_BUSY_SLOW_WAIT: Duration = Duration::from_millis(1);

/// The busy handler of every SQLite connection: `busy_timeout`'s 5 s bound with a finer
/// schedule. SQLite's own handler sleeps 1, 2, 5, 10… ms between tries; with four pooled
/// connections writing (attendance answers), writers slept milliseconds for locks held for
/// microseconds, and change_attendee_status served a quarter of what one connection could.
unsafe extern "C" fn wait_for_write_lock(
    _data: *mut std::os::raw::c_void,
    attempt: std::os::raw::c_int,
) -> std::os::raw::c_int {
    let attempt = u32::try_from(attempt).unwrap_or(0);
    let fast = attempt.min(SQLITE_BUSY_FAST_ATTEMPTS);
    let slow = attempt - fast;
    let waited = SQLITE_BUSY_FAST_WAIT * fast + SQLITE_BUSY_SLOW_WAIT * slow;
    if waited >= SQLITE_BUSY_TIMEOUT {
        return 0;
    }
    std::thread::sleep(if slow == 0 {
        SQLITE_BUSY_FAST_WAIT
    } else {
        SQLITE_BUSY_SLOW_WAIT
    });
    1
}

/// Initializes OpenSSL (which libpq uses for TLS) before libpq does. libpq's own init
/// registers OpenSSL's `atexit` cleanup, which frees the library's global state while
/// pool threads may still be reading from TLS connections: a SIGSEGV at process exit,
/// seen once in CI after every test had passed. rust-openssl's init passes
/// `OPENSSL_INIT_NO_ATEXIT`, and OpenSSL keeps the options of its first initialization.
/// Every PostgreSQL connection in the process, tests' admin connections too, opens here.
pub fn establish_postgres(url: &str) -> ConnectionResult<PgConnection> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(openssl_sys::init);
    PgConnection::establish(url)
}

/// Opens one connection of the backend the URL names, counting its queries.
pub fn establish(url: &DbUrl) -> Result<DbConn, ConnectionError> {
    match url {
        DbUrl::Postgres(u) => {
            let mut conn = establish_postgres(u)?;
            conn.set_instrumentation(QueryCounter);
            Ok(DbConn::Postgres(conn))
        }
        DbUrl::Sqlite(path) => {
            sqlite_process_setup();
            let mut conn = SqliteConnection::establish(path)?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            conn.set_instrumentation(QueryCounter);
            Ok(DbConn::Sqlite(conn))
        }
    }
}

thread_local! {
    /// Statements started on this thread's connection since the last `take_query_count`.
    static QUERIES_ON_THREAD: Cell<u32> = const { Cell::new(0) };
}

tokio::task_local! {
    /// Statements run for the request this task serves (see `http::log_requests`).
    pub static REQUEST_QUERIES: Cell<u32>;
}

/// Counts every statement a connection starts, so each request can report its query
/// count: the evidence for the fixed query budget.
struct QueryCounter;

impl Instrumentation for QueryCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            QUERIES_ON_THREAD.with(|n| n.set(n.get() + 1));
        }
    }
}

fn take_query_count() -> u32 {
    QUERIES_ON_THREAD.with(|n| n.replace(0))
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        let mut conn = establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
        if let DbConn::Postgres(c) = &mut conn {
            // No request holds a connection forever (a lock held elsewhere, a runaway
            // query): it fails with 503 instead. Migrations use their own connection.
            c.batch_execute(PG_SESSION_SETTINGS)
                .map_err(r2d2::Error::QueryError)?;
        }
        Ok(conn)
    }

    /// The checkout test. A PostgreSQL server that stopped or restarted has told its
    /// clients so and closed their sockets: reading what is pending (libpq's
    /// `PQconsumeInput`: no round trip, no statement) finds the connection dead. A
    /// `SELECT 1` per checkout found the same, for a round trip and a statement on the
    /// server each time a request took a connection.
    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        match conn {
            DbConn::Postgres(c) => {
                // The first read takes what the server sent last (its goodbye), the second
                // meets the end of the stream behind it; on a live connection both find
                // nothing to read.
                for _ in 0..2 {
                    if let Some(Err(e)) = c.notifications_iter().next() {
                        return Err(r2d2::Error::QueryError(e));
                    }
                }
                Ok(())
            }
            DbConn::Sqlite(_) => conn.ping().map_err(r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Builds the pool without connecting: a database that is down at start makes requests
/// answer 503 until it is back, instead of keeping the server from starting.
pub fn build_pool(settings: &DatabaseSettings) -> Pool {
    let connections = r2d2::Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(0))
        .connection_timeout(settings.pool_timeout)
        // The checkout test notices a PostgreSQL restart before a request uses a dead socket;
        // a SQLite file cannot drop its connection.
        .test_on_check_out(settings.url.is_postgres())
        .idle_timeout(Some(Duration::from_secs(300)))
        .build_unchecked(Manager::new(settings.url.clone()));
    Pool {
        permits: Arc::new(Semaphore::new(settings.pool_size as usize)),
        connections,
    }
}

/// Applies pending migrations; returns the versions applied.
pub fn migrate(url: &DbUrl) -> anyhow::Result<Vec<String>> {
    let mut conn =
        establish(url).map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", url.redacted()))?;
    let applied = match &mut conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
        DbConn::Postgres(c) => {
            // Diesel does not lock its migrations table; several processes starting at
            // once would race without this.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|vs| vs.into_iter().map(|v| v.to_string()).collect::<Vec<_>>())
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            result?
        }
    };
    Ok(applied)
}

/// Runs `f` with a pooled connection on the blocking thread pool, never on an async worker.
/// Taking the connection is itself blocking, so it happens inside the closure too.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    // Callers queue for a connection here, first come first served, holding no thread:
    // blocking threads are per worker and few, and when every one of a worker's threads
    // held a connection stuck on a lock, the requests queued behind them could not even
    // reach the pool to time out (their 503s came after 3.5 s, not after DB_POOL_TIMEOUT).
    // The timeout bounds the whole wait, permit and checkout together.
    let timeout = pool.connection_timeout();
    let deadline = Instant::now() + timeout;
    let permit = match tokio::time::timeout(timeout, pool.permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => {
            return Err(ApiError::Unavailable(
                "no database connection: timed out waiting for connection".into(),
            ));
        }
    };
    let (result, queries) = web::block(move || {
        let _entered = span.enter();
        let _permit = permit;
        let left = deadline.saturating_duration_since(Instant::now());
        let checkout = if left.is_zero() {
            pool.try_get().ok_or_else(|| {
                ApiError::Unavailable("no database connection: the pool wait ran out".into())
            })
        } else {
            pool.get_timeout(left).map_err(ApiError::from_pool)
        };
        let mut conn = match checkout {
            Ok(c) => c,
            Err(e) => return (Err(e), 0),
        };
        // The checkout ping is the pool's, not the request's.
        take_query_count();
        let result = f(&mut conn);
        (result, take_query_count())
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("blocking task failed: {e}")))?;
    let _ = REQUEST_QUERIES.try_with(|n| n.set(n.get() + queries));
    result
}

/// A write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, taking the write lock
/// up front: a deferred transaction that reads and then writes can fail with SQLITE_BUSY
/// when another writer got in between, which `busy_timeout` does not cover.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    if !matches!(conn, DbConn::Sqlite(_)) {
        return conn.transaction(f);
    }
    if let DbConn::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    }
    let result = f(conn);
    let DbConn::Sqlite(c) = conn else {
        unreachable!("matched as SQLite above")
    };
    match result {
        Ok(value) => {
            <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(
                c,
            )?;
            Ok(value)
        }
        Err(e) => {
            <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(
                c,
            )?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert!(DbUrl::parse("postgres://u@h/db").unwrap().is_postgres());
        assert!(DbUrl::parse("postgresql://u@h/db").unwrap().is_postgres());
        assert_eq!(
            DbUrl::parse("rally.sqlite3").unwrap(),
            DbUrl::Sqlite("rally.sqlite3".into())
        );
        assert_eq!(
            DbUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DbUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(DbUrl::parse(":memory:").is_err());
        assert!(DbUrl::parse("mysql://h/db").is_err());
        assert!(DbUrl::parse("").is_err());
    }

    /// A pooled PostgreSQL connection whose server end went away (as in a restart) is
    /// replaced at checkout, so the request that takes it never sees the dead socket.
    #[test]
    fn a_connection_the_server_closed_is_replaced_at_checkout() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            return;
        };
        let url = DbUrl::parse(&url).unwrap();
        let pool = build_pool(&DatabaseSettings {
            url: url.clone(),
            pool_size: 1,
            pool_timeout: Duration::from_secs(5),
        });
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let pid_query = "SELECT pg_backend_pid() AS pid";
        let first = diesel::sql_query(pid_query)
            .get_result::<Pid>(&mut *pool.get().unwrap())
            .unwrap()
            .pid;
        let mut admin = establish(&url).unwrap();
        diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
            .execute(&mut admin)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let second = diesel::sql_query(pid_query)
            .get_result::<Pid>(&mut *pool.get().unwrap())
            .expect("a live connection after the old one was closed");
        assert_ne!(second.pid, first);
    }

    #[test]
    fn passwords_are_redacted() {
        let url = DbUrl::parse("postgres://u:secret@h/db").unwrap();
        assert!(!url.redacted().contains("secret"));
    }
}
