//! Root-only: the churn test (issue 3). 300 ADD/DEL operations on both nodes over the shared
//! (acme, globex) and exclusive (initech) planes with random pod lifetimes, while agents are
//! SIGKILLed 20 times at random moments and vpcsim throttles and fails calls, some after doing
//! their work. Afterwards: live pods have both interfaces and connectivity, store = kernel =
//! cloud, no address was ever held by two pods, and once every pod is gone the pools drain to
//! their minimum (0) in the cloud.
//!
//! The schedule is random from a seed, printed first; `CHURN_SEED=<n>` replays it.

mod common;
#[path = "churn/driver.rs"]
mod driver;
#[path = "churn/verify.rs"]
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_common::vpcsim::SetFaultsRequest;
use tandem_lab::lab::{http::block_on, Lab, LabOptions};

use driver::{Churn, LivePod, Slot, NODES};

const DRIVERS: usize = 3;
/// 3 drivers × 4 slots × 13 pods: 156 ADDs, and 144 DELs (each slot's last pod stays alive
/// for the checks) = 300 operations.
const PODS_PER_SLOT: usize = 13;
const KILLS: u64 = 20;

fn seed() -> u64 {
    match std::env::var("CHURN_SEED") {
        Ok(s) => s.parse().expect("CHURN_SEED is a number"),
        Err(_) => rand::random(),
    }
}

fn lab(seed: u64) -> Option<Lab> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem-lab"));
    let opts = LabOptions {
        bin_dir: bin.parent().map(Path::to_path_buf),
        attach_latency_ms: 200,
        seed: Some(seed),
        // Small pools that refill often; idle planes drain to 0 within seconds.
        agent_pool: Some(json!({
            "minIps": 0, "warmIps": 2, "warmEnis": 1, "batch": 3, "cooldownSecs": 1,
            "emptyWaitMs": 3000, "idleReleaseSecs": 3, "idleReleaseJitter": 0.5,
        })),
        // ENIs detached but not deleted when an agent died are collected within seconds.
        agent_extra: Some(json!({"sweepSecs": 2, "leakedEniGraceSecs": 8})),
        ready_timeout: Duration::from_secs(20),
        ..LabOptions::default()
    };
    Some(Lab::up(opts).expect("lab up"))
}

fn set_faults(lab: &Lab, req: SetFaultsRequest) {
    let c = lab.vpcsim();
    block_on(async move { c.set_faults(&req).await }).expect("SetFaults");
}

#[test]
fn churn_with_agent_kills_and_cloud_faults() {
    let seed = seed();
    eprintln!("churn seed {seed} (replay: CHURN_SEED={seed})");
    let Some(lab) = lab(seed) else { return };
    let logs = KeepLogsOnPanic::new(&lab, seed);
    let started = Instant::now();
    set_faults(
        &lab,
        SetFaultsRequest {
            throttle_rate: Some(4.0),
            throttle_burst: Some(3),
            fail_rate: Some(0.03),
            partial_rate: Some(0.1),
            ..SetFaultsRequest::default()
        },
    );
    let churn = Churn::new(&lab);
    let live = run(&churn, seed);
    let churned = started.elapsed();
    let faults = lab.vpcsim();
    block_on(async move { faults.clear_faults().await }).expect("faults off");
    for node in NODES {
        if !common::agent_up(&lab, node) {
            churn.start_agent(node);
        }
    }
    report(&lab, &churn, churned);
    assert_no_problems(&churn, "during the churn");

    let mut problems = verify::settled(&lab, Duration::from_secs(30));
    for p in &live {
        problems.extend(verify::live_pod(&lab, p));
    }
    for node in NODES {
        let on: Vec<&LivePod> = live.iter().filter(|p| p.pod.node.name == node).collect();
        problems.extend(verify::store_matches_cloud(&lab, node, &on));
    }
    assert!(
        problems.is_empty(),
        "after the churn:\n{}",
        problems.join("\n")
    );

    for p in live {
        churn.del(&p.pod);
        let _ = p.pod.delete();
    }
    assert_no_problems(&churn, "deleting the live pods");
    for node in NODES {
        assert!(
            common::wait_for(Duration::from_secs(10), || common::status(&lab, node)
                .allocations
                == 0),
            "{node} still holds pods: {:?}",
            common::status(&lab, node)
        );
    }
    let drain = Instant::now();
    let drained = verify::drained(&lab, Duration::from_secs(60));
    eprintln!("drained in {:.1} s", drain.elapsed().as_secs_f64());
    drained.unwrap();
    let problems = verify::settled(&lab, Duration::from_secs(10));
    assert!(
        problems.is_empty(),
        "after the drain:\n{}",
        problems.join("\n")
    );
    eprintln!("churn test took {:.1} s", started.elapsed().as_secs_f64());
    drop(logs);
    lab.teardown().unwrap();
}

/// On failure (or with `CHURN_KEEP_LOGS` set), the agents' and vpcsim's logs are copied out of
/// the run directory (which the lab's teardown removes) to `$TMPDIR/tandem-churn-<seed>/`.
struct KeepLogsOnPanic {
    seed: u64,
    logs: Vec<(String, PathBuf)>,
}

impl KeepLogsOnPanic {
    fn new(lab: &Lab, seed: u64) -> Self {
        let names = lab.names();
        let mut logs = vec![("vpcsim.log".to_owned(), names.vpcsim_log())];
        logs.extend(NODES.map(|n| (format!("agent-{n}.log"), names.agent_log(n))));
        KeepLogsOnPanic { seed, logs }
    }
}

impl Drop for KeepLogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("CHURN_KEEP_LOGS").is_none() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("tandem-churn-{}", self.seed));
        let _ = std::fs::create_dir_all(&dir);
        for (name, path) in &self.logs {
            let _ = std::fs::copy(path, dir.join(name));
        }
        eprintln!("logs kept in {}", dir.display());
    }
}

/// The drivers and the killer, until all are done; the pods left alive.
fn run(churn: &Churn<'_>, seed: u64) -> Vec<LivePod> {
    let mut per_driver: Vec<Vec<Slot>> = (0..DRIVERS).map(|_| Vec::new()).collect();
    for slot in Slot::all(seed, DRIVERS, PODS_PER_SLOT) {
        per_driver[slot.driver()].push(slot);
    }
    std::thread::scope(|s| {
        let killer = s.spawn(|| churn.killer(seed, KILLS));
        let drivers: Vec<_> = per_driver
            .into_iter()
            .map(|slots| s.spawn(move || churn.drive(slots)))
            .collect();
        let live = drivers
            .into_iter()
            .flat_map(|d| d.join().expect("driver"))
            .collect();
        killer.join().expect("killer");
        live
    })
}

fn assert_no_problems(churn: &Churn<'_>, when: &str) {
    let problems = churn.tally.problems.lock().unwrap();
    assert!(problems.is_empty(), "{when}:\n{}", problems.join("\n"));
}

fn report(lab: &Lab, churn: &Churn<'_>, took: Duration) {
    let t = &churn.tally;
    let (adds, dels) = (
        t.adds.load(Ordering::Relaxed),
        t.dels.load(Ordering::Relaxed),
    );
    eprintln!(
        "churn: {} ops ({adds} ADD, {dels} DEL) in {:.1} s; failed ADDs by code {:?}; \
         {} agent kills, {} failed agent starts",
        adds + dels,
        took.as_secs_f64(),
        t.add_failures.lock().unwrap(),
        t.kills.load(Ordering::Relaxed),
        t.start_failures.load(Ordering::Relaxed),
    );
    let c = lab.vpcsim();
    let stats = block_on(async move { c.stats().await }).expect("vpcsim stats");
    eprintln!(
        "vpcsim: {:<28} {:>6} {:>9} {:>6} {:>7}",
        "action", "calls", "throttled", "failed", "partial"
    );
    for (action, s) in &stats.actions {
        eprintln!(
            "vpcsim: {action:<28} {:>6} {:>9} {:>6} {:>7}",
            s.calls, s.throttled, s.failed, s.partial
        );
    }
}
