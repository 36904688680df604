//! The isolation matrix: every source × destination × interface × service, measured with real
//! probes (all at once, each on its own thread) and rendered like the demo's connectivity
//! matrix, so the measured and the expected one can be read side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::probe::{join, FlowProbe, Service};
use super::servers::EchoServers;
use super::IsolationError;

/// A pod as the matrix sees it.
#[derive(Debug, Clone)]
pub struct PodParty {
    pub name: String,
    pub k8s_namespace: String,
    pub tenant: String,
    /// `n1`, `n2`.
    pub node: String,
    pub netns: String,
    pub control_ip: Ipv4Addr,
    pub tenant_ip: Ipv4Addr,
}

/// A source or destination: a pod, or a host outside the nodes (platform, internet).
#[derive(Debug, Clone)]
pub enum Party {
    Pod(PodParty),
    Host {
        name: String,
        netns: String,
        ip: Ipv4Addr,
    },
}

impl Party {
    pub fn name(&self) -> &str {
        match self {
            Party::Pod(p) => &p.name,
            Party::Host { name, .. } => name,
        }
    }
    pub fn netns(&self) -> &str {
        match self {
            Party::Pod(p) => &p.netns,
            Party::Host { netns, .. } => netns,
        }
    }
    /// The party's address on `via` (a host has one address).
    pub fn addr(&self, via: Via) -> Ipv4Addr {
        match (self, via) {
            (Party::Pod(p), Via::Tenant) => p.tenant_ip,
            (Party::Pod(p), Via::Control) => p.control_ip,
            (Party::Host { ip, .. }, _) => *ip,
        }
    }
    pub fn pod(&self) -> Option<&PodParty> {
        match self {
            Party::Pod(p) => Some(p),
            Party::Host { .. } => None,
        }
    }
    /// Every address it listens on.
    fn addrs(&self) -> Vec<Ipv4Addr> {
        match self {
            Party::Pod(p) => vec![p.control_ip, p.tenant_ip],
            Party::Host { ip, .. } => vec![*ip],
        }
    }
}

/// The pod interface a probe uses: a pod source sends from its address on it, a pod
/// destination is probed at its address on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// eth1.
    Tenant,
    /// eth0.
    Control,
}

impl Via {
    pub const ALL: [Via; 2] = [Via::Tenant, Via::Control];
    pub fn ifname(self) -> &'static str {
        match self {
            Via::Tenant => "eth1",
            Via::Control => "eth0",
        }
    }
}

/// One probe of the matrix; `from`/`to` index [`Isolation::parties`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub from: usize,
    pub to: usize,
    pub via: Via,
    pub service: Service,
}

/// Answered (true) or not, per cell.
pub type Outcomes = BTreeMap<Cell, bool>;

/// The parties and every cell between them: each ordered pair with at least one pod, both
/// interfaces, every service.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub parties: Vec<Party>,
    pub cells: Vec<Cell>,
}

/// Denied probes wait this long; allowed ones answer in a millisecond or two.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// At most this many probe threads at once.
const PARALLEL: usize = 96;

impl Isolation {
    pub fn new(parties: Vec<Party>) -> Isolation {
        let mut cells = Vec::new();
        for (from, a) in parties.iter().enumerate() {
            for (to, b) in parties.iter().enumerate() {
                if from == to || (a.pod().is_none() && b.pod().is_none()) {
                    continue;
                }
                for via in Via::ALL {
                    for service in Service::ALL {
                        cells.push(Cell {
                            from,
                            to,
                            via,
                            service,
                        });
                    }
                }
            }
        }
        Isolation { parties, cells }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.parties.iter().position(|p| p.name() == name)
    }

    /// Echo servers in every party; keep them while probing.
    pub fn serve(&self) -> Result<Vec<EchoServers>, IsolationError> {
        self.parties
            .iter()
            .map(|p| EchoServers::start(p.netns(), &p.addrs()))
            .collect()
    }

    /// The probe of a cell.
    pub fn probe(&self, c: &Cell, timeout: Duration) -> FlowProbe {
        let (a, b) = (&self.parties[c.from], &self.parties[c.to]);
        FlowProbe {
            from: a.netns().to_owned(),
            src: a.pod().map(|_| a.addr(c.via)),
            dst: b.addr(c.via),
            service: c.service,
            timeout,
        }
    }

    /// Probe `cells` (servers must be running), all at once.
    pub fn measure_cells(
        &self,
        cells: &[Cell],
        timeout: Duration,
    ) -> Result<Outcomes, IsolationError> {
        let mut out = Outcomes::new();
        for chunk in cells.chunks(PARALLEL) {
            let handles = chunk
                .iter()
                .map(|c| self.probe(c, timeout).spawn())
                .collect::<Result<Vec<_>, _>>()?;
            for (c, h) in chunk.iter().zip(handles) {
                out.insert(*c, join(h)?);
            }
        }
        Ok(out)
    }

    /// The whole matrix. A cell that `expected` says is answered but was not is probed once
    /// more, alone and with a longer timeout (the first packet towards a fresh address may
    /// wait for ARP); the opposite is never retried.
    pub fn measure(&self, expected: &Outcomes) -> Result<Outcomes, IsolationError> {
        let mut out = self.measure_cells(&self.cells, PROBE_TIMEOUT)?;
        let retry: Vec<Cell> = out
            .iter()
            .filter(|(c, ok)| !**ok && expected.get(c) == Some(&true))
            .map(|(c, _)| *c)
            .collect();
        for c in retry {
            out.insert(c, self.probe(&c, Duration::from_secs(1)).run()?);
        }
        Ok(out)
    }

    /// One line per cell where `measured` and `expected` differ.
    pub fn diff(&self, measured: &Outcomes, expected: &Outcomes) -> Vec<String> {
        let word = |b: Option<&bool>| match b {
            Some(true) => "answered",
            Some(false) => "no answer",
            None => "not probed",
        };
        self.cells
            .iter()
            .filter(|c| measured.get(c) != expected.get(c))
            .map(|c| {
                format!(
                    "{} -> {} via {} {}: measured {}, expected {}",
                    self.parties[c.from].name(),
                    self.parties[c.to].name(),
                    c.via.ifname(),
                    c.service.label(),
                    word(measured.get(c)),
                    word(expected.get(c))
                )
            })
            .collect()
    }

    /// Rows are sources, columns destinations; each cell shows the answered services over eth1,
    /// then over eth0 (`h` tcp/80, `s` tcp/443, `d` udp/53, `i` icmp echo, `.` no answer).
    pub fn render(&self, title: &str, o: &Outcomes) -> String {
        let names: Vec<&str> = self.parties.iter().map(Party::name).collect();
        let w = names.iter().map(|n| n.len()).max().unwrap_or(8).max(9) + 2;
        let mut s = format!("\n{title}\n  {:<w$}", "from \\ to");
        for n in &names {
            let _ = write!(s, "{n:<w$}");
        }
        s.push('\n');
        for (from, name) in names.iter().enumerate() {
            let _ = write!(s, "  {name:<w$}");
            for to in 0..self.parties.len() {
                let _ = write!(s, "{:<w$}", self.cell_text(o, from, to));
            }
            s.push('\n');
        }
        s.push_str(
            "  cell: eth1 services, eth0 services; h tcp/80, s tcp/443, d udp/53, i icmp echo, \
             . no answer; for platform and internet, the pod's interface\n",
        );
        s
    }

    fn cell_text(&self, o: &Outcomes, from: usize, to: usize) -> String {
        let part = |via| -> Option<String> {
            Service::ALL
                .iter()
                .map(|&service| {
                    let c = Cell {
                        from,
                        to,
                        via,
                        service,
                    };
                    o.get(&c).map(|&ok| if ok { service.letter() } else { '.' })
                })
                .collect()
        };
        match (part(Via::Tenant), part(Via::Control)) {
            (Some(t), Some(c)) => format!("{t} {c}"),
            _ => "-".to_owned(),
        }
    }
}
