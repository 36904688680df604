//! vpcsim's injected misbehaviour: per-action token buckets (throttling), random failures and
//! partial failures, from one seeded RNG, plus the per-action counts `GET /_admin/Stats` reports.
//!
//! Pure bookkeeping with the clock passed in, so the buckets are unit-tested without sleeping.
//! Real clouds throttle per API action (EC2 "request rate limiting" buckets are per action), and
//! fail in two ways an agent must survive: before doing anything, and after doing the work
//! ("reported failed but done"), which is why creates carry an idempotency token.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_common::vpcsim::{ActionStats, Faults, SetFaultsRequest, StatsReply};

/// The actions whose partial failure leaves something behind that a retry must cope with.
pub const PARTIAL_ACTIONS: [&str; 3] = [
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "AssignPrivateIpAddresses",
];

/// A classic token bucket: starts full with `burst` tokens, refills `rate` tokens per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What admission decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; `partial`: do the work, then answer `InternalError`.
    Go { partial: bool },
    /// Answer `RequestLimitExceeded`.
    Throttled,
    /// Answer `InternalError` without doing anything.
    Failed,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultsError {
    #[error("{knob} must be a probability in [0, 1], not {value}")]
    Probability { knob: &'static str, value: f64 },
    #[error("throttleRate must be a finite number ≥ 0, not {0}")]
    Rate(f64),
}

#[derive(Debug)]
pub struct Chaos {
    faults: Faults,
    rng: StdRng,
    buckets: HashMap<String, TokenBucket>,
    stats: BTreeMap<String, ActionStats>,
}

impl Chaos {
    /// `seed`: a reproducible sequence of fault decisions; `None`: from the OS.
    pub fn new(faults: Faults, seed: Option<u64>) -> Result<Self, FaultsError> {
        validate(&faults)?;
        Ok(Self {
            faults,
            rng: rng(seed),
            buckets: HashMap::new(),
            stats: BTreeMap::new(),
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Apply the knobs `req` gives; all or nothing. Buckets start over (full) when a throttle
    /// knob is given, so a test gets exactly the burst it just configured.
    pub fn set(&mut self, req: &SetFaultsRequest) -> Result<Faults, FaultsError> {
        let mut f = self.faults.clone();
        f.attach_latency_ms = req.attach_latency_ms.unwrap_or(f.attach_latency_ms);
        f.throttle_rate = req.throttle_rate.unwrap_or(f.throttle_rate);
        f.throttle_burst = req.throttle_burst.unwrap_or(f.throttle_burst);
        f.fail_rate = req.fail_rate.unwrap_or(f.fail_rate);
        f.partial_rate = req.partial_rate.unwrap_or(f.partial_rate);
        validate(&f)?;
        if req.throttle_rate.is_some() || req.throttle_burst.is_some() {
            self.buckets.clear();
        }
        if req.seed.is_some() {
            self.rng = rng(req.seed);
        }
        self.faults = f;
        Ok(self.faults.clone())
    }

    /// Count the call and decide its fate: throttled, failed, or go (maybe partially).
    pub fn admit(&mut self, action: &str, now: Instant) -> Verdict {
        let stats = self.stats.entry(action.to_owned()).or_default();
        stats.calls += 1;
        let f = &self.faults;
        if f.throttle_rate > 0.0 {
            let bucket = self
                .buckets
                .entry(action.to_owned())
                .or_insert_with(|| TokenBucket::new(f.throttle_rate, f.throttle_burst, now));
            if !bucket.take(now) {
                stats.throttled += 1;
                return Verdict::Throttled;
            }
        }
        if f.fail_rate > 0.0 && self.rng.random_bool(f.fail_rate) {
            stats.failed += 1;
            return Verdict::Failed;
        }
        let partial = f.partial_rate > 0.0
            && PARTIAL_ACTIONS.contains(&action)
            && self.rng.random_bool(f.partial_rate);
        Verdict::Go { partial }
    }

    /// A partially failed call did its work and now answers the error.
    pub fn count_partial(&mut self, action: &str) {
        self.stats.entry(action.to_owned()).or_default().partial += 1;
    }

    pub fn stats(&self) -> StatsReply {
        StatsReply {
            faults: self.faults.clone(),
            actions: self.stats.clone(),
        }
    }
}

fn rng(seed: Option<u64>) -> StdRng {
    seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64)
}

fn validate(f: &Faults) -> Result<(), FaultsError> {
    for (knob, value) in [("failRate", f.fail_rate), ("partialRate", f.partial_rate)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(FaultsError::Probability { knob, value });
        }
    }
    if !f.throttle_rate.is_finite() || f.throttle_rate < 0.0 {
        return Err(FaultsError::Rate(f.throttle_rate));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(start: Instant, n: u64) -> Instant {
        start + Duration::from_millis(n)
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3, "the burst");
        assert!(!b.take(ms(t0, 50)), "half a token after 50 ms");
        assert!(b.take(ms(t0, 100)), "one token after 100 ms at 10/s");
        assert!(!b.take(ms(t0, 100)));
        // A long idle refills only up to the burst.
        let later = ms(t0, 60_000);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }

    #[test]
    fn bucket_burst_zero_means_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 0, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0));
    }

    #[test]
    fn throttles_per_action_and_counts() {
        let faults = Faults {
            throttle_rate: 1.0,
            throttle_burst: 2,
            ..Faults::default()
        };
        let mut c = Chaos::new(faults, Some(1)).unwrap();
        let t0 = Instant::now();
        let go = Verdict::Go { partial: false };
        let got: Vec<Verdict> = (0..3).map(|_| c.admit("A", t0)).collect();
        assert_eq!(got, [go, go, Verdict::Throttled]);
        assert_eq!(c.admit("B", t0), go, "another action has its own bucket");
        assert_eq!(c.admit("A", ms(t0, 1000)), go);
        let a = c.stats().actions["A"];
        assert_eq!((a.calls, a.throttled, a.failed), (4, 1, 0));
        // Turning throttling off lets everything through.
        c.set(&SetFaultsRequest {
            throttle_rate: Some(0.0),
            ..Default::default()
        })
        .unwrap();
        assert!((0..100).all(|_| c.admit("A", t0) == go));
    }

    #[test]
    fn failures_and_partials_follow_their_rates() {
        let mut c = Chaos::new(Faults::default(), Some(7)).unwrap();
        c.set(&SetFaultsRequest {
            fail_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.admit("DescribeInstance", Instant::now()), Verdict::Failed);
        c.set(&SetFaultsRequest {
            fail_rate: Some(0.0),
            partial_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
        let now = Instant::now();
        let partial = Verdict::Go { partial: true };
        assert_eq!(c.admit("AttachNetworkInterface", now), partial);
        assert_eq!(
            c.admit("DetachNetworkInterface", now),
            Verdict::Go { partial: false },
            "detach has no partial failure"
        );
        // Half and half, reproducibly from a seed.
        let run = |seed| {
            let faults = Faults {
                fail_rate: 0.5,
                ..Faults::default()
            };
            let mut c = Chaos::new(faults, Some(seed)).unwrap();
            (0..1000)
                .map(|_| c.admit("X", now) == Verdict::Failed)
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        let fails = a.iter().filter(|f| **f).count();
        assert!((400..600).contains(&fails), "{fails}");
    }

    #[test]
    fn bad_knobs_change_nothing() {
        let mut c = Chaos::new(Faults::default(), None).unwrap();
        let err = c
            .set(&SetFaultsRequest {
                attach_latency_ms: Some(5),
                fail_rate: Some(1.5),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(err, FaultsError::Probability { .. }));
        assert_eq!(c.faults(), &Faults::default());
        assert!(c
            .set(&SetFaultsRequest {
                throttle_rate: Some(-1.0),
                ..Default::default()
            })
            .is_err());
    }
}
