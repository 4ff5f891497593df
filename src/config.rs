//! One typed `Settings`, parsed from CLI flags and environment and validated once at start.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;

use crate::accounts::throttle::Limit;
use crate::db::DbUrl;

/// A setting that failed validation: names the setting so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: &'static str,
    pub message: String,
}

impl SettingError {
    fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// The database flag, shared by every subcommand that touches the database.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// A SQLite path (`rally.sqlite3`, `sqlite://path`) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "rally.sqlite3")]
    pub database_url: String,
    /// Connections in the pool (default: 2 per core for SQLite, at most 8; 4 per core for
    /// PostgreSQL, at most 16).
    #[arg(long, env = "DB_POOL_SIZE")]
    pub db_pool_size: Option<String>,
    /// How long a request waits for a free connection before answering 503.
    #[arg(long, env = "DB_POOL_TIMEOUT", default_value = "5s")]
    pub db_pool_timeout: String,
}

/// The mail flags.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// Where mail goes: `smtp://host:port`, `smtps://user:pass@host`, or STARTTLS with
    /// `smtp://user:pass@host:587?tls=required`.
    #[arg(
        long,
        env = "SMTP_URL",
        default_value = "smtp://localhost:1025",
        hide_env_values = true
    )]
    pub smtp_url: String,
    /// From: of every mail.
    #[arg(long, env = "EMAIL_FROM", default_value = "rally@localhost")]
    pub email_from: String,
    /// Give up on one SMTP conversation after this long.
    #[arg(long, env = "SMTP_TIMEOUT", default_value = "10s")]
    pub smtp_timeout: String,
    /// How often the sender looks for due mail when nothing wakes it.
    #[arg(long, env = "MAIL_POLL_INTERVAL", default_value = "5s")]
    pub mail_poll_interval: String,
    /// First retry delay; it doubles per attempt, with jitter.
    #[arg(long, env = "MAIL_RETRY_BASE", default_value = "10s")]
    pub mail_retry_base: String,
    /// Longest delay between two attempts.
    #[arg(long, env = "MAIL_RETRY_CAP", default_value = "30m")]
    pub mail_retry_cap: String,
    /// Attempts before a mail is marked failed (`rally mail retry` requeues it).
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value = "12")]
    pub mail_max_attempts: String,
    /// How long a claimed mail stays reserved to one sender; must exceed SMTP_TIMEOUT.
    #[arg(long, env = "MAIL_CLAIM_LEASE", default_value = "2m")]
    pub mail_claim_lease: String,
    /// Run the mail sender in this process (turn off on API-only replicas).
    #[arg(long, env = "MAIL_WORKER", default_value = "true", action = clap::ArgAction::Set)]
    pub mail_worker: bool,
}

/// The webhook flags **(beyond)**.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Run the webhook sender in this process (turn off on API-only replicas).
    #[arg(long, env = "WEBHOOK_WORKER", default_value = "true", action = clap::ArgAction::Set)]
    pub webhook_worker: bool,
    /// Accept plain `http://` endpoints on loopback hosts (local development and tests).
    #[arg(long, env = "WEBHOOK_ALLOW_HTTP_LOOPBACK", default_value = "false", action = clap::ArgAction::Set)]
    pub webhook_allow_http_loopback: bool,
    /// How often the sender looks for due deliveries when nothing wakes it.
    #[arg(long, env = "WEBHOOK_POLL_INTERVAL", default_value = "5s")]
    pub webhook_poll_interval: String,
    /// First retry delay; it doubles per attempt, with jitter.
    #[arg(long, env = "WEBHOOK_RETRY_BASE", default_value = "30s")]
    pub webhook_retry_base: String,
    /// Longest delay between two attempts.
    #[arg(long, env = "WEBHOOK_RETRY_CAP", default_value = "1h")]
    pub webhook_retry_cap: String,
    /// A delivery not accepted this long after it was queued is marked failed.
    #[arg(long, env = "WEBHOOK_MAX_AGE", default_value = "3d")]
    pub webhook_max_age: String,
    /// Give up on one delivery attempt after this long.
    #[arg(long, env = "WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: String,
}

/// The validated webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub worker: bool,
    pub allow_http_loopback: bool,
    pub poll_interval: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub max_age: Duration,
    pub timeout: Duration,
    /// How long a claimed delivery stays reserved; longer than `timeout`.
    pub claim_lease: Duration,
    /// Deliveries claimed per round.
    pub batch_size: i64,
}

impl Default for WebhookSettings {
    /// The defaults of `rally serve`.
    fn default() -> Self {
        Self {
            worker: true,
            allow_http_loopback: false,
            poll_interval: Duration::from_secs(5),
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 86_400),
            timeout: Duration::from_secs(10),
            claim_lease: Duration::from_secs(120),
            batch_size: 32,
        }
    }
}

impl WebhookArgs {
    pub fn validate(&self) -> Result<WebhookSettings, SettingError> {
        let timeout = parse_duration("WEBHOOK_TIMEOUT", &self.webhook_timeout)?;
        if timeout > Duration::from_secs(60) {
            return Err(SettingError::new("WEBHOOK_TIMEOUT", "must be at most 60s"));
        }
        Ok(WebhookSettings {
            worker: self.webhook_worker,
            allow_http_loopback: self.webhook_allow_http_loopback,
            poll_interval: parse_duration("WEBHOOK_POLL_INTERVAL", &self.webhook_poll_interval)?,
            retry_base: parse_duration("WEBHOOK_RETRY_BASE", &self.webhook_retry_base)?,
            retry_cap: parse_duration("WEBHOOK_RETRY_CAP", &self.webhook_retry_cap)?,
            max_age: parse_duration("WEBHOOK_MAX_AGE", &self.webhook_max_age)?,
            timeout,
            // A claim is one round of the worker's concurrent attempts, so every claimed
            // delivery starts at once and the lease (over two timeouts) outlives it: a
            // slow attempt is never claimed again by another process and sent twice.
            claim_lease: timeout * 2 + Duration::from_secs(60),
            batch_size: crate::webhooks::worker::CONCURRENCY as i64,
        })
    }
}

/// Everything `rally serve` reads; strings here are validated into `Settings`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Listen address.
    #[arg(long, env = "RALLY_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// HMAC key for JWTs, at least 32 bytes; random per start when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Access token lifetime (`300s`, `5m`, `1h`).
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value = "5m")]
    pub access_token_ttl: String,
    /// Refresh token lifetime.
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value = "1d")]
    pub refresh_token_ttl: String,
    #[command(flatten)]
    pub mail: MailArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// Comma-separated origins allowed for browsers (none by default).
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "RALLY_WORKERS")]
    pub workers: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "RALLY_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Failed logins allowed per username, as `count/window` (successful logins never count).
    #[arg(long, env = "LOGIN_FAILURES_PER_USERNAME", default_value = "10/15m")]
    pub login_failures_per_username: String,
    /// Failed logins allowed per client address, as `count/window`.
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", default_value = "50/15m")]
    pub login_failures_per_address: String,
    /// Comma-separated addresses of reverse proxies whose `X-Forwarded-For` is believed
    /// (none by default: the client address is the TCP peer).
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// The site's address (`https://rally.example.com`), for the links in password reset
    /// and verification mails; unset, they point at the origin the request came to.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a password reset link works (`1h`, `30m`).
    #[arg(long, env = "PASSWORD_RESET_TTL", default_value = "1h")]
    pub password_reset_ttl: String,
    /// Add an `X-Query-Count` header to every response (for diagnosis, not production).
    #[arg(long, env = "RALLY_EXPOSE_QUERY_COUNT", default_value_t = false)]
    pub expose_query_count: bool,
    /// How long deleted events are remembered for incremental sync (`updated_since`);
    /// an older `updated_since` is refused (the client must sync in full).
    #[arg(long, env = "TOMBSTONE_RETENTION", default_value = "30d")]
    pub tombstone_retention: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub bind: SocketAddr,
    /// `None` means: generate one at start and warn.
    pub jwt_secret: Option<Vec<u8>>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub mail: MailSettings,
    pub webhooks: WebhookSettings,
    pub cors_origins: Vec<String>,
    pub workers: Option<usize>,
    pub log_format: LogFormat,
    /// Adds `X-Query-Count` to responses (tests and diagnosis; off in production).
    pub expose_query_count: bool,
    pub login_failures_per_username: Limit,
    pub login_failures_per_address: Limit,
    pub trusted_proxies: Vec<IpAddr>,
    /// Deleted events' tombstones are kept this long (SPEC §15).
    pub tombstone_retention: Duration,
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    pub public_url: Option<String>,
    pub password_reset_ttl: Duration,
}

/// The validated mail settings.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp_url: String,
    pub email_from: String,
    pub smtp_timeout: Duration,
    pub poll_interval: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub max_attempts: i32,
    pub claim_lease: Duration,
    /// Mails claimed per round.
    pub batch_size: i64,
    /// Whether this process runs the sender.
    pub worker: bool,
    /// Clear leases left by a crash at start (SQLite: one process per file).
    pub release_stale_leases: bool,
}

impl MailSettings {
    /// The defaults of `rally serve`, for a given server and sender.
    pub fn with_defaults(smtp_url: &str, email_from: &str) -> Self {
        Self {
            smtp_url: smtp_url.to_string(),
            email_from: email_from.to_string(),
            smtp_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(5),
            retry_base: Duration::from_secs(10),
            retry_cap: Duration::from_secs(30 * 60),
            max_attempts: 12,
            claim_lease: Duration::from_secs(120),
            batch_size: 32,
            worker: true,
            release_stale_leases: false,
        }
    }
}

/// The validated database settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DbUrl,
    pub pool_size: u32,
    pub pool_timeout: Duration,
}

/// The shortest HMAC key accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

impl DbArgs {
    /// Validates the database flags.
    pub fn validate(&self) -> Result<DatabaseSettings, SettingError> {
        let url =
            DbUrl::parse(&self.database_url).map_err(|m| SettingError::new("DATABASE_URL", m))?;
        let pool_size = match &self.db_pool_size {
            None => url.default_pool_size(),
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(SettingError::new(
                        "DB_POOL_SIZE",
                        format!("expected a whole number from 1 to 1000, got {raw:?}"),
                    ));
                }
            },
        };
        let pool_timeout = parse_duration("DB_POOL_TIMEOUT", &self.db_pool_timeout)?;
        Ok(DatabaseSettings {
            url,
            pool_size,
            pool_timeout,
        })
    }
}

impl ServeArgs {
    /// Validates every flag, stopping at the first bad one.
    pub fn validate(&self) -> Result<Settings, SettingError> {
        let database = self.db.validate()?;
        let bind = self.bind.trim().parse::<SocketAddr>().map_err(|_| {
            SettingError::new(
                "RALLY_BIND",
                format!(
                    "expected an address like 127.0.0.1:8000, got {:?}",
                    self.bind
                ),
            )
        })?;
        let jwt_secret = match &self.jwt_secret {
            None => None,
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(SettingError::new(
                    "JWT_SECRET",
                    format!(
                        "must be at least {MIN_SECRET_BYTES} bytes, got {} (try: openssl rand -hex 32)",
                        s.len()
                    ),
                ));
            }
            Some(s) => Some(s.as_bytes().to_vec()),
        };
        let access_token_ttl = parse_duration("ACCESS_TOKEN_TTL", &self.access_token_ttl)?;
        let refresh_token_ttl = parse_duration("REFRESH_TOKEN_TTL", &self.refresh_token_ttl)?;
        let mut mail = self.mail.validate()?;
        mail.release_stale_leases = !database.url.is_postgres();
        let cors_origins = parse_origins(&self.cors_origins)?;
        let workers = match &self.workers {
            None => None,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => Some(n),
                _ => {
                    return Err(SettingError::new(
                        "RALLY_WORKERS",
                        format!("expected a whole number from 1 to 256, got {raw:?}"),
                    ));
                }
            },
        };
        let log_format = match self.log_format.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(SettingError::new(
                    "RALLY_LOG_FORMAT",
                    format!("expected text or json, got {other:?}"),
                ));
            }
        };
        Ok(Settings {
            database,
            bind,
            jwt_secret,
            access_token_ttl,
            refresh_token_ttl,
            mail,
            webhooks: self.webhooks.validate()?,
            cors_origins,
            workers,
            log_format,
            expose_query_count: self.expose_query_count,
            login_failures_per_username: parse_limit(
                "LOGIN_FAILURES_PER_USERNAME",
                &self.login_failures_per_username,
            )?,
            login_failures_per_address: parse_limit(
                "LOGIN_FAILURES_PER_ADDRESS",
                &self.login_failures_per_address,
            )?,
            trusted_proxies: parse_proxies(&self.trusted_proxies)?,
            tombstone_retention: parse_duration("TOMBSTONE_RETENTION", &self.tombstone_retention)?,
            public_url: parse_public_url(self.public_url.as_deref())?,
            password_reset_ttl: parse_duration("PASSWORD_RESET_TTL", &self.password_reset_ttl)?,
        })
    }
}

/// An absolute `http(s)` URL without query or fragment; the trailing `/` is dropped so
/// paths can be appended.
fn parse_public_url(raw: Option<&str>) -> Result<Option<String>, SettingError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        SettingError::new(
            "PUBLIC_URL",
            format!("expected an http(s) URL like https://rally.example.com, got {raw:?}"),
        )
    };
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(bad)?;
    if rest.is_empty()
        || rest.starts_with('/')
        || rest.contains(['?', '#', ' '])
        || rest.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(Some(raw.trim_end_matches('/').to_string()))
}

impl MailArgs {
    pub fn validate(&self) -> Result<MailSettings, SettingError> {
        let smtp_url = validate_smtp_url(&self.smtp_url)?;
        let email_from = self.email_from.trim().to_string();
        if email_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(SettingError::new(
                "EMAIL_FROM",
                format!("not a valid address: {:?}", self.email_from),
            ));
        }
        let mut mail = MailSettings::with_defaults(&smtp_url, &email_from);
        mail.smtp_timeout = parse_duration("SMTP_TIMEOUT", &self.smtp_timeout)?;
        mail.poll_interval = parse_duration("MAIL_POLL_INTERVAL", &self.mail_poll_interval)?;
        mail.retry_base = parse_duration("MAIL_RETRY_BASE", &self.mail_retry_base)?;
        mail.retry_cap = parse_duration("MAIL_RETRY_CAP", &self.mail_retry_cap)?;
        mail.claim_lease = parse_duration("MAIL_CLAIM_LEASE", &self.mail_claim_lease)?;
        mail.max_attempts = match self.mail_max_attempts.trim().parse::<i32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(SettingError::new(
                    "MAIL_MAX_ATTEMPTS",
                    format!(
                        "expected a whole number from 1 to 100, got {:?}",
                        self.mail_max_attempts
                    ),
                ));
            }
        };
        if mail.claim_lease <= mail.smtp_timeout {
            return Err(SettingError::new(
                "MAIL_CLAIM_LEASE",
                "must be longer than SMTP_TIMEOUT, or a slow send could be claimed twice",
            ));
        }
        mail.worker = self.mail_worker;
        Ok(mail)
    }
}

/// Parses `300`, `300s`, `5m`, `2h`, `1d` (humantime syntax) into a non-zero duration.
pub fn parse_duration(setting: &'static str, raw: &str) -> Result<Duration, SettingError> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(raw),
    };
    match parsed {
        Ok(d) if !d.is_zero() && d <= Duration::from_secs(10 * 365 * 86_400) => Ok(d),
        _ => Err(SettingError::new(
            setting,
            format!("expected a duration such as 30s, 5m, 1h or 1d, got {raw:?}"),
        )),
    }
}

fn parse_limit(setting: &'static str, raw: &str) -> Result<Limit, SettingError> {
    Limit::parse(raw).ok_or_else(|| {
        SettingError::new(
            setting,
            format!("expected failures/window such as 10/15m, got {raw:?}"),
        )
    })
}

fn parse_proxies(raw: &str) -> Result<Vec<IpAddr>, SettingError> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpAddr>().map_err(|_| {
                SettingError::new("TRUSTED_PROXIES", format!("{p:?} is not an IP address"))
            })
        })
        .collect()
}

fn validate_smtp_url(raw: &str) -> Result<String, SettingError> {
    let raw = raw.trim();
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => {
            Ok(raw.to_string())
        }
        _ => Err(SettingError::new(
            "SMTP_URL",
            "expected smtp://host:port or smtps://user:pass@host:port",
        )),
    }
}

fn parse_origins(raw: &str) -> Result<Vec<String>, SettingError> {
    let mut origins = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ok = url::Url::parse(part)
            .map(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && !part.ends_with('/')
            })
            .unwrap_or(false);
        if !ok {
            return Err(SettingError::new(
                "CORS_ORIGINS",
                format!("{part:?} is not an origin like https://app.example.com"),
            ));
        }
        origins.push(part.to_string());
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_simple_jwt_settings() {
        assert_eq!(parse_duration("X", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("X", "1d").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(parse_duration("X", "90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("X", "0s").is_err());
        assert!(parse_duration("X", "soon").is_err());
    }

    #[test]
    fn public_url_is_an_http_base_without_trailing_slash() {
        assert_eq!(parse_public_url(None).unwrap(), None);
        assert_eq!(parse_public_url(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_public_url(Some("https://rally.example.com/")).unwrap(),
            Some("https://rally.example.com".into())
        );
        assert_eq!(
            parse_public_url(Some("http://host:8080/app")).unwrap(),
            Some("http://host:8080/app".into())
        );
        for bad in [
            "rally.example.com",
            "ftp://x",
            "https://",
            "https://x/?a=1",
            "https://x#f",
        ] {
            assert!(parse_public_url(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_must_be_bare_origins() {
        assert_eq!(
            parse_origins("https://a.example, http://localhost:3000").unwrap(),
            vec!["https://a.example", "http://localhost:3000"]
        );
        assert!(parse_origins("https://a.example/path").is_err());
        assert!(parse_origins("*").is_err());
        assert!(parse_origins("").unwrap().is_empty());
    }
}
