//! `tandemctl trace`: would a new flow from A to B pass, and which rule decides? Exits 0 when
//! allowed, 1 when denied or when neither side is a pod of this node.

use tandem_common::api::{TraceEnd, TraceReply, TraceRequest, PATH_TRACE};

use super::{Ctl, CtlError};

pub async fn run(ctl: &Ctl, req: &TraceRequest) -> Result<(), CtlError> {
    let r: TraceReply = ctl.post(PATH_TRACE, req).await?;
    ctl.show(&r, render);
    if r.not_local {
        return Err(CtlError::Unhealthy(
            "not on this node: neither side is a pod of this node; trace on the node of either"
                .into(),
        ));
    }
    if !r.allowed {
        return Err(CtlError::Unhealthy("denied".into()));
    }
    Ok(())
}

fn end(e: &TraceEnd) -> String {
    let ip = e.ip.map(|i| i.to_string()).unwrap_or_default();
    match (&e.pod, &e.node, e.local) {
        (Some(p), _, true) => format!("{p} ({ip}, {} interface, this node)", role(e)),
        (Some(p), Some(n), false) => format!("{p} ({ip}, on node {n})"),
        _ => ip,
    }
}

fn role(e: &TraceEnd) -> &'static str {
    match e.role {
        Some(tandem_common::api::Role::Control) => "control",
        _ => "tenant",
    }
}

fn port(r: &TraceReply) -> String {
    if r.proto == "icmp" {
        format!("icmp type {} code {}", r.port >> 8, r.port & 0xff)
    } else {
        format!("{}/{}", r.proto, r.port)
    }
}

pub fn render(r: &TraceReply) -> String {
    let mut s = format!("flow:  {} -> {}  {}\n", end(&r.from), end(&r.to), port(r));
    s += &format!("rules: generation {}\n", r.generation);
    for st in &r.steps {
        s += &format!(
            "\n{} {} on {} ({}): {}\n  decided by {}: {}\n",
            st.pod,
            st.direction,
            st.interface,
            if st.groups.is_empty() {
                "control network".to_string()
            } else {
                format!(
                    "groups {}, environment {}, policy {:#010x}",
                    st.groups.join(","),
                    st.environment,
                    st.policy_id
                )
            },
            if st.allowed { "ALLOW" } else { "DENY" },
            st.decided_by,
            st.rule,
        );
        for n in &st.notes {
            s += &format!("  {n}\n");
        }
    }
    s += "\n";
    s += if r.not_local {
        "verdict: not on this node (neither address is a pod interface here)\n"
    } else if r.allowed {
        "verdict: ALLOWED\n"
    } else {
        "verdict: DENIED\n"
    };
    s
}
