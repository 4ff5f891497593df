//! The webhook sender: claims due deliveries, POSTs them signed, and records the outcome.
//! New deliveries wake it at once; otherwise it polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::store::{self, Claimed};
use crate::config::WebhookSettings;
use crate::db::{self, Pool};
use crate::error::ApiError;

/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 8;

pub struct WebhookWorker {
    pool: Pool,
    client: reqwest::Client,
    settings: WebhookSettings,
    wake: Arc<Notify>,
}

/// Delay before attempt `attempts + 1`: base × 2^(attempts − 1), capped, ±25 % jitter so
/// that an endpoint coming back is not hit by every retry at once.
pub fn backoff(settings: &WebhookSettings, attempts: i32) -> Duration {
    crate::mail::worker::jittered_backoff(settings.retry_base, settings.retry_cap, attempts)
}

/// How one attempt ended.
enum Outcome {
    Delivered(i32),
    Gone,
    Failed(Option<i32>, String),
}

impl WebhookWorker {
    pub fn new(pool: Pool, settings: WebhookSettings, wake: Arc<Notify>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            // A redirect could lead the signed body anywhere; the endpoint is what was
            // registered, and a 3xx counts as a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("rally-webhooks/1")
            .build()
            .map_err(|e| anyhow::anyhow!("webhook HTTP client: {e}"))?;
        Ok(Self {
            pool,
            client,
            settings,
            wake,
        })
    }

    /// Runs until `shutdown` turns true; attempts in flight finish, unstarted claims are
    /// released.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!("webhook worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let batch = match self.claim().await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook claim failed; retrying after the poll interval");
                    Batch::default()
                }
            };
            if batch.rows.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            self.send_all(batch, &shutdown).await;
        }
        tracing::info!("webhook worker stopped");
    }

    async fn claim(&self) -> Result<Batch, ApiError> {
        let lease = chrono::Duration::from_std(self.settings.claim_lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        let limit = self.settings.batch_size;
        db::run(&self.pool, move |conn| {
            let now = Utc::now().naive_utc();
            let rows = store::claim(conn, limit, now, now + lease)?;
            let mut ids: Vec<String> = rows.iter().map(|r| r.webhook_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let targets = if ids.is_empty() {
                HashMap::new()
            } else {
                store::targets(conn, &ids)?
                    .into_iter()
                    .map(|(id, url, secret)| (id, (url, secret)))
                    .collect()
            };
            Ok(Batch { rows, targets })
        })
        .await
    }

    async fn send_all(&self, batch: Batch, shutdown: &watch::Receiver<bool>) {
        let Batch { rows, targets } = batch;
        let mut unstarted = Vec::new();
        let mut to_send = Vec::new();
        for row in rows {
            if *shutdown.borrow() {
                unstarted.push(row.id);
            } else if let Some(target) = targets.get(&row.webhook_id) {
                to_send.push((row, target.clone()));
            }
            // No target: the endpoint was deleted since the claim, with its deliveries.
        }
        futures_util::stream::iter(to_send)
            .for_each_concurrent(CONCURRENCY, |(row, (url, secret))| {
                self.send_one(row, url, secret)
            })
            .await;
        if !unstarted.is_empty()
            && let Err(e) = db::run(&self.pool, move |conn| {
                Ok(store::release(conn, &unstarted)?)
            })
            .await
        {
            tracing::warn!(error = %e, "could not release claimed webhook deliveries");
        }
    }

    async fn attempt(&self, row: &Claimed, url: &str, secret: &str) -> Outcome {
        let timestamp = Utc::now().timestamp();
        // The receiver's idempotency key: the payload's own id (a redelivery repeats it).
        let message_id = serde_json::from_str::<serde_json::Value>(&row.payload)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .unwrap_or_else(|| row.id.to_string());
        let sent = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Rally-Webhook-Id", message_id)
            .header("Rally-Webhook-Timestamp", timestamp.to_string())
            .header(
                "Rally-Webhook-Signature",
                super::sign(secret, timestamp, &row.payload),
            )
            .body(row.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                let code = i32::from(status.as_u16());
                if status.is_success() {
                    Outcome::Delivered(code)
                } else if status == reqwest::StatusCode::GONE {
                    Outcome::Gone
                } else {
                    Outcome::Failed(Some(code), format!("HTTP {status}"))
                }
            }
            // Without the URL: it may carry a token the owner would not want in the log.
            Err(e) => Outcome::Failed(None, e.without_url().to_string()),
        }
    }

    /// When attempt `attempts + 1` is due, or `None` when the delivery has run out of time.
    fn retry_at(&self, created_at: NaiveDateTime, attempts: i32) -> Option<NaiveDateTime> {
        let delay = chrono::Duration::from_std(backoff(&self.settings, attempts))
            .unwrap_or_else(|_| chrono::Duration::minutes(1));
        let max_age = chrono::Duration::from_std(self.settings.max_age)
            .unwrap_or_else(|_| chrono::Duration::days(3));
        let at = Utc::now().naive_utc() + delay;
        (at <= created_at + max_age).then_some(at)
    }

    async fn send_one(&self, row: Claimed, url: String, secret: String) {
        let id = row.id;
        let attempts = row.attempts + 1;
        let outcome = self.attempt(&row, &url, &secret).await;
        let result = match outcome {
            Outcome::Delivered(status) => {
                tracing::info!(delivery_id = id, attempts, status, "webhook delivered");
                db::run(&self.pool, move |conn| {
                    Ok(store::mark_delivered(conn, id, status)?)
                })
                .await
                .map(|_| ())
            }
            Outcome::Gone => {
                tracing::warn!(delivery_id = id, webhook_id = %row.webhook_id, "webhook endpoint answered 410 Gone; disabling it");
                let webhook_id = row.webhook_id.clone();
                db::run(&self.pool, move |conn| {
                    Ok(store::disable_gone(conn, &webhook_id, id)?)
                })
                .await
            }
            Outcome::Failed(status, error) => {
                let retry_at = self.retry_at(row.created_at, attempts);
                match retry_at {
                    Some(at) => {
                        tracing::warn!(delivery_id = id, attempts, %error, retry_at = %at, "webhook not delivered; will retry")
                    }
                    None => {
                        tracing::error!(delivery_id = id, attempts, %error, "webhook failed for good")
                    }
                }
                db::run(&self.pool, move |conn| {
                    Ok(store::mark_attempt_failed(
                        conn, id, status, &error, retry_at,
                    )?)
                })
                .await
                .map(|_| ())
            }
        };
        if let Err(e) = result {
            // Unrecorded, the delivery is tried again when its lease runs out: receivers
            // dedupe on Rally-Webhook-Id.
            tracing::error!(delivery_id = id, error = %e, "could not record the webhook outcome");
        }
    }
}

/// Claimed deliveries and their endpoints' url and secret.
#[derive(Default)]
struct Batch {
    rows: Vec<Claimed>,
    targets: HashMap<String, (String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let settings = WebhookSettings::default();
        let first = backoff(&settings, 1);
        assert!(first >= settings.retry_base.mul_f64(0.75));
        assert!(first <= settings.retry_base.mul_f64(1.25));
        assert!(backoff(&settings, 40) <= settings.retry_cap);
    }
}
