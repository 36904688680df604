//! Root-only: a short run of the CNI benchmark (`bench-cni --iterations 20`) prints its table,
//! every invocation succeeds, and the lab is gone afterwards. The targets are not checked here:
//! debug binaries on a shared CI machine say nothing about them.

use std::path::Path;
use std::process::Command;

use tandem_lab::lab::{names, netns};

#[test]
fn bench_cni_smoke() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_bench-cni"));
    let out = Command::new(exe)
        .args(["--iterations", "20"])
        .output()
        .expect("run bench-cni");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "bench-cni failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    for row in [
        "| ADD | tandem (2 ifs) | 20 |",
        "| ADD | ptp + host-local (1 if) | 20 |",
        "| DEL | tandem (2 ifs) | 20 |",
        "| DEL | ptp + host-local (1 if) | 20 |",
        "| ADD | tandem / reference |",
        "| DEL | tandem / reference |",
        "| Tandem ADD p99 ≤ 20 ms |",
        "failed invocations: 0",
    ] {
        assert!(stdout.contains(row), "{row:?} missing from:\n{stdout}");
    }

    let prefix = stdout
        .split("of lab ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("the header names the lab");
    let own = format!("{prefix}-");
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&own))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "namespaces left behind");
    assert!(!Path::new(names::RUN_ROOT).join(prefix).exists());
}
