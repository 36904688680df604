//! The policy benchmark's table and its targets (issue 4): Tandem at 10,000 rules keeps
//! ≥ 90% of the no-policy figure on every measure; a 10,000-rule change applies in ≤ 100 ms.

use std::fmt::Write as _;
use std::time::Duration;

use tandem_agent::policy::datapath::ApplyBreakdown;

use super::markdown_table;
use super::policy::{Config, Spread};
use super::policy_attach::AttachRow;
use super::policy_cost::{cost_table, ProgramCost};
use super::policy_rules::IptablesMode;

pub const TARGET_FRACTION: f64 = 0.90;
pub const TARGET_RULES: usize = 10_000;
pub const TARGET_APPLY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, Default)]
pub struct Measures {
    pub tcp_gbps: f64,
    pub udp_kpps: f64,
    pub conn_per_sec: f64,
    pub conn_failed: u64,
}

impl Measures {
    fn values(&self) -> [f64; 3] {
        [self.tcp_gbps, self.udp_kpps, self.conn_per_sec]
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub config: Config,
    /// `Datapath::apply` or `iptables-restore` wall time.
    pub setup: Option<Duration>,
    pub measures: Measures,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl Row {
    /// Each figure the median over passes of one configuration (non-empty).
    pub fn median(passes: Vec<Row>) -> Row {
        let pick =
            |f: fn(&Measures) -> f64| median(passes.iter().map(|r| f(&r.measures)).collect());
        let mut setups: Vec<Duration> = passes.iter().filter_map(|r| r.setup).collect();
        setups.sort();
        Row {
            config: passes[0].config,
            setup: setups.get(setups.len() / 2).copied(),
            measures: Measures {
                tcp_gbps: pick(|m| m.tcp_gbps),
                udp_kpps: pick(|m| m.udp_kpps),
                conn_per_sec: pick(|m| m.conn_per_sec),
                conn_failed: passes.iter().map(|r| r.measures.conn_failed).sum(),
            },
        }
    }

    fn label(&self) -> (String, String) {
        match self.config {
            Config::NoPolicy => ("no policy".into(), "–".into()),
            Config::Tandem(n) => ("Tandem (eBPF, TCX)".into(), n.to_string()),
            Config::Iptables(IptablesMode::Stateless, n) => (
                "iptables stateless".into(),
                format!("{n} (+{n} reply rules)"),
            ),
            Config::Iptables(IptablesMode::Stateful, n) => {
                ("iptables stateful".into(), n.to_string())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub rules: usize,
    pub spread: Spread,
    /// `compile` of one rule set (not part of the change's time).
    pub compile: Duration,
    pub median: Duration,
    pub max: Duration,
    pub changes: usize,
    /// Of the median change.
    pub breakdown: ApplyBreakdown,
}

#[derive(Debug, Clone)]
pub struct PolicyBenchReport {
    pub prefix: String,
    pub secs: u32,
    pub rounds: usize,
    pub rows: Vec<Row>,
    /// The Tandem rows' time in the programs, from one more pass.
    pub costs: Vec<ProgramCost>,
    /// One policy first (the target), then the rules spread over groups and policies.
    pub apply: Vec<ApplyReport>,
    /// Attaching the programs to one veth and deleting it, per method.
    pub attach: Vec<AttachRow>,
    pub load_before: String,
    pub load_after: String,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl PolicyBenchReport {
    fn baseline(&self) -> Option<&Measures> {
        self.rows
            .iter()
            .find(|r| r.config == Config::NoPolicy)
            .map(|r| &r.measures)
    }

    /// Each measure of a row as a fraction of the no-policy row.
    fn fractions(&self, m: &Measures) -> [f64; 3] {
        let base = self.baseline().copied().unwrap_or_default().values();
        let v = m.values();
        [0, 1, 2].map(|i| {
            if base[i] > 0.0 {
                v[i] / base[i]
            } else {
                f64::NAN
            }
        })
    }

    /// Every figure of every row is positive (the smoke test's check).
    pub fn all_nonzero(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.measures.values().iter().all(|v| *v > 0.0))
    }

    /// `Some(met)` for the throughput target when the run had a 10,000-rule Tandem row.
    pub fn throughput_target_met(&self) -> Option<bool> {
        let row = self
            .rows
            .iter()
            .find(|r| r.config == Config::Tandem(TARGET_RULES))?;
        Some(
            self.fractions(&row.measures)
                .iter()
                .all(|f| *f >= TARGET_FRACTION),
        )
    }

    pub fn apply_target_met(&self) -> bool {
        self.apply
            .iter()
            .all(|a| a.rules >= TARGET_RULES && a.median <= TARGET_APPLY)
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "policy benchmark, lab {}: peer → host netns → pod over veths, {} s per measure, \
             median of {} interleaved passes\n\n",
            self.prefix, self.secs, self.rounds
        );
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| self.row_cells(r)).collect();
        out += &markdown_table(
            &[
                "configuration",
                "rules",
                "TCP Gbit/s",
                "UDP 64B kpps",
                "new TCP conn/s",
                "rules loaded in",
            ],
            &rows,
        );
        out += &cost_table(
            &self.costs,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
        for a in &self.apply {
            apply_lines(&mut out, a);
        }
        if !self.attach.is_empty() {
            out += "\nwhat enforcing adds to a pod interface's start and end (one veth, both \
                    directions; median over the veths):\n\n";
            let rows: Vec<Vec<String>> = self
                .attach
                .iter()
                .map(|r| {
                    let attach = r.attach.map_or("–".into(), ms);
                    vec![r.method.label().into(), attach, ms(r.delete)]
                })
                .collect();
            out += &markdown_table(&["attach method", "attach", "delete the veth"], &rows);
            out += "\n";
        }
        if let Some(met) = self.throughput_target_met() {
            let _ = writeln!(
                out,
                "target Tandem at {TARGET_RULES} rules ≥ {:.0}% of no policy on all three measures: {}",
                TARGET_FRACTION * 100.0,
                if met { "met" } else { "MISSED" }
            );
        }
        let _ = writeln!(
            out,
            "target rule-set change ≤ {} ms: {}",
            TARGET_APPLY.as_millis(),
            if self.apply_target_met() {
                "met"
            } else {
                "MISSED"
            }
        );
        let failed: u64 = self.rows.iter().map(|r| r.measures.conn_failed).sum();
        let _ = writeln!(
            out,
            "connects that timed out (1 s): {failed}; load average before {}, after {} ({} CPUs)",
            self.load_before,
            self.load_after,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        out
    }

    fn row_cells(&self, r: &Row) -> Vec<String> {
        let (label, rules) = r.label();
        let f = self.fractions(&r.measures);
        let m = &r.measures;
        let pct = |x: f64| {
            if r.config == Config::NoPolicy || x.is_nan() {
                String::new()
            } else {
                format!(" ({:.0}%)", x * 100.0)
            }
        };
        vec![
            label,
            rules,
            format!("{:.2}{}", m.tcp_gbps, pct(f[0])),
            format!("{:.0}{}", m.udp_kpps, pct(f[1])),
            format!("{:.0}{}", m.conn_per_sec, pct(f[2])),
            r.setup.map_or_else(|| "–".into(), ms),
        ]
    }
}

fn apply_lines(out: &mut String, a: &ApplyReport) {
    let b = &a.breakdown;
    let spread = match a.spread {
        Spread::OnePolicy => "in one policy".to_string(),
        Spread::Groups(g) => format!("in {g} groups, {g} policies of 2 groups each"),
    };
    let _ = writeln!(
        out,
        "\nrule-set change of {} rules ({spread}) applied in {} (target ≤ {} ms): median of {} \
         changes (max {}) between two generated sets that differ in all but 3 rules",
        a.rules,
        ms(a.median),
        TARGET_APPLY.as_millis(),
        a.changes,
        ms(a.max),
    );
    let _ = writeln!(
        out,
        "  the median change: {} identity prefixes built in {} and swapped in {} ‖ {} \
         policy-trie entries ({} policies) built in {} and swapped in {}; {} outer-map writes \
         (concurrent); flip {}; compiling one set takes {} (not included)",
        b.identities,
        ms(b.identities_fill),
        ms(b.identities_swap),
        b.policy_entries,
        b.policies,
        ms(b.policies_fill),
        ms(b.policies_swap),
        b.outer_writes,
        ms(b.flip),
        ms(a.compile),
    );
}
