//! The churn's actors: drivers that ADD and DEL pods as a runtime does (retrying a failed ADD
//! with a new sandbox, cleaning up the failed one with DEL), and a killer that SIGKILLs agents.
//! Every random choice comes from a per-slot (or the killer's) RNG seeded from the run's seed,
//! so a seed replays the same schedule; only the threads' interleaving differs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tandem_lab::lab::{Lab, Pod};

pub const NODES: [&str; 2] = ["n1", "n2"];
/// Concurrent pods per driver thread; a slot runs its pods one after another on one node.
pub const SLOTS_PER_DRIVER: usize = 4;
/// ADD attempts per pod (each a new sandbox, as kubelet makes after a failed ADD).
const ADD_ATTEMPTS: u32 = 40;
/// DEL attempts; every one after the first is already a failure of the test.
const DEL_ATTEMPTS: u32 = 5;

/// Counts for the report, and what went wrong.
#[derive(Default)]
pub struct Tally {
    pub adds: AtomicU64,
    pub dels: AtomicU64,
    /// Failed ADDs by CNI error code (0: no error document).
    pub add_failures: Mutex<BTreeMap<u64, u64>>,
    pub kills: AtomicU64,
    /// Agent starts that failed (the agent exits when start-up cannot reach the cloud).
    pub start_failures: AtomicU64,
    pub problems: Mutex<Vec<String>>,
}

/// A pod whose ADD succeeded: its interfaces as (name in the pod, address, prefix length).
pub struct LivePod {
    pub pod: Pod,
    pub tenant: &'static str,
    pub ifaces: Vec<(String, Ipv4Addr, u8)>,
}

enum SlotState {
    /// Next ADD at.
    Idle(Instant),
    /// DEL at.
    Live(Box<LivePod>, Instant),
    Done,
}

/// One stream of pods on one node.
pub struct Slot {
    id: usize,
    node: &'static str,
    /// Exclusive pods take a whole ENI: at most three slots per node may run them, so the
    /// instance's 8 ENIs always fit primary + acme + globex + 3 initech + a warm one.
    exclusive_ok: bool,
    rng: StdRng,
    left: usize,
    state: SlotState,
}

impl Slot {
    pub fn all(seed: u64, drivers: usize, pods_per_slot: usize) -> Vec<Slot> {
        (0..drivers * SLOTS_PER_DRIVER)
            .map(|id| Slot {
                id,
                node: NODES[id % 2],
                exclusive_ok: id % 4 < 2,
                rng: StdRng::seed_from_u64(seed.wrapping_add(id as u64 * 7919)),
                left: pods_per_slot,
                state: SlotState::Idle(Instant::now()),
            })
            .collect()
    }

    pub fn driver(&self) -> usize {
        self.id / SLOTS_PER_DRIVER
    }

    fn due(&self) -> Option<Instant> {
        match self.state {
            SlotState::Idle(t) | SlotState::Live(_, t) => Some(t),
            SlotState::Done => None,
        }
    }

    fn tenant(&mut self) -> &'static str {
        match self.rng.random_range(0..10) {
            0..4 => "acme",
            4..7 if self.exclusive_ok => "initech",
            _ => "globex",
        }
    }
}

pub struct Churn<'a> {
    pub lab: &'a Lab,
    pub tally: Tally,
    /// Every address a live pod holds, and which pod.
    held: Mutex<BTreeMap<Ipv4Addr, String>>,
    stop: AtomicBool,
}

impl<'a> Churn<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        Churn {
            lab,
            tally: Tally::default(),
            held: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
        }
    }

    /// Record a failure of the test; the churn stops soon after.
    pub fn problem(&self, what: String) {
        eprintln!("PROBLEM: {what}");
        self.tally.problems.lock().unwrap().push(what);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Run `slots` to the end; returns each slot's last pod, left alive for the checks.
    pub fn drive(&self, mut slots: Vec<Slot>) -> Vec<LivePod> {
        let mut kept = Vec::new();
        while !self.stopped() {
            let next = slots.iter_mut().filter(|s| s.due().is_some());
            let Some(slot) = next.min_by_key(|s| s.due()) else {
                break;
            };
            let due = slot.due().expect("filtered");
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            self.step(slot, &mut kept);
        }
        kept
    }

    fn step(&self, slot: &mut Slot, kept: &mut Vec<LivePod>) {
        match std::mem::replace(&mut slot.state, SlotState::Done) {
            SlotState::Idle(_) => {
                let tenant = slot.tenant();
                let lifetime = Duration::from_millis(slot.rng.random_range(200..3000));
                let n = slot.left;
                slot.left -= 1;
                let Some(live) = self.add(slot, n, tenant) else {
                    return;
                };
                if slot.left == 0 {
                    kept.push(live);
                } else {
                    slot.state = SlotState::Live(Box::new(live), Instant::now() + lifetime);
                }
            }
            SlotState::Live(live, _) => {
                self.del(&live.pod);
                self.tally.dels.fetch_add(1, Ordering::Relaxed);
                let mut held = self.held.lock().unwrap();
                held.retain(|_, owner| *owner != live.pod.name);
                drop(held);
                let _ = live.pod.delete();
                let gap = Duration::from_millis(slot.rng.random_range(0..400));
                slot.state = SlotState::Idle(Instant::now() + gap);
            }
            SlotState::Done => {}
        }
    }

    /// ADD like a runtime: on failure DEL the sandbox, drop it, back off, try a new one.
    fn add(&self, slot: &Slot, n: usize, tenant: &'static str) -> Option<LivePod> {
        for attempt in 0..ADD_ATTEMPTS {
            if self.stopped() {
                return None;
            }
            let name = format!("s{}n{n}a{attempt}", slot.id);
            let pod = match self.lab.new_pod(slot.node, &name, tenant) {
                Ok(p) => p,
                Err(e) => {
                    self.problem(format!("create pod {name}: {e}"));
                    return None;
                }
            };
            let out = self.lab.cni(&pod, "ADD").expect("run the plugin");
            if out.success() {
                self.tally.adds.fetch_add(1, Ordering::Relaxed);
                let ifaces = interfaces(out.json.as_ref().expect("ADD prints a result"));
                self.hold(&name, &ifaces);
                return Some(LivePod {
                    pod,
                    tenant,
                    ifaces,
                });
            }
            let code = out.json.as_ref().and_then(|j| j["code"].as_u64());
            let code = code.unwrap_or(0);
            *self
                .tally
                .add_failures
                .lock()
                .unwrap()
                .entry(code)
                .or_default() += 1;
            if code != 11 {
                self.problem(format!("ADD {name} on {}: code {code}: {out:?}", slot.node));
            }
            self.del(&pod);
            let _ = pod.delete();
            std::thread::sleep(Duration::from_millis(150 * u64::from(attempt.min(6) + 1)));
        }
        self.problem(format!(
            "ADD of a {tenant} pod on {} never succeeded",
            slot.node
        ));
        None
    }

    /// DEL must always exit 0 with nothing on stdout (queued if the agent is down).
    pub fn del(&self, pod: &Pod) {
        for _ in 0..DEL_ATTEMPTS {
            let out = self.lab.cni(pod, "DEL").expect("run the plugin");
            if out.success() && out.stdout.trim().is_empty() {
                return;
            }
            self.problem(format!("DEL {} on {}: {out:?}", pod.name, pod.node.name));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn hold(&self, name: &str, ifaces: &[(String, Ipv4Addr, u8)]) {
        let mut held = self.held.lock().unwrap();
        for (_, ip, _) in ifaces {
            if let Some(other) = held.insert(*ip, name.to_owned()) {
                drop(held);
                self.problem(format!("{ip} handed to {name} while {other} holds it"));
                return;
            }
        }
    }

    /// SIGKILL a random node's agent `kills` times at random moments, restarting it after a
    /// short random pause.
    pub fn killer(&self, seed: u64, kills: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
        for _ in 0..kills {
            std::thread::sleep(Duration::from_millis(rng.random_range(300..1800)));
            if self.stopped() {
                return;
            }
            let node = NODES[rng.random_range(0..2)];
            self.lab.kill_agent(node).expect("kill the agent");
            self.tally.kills.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(rng.random_range(100..900)));
            self.start_agent(node);
        }
    }

    /// Start `node`'s agent, again and again if start-up fails (as a DaemonSet would).
    pub fn start_agent(&self, node: &str) {
        for _ in 0..10 {
            match self.lab.start_agent(node) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("agent {node} did not start: {e}");
                    // It may still run (not ready in time): never two agents on a node.
                    self.lab.kill_agent(node).expect("kill the agent");
                    self.tally.start_failures.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        self.problem(format!("agent {node} never started again"));
    }
}

/// (pod ifname, address, prefix) of every address in an ADD result.
fn interfaces(result: &Value) -> Vec<(String, Ipv4Addr, u8)> {
    let names = result["interfaces"].as_array().expect("interfaces");
    let ips = result["ips"].as_array().expect("ips");
    ips.iter()
        .map(|ip| {
            let idx = ip["interface"].as_u64().expect("interface index") as usize;
            let (addr, len) = ip["address"]
                .as_str()
                .and_then(|a| a.split_once('/'))
                .expect("address/len");
            let name = names[idx]["name"].as_str().expect("name").to_owned();
            (name, addr.parse().unwrap(), len.parse().unwrap())
        })
        .collect()
}
