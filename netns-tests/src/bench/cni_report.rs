//! The CNI benchmark's verdicts (DESIGN's targets) and its markdown table.

use super::cni::{CniBenchReport, NODE};
use super::{markdown_table, Samples};

/// One target of DESIGN's CNI benchmark: a measured value against its limit.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub measured: f64,
    pub limit: f64,
    pub unit: &'static str,
}

impl Target {
    pub fn met(&self) -> bool {
        self.measured <= self.limit
    }
}

impl CniBenchReport {
    pub fn all_succeeded(&self) -> bool {
        let want = self.iterations;
        let runs = [&self.tandem, &self.reference];
        self.failures.is_empty()
            && runs
                .iter()
                .all(|r| r.add.len() == want && r.del.len() == want)
    }

    pub fn targets(&self) -> Vec<Target> {
        let p = |s: &Samples, q: f64| s.percentile_ms(q);
        let (t, r) = (&self.tandem, &self.reference);
        vec![
            Target {
                name: "Tandem ADD p50 ≤ 0.4× reference ADD p50",
                measured: p(&t.add, 50.0) / p(&r.add, 50.0),
                limit: 0.4,
                unit: "×",
            },
            Target {
                name: "Tandem ADD p99 ≤ 20 ms",
                measured: p(&t.add, 99.0),
                limit: 20.0,
                unit: " ms",
            },
            Target {
                name: "Tandem DEL p50 ≤ 0.6× reference DEL p50",
                measured: p(&t.del, 50.0) / p(&r.del, 50.0),
                limit: 0.6,
                unit: "×",
            },
        ]
    }

    pub fn targets_met(&self) -> bool {
        self.targets().iter().all(Target::met)
    }

    /// What was measured, against what, and the verdicts, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "CNI exec latency (spawn → exit of the plugin process), node {NODE} of lab {}, \
             {} ADDs + {} DELs per plugin in rounds of {} pods, warm agent\n\
             tandem: {}\nreference: {} (ipMasq, host-local 10.200.0.0/16)\n\n",
            self.prefix,
            self.iterations,
            self.iterations,
            self.batch,
            self.tandem.plugin.display(),
            self.reference.plugin.display(),
        );
        let ms = |v: f64| format!("{v:.2}");
        let ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
        let mut rows = Vec::new();
        for (op, t, r) in [
            ("ADD", &self.tandem.add, &self.reference.add),
            ("DEL", &self.tandem.del, &self.reference.del),
        ] {
            for (label, s) in [(&self.tandem.label, t), (&self.reference.label, r)] {
                let [p50, p90, p99] = s.summary_ms();
                rows.push(vec![
                    op.into(),
                    label.clone(),
                    s.len().to_string(),
                    ms(p50),
                    ms(p90),
                    ms(p99),
                ]);
            }
            let ([t50, t90, t99], [r50, r90, r99]) = (t.summary_ms(), r.summary_ms());
            let ratios = vec![ratio(t50, r50), ratio(t90, r90), ratio(t99, r99)];
            rows.push(
                [
                    vec![op.into(), "tandem / reference".into(), String::new()],
                    ratios,
                ]
                .concat(),
            );
        }
        out += &markdown_table(&["op", "plugin", "n", "p50 ms", "p90 ms", "p99 ms"], &rows);
        let targets: Vec<Vec<String>> = self
            .targets()
            .iter()
            .map(|t| {
                let verdict = if t.met() { "PASS" } else { "FAIL" };
                vec![
                    t.name.into(),
                    format!("{:.2}{}", t.measured, t.unit),
                    format!("{}{}", t.limit, t.unit),
                    verdict.into(),
                ]
            })
            .collect();
        out += "\n";
        out += &markdown_table(&["target", "measured", "limit", "result"], &targets);
        out += &format!(
            "\nfailed invocations: {}{}\n",
            self.failures.len(),
            self.failures
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
        out
    }
}
