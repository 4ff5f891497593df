//! Failed-login limits per username and per client address, on governor's GCRA.
//!
//! Only failures count, yet a blocked key must refuse every attempt, a correct password
//! included. governor has no "would this pass?" check, so the store below can run a
//! check as a dry run: governor's own algorithm computes the outcome and the store keeps
//! the old state.

use std::cell::Cell;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

thread_local! {
    /// Set while a check runs as a dry run on this thread.
    static DRY_RUN: Cell<bool> = const { Cell::new(false) };
}

/// governor's keyed state, plus a dry-run mode and the time each key was last touched
/// (for pruning keys that have fully recovered). Clones share the state.
#[derive(Default, Clone)]
pub struct PeekableStore {
    states: Arc<DashMap<String, (Option<Nanos>, Instant)>>,
}

impl StateStore for PeekableStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if DRY_RUN.with(Cell::get) {
            let previous = self.states.get(key).and_then(|e| e.0);
            return f(previous).map(|(t, _)| t);
        }
        // The entry's lock is held across the closure: one key's checks are serialized.
        let mut entry = self
            .states
            .entry(key.clone())
            .or_insert((None, Instant::now()));
        let (t, next) = f(entry.0)?;
        *entry = (Some(next), Instant::now());
        Ok(t)
    }
}

type Limiter = RateLimiter<String, PeekableStore, DefaultClock>;

/// `N` failures per `window`, e.g. 10 in 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub failures: u32,
    pub window: Duration,
}

impl Limit {
    /// Parses `10/15m`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (n, window) = raw.trim().split_once('/')?;
        let failures = n.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
        let window = humantime::parse_duration(window.trim())
            .ok()
            .filter(|d| !d.is_zero())?;
        Some(Self { failures, window })
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.failures).unwrap_or(NonZeroU32::MIN);
        let period = (self.window / self.failures).max(Duration::from_nanos(1));
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }
}

struct Keyed {
    limiter: Limiter,
    store: PeekableStore,
    window: Duration,
}

impl Keyed {
    fn new(limit: Limit) -> Self {
        let store = PeekableStore::default();
        Self {
            limiter: RateLimiter::new(limit.quota(), store.clone(), DefaultClock::default()),
            store,
            window: limit.window,
        }
    }

    /// How long `key` must wait, if it is blocked; changes nothing.
    fn blocked_for(&self, key: &str) -> Option<Duration> {
        DRY_RUN.with(|d| d.set(true));
        let outcome = self.limiter.check_key(&key.to_string());
        DRY_RUN.with(|d| d.set(false));
        outcome
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn record_failure(&self, key: &str) {
        let _ = self.limiter.check_key(&key.to_string());
    }

    /// Drops keys untouched for a whole window: they have recovered completely.
    fn prune(&self) {
        let window = self.window;
        self.store
            .states
            .retain(|_, (_, touched)| touched.elapsed() < window);
    }
}

/// The login throttle: one limiter per username, one per client address.
pub struct LoginThrottle {
    by_username: Keyed,
    by_address: Keyed,
}

/// Keys are pruned once a limiter holds this many.
const PRUNE_ABOVE: usize = 10_000;

impl LoginThrottle {
    pub fn new(per_username: Limit, per_address: Limit) -> Self {
        Self {
            by_username: Keyed::new(per_username),
            by_address: Keyed::new(per_address),
        }
    }

    /// `Some(wait)` when either the username or the address has used up its failures.
    pub fn blocked_for(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let by_user = self.by_username.blocked_for(&username.to_lowercase());
        let by_addr = address.and_then(|a| self.by_address.blocked_for(&a.to_string()));
        by_user.into_iter().chain(by_addr).max()
    }

    /// Counts one failed login against both keys.
    pub fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        self.by_username.record_failure(&username.to_lowercase());
        if let Some(a) = address {
            self.by_address.record_failure(&a.to_string());
        }
        for keyed in [&self.by_username, &self.by_address] {
            if keyed.store.states.len() > PRUNE_ABOVE {
                keyed.prune();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("10/15m"),
            Some(Limit {
                failures: 10,
                window: Duration::from_secs(900)
            })
        );
        assert_eq!(Limit::parse("0/15m"), None);
        assert_eq!(Limit::parse("ten"), None);
    }

    #[test]
    fn only_failures_count_and_a_block_blocks_everything() {
        let limit = Limit::parse("3/1h").unwrap();
        let throttle = LoginThrottle::new(limit, Limit::parse("100/1h").unwrap());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        // Checks alone never use the allowance up.
        for _ in 0..20 {
            assert_eq!(throttle.blocked_for("ada", Some(ip)), None);
        }
        for _ in 0..3 {
            throttle.record_failure("ada", Some(ip));
        }
        let wait = throttle.blocked_for("ADA", Some(ip)).expect("blocked");
        assert!(
            wait > Duration::from_secs(60) && wait <= Duration::from_secs(1200),
            "{wait:?}"
        );
        // Another username from the same address is not blocked by the username limit.
        assert_eq!(throttle.blocked_for("bob", Some(ip)), None);
    }

    #[test]
    fn the_address_limit_spans_usernames() {
        let throttle = LoginThrottle::new(
            Limit::parse("100/1h").unwrap(),
            Limit::parse("2/1h").unwrap(),
        );
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        throttle.record_failure("a", Some(ip));
        throttle.record_failure("b", Some(ip));
        assert!(throttle.blocked_for("c", Some(ip)).is_some());
        assert!(
            throttle
                .blocked_for("c", Some("10.0.0.3".parse().unwrap()))
                .is_none()
        );
    }
}
