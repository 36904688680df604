//! Prometheus metrics (`GET /metrics`): pool levels per plane, ADD/DEL latency, cloud API calls,
//! errors and throttles per API, ENI attach duration; and the security-group datapath's drops by
//! reason, lost events, conntrack fill, per-rule packets and tracked flows per tenant. One
//! registry, owned by the agent.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule's id in the compiled table (changes when groups change).
    pub id: String,
    /// The rule in words (`sg-web ingress[0]: accept tcp 80 from group sg-lb ...`).
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
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
    pub datapath_drops: Family<ReasonLabels, Counter>,
    pub events_lost: Counter,
    pub new_flows: Counter,
    pub conntrack_entries: Gauge,
    pub conntrack_capacity: Gauge,
    pub conntrack_gc_deleted: Counter,
    pub rule_packets: Family<RuleLabels, Gauge>,
    pub rule_bytes: Family<RuleLabels, Gauge>,
    pub tenant_flows: Family<TenantLabels, Gauge>,
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
            datapath_drops: Family::default(),
            events_lost: Counter::default(),
            new_flows: Counter::default(),
            conntrack_entries: Gauge::default(),
            conntrack_capacity: Gauge::default(),
            conntrack_gc_deleted: Counter::default(),
            rule_packets: Family::default(),
            rule_bytes: Family::default(),
            tenant_flows: Family::default(),
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
        r.register(
            "datapath_drops",
            "Packets the security-group datapath dropped, by reason",
            m.datapath_drops.clone(),
        );
        r.register(
            "datapath_events_lost",
            "Datapath events not delivered (rate limit or full ring buffer)",
            m.events_lost.clone(),
        );
        r.register(
            "datapath_new_flows",
            "New flows the datapath allowed",
            m.new_flows.clone(),
        );
        r.register(
            "conntrack_entries",
            "Entries in the datapath's conntrack table",
            m.conntrack_entries.clone(),
        );
        r.register(
            "conntrack_capacity",
            "Capacity of the datapath's conntrack table (LRU)",
            m.conntrack_capacity.clone(),
        );
        r.register(
            "conntrack_gc_deleted",
            "Conntrack entries the GC sweep deleted (idle past their timeout)",
            m.conntrack_gc_deleted.clone(),
        );
        r.register(
            "rule_packets",
            "Packets counted by the deciding security-group rule",
            m.rule_packets.clone(),
        );
        r.register(
            "rule_bytes",
            "Bytes counted by the deciding security-group rule",
            m.rule_bytes.clone(),
        );
        r.register(
            "tenant_flows",
            "Tracked flows of each tenant's pods on this node",
            m.tenant_flows.clone(),
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
