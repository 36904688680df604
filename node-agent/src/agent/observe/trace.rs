//! `POST /v1/trace`: would a new flow from A to B pass, and which rule decides? Answered from
//! the compiled rule set the datapath committed (`Datapath::current`), walked the way the
//! datapath walks it (`CompiledPolicy::evaluate`): the sender's egress on its host veth, then
//! the receiver's ingress on its host veth, for whichever of the two is a pod of this node.

use std::net::Ipv4Addr;

use tandem_common::api::{Role, TraceEnd, TraceReply, TraceRequest, TraceStep};

use super::super::Agent;
use super::describe_rule;
use super::endpoints::{control_peers, local_ifaces, pod_matches, ControlPeers, LocalIface};
use crate::error::{AgentError, AgentResult};
use crate::model::{EndpointSpec, Environment};
use crate::policy::compile::CompiledPolicy;
use crate::policy::model::Dir;
use crate::policy::ControlClass;

/// A would-be first packet of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Destination port, or ICMP type << 8 | code.
    pub port: u16,
}

/// The verdicts of every local enforcement point the flow crosses: the sender's egress
/// (`from`), then the receiver's ingress (`to`).
pub(crate) fn steps(
    compiled: Option<&CompiledPolicy>,
    control: &ControlPeers,
    from: Option<&LocalIface>,
    to: Option<&LocalIface>,
    flow: &Flow,
) -> Vec<TraceStep> {
    let mut out = Vec::new();
    if let Some(i) = from {
        let mut s = step(compiled, control, i, Dir::Egress, flow.dst, flow);
        s.notes.push(format!(
            "anti-spoofing: {} may only send from {} and its own MAC",
            i.pod, i.ip
        ));
        out.push(s);
    }
    if let Some(i) = to {
        out.push(step(compiled, control, i, Dir::Ingress, flow.src, flow));
    }
    out
}

fn step(
    compiled: Option<&CompiledPolicy>,
    control: &ControlPeers,
    i: &LocalIface,
    dir: Dir,
    remote: Ipv4Addr,
    flow: &Flow,
) -> TraceStep {
    let mut s = TraceStep {
        pod: i.pod.clone(),
        interface: i.host_ifname.clone(),
        role: i.role,
        direction: if dir == Dir::Egress {
            "egress"
        } else {
            "ingress"
        }
        .into(),
        allowed: false,
        decided_by: String::new(),
        rule_id: 0,
        rule: String::new(),
        policy_id: 0,
        groups: Vec::new(),
        environment: String::new(),
        notes: Vec::new(),
    };
    match i.role {
        Role::Control => control_verdict(&mut s, control, remote),
        Role::Tenant => tenant_verdict(&mut s, compiled, i, dir, remote, flow),
    }
    s
}

fn control_verdict(s: &mut TraceStep, control: &ControlPeers, remote: Ipv4Addr) {
    s.decided_by = "control".into();
    match control.class_of(remote) {
        Some((net, ControlClass::Platform)) => {
            s.allowed = true;
            s.rule = format!("control network: {remote} is a platform peer ({net})");
        }
        Some((net, ControlClass::Pod)) => {
            s.rule = format!(
                "control network: {remote} is a pod on the control vSwitch ({net}); \
                 pods never reach each other on the control network"
            );
        }
        None => {
            s.rule = format!(
                "control network: only the platform CIDRs and the node may reach a control \
                 interface, not {remote}"
            );
        }
    }
}

fn tenant_verdict(
    s: &mut TraceStep,
    compiled: Option<&CompiledPolicy>,
    i: &LocalIface,
    dir: Dir,
    remote: Ipv4Addr,
    flow: &Flow,
) {
    let Some(spec) = &i.policy else {
        s.decided_by = "no-policy".into();
        s.rule = format!(
            "no tenant network {} is known: every packet is dropped",
            i.tenant
        );
        return;
    };
    s.policy_id = spec.id();
    s.groups = spec.groups.clone();
    s.environment = spec.environment.name.clone();
    let Some(c) = compiled.filter(|c| c.policies.contains_key(&s.policy_id)) else {
        s.decided_by = "no-policy".into();
        s.rule = format!(
            "policy {:#010x} is not committed yet: every packet is dropped (strict start)",
            s.policy_id
        );
        return;
    };
    let v = c.evaluate(s.policy_id, dir, remote, flow.proto, flow.port);
    s.allowed = v.allowed;
    s.rule_id = v.rule_id;
    let rule = c.rules.get(v.rule_id).map(describe_rule);
    let env = &spec.environment;
    let kind = match env.kind {
        Environment::Closed => "closed",
        Environment::Controlled => "controlled",
        Environment::Open => "open",
    };
    if v.by_environment {
        s.decided_by = "environment".into();
        s.rule = rule.unwrap_or_else(|| match env.kind {
            Environment::Controlled => format!(
                "environment {} (controlled): {remote} is neither internal nor on the egress \
                 allow-list",
                env.name
            ),
            _ => format!(
                "environment {} ({kind}) is closed to {remote}: only the tenant's vSwitches \
                 and the platform are reachable",
                env.name
            ),
        });
        return;
    }
    match rule {
        Some(r) => {
            s.decided_by = "group".into();
            s.rule = r;
        }
        None => {
            s.decided_by = "default-deny".into();
            s.rule = format!(
                "default deny: no rule of {} matches",
                spec.groups.join(", ")
            );
        }
    }
    if v.allowed && dir == Dir::Egress {
        let e = c.evaluate(s.policy_id, Dir::Env, remote, flow.proto, flow.port);
        if let Some(r) = c.rules.get(e.rule_id) {
            s.notes
                .push(format!("{} ({kind} environment)", describe_rule(r)));
        }
    }
}

/// The ip protocol and port slot of a request.
pub(crate) fn parse_flow(req: &TraceRequest) -> Result<(u8, u16), String> {
    match req.proto.to_ascii_lowercase().as_str() {
        "tcp" => Ok((6, req.port)),
        "udp" => Ok((17, req.port)),
        "icmp" => {
            let t = req.icmp_type.unwrap_or(8);
            let c = req.icmp_code.unwrap_or(0);
            Ok((1, u16::from(t) << 8 | u16::from(c)))
        }
        p => Err(format!("protocol {p:?} is not tcp, udp or icmp")),
    }
}

/// An address or pod name → the address, what is known of it, and its local interface.
pub(crate) fn resolve<'a>(
    what: &str,
    ifaces: &'a [LocalIface],
    remote: &[EndpointSpec],
) -> Result<(Ipv4Addr, TraceEnd, Option<&'a LocalIface>), String> {
    let local = |i: &'a LocalIface| {
        let end = TraceEnd {
            ip: Some(i.ip),
            pod: Some(i.pod.clone()),
            node: None,
            local: true,
            role: Some(i.role),
        };
        (i.ip, end, Some(i))
    };
    let elsewhere = |e: &EndpointSpec| TraceEnd {
        ip: Some(e.ip),
        pod: Some(format!("{}/{}", e.namespace, e.pod)),
        node: Some(e.node.clone()),
        local: false,
        role: Some(Role::Tenant),
    };
    if let Ok(ip) = what.parse::<Ipv4Addr>() {
        if let Some(i) = ifaces.iter().find(|i| i.ip == ip) {
            return Ok(local(i));
        }
        let end = remote.iter().find(|e| e.ip == ip).map_or(
            TraceEnd {
                ip: Some(ip),
                ..Default::default()
            },
            elsewhere,
        );
        return Ok((ip, end, None));
    }
    let mine: Vec<&LocalIface> = ifaces
        .iter()
        .filter(|i| pod_matches(&i.pod, what))
        .collect();
    let pick = mine
        .iter()
        .find(|i| i.role == Role::Tenant)
        .or_else(|| mine.first());
    if let Some(i) = pick {
        return Ok(local(i));
    }
    remote
        .iter()
        .find(|e| pod_matches(&format!("{}/{}", e.namespace, e.pod), what))
        .map(|e| (e.ip, elsewhere(e), None))
        .ok_or_else(|| format!("{what:?} is neither an address nor a known pod"))
}

impl Agent {
    pub async fn trace(&self, req: TraceRequest) -> AgentResult<TraceReply> {
        let (proto, port) = parse_flow(&req).map_err(AgentError::BadRequest)?;
        let Some(enf) = self.enforcement() else {
            return Err(AgentError::Policy(
                "bpfRoot is not set: security groups are not enforced on this node".into(),
            ));
        };
        let (ifaces, control, remote) = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            let remote: Vec<EndpointSpec> = model
                .endpoints
                .iter()
                .filter(|e| e.node != self.cfg.node)
                .cloned()
                .collect();
            (
                local_ifaces(self, &state, &model),
                control_peers(self, &state),
                remote,
            )
        };
        let (src, from, from_if) =
            resolve(&req.from, &ifaces, &remote).map_err(AgentError::BadRequest)?;
        let (dst, to, to_if) =
            resolve(&req.to, &ifaces, &remote).map_err(AgentError::BadRequest)?;
        let flow = Flow {
            src,
            dst,
            proto,
            port,
        };
        let dp = enf.dp.lock().expect("datapath lock");
        let steps = steps(dp.current(), &control, from_if, to_if, &flow);
        Ok(TraceReply {
            not_local: steps.is_empty(),
            allowed: !steps.is_empty() && steps.iter().all(|s| s.allowed),
            from,
            to,
            proto: super::proto_name(proto),
            port,
            generation: dp.generation().unwrap_or(0),
            steps,
        })
    }
}
