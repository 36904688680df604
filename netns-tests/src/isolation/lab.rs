//! The isolation matrix of a running [`Lab`]: its platform and internet hosts as parties, and
//! the expected outcomes from the lab's config directory as it is on disk now.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::config::LabPolicy;
use super::expected::{self, ControlNet};
use super::matrix::{Isolation, Outcomes, Party, PodParty};
use super::IsolationError;
use crate::lab::vpc::{INTERNET_HOST, PLATFORM_CIDR, PLATFORM_HOST};
use crate::lab::Lab;

/// The nodes themselves (their primary address, as the kubelet's probes come from it).
pub fn nodes(lab: &Lab) -> Vec<Party> {
    lab.nodes()
        .iter()
        .map(|n| Party::Host {
            name: format!("node-{}", n.name),
            netns: n.netns.clone(),
            ip: n.ip,
        })
        .collect()
}

/// The platform host and the internet stand-in.
pub fn hosts(lab: &Lab) -> [Party; 2] {
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("lab constant");
    [
        Party::Host {
            name: "platform".into(),
            netns: lab.plat_netns(),
            ip: ip(PLATFORM_HOST),
        },
        Party::Host {
            name: "internet".into(),
            netns: lab.inet_netns(),
            ip: ip(INTERNET_HOST),
        },
    ]
}

/// The lab's policy, read from its config directory now.
pub fn policy(lab: &Lab) -> Result<LabPolicy, IsolationError> {
    let platform: Ipv4Net = PLATFORM_CIDR.parse().expect("lab constant");
    LabPolicy::load(&lab.names().config_dir(), lab.topology(), &[platform])
}

/// What the security groups on disk imply for every cell of `iso`.
pub fn expected(lab: &Lab, iso: &Isolation) -> Result<Outcomes, IsolationError> {
    let platform: Ipv4Net = PLATFORM_CIDR.parse().expect("lab constant");
    let control = ControlNet {
        vswitch: lab
            .topology()
            .vswitch("vsw-ctl")
            .map(|v| v.cidr)
            .unwrap_or_default(),
        platform: vec![platform],
        node_ips: lab.nodes().iter().map(|n| (n.name.clone(), n.ip)).collect(),
    };
    expected::expected(iso, &policy(lab)?, &control)
}

/// The matrix of `pods`, the nodes, the platform and the internet stand-in.
pub fn isolation(lab: &Lab, pods: impl IntoIterator<Item = PodParty>) -> Isolation {
    let mut parties: Vec<Party> = pods.into_iter().map(Party::Pod).collect();
    parties.extend(nodes(lab));
    parties.extend(hosts(lab));
    Isolation::new(parties)
}

/// Every cell of a matrix measured with real packets beside what the YAML implies.
pub struct Comparison {
    pub measured: Outcomes,
    pub expected: Outcomes,
    /// One line per cell where they differ.
    pub differences: Vec<String>,
}

impl Comparison {
    /// Both matrices, rendered under `measured_title` and the expected one's title.
    pub fn render(&self, iso: &Isolation, measured_title: &str) -> String {
        format!(
            "{}{}",
            iso.render(measured_title, &self.measured),
            iso.render(
                "isolation the security groups imply (reference evaluator, same YAML):",
                &self.expected
            )
        )
    }
}

/// Measure every cell of `iso` (echo servers must be running) and compare with [`expected`].
pub fn compare(lab: &Lab, iso: &Isolation) -> Result<Comparison, IsolationError> {
    let expected = expected(lab, iso)?;
    let measured = iso.measure(&expected)?;
    let differences = iso.diff(&measured, &expected);
    Ok(Comparison {
        measured,
        expected,
        differences,
    })
}
