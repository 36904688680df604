//! Every cloud call goes through here: a token bucket per API (the cloud throttles per API,
//! so must we), retries with exponential backoff and full jitter for throttling and transient
//! faults, and metrics. Creates are idempotent across retries through their client token.

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tandem_common::vpcsim::{codes, CreateEniRequest, DescribeEnisRequest, Eni, Instance, VSwitch};

use super::{CloudProvider, ProviderError, ProviderResult};
use crate::metrics::{ApiErrorLabels, ApiLabels, Metrics};

/// Knobs of the guard (`cloud` section of the agent config).
#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    pub rate_per_sec: u32,
    pub burst: u32,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

const APIS: &[&str] = &[
    "DescribeInstance",
    "DescribeVSwitches",
    "DescribeNetworkInterfaces",
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "DeleteNetworkInterface",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
];

pub struct Guarded {
    inner: Arc<dyn CloudProvider>,
    buckets: HashMap<&'static str, DefaultDirectRateLimiter>,
    cfg: GuardConfig,
    metrics: Arc<Metrics>,
}

impl Guarded {
    pub fn new(inner: Arc<dyn CloudProvider>, cfg: GuardConfig, metrics: Arc<Metrics>) -> Guarded {
        let rate = NonZeroU32::new(cfg.rate_per_sec.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(cfg.burst.max(1)).expect("at least 1");
        let buckets = APIS
            .iter()
            .map(|api| {
                (
                    *api,
                    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
                )
            })
            .collect();
        Guarded {
            inner,
            buckets,
            cfg,
            metrics,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .cfg
            .backoff_base
            .saturating_mul(1 << attempt.min(16))
            .min(self.cfg.backoff_max);
        // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter").
        cap.mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    /// `idempotent`: a failed call may be repeated as it is. Throttling is always retried (the
    /// cloud did nothing); other faults only for idempotent calls, since e.g. an assign that
    /// failed may still have assigned (the caller then resyncs from a describe).
    async fn call<T, F, Fut>(&self, api: &'static str, idempotent: bool, f: F) -> ProviderResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ProviderResult<T>>,
    {
        let mut attempt = 0;
        loop {
            if let Some(bucket) = self.buckets.get(api) {
                bucket.until_ready().await;
            }
            let labels = ApiLabels {
                api: api.to_string(),
            };
            self.metrics.cloud_calls.get_or_create(&labels).inc();
            let err = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let code = match &err {
                ProviderError::Api { code, .. } => code.clone(),
                ProviderError::Transport { .. } => "transport".to_string(),
            };
            let throttled = code == codes::THROTTLED;
            if throttled {
                self.metrics.cloud_throttles.get_or_create(&labels).inc();
            }
            self.metrics
                .cloud_errors
                .get_or_create(&ApiErrorLabels {
                    api: api.to_string(),
                    code,
                })
                .inc();
            attempt += 1;
            let retry = throttled || (idempotent && err.retryable());
            if !retry || attempt >= self.cfg.max_attempts {
                return Err(err);
            }
            let wait = self.backoff(attempt);
            tracing::debug!(api, attempt, ?wait, error = %err, "retrying cloud call");
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl CloudProvider for Guarded {
    async fn describe_instance(&self, id: &str) -> ProviderResult<Instance> {
        self.call("DescribeInstance", true, || {
            self.inner.describe_instance(id)
        })
        .await
    }
    async fn describe_vswitches(&self) -> ProviderResult<Vec<VSwitch>> {
        self.call("DescribeVSwitches", true, || {
            self.inner.describe_vswitches()
        })
        .await
    }
    async fn describe_enis(&self, filter: &DescribeEnisRequest) -> ProviderResult<Vec<Eni>> {
        self.call("DescribeNetworkInterfaces", true, || {
            self.inner.describe_enis(filter)
        })
        .await
    }
    async fn create_eni(&self, req: &CreateEniRequest) -> ProviderResult<Eni> {
        self.call("CreateNetworkInterface", true, || {
            self.inner.create_eni(req)
        })
        .await
    }
    async fn attach_eni(&self, eni: &str, instance: &str) -> ProviderResult<Eni> {
        self.call("AttachNetworkInterface", false, || {
            self.inner.attach_eni(eni, instance)
        })
        .await
    }
    async fn detach_eni(&self, eni: &str) -> ProviderResult<Eni> {
        self.call("DetachNetworkInterface", false, || {
            self.inner.detach_eni(eni)
        })
        .await
    }
    async fn delete_eni(&self, eni: &str) -> ProviderResult<()> {
        self.call("DeleteNetworkInterface", false, || {
            self.inner.delete_eni(eni)
        })
        .await
    }
    async fn assign_ips(&self, eni: &str, count: u32) -> ProviderResult<Vec<Ipv4Addr>> {
        self.call("AssignPrivateIpAddresses", false, || {
            self.inner.assign_ips(eni, count)
        })
        .await
    }
    async fn unassign_ips(&self, eni: &str, ips: &[Ipv4Addr]) -> ProviderResult<()> {
        self.call("UnassignPrivateIpAddresses", false, || {
            self.inner.unassign_ips(eni, ips)
        })
        .await
    }
}
