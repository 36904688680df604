//! Rules and datapath reasons in words, for traces, flows, events and metric labels.

use crate::policy::abi;
use crate::policy::model::{Action, Dir, NormRule, Peer, Protocol, RuleOrigin, IMPLICIT_PRIORITY};

/// `sg-web ingress[0]: accept tcp 80 from group sg-lb (priority 1)`.
pub(crate) fn describe_rule(r: &NormRule) -> String {
    let what = body(r);
    match &r.origin {
        RuleOrigin::Group { group, index } => {
            let dir = if r.dir == Dir::Ingress {
                "ingress"
            } else {
                "egress"
            };
            format!("{group} {dir}[{index}]: {what} (priority {})", r.priority)
        }
        RuleOrigin::Implicit { group, what: why } => {
            let prio = if r.priority == IMPLICIT_PRIORITY {
                "below every explicit rule".to_string()
            } else {
                format!("priority {}", r.priority)
            };
            format!("{group} implicit {why}: {what} ({prio})")
        }
        RuleOrigin::Environment { name, what: why } => {
            format!("environment {name} allows {why}: {what}")
        }
    }
}

fn body(r: &NormRule) -> String {
    let action = match r.action {
        Action::Accept => "accept",
        Action::Drop => "drop",
    };
    let proto = match r.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "all",
    };
    let full = r.lo == 0 && r.hi == u16::MAX;
    let ports = match r.protocol {
        Protocol::All => String::new(),
        _ if full => String::new(),
        Protocol::Icmp if r.lo == r.hi => format!(" type {} code {}", r.lo >> 8, r.lo & 0xff),
        Protocol::Icmp if r.lo & 0xff == 0 && r.hi == r.lo | 0xff => {
            format!(" type {}", r.lo >> 8)
        }
        Protocol::Icmp => format!(" types {}-{}", r.lo >> 8, r.hi >> 8),
        _ if r.lo == r.hi => format!(" {}", r.lo),
        _ => format!(" {}-{}", r.lo, r.hi),
    };
    let side = if r.dir == Dir::Ingress { "from" } else { "to" };
    let peer = match &r.peer {
        p if p.is_any() => "anywhere".to_string(),
        Peer::Cidr(c) => c.to_string(),
        Peer::Group(g) => format!("group {g}"),
    };
    format!("{action} {proto}{ports} {side} {peer}")
}

/// The name of a datapath `stats` index / event reason.
pub(crate) fn reason_name(index: u32) -> &'static str {
    match index {
        abi::STAT_PASS => "pass",
        abi::STAT_DROP_NO_ENDPOINT => "no-endpoint",
        abi::STAT_DROP_SPOOF_MAC => "spoof-mac",
        abi::STAT_DROP_SPOOF_IP => "spoof-ip",
        abi::STAT_DROP_UNSUPPORTED => "unsupported",
        abi::STAT_DROP_MALFORMED => "malformed",
        abi::STAT_DROP_FRAGMENT => "fragment",
        abi::STAT_DROP_POLICY => "policy",
        abi::STAT_DROP_ENV => "environment",
        abi::STAT_DROP_CONTROL => "control",
        abi::STAT_DROP_NO_POLICY => "no-policy",
        abi::STAT_AUDIT => "audit",
        abi::STAT_EVENTS_LOST => "events-lost",
        abi::STAT_NEW_FLOW => "new-flow",
        _ => "unknown",
    }
}

/// The drop reasons (`stats` indexes), for metrics and `DatapathStats`.
pub(crate) const DROP_REASONS: [u32; 10] = [
    abi::STAT_DROP_NO_ENDPOINT,
    abi::STAT_DROP_SPOOF_MAC,
    abi::STAT_DROP_SPOOF_IP,
    abi::STAT_DROP_UNSUPPORTED,
    abi::STAT_DROP_MALFORMED,
    abi::STAT_DROP_FRAGMENT,
    abi::STAT_DROP_POLICY,
    abi::STAT_DROP_ENV,
    abi::STAT_DROP_CONTROL,
    abi::STAT_DROP_NO_POLICY,
];

/// Conntrack state in words.
pub(crate) fn ct_state_name(proto: u8, state: u8) -> &'static str {
    match (proto, state) {
        (6, abi::CT_SYN_SENT) => "syn-sent",
        (6, abi::CT_ESTABLISHED) => "established",
        (6, abi::CT_CLOSING) => "closing",
        (6, abi::CT_CLOSED) => "closed",
        (6, _) => "unknown",
        _ => "established",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::Ipv4Net;

    fn rule(protocol: Protocol, lo: u16, hi: u16, peer: Peer, origin: RuleOrigin) -> NormRule {
        NormRule {
            id: 1,
            dir: Dir::Ingress,
            priority: 5,
            action: Action::Drop,
            protocol,
            lo,
            hi,
            peer,
            origin,
        }
    }

    #[test]
    fn group_rules_read_like_the_yaml() {
        let r = rule(
            Protocol::Udp,
            53,
            53,
            Peer::Group("sg-app".into()),
            RuleOrigin::Group {
                group: "sg-app".into(),
                index: 0,
            },
        );
        assert_eq!(
            describe_rule(&r),
            "sg-app ingress[0]: drop udp 53 from group sg-app (priority 5)"
        );
        let mut r = rule(
            Protocol::Icmp,
            8 << 8,
            8 << 8 | 0xff,
            Peer::Cidr("10.0.0.0/8".parse().unwrap()),
            RuleOrigin::Group {
                group: "g".into(),
                index: 2,
            },
        );
        r.dir = Dir::Egress;
        r.action = Action::Accept;
        assert_eq!(
            describe_rule(&r),
            "g egress[2]: accept icmp type 8 to 10.0.0.0/8 (priority 5)"
        );
    }

    #[test]
    fn implicit_and_environment_rules_say_where_they_come_from() {
        let mut r = rule(
            Protocol::All,
            0,
            u16::MAX,
            Peer::Cidr(Ipv4Net::default()),
            RuleOrigin::Implicit {
                group: "g".into(),
                what: "default allow-all egress",
            },
        );
        r.dir = Dir::Egress;
        r.action = Action::Accept;
        r.priority = IMPLICIT_PRIORITY;
        assert_eq!(
            describe_rule(&r),
            "g implicit default allow-all egress: accept all to anywhere (below every explicit rule)"
        );
        r.dir = Dir::Env;
        r.peer = Peer::Cidr("10.1.0.0/16".parse().unwrap());
        r.origin = RuleOrigin::Environment {
            name: "acme".into(),
            what: "internal 10.1.0.0/16".into(),
        };
        assert_eq!(
            describe_rule(&r),
            "environment acme allows internal 10.1.0.0/16: accept all to 10.1.0.0/16"
        );
    }
}
