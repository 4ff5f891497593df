//! `spawn_app`: a real rally server on a free port, over a fresh database of its own
//! (a SQLite file in a temp dir, or a PostgreSQL schema under `TEST_DATABASE_URL`).

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rally::accounts::throttle::Limit;
use rally::config::{DatabaseSettings, LogFormat, MailSettings, Settings, WebhookSettings};
use rally::db::{self, DbConn, DbUrl, Pool};
use rally::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password every test user gets; it passes Django's validators.
pub const PASSWORD: &str = "Xq7!mVz2pL-rally";
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Removes the test's database when the test ends.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, schema } = self
            && let Ok(mut conn) = rally::db::establish_postgres(admin_url)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: Pool,
    pub backend: Backend,
    pub settings: Settings,
    server: Option<Running>,
    _db: TestDb,
}

/// A started server: its handle and the task that runs it (and its mail worker).
pub struct Running {
    pub address: String,
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops as SIGTERM would: in-flight requests and sends finish first.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Builds and starts an `Application` on `settings`, sharing `pool`.
pub fn start(settings: &Settings, pool: &Pool) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app =
        Application::build_with(settings.clone(), pool.clone(), listener).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    Running {
        address,
        handle,
        task,
    }
}

/// A response read whole: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn test_db(backend: Backend) -> Option<(DbUrl, TestDb)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("rally.sqlite3");
            Some((
                DbUrl::Sqlite(path.to_string_lossy().into_owned()),
                TestDb::Sqlite(dir),
            ))
        }
        Backend::Postgres => {
            let admin_url = std::env::var("TEST_DATABASE_URL").ok()?;
            let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
            let mut conn =
                rally::db::establish_postgres(&admin_url).expect("TEST_DATABASE_URL answers");
            conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("create schema");
            let sep = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
            Some((DbUrl::Postgres(url), TestDb::Postgres { admin_url, schema }))
        }
    }
}

/// Mail settings that retry and poll fast, so delivery tests take moments.
pub fn test_mail_settings(smtp_url: &str) -> MailSettings {
    let mut mail = MailSettings::with_defaults(smtp_url, "rally@localhost");
    mail.poll_interval = Duration::from_millis(100);
    mail.retry_base = Duration::from_millis(100);
    mail.retry_cap = Duration::from_millis(400);
    mail.smtp_timeout = Duration::from_secs(5);
    mail
}

/// Webhook settings that retry and poll fast, with loopback `http://` receivers allowed.
pub fn test_webhook_settings() -> WebhookSettings {
    WebhookSettings {
        allow_http_loopback: true,
        poll_interval: Duration::from_millis(100),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_millis(400),
        timeout: Duration::from_secs(5),
        ..WebhookSettings::default()
    }
}

/// Test settings: a closed SMTP port unless a test sets its own.
pub fn test_settings(url: DbUrl) -> Settings {
    Settings {
        database: DatabaseSettings {
            url,
            pool_size: 8,
            pool_timeout: Duration::from_secs(5),
        },
        bind: "127.0.0.1:0".parse().expect("address"),
        jwt_secret: Some(SECRET.as_bytes().to_vec()),
        access_token_ttl: Duration::from_secs(300),
        refresh_token_ttl: Duration::from_secs(86_400),
        mail: test_mail_settings("smtp://127.0.0.1:9"),
        webhooks: test_webhook_settings(),
        cors_origins: vec![],
        workers: Some(1),
        log_format: LogFormat::Text,
        expose_query_count: true,
        login_failures_per_username: Limit::parse("10/15m").expect("limit"),
        login_failures_per_address: Limit::parse("50/15m").expect("limit"),
        trusted_proxies: vec![],
        tombstone_retention: Duration::from_secs(30 * 86_400),
        public_url: None,
        password_reset_ttl: Duration::from_secs(3600),
    }
}

/// Starts rally on `backend`; `None` when PostgreSQL is asked for and not configured.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like `spawn_app`, with a chance to change the settings first.
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    if std::env::var("TEST_LOG").is_ok() {
        rally::telemetry::init(LogFormat::Text);
    }
    let (url, guard) = test_db(backend)?;
    let mut settings = test_settings(url);
    tweak(&mut settings);
    db::migrate(&settings.database.url).expect("migrations apply");
    let pool = db::build_pool(&settings.database);
    let server = start(&settings, &pool);
    Some(TestApp {
        address: server.address.clone(),
        server: Some(server),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        pool,
        backend,
        settings,
        _db: guard,
    })
}

impl TestApp {
    /// Stops this server and starts a new one on the same database, as a process
    /// restart would; `tweak` may change the settings of the new one.
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Settings)) {
        tweak(&mut self.settings);
        if let Some(old) = self.server.take() {
            old.stop().await;
        }
        let fresh = start(&self.settings, &self.pool);
        self.address = fresh.address.clone();
        self.server = Some(fresh);
    }

    /// Another rally process on the same database, with its own pool and settings.
    pub fn another(&self, tweak: impl FnOnce(&mut Settings)) -> Running {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        start(&settings, &db::build_pool(&settings.database))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send(Method::POST, path, token, Some(body)).await
    }

    /// Registers `username` (email `<username>@example.com`) and returns its id.
    pub async fn register(&self, username: &str) -> i64 {
        let r = self
            .post(
                "/api/users/",
                None,
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "register {username}: {}",
            r.text
        );
        r.body["id"].as_i64().expect("id")
    }

    /// Obtains a token pair for `username`: (access, refresh).
    pub async fn login(&self, username: &str) -> (String, String) {
        let r = self
            .post(
                "/api/token/",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {username}: {}", r.text);
        (
            r.body["access"].as_str().expect("access").to_string(),
            r.body["refresh"].as_str().expect("refresh").to_string(),
        )
    }

    /// Registers and logs in: (id, access token).
    pub async fn user(&self, username: &str) -> (i64, String) {
        let id = self.register(username).await;
        let (access, _) = self.login(username).await;
        (id, access)
    }

    /// Runs raw SQL on the test database (for staff flags and out-of-band changes).
    pub fn sql(&self, statement: &str) {
        let mut conn = self.pool.get().expect("connection");
        conn.batch_execute(statement).expect("sql runs");
    }

    /// Deletes the verification mails registration wrote, for tests that count the whole
    /// outbox or every mail delivered.
    pub fn drop_verification_mail(&self) {
        self.sql("DELETE FROM outbox WHERE subject = 'Confirm your email address'");
    }

    /// A staff user: (id, access token).
    pub async fn staff(&self, username: &str) -> (i64, String) {
        let id = self.register(username).await;
        self.sql(&format!("UPDATE users SET is_staff = TRUE WHERE id = {id}"));
        let (access, _) = self.login(username).await;
        (id, access)
    }

    /// Creates an event with `body` as `token`'s user; asserts the 201 and returns the event.
    pub async fn create_event(&self, token: &str, body: Value) -> Value {
        let r = self.post("/api/events/", Some(token), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "create: {}", r.text);
        r.body
    }

    /// PATCHes an event.
    pub async fn patch_event(&self, token: &str, id: &str, body: Value) -> Resp {
        self.send(
            Method::PATCH,
            &format!("/api/events/{id}/"),
            Some(token),
            Some(body),
        )
        .await
    }

    /// Answers an event as `token`'s user.
    pub async fn answer(&self, token: &str, id: &str, status: &str) -> Resp {
        self.post(
            &format!("/api/events/{id}/change_attendee_status/"),
            Some(token),
            json!({ "status": status }),
        )
        .await
    }

    /// Counts rows of a table matching a SQL condition.
    pub fn count(&self, table: &str, condition: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn: diesel::r2d2::PooledConnection<db::Manager> =
            self.pool.get().expect("connection");
        let conn: &mut DbConn = &mut conn;
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {condition}"
        ))
        .get_result::<N>(conn)
        .expect("count")
        .n
    }
}

pub async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// Runs each named `async fn(TestApp)` once on SQLite and once on PostgreSQL (the latter
/// only when `TEST_DATABASE_URL` is set; otherwise it says so and passes).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite app");
                    super::$name(app).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    match $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
                    }
                }
            }
        )*
    };
}
