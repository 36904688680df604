//! Root-only: a quick run of the policy benchmark (`bench-policy --quick`: 1 s per cell, 10
//! and 1,000 rules) prints its table with every cell non-zero, the programs' run time per
//! measure, the rule-set change lines, the attach-cost table, and leaves no namespace or bpffs
//! behind. The targets are not checked here: a debug build on a shared CI machine says nothing
//! about them.

use std::path::Path;
use std::process::Command;

use tandem_lab::lab::netns;

#[test]
fn bench_policy_smoke() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_bench-policy"));
    let out = Command::new(exe)
        .arg("--quick")
        .output()
        .expect("run bench-policy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "bench-policy failed ({}), a zero cell or an error:\n{stdout}\n{stderr}",
        out.status
    );
    let (throughput, rest) = stdout
        .split_once("time in Tandem's programs")
        .expect("the program-time table");
    let (cost, attach) = rest
        .split_once("what enforcing adds")
        .expect("the attach-cost table");
    let rows: Vec<&str> = throughput
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| configuration") && !l.contains("---"))
        .collect();
    assert_eq!(
        rows.len(),
        7,
        "no policy + 3 configurations × 2 rule counts:\n{stdout}"
    );
    for (label, rules) in [
        ("no policy", "–"),
        ("Tandem (eBPF, TCX)", "10"),
        ("Tandem (eBPF, TCX)", "1000"),
        ("iptables stateless", "10 (+10 reply rules)"),
        ("iptables stateful", "1000"),
    ] {
        let row = format!("| {label} | {rules} |");
        assert!(stdout.contains(&row), "{row:?} missing from:\n{stdout}");
    }
    for method in [
        "| no program | – |",
        "| TCX, pinned links (Tandem) |",
        "| legacy tc (clsact + cls_bpf) |",
    ] {
        assert!(
            attach.contains(method),
            "{method:?} missing from:\n{attach}"
        );
    }
    for row in &rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for cell in &cells[3..6] {
            let value: f64 = cell
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unparsable cell {cell:?} in {row}"));
            assert!(value > 0.0, "zero cell in {row}");
        }
    }
    // One cost row per Tandem rule count; every packet and connection took some time in the
    // programs.
    let cost_rows: Vec<&str> = cost
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| rules") && !l.contains("---"))
        .collect();
    assert_eq!(cost_rows.len(), 2, "10 and 1,000 rules:\n{cost}");
    for row in &cost_rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for cell in &cells[2..5] {
            let ns: f64 = cell
                .strip_suffix(" ns")
                .or_else(|| cell.split(" ns (").next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unparsable cell {cell:?} in {row}"));
            assert!(ns > 0.0, "no time in the programs: {row}");
        }
    }
    assert_eq!(
        stdout.matches("rule-set change of 10000 rules").count(),
        2,
        "{stdout}"
    );

    let prefix = stdout
        .split("lab ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .expect("the header names the lab");
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "namespaces left behind");
    assert!(!Path::new(&format!("/run/tandem-bench-{prefix}")).exists());
}
