//! The sender: claims due outbox rows, sends them over SMTP with lettre, and records the
//! outcome. New mail wakes it at once; otherwise it polls.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rand::Rng;
use tokio::sync::{Notify, watch};

use super::message;
use super::outbox::{self, Claimed};
use crate::config::MailSettings;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::reminders;

/// Sends at most this many mails at once (the SMTP pool's size too). lettre writes the
/// end-of-data marker as a separate small segment without TCP_NODELAY, so each message
/// can wait out the peer's delayed ACK (40 ms on Linux): throughput comes from
/// concurrency, about 100 mails/s per 4 connections on loopback.
const CONCURRENCY: usize = 16;

/// lettre's pooled transport spawns a clean-up task when dropped, which panics outside a
/// Tokio runtime (a runtime tearing down drops its tasks there). Then the pool is left to
/// the process's end instead.
struct Mailer(Option<AsyncSmtpTransport<Tokio1Executor>>);

impl Drop for Mailer {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            std::mem::forget(self.0.take());
        }
    }
}

/// The background sender of one rally process.
pub struct MailWorker {
    pool: Pool,
    mailer: Mailer,
    from: Mailbox,
    settings: MailSettings,
    wake: Arc<Notify>,
    /// Mails the SMTP server accepted whose `sent_at` could not be written yet (the
    /// database was away). They are never sent again by this process, and are marked as
    /// soon as the database answers.
    unrecorded: Mutex<HashSet<i64>>,
}

/// Delay before attempt `attempts + 1`: base × 2^(attempts − 1), capped, with ±25 % jitter
/// so that many failed mails do not retry in lockstep.
pub fn backoff(settings: &MailSettings, attempts: i32) -> Duration {
    jittered_backoff(settings.retry_base, settings.retry_cap, attempts)
}

/// base × 2^(attempts − 1), capped, ±25 % jitter: the mail and webhook queues' schedule.
pub fn jittered_backoff(base: Duration, cap: Duration, attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(cap);
    let jitter = rand::rng().random_range(0.75..=1.25);
    raw.mul_f64(jitter).min(cap)
}

/// Builds the SMTP transport from `SMTP_URL` (lettre's URL form: `smtp://`, `smtps://`,
/// `smtp://…?tls=required` for STARTTLS, credentials in the user-info part).
pub fn transport(settings: &MailSettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
        .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
    Ok(builder
        .timeout(Some(settings.smtp_timeout))
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(CONCURRENCY as u32))
        .build())
}

impl MailWorker {
    pub fn new(pool: Pool, settings: MailSettings, wake: Arc<Notify>) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .email_from
            .parse()
            .map_err(|e| anyhow::anyhow!("EMAIL_FROM: {e}"))?;
        Ok(Self {
            mailer: Mailer(Some(transport(&settings)?)),
            pool,
            from,
            settings,
            wake,
            unrecorded: Mutex::new(HashSet::new()),
        })
    }

    fn unrecorded(&self) -> Vec<i64> {
        self.unrecorded
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Writes `sent_at` for sends the database missed; keeps them for later if it still can't.
    async fn record_unrecorded(&self) {
        let ids = self.unrecorded();
        if ids.is_empty() {
            return;
        }
        let marking = ids.clone();
        match db::run(&self.pool, move |conn| {
            Ok(outbox::mark_sent_many(conn, &marking)?)
        })
        .await
        {
            Ok(_) => {
                if let Ok(mut set) = self.unrecorded.lock() {
                    for id in ids {
                        set.remove(&id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = ids.len(), "still cannot record sent mails")
            }
        }
    }

    /// Runs until `shutdown` turns true; the sends in flight then finish, unstarted
    /// claims are released, and it returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!("mail worker started");
        if self.settings.release_stale_leases
            && let Err(e) = db::run(&self.pool, |conn| Ok(outbox::release_all(conn)?)).await
        {
            tracing::warn!(error = %e, "could not release stale outbox leases");
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.record_unrecorded().await;
            self.queue_due_reminders().await;
            let claimed = match self.claim().await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed; retrying after the poll interval");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            self.send_all(claimed, &shutdown).await;
        }
        self.record_unrecorded().await;
        tracing::info!("mail worker stopped");
    }

    /// Reminders that fell due become outbox rows, claimed right after.
    async fn queue_due_reminders(&self) {
        let queued = db::run(&self.pool, |conn| {
            Ok(reminders::dispatch::queue_due(
                conn,
                Utc::now().naive_utc(),
            )?)
        })
        .await;
        match queued {
            Ok(0) => {}
            Ok(n) => tracing::info!(mails = n, "reminders queued"),
            Err(e) => {
                tracing::warn!(error = %e, "could not queue due reminders; retrying after the poll interval")
            }
        }
    }

    async fn claim(&self) -> Result<Vec<Claimed>, ApiError> {
        let lease = chrono::Duration::from_std(self.settings.claim_lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        let batch = self.settings.batch_size;
        db::run(&self.pool, move |conn| {
            let now = Utc::now().naive_utc();
            Ok(outbox::claim(conn, batch, now, now + lease)?)
        })
        .await
    }

    async fn send_all(&self, claimed: Vec<Claimed>, shutdown: &watch::Receiver<bool>) {
        let mut unstarted = Vec::new();
        let mut to_send = Vec::new();
        for row in claimed {
            // Claimed rows not yet started when shutdown comes go back to the queue.
            if *shutdown.borrow() {
                unstarted.push(row.id);
            } else {
                to_send.push(row);
            }
        }
        futures_util::stream::iter(to_send)
            .for_each_concurrent(CONCURRENCY, |row| self.send_one(row))
            .await;
        if !unstarted.is_empty()
            && let Err(e) = db::run(&self.pool, move |conn| {
                Ok(outbox::release(conn, &unstarted)?)
            })
            .await
        {
            tracing::warn!(error = %e, "could not release claimed mails");
        }
    }

    async fn send_one(&self, row: Claimed) {
        let id = row.id;
        if self.unrecorded().contains(&id) {
            // Already accepted by the SMTP server; only its record is missing.
            return;
        }
        let outcome = match message::build(
            &self.from,
            &row.recipient,
            &row.subject,
            &row.body,
            &row.message_id,
        ) {
            // A message that cannot be built never will be: fail it at once.
            Err(e) => Err((e, false)),
            Ok(msg) => match &self.mailer.0 {
                Some(mailer) => mailer
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e.to_string(), !e.is_permanent())),
                None => Err(("no SMTP transport".to_string(), true)),
            },
        };
        let attempts = row.attempts + 1;
        let result = match outcome {
            Ok(()) => {
                tracing::info!(mail_id = id, attempts, "mail sent");
                let marked =
                    db::run(&self.pool, move |conn| Ok(outbox::mark_sent(conn, id)?)).await;
                if marked.is_err()
                    && let Ok(mut set) = self.unrecorded.lock()
                {
                    set.insert(id);
                }
                marked
            }
            Err((error, retryable)) => {
                let retry_at = (retryable && attempts < self.settings.max_attempts).then(|| {
                    let delay = backoff(&self.settings, attempts);
                    Utc::now().naive_utc()
                        + chrono::Duration::from_std(delay)
                            .unwrap_or_else(|_| chrono::Duration::minutes(1))
                });
                match retry_at {
                    Some(at) => {
                        tracing::warn!(mail_id = id, attempts, %error, retry_at = %at, "mail not sent; will retry")
                    }
                    None => tracing::error!(mail_id = id, attempts, %error, "mail failed for good"),
                }
                db::run(&self.pool, move |conn| {
                    Ok(outbox::mark_attempt_failed(conn, id, &error, retry_at)?)
                })
                .await
            }
        };
        if let Err(e) = result {
            // A failed attempt not recorded is tried again when its lease runs out; a send
            // not recorded waits in `unrecorded`. Never a loss.
            tracing::error!(mail_id = id, error = %e, "could not record the mail's outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let settings = MailSettings::with_defaults("smtp://127.0.0.1:1", "rally@localhost");
        let first = backoff(&settings, 1);
        assert!(
            first >= settings.retry_base.mul_f64(0.75)
                && first <= settings.retry_base.mul_f64(1.25)
        );
        let fifth = backoff(&settings, 5);
        assert!(fifth >= settings.retry_base * 12, "{fifth:?}");
        assert!(backoff(&settings, 40) <= settings.retry_cap);
    }
}
