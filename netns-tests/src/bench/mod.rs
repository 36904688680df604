//! Benchmarks that run in the lab and print what they measured, against what, as one table
//! per run (STYLE.md habit 12).
//!
//! - [`cni`]: exec latency of the real `tandem` plugin against the reference `ptp` +
//!   `host-local` plugins, ADD and DEL, on one node with a warm agent.
//! - [`pool`]: warm and empty-pool ADDs and pod bursts with real-cloud attach latency.
//! - [`policy`]: security-group enforcement cost (Tandem's eBPF datapath vs iptables) on a
//!   veth path, the time to apply a 10,000-rule change, and what attaching the programs adds
//!   to a pod's start and end (TCX vs legacy tc).

pub mod cni;
pub mod cni_report;
pub mod policy;
mod policy_attach;
mod policy_cost;
mod policy_report;
pub mod policy_rules;
mod policy_topo;
mod policy_traffic;
pub mod pool;

use std::time::Duration;

pub use cni::{bench_cni, CniBenchOptions, CniBenchReport, PluginRun};
pub use cni_report::Target;
pub use policy::{bench_policy, PolicyBenchOptions, PolicyBenchReport};
pub use pool::{bench_pool, PoolBenchOptions, PoolBenchReport};

use crate::lab::{http::HttpError, netns::NetnsError, LabError};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{tool} not found in PATH: {advice}")]
    MissingTool { tool: String, advice: String },
    #[error("{plugin} is missing: {advice}")]
    MissingPlugin { plugin: String, advice: String },
    #[error("agent on {node}: {problem}")]
    Agent { node: String, problem: String },
    #[error("invalid options: {0}")]
    Options(String),
}

/// Durations of one operation, in the order measured.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0–100), in milliseconds; NaN without samples.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, sorted.len()) - 1;
        sorted[idx].as_secs_f64() * 1e3
    }

    /// p50, p90, p99 in milliseconds.
    pub fn summary_ms(&self) -> [f64; 3] {
        [50.0, 90.0, 99.0].map(|p| self.percentile_ms(p))
    }
}

/// A markdown table: a header row, then rows of cells.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rule: Vec<String> = header.iter().map(|_| "---".to_owned()).collect();
    let mut out = line(&head) + &line(&rule);
    for row in rows {
        out += &line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        assert!(s.percentile_ms(50.0).is_nan());
        for ms in (1..=100).rev() {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.summary_ms(), [50.0, 90.0, 99.0]);
        assert_eq!(s.percentile_ms(0.0), 1.0);
        assert_eq!(s.percentile_ms(100.0), 100.0);
    }

    #[test]
    fn table_is_markdown() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
