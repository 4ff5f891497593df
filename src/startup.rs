//! Building the application (bound, not yet running) and running it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{self, ErrorHandlers, Next};
use actix_web::{App, HttpServer, web};
use rand::RngCore;
use tokio::sync::{Notify, Semaphore, watch};

use crate::accounts::passwords;
use crate::accounts::throttle::LoginThrottle;
use crate::accounts::tokens::TokenService;
use crate::config::Settings;
use crate::db::{self, Pool};
use crate::mail::worker::MailWorker;
use crate::webhooks::worker::WebhookWorker;
use crate::{accounts, admin, calendar, events, health, http, mail, openapi, webhooks};

/// What every handler can reach, shared across workers.
pub struct AppState {
    pub pool: Pool,
    pub tokens: TokenService,
    pub settings: Arc<Settings>,
    /// Wakes this process's mail worker when a request has written to the outbox.
    pub mail_wake: Arc<Notify>,
    /// Wakes this process's webhook worker when a request has queued deliveries.
    pub webhook_wake: Arc<Notify>,
    pub login_throttle: LoginThrottle,
    /// Password hashes computed at once (see `limit_password_hashing`).
    pub hashing_slots: Arc<Semaphore>,
}

/// glibc serves a freed block of up to 32 MiB again from the freeing thread's arena
/// instead of unmapping it, and keeps it there: each argon2id hash (a 19 MiB block), run on
/// whichever blocking thread is free, left one more arena holding 19 MiB, and a few hundred
/// logins grew the process past 500 MiB. A fixed threshold puts every allocation over 1 MiB
/// in its own mapping, given back to the system when freed. Fixing it also fixes the trim
/// threshold, at 128 KiB unless set: each arena then gave its free top back with
/// `madvise` after a few requests and took it back with page faults (8 % of rally's CPU
/// in change_attendee_status, most of it TLB shootdowns). Below 1 MiB, blocks are small
/// and reused; 4 MiB of slack per arena is kept (16 MiB took the peak RSS of a login
/// load to 64 MiB).
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: std::os::raw::c_int = -1;
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        unsafe extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's documented tuning call; it only changes the allocator's policy.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
            mallopt(M_TRIM_THRESHOLD, 4 << 20);
        }
    }
}

/// The requests that hash or verify a password: login, registration, account deletion.
fn hashes_password(method: &Method, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    (method == Method::POST
        && (path == "/api/token"
            || path == "/api/users"
            || path == "/api/users/password_reset/confirm"
            || path == "/api/users/me/password"))
        || (method == Method::DELETE && path == "/api/users/me")
}

/// Argon2id at OWASP's parameters takes 19 MiB and tens of milliseconds of a core per
/// hash. Unlimited, 64 logins at once ran 64 hashes side by side, each holding its 19 MiB
/// (the process passed 1.5 GiB) and a blocking thread that other requests' queries were
/// waiting for. So a request that hashes waits here, holding nothing but its connection,
/// for one of `hashing_slots`: half the cores, at least one. Logins then never take more
/// than half the CPU from the rest of the API, and never more than 19 MiB per slot.
async fn limit_password_hashing(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let slots = match req.app_data::<web::Data<AppState>>() {
        Some(state) if hashes_password(req.method(), req.path()) => {
            Some(state.hashing_slots.clone())
        }
        _ => None,
    };
    let _permit = match slots {
        Some(slots) => slots.acquire_owned().await.ok(),
        None => None,
    };
    next.call(req).await
}

/// A server bound to its port, ready to run.
pub struct Application {
    port: u16,
    server: Server,
    mail_worker: Option<MailWorker>,
    webhook_worker: Option<WebhookWorker>,
    pub pool: Pool,
}

impl Application {
    /// Migrates the database, builds the pool and binds the listener (port 0 picks one).
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let applied = db::migrate(&settings.database.url)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
        let pool = db::build_pool(&settings.database);
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("RALLY_BIND: cannot listen on {}: {e}", settings.bind))?;
        Self::build_with(settings, pool, listener)
    }

    /// Builds on a given pool and listener (tests share a pool with their assertions).
    pub fn build_with(
        settings: Settings,
        pool: Pool,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        return_large_allocations();
        let secret = match &settings.jwt_secret {
            Some(s) => s.clone(),
            None => {
                tracing::warn!(
                    "JWT_SECRET is not set: using a random key, so every token dies with this process"
                );
                let mut key = vec![0u8; 64];
                rand::rng().fill_bytes(&mut key);
                key
            }
        };
        let tokens = TokenService::new(
            &secret,
            settings.access_token_ttl,
            settings.refresh_token_ttl,
        );
        // The first login should not pay for the dummy hash.
        std::thread::spawn(passwords::warm_up);
        let workers = settings.workers;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hashing_slots = (cores / 2).max(1);
        // Blocking threads per worker: one per pooled connection (a worker may hold them
        // all) plus the hashes, and no more. Requests beyond that wait for a connection
        // permit in `db::run`, first come first served, instead of as hundreds of threads
        // racing for the pool's connections (a SQLite list's p99 was 8 times its median).
        let blocking_threads = settings.database.pool_size as usize + hashing_slots;
        let mail_wake = Arc::new(Notify::new());
        let mail_worker = if settings.mail.worker {
            Some(MailWorker::new(
                pool.clone(),
                settings.mail.clone(),
                mail_wake.clone(),
            )?)
        } else {
            None
        };
        let webhook_wake = Arc::new(Notify::new());
        let webhook_worker = if settings.webhooks.worker {
            Some(WebhookWorker::new(
                pool.clone(),
                settings.webhooks.clone(),
                webhook_wake.clone(),
            )?)
        } else {
            None
        };
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            tokens,
            mail_wake,
            webhook_wake,
            hashing_slots: Arc::new(Semaphore::new(hashing_slots)),
            login_throttle: LoginThrottle::new(
                settings.login_failures_per_username,
                settings.login_failures_per_address,
            ),
            settings: Arc::new(settings),
        });
        let cors_origins = state.settings.cors_origins.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(http::payload_config())
                .wrap(middleware::from_fn(limit_password_hashing))
                .wrap(middleware::from_fn(http::security_headers))
                .wrap(http::cors(&cors_origins))
                .wrap(ErrorHandlers::new().default_handler(http::json_errors))
                .wrap(middleware::from_fn(http::log_requests))
                .configure(health::routes)
                .configure(accounts::routes::routes)
                .configure(events::routes::routes)
                .configure(calendar::routes::routes)
                .configure(mail::routes::routes)
                .configure(webhooks::routes::routes)
                .configure(admin::routes)
                .configure(openapi::routes)
                .default_service(web::to(http::not_found))
        })
        // Slow clients: headers must arrive within 10 s, idle keep-alive ends after 75 s.
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(75))
        .worker_max_blocking_threads(blocking_threads)
        .listen(listener)?;
        if let Some(n) = workers {
            server = server.workers(n);
        }
        let server = server.shutdown_timeout(10).run();
        Ok(Self {
            port,
            server,
            mail_worker,
            webhook_worker,
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (as SIGTERM does).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or `handle().stop`), lets in-flight requests finish,
    /// then lets the mail and webhook workers finish the sends they have started.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_worker, stopped) = watch::channel(false);
        let worker = self
            .mail_worker
            .map(|w| actix_web::rt::spawn(w.run(stopped.clone())));
        let webhook_worker = self
            .webhook_worker
            .map(|w| actix_web::rt::spawn(w.run(stopped)));
        let result = self.server.await;
        let _ = stop_worker.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(worker) = webhook_worker {
            let _ = worker.await;
        }
        result
    }
}
