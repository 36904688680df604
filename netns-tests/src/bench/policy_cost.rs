//! The time the kernel spends in Tandem's programs during each measure, from BPF run-time
//! statistics. Timing every run adds two clock reads per packet, so these figures come from
//! one extra pass with the statistics on, and the throughput table never includes it. Unlike
//! throughput, which moves ±5 % between runs on a shared machine, these are exact.

use std::fmt::Write as _;
use std::time::Duration;

use tandem_agent::policy::datapath::RunTime;

use super::markdown_table;

/// One Tandem row's cost pass.
#[derive(Debug, Clone, Copy)]
pub struct ProgramCost {
    pub rules: usize,
    pub tcp: RunTime,
    pub udp: RunTime,
    pub conn: RunTime,
    /// Connections made during the connection measure, and its length.
    pub connections: u64,
    pub conn_elapsed: Duration,
}

impl ProgramCost {
    /// Program time per connection.
    pub fn per_connection(&self) -> Duration {
        RunTime {
            runs: self.connections,
            time: self.conn.time,
        }
        .per_run()
    }

    /// The programs' share of all CPUs' time during the connection measure (which keeps
    /// every CPU busy).
    pub fn conn_cpu_share(&self, cpus: usize) -> f64 {
        let budget = self.conn_elapsed.as_secs_f64() * cpus as f64;
        if budget > 0.0 {
            self.conn.time.as_secs_f64() / budget
        } else {
            f64::NAN
        }
    }
}

fn ns(d: Duration) -> String {
    format!("{} ns", d.as_nanos())
}

/// The cost table, or nothing without cost passes.
pub fn cost_table(costs: &[ProgramCost], cpus: usize) -> String {
    if costs.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ntime in Tandem's programs, both hooks (BPF run-time statistics, one more pass with \
         them on, not part of the table above):\n"
    );
    let rows: Vec<Vec<String>> = costs
        .iter()
        .map(|c| {
            let per_conn = match c.connections {
                0 => "–".to_string(),
                n => format!(
                    "{} ({:.1} runs)",
                    ns(c.per_connection()),
                    c.conn.runs as f64 / n as f64
                ),
            };
            vec![
                c.rules.to_string(),
                ns(c.tcp.per_run()),
                ns(c.udp.per_run()),
                per_conn,
                format!("{:.1}%", c.conn_cpu_share(cpus) * 100.0),
            ]
        })
        .collect();
    out += &markdown_table(
        &[
            "rules",
            "TCP, per packet",
            "UDP 64B, per packet",
            "per new TCP connection",
            "share of the CPUs while connecting",
        ],
        &rows,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(conn_ns: u64, connections: u64) -> ProgramCost {
        let rt = |runs, ns| RunTime {
            runs,
            time: Duration::from_nanos(ns),
        };
        ProgramCost {
            rules: 10,
            tcp: rt(10, 1_000),
            udp: rt(4, 400),
            conn: rt(connections * 4, conn_ns),
            connections,
            conn_elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn per_connection_and_cpu_share() {
        let c = cost(50_000_000, 100_000);
        assert_eq!(c.per_connection(), Duration::from_nanos(500));
        assert!((c.conn_cpu_share(2) - 0.025).abs() < 1e-9);
        let t = cost_table(&[c], 2);
        assert!(
            t.contains("| 10 | 100 ns | 100 ns | 500 ns (4.0 runs) | 2.5% |"),
            "{t}"
        );
    }

    #[test]
    fn nothing_ran() {
        let c = cost(0, 0);
        assert_eq!(c.per_connection(), Duration::ZERO);
        assert!(cost_table(&[], 2).is_empty());
        assert!(cost_table(&[c], 2).contains("| 10 | 100 ns | 100 ns | – |"));
    }
}
