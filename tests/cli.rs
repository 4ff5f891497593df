//! The `rally` binary as an operator runs it: `migrate`, `createsuperuser`, `serve`, and
//! what a bad setting looks like. Each test runs the real executable in a temp directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{Value, json};

/// Passes Django's password validators.
const PASSWORD: &str = "Xq7!mVz2pL-rally";
/// 40 bytes: over the 32-byte minimum.
const SECRET: &str = "cli-test-secret-cli-test-secret-0123456";

/// `rally` with a clean environment: only what a test sets reaches it.
fn rally(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rally"));
    cmd.env_clear()
        .env("RUST_BACKTRACE", "1")
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("rally runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Neither a panic nor a backtrace: an operator gets a sentence, not a stack.
fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A running `rally serve`, killed when dropped (also when the test fails).
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `rally serve` in `dir` on a free port with `env` added.
    fn start(dir: &Path, env: &[(&str, &str)]) -> (Self, Instant) {
        let port = free_port();
        let mut cmd = rally(dir);
        cmd.arg("serve")
            .env("RALLY_BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", SECRET)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let child = cmd.spawn().expect("rally serve starts");
        (Self { child, port }, started)
    }

    /// Polls `GET /healthz` until it answers 200; the time it took since `since`.
    fn wait_healthy(&mut self, since: Instant) -> Duration {
        while since.elapsed() < Duration::from_secs(20) {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("rally serve exited early: {status}");
            }
            if let Ok((200, _)) = http(self.port, "GET", "/healthz", None, None) {
                return since.elapsed();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("rally serve did not answer /healthz within 20 s");
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, body) = http(self.port, method, path, token, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = text(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn migrate_applies_the_migrations_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("x.sqlite3");
    let db_arg = db.to_str().expect("utf-8 path");

    let first = run(rally(dir.path()).args(["migrate", "--database-url", db_arg]));
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(db.exists(), "no database file at {db_arg}");
    let stdout = text(&first.stdout);
    assert!(stdout.contains("Applied"), "{stdout}");
    assert!(!stdout.contains("No migrations to apply."), "{stdout}");

    let second = run(rally(dir.path()).args(["migrate", "--database-url", db_arg]));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout).trim(), "No migrations to apply.");
}

#[test]
fn migrate_applies_the_migrations_once_on_postgres() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
    let mut admin = rally::db::establish_postgres(&admin_url).expect("TEST_DATABASE_URL answers");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    struct DropSchema<'a>(&'a mut PgConnection, &'a str);
    impl Drop for DropSchema<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
    let _cleanup = DropSchema(&mut admin, &schema);
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");

    let dir = tempfile::tempdir().expect("temp dir");
    let first = run(rally(dir.path()).arg("migrate").env("DATABASE_URL", &url));
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("Applied"));
    let second = run(rally(dir.path()).arg("migrate").env("DATABASE_URL", &url));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout).trim(), "No migrations to apply.");
}

#[test]
fn a_bad_setting_exits_2_with_one_line_naming_it() {
    let cases: [(&[&str], &str, &str); 7] = [
        (&["serve"], "ACCESS_TOKEN_TTL", "soon"),
        (&["serve"], "REFRESH_TOKEN_TTL", "0s"),
        (&["serve"], "JWT_SECRET", "tiny-secret"),
        (&["serve"], "RALLY_BIND", "nowhere"),
        (&["serve"], "DB_POOL_SIZE", "zero"),
        (&["migrate"], "DATABASE_URL", "mysql://x"),
        (
            &[
                "createsuperuser",
                "--username",
                "boss",
                "--email",
                "boss@example.com",
            ],
            "DATABASE_URL",
            ":memory:",
        ),
    ];
    for (args, setting, value) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = run(rally(dir.path())
            .args(args)
            .env(setting, value)
            .env("RALLY_PASSWORD", PASSWORD));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{setting}={value}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{setting}={value}: {stderr}"
        );
        assert!(stderr.contains(setting), "{setting}={value}: {stderr}");
        assert_no_panic(&stderr);
        if setting == "JWT_SECRET" {
            assert!(!stderr.contains(value), "the secret is echoed: {stderr}");
        }
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "{setting}={value}: a refused start must not create files"
        );
    }
}

#[test]
fn createsuperuser_makes_a_staff_user_who_can_sign_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let superuser = |password: &str| {
        run(rally(dir.path())
            .args([
                "createsuperuser",
                "--username",
                "boss",
                "--email",
                "boss@Example.COM",
            ])
            .env("RALLY_PASSWORD", password))
    };
    let out = superuser(PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("boss"), "{}", text(&out.stdout));
    assert!(dir.path().join("rally.sqlite3").exists());

    // The same username again is refused, naming the problem.
    let again = superuser(PASSWORD);
    assert!(!again.status.success());
    let stderr = text(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_no_panic(&stderr);

    let (mut server, started) = Server::start(dir.path(), &[]);
    server.wait_healthy(started);
    let (status, tokens) = server.call(
        "POST",
        "/api/token/",
        None,
        Some(json!({"username": "boss", "password": PASSWORD})),
    );
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access"].as_str().expect("access token");
    let (status, me) = server.call("GET", "/api/users/me/", Some(access), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "boss");
    assert_eq!(me["email"], "boss@example.com");
    assert_eq!(me["is_staff"], true);
}

#[test]
fn createsuperuser_refuses_a_weak_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let superuser = |password: &str| {
        run(rally(dir.path())
            .args([
                "createsuperuser",
                "--username",
                "boss",
                "--email",
                "boss@example.com",
            ])
            .env("RALLY_PASSWORD", password))
    };
    let out = superuser("123");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("password"), "{stderr}");
    assert!(stderr.contains("This password is too short."), "{stderr}");
    assert!(
        stderr.contains("This password is entirely numeric."),
        "{stderr}"
    );
    assert_no_panic(&stderr);
    assert!(!text(&out.stdout).contains("created"));

    // Nothing was stored: the username is still free.
    let out = superuser(PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn createsuperuser_without_a_password_or_a_terminal_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(rally(dir.path()).args([
        "createsuperuser",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
    ]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("RALLY_PASSWORD"), "{stderr}");
    assert_no_panic(&stderr);
}

#[test]
fn serve_in_an_empty_directory_creates_its_database_and_answers_within_a_second() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, started) = Server::start(dir.path(), &[]);
    let took = server.wait_healthy(started);
    assert!(
        took < Duration::from_secs(1),
        "first /healthz answer after {took:?}"
    );
    assert!(dir.path().join("rally.sqlite3").exists());
    let (status, body) = server.call("GET", "/readyz", None, None);
    assert_eq!(status, 200, "{body}");

    // SIGTERM stops it cleanly.
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("child status") {
            break status;
        }
        assert!(Instant::now() < deadline, "rally serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn serve_help_lists_every_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(rally(dir.path()).args(["serve", "--help"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for setting in [
        "DATABASE_URL",
        "RALLY_BIND",
        "JWT_SECRET",
        "ACCESS_TOKEN_TTL",
        "REFRESH_TOKEN_TTL",
        "SMTP_URL",
        "EMAIL_FROM",
        "DB_POOL_SIZE",
        "CORS_ORIGINS",
    ] {
        assert!(help.contains(setting), "{setting} missing from:\n{help}");
    }
}

/// An SMTP server whose answer to each message comes `delay` late; `in_flight` receives
/// a message when a mail's data has arrived (so the sender is waiting on us).
#[derive(Clone)]
struct SlowSink {
    delay: Duration,
    in_flight: std::sync::mpsc::Sender<()>,
    received: std::sync::Arc<std::sync::Mutex<usize>>,
}

impl mailin_embedded::Handler for SlowSink {
    fn data_end(&mut self) -> mailin_embedded::Response {
        let _ = self.in_flight.send(());
        std::thread::sleep(self.delay);
        *self.received.lock().expect("lock") += 1;
        mailin_embedded::response::OK
    }
}

#[test]
fn sigterm_lets_requests_and_the_send_in_flight_finish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let (in_flight, sending) = std::sync::mpsc::channel();
    let received = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let mut sink = mailin_embedded::Server::new(SlowSink {
        delay: Duration::from_millis(1500),
        in_flight,
        received: received.clone(),
    });
    sink.with_ssl(mailin_embedded::SslConfig::None)
        .expect("no tls")
        .with_num_threads(4)
        .with_tcp_listener(smtp);
    std::thread::spawn(move || {
        let _ = sink.serve();
    });

    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let (mut server, started) = Server::start(dir.path(), &[("SMTP_URL", &smtp_url)]);
    server.wait_healthy(started);
    let (status, _) = server.call(
        "POST",
        "/api/users/",
        None,
        Some(json!({"username": "ada", "email": "ada@example.com", "password": PASSWORD})),
    );
    assert_eq!(status, 201);
    let (_, tokens) = server.call(
        "POST",
        "/api/token/",
        None,
        Some(json!({"username": "ada", "password": PASSWORD})),
    );
    let token = tokens["access"].as_str().expect("access").to_string();
    let (status, _) = server.call(
        "POST",
        "/api/events/",
        Some(&token),
        Some(json!({"name": "Last orders", "date": "2026-12-31"})),
    );
    assert_eq!(status, 201);
    // The mail is now on the wire and the sink is sitting on its answer.
    sending
        .recv_timeout(Duration::from_secs(10))
        .expect("the mail reached the SMTP server");

    // Requests in flight: each login hashes a password on the blocking pool.
    let body = json!({"username": "ada", "password": PASSWORD}).to_string();
    let mut pending = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let request = format!(
            "POST /api/token/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        pending.push(stream);
    }
    std::thread::sleep(Duration::from_millis(20));
    let sigterm_at = Instant::now();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success())
    );
    for mut stream in pending {
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("an answer");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            sigterm_at.elapsed() < Duration::from_secs(15),
            "rally did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    // It waited for the SMTP answer rather than cutting the send off…
    assert!(sigterm_at.elapsed() >= Duration::from_millis(1000));
    assert_eq!(*received.lock().expect("lock"), 1);
    // …and recorded it, so a restart will not send it again.
    let mut conn = diesel::SqliteConnection::establish(
        dir.path().join("rally.sqlite3").to_str().expect("path"),
    )
    .expect("open the database");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sent: Count = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL"),
        &mut conn,
    )
    .expect("count");
    assert_eq!(sent.n, 1);
}
