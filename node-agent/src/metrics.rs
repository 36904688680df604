//! Prometheus metrics (`GET /metrics`): pool levels per plane, ADD/DEL latency, cloud API calls,
//! errors and throttles per API, ENI attach duration. One registry, owned by the agent.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlaneLabels {
    pub plane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub plane: String,
    /// used | free | cooling | target
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub api: String,
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    pub pool_ips: Family<PoolLabels, Gauge>,
    pub pool_enis: Family<PlaneLabels, Gauge>,
    pub add_seconds: Histogram,
    pub del_seconds: Histogram,
    pub cloud_calls: Family<ApiLabels, Counter>,
    pub cloud_errors: Family<ApiErrorLabels, Counter>,
    pub cloud_throttles: Family<ApiLabels, Counter>,
    pub eni_attach_seconds: Histogram,
}

fn latency() -> Histogram {
    // 0.25 ms … ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("tandem"),
            pool_ips: Family::default(),
            pool_enis: Family::default(),
            add_seconds: latency(),
            del_seconds: latency(),
            cloud_calls: Family::default(),
            cloud_errors: Family::default(),
            cloud_throttles: Family::default(),
            eni_attach_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
        };
        let r = &mut m.registry;
        r.register(
            "pool_ips",
            "Addresses of each plane's pool by state (used, free, cooling, target)",
            m.pool_ips.clone(),
        );
        r.register(
            "pool_enis",
            "ENIs of each plane on this node",
            m.pool_enis.clone(),
        );
        r.register(
            "cni_add_seconds",
            "Time the agent takes to serve an ADD",
            m.add_seconds.clone(),
        );
        r.register(
            "cni_del_seconds",
            "Time the agent takes to serve a DEL",
            m.del_seconds.clone(),
        );
        r.register(
            "cloud_api_calls",
            "Cloud API calls, retries included, per API",
            m.cloud_calls.clone(),
        );
        r.register(
            "cloud_api_errors",
            "Cloud API errors per API and error code",
            m.cloud_errors.clone(),
        );
        r.register(
            "cloud_api_throttles",
            "Cloud API calls answered with throttling, per API",
            m.cloud_throttles.clone(),
        );
        r.register(
            "eni_attach_seconds",
            "Time from create to a configured ENI on the node",
            m.eni_attach_seconds.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
