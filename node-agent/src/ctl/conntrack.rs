//! `tandemctl conntrack`: the datapath's tracked flows and its fill level.

use tandem_common::api::{ConntrackReply, PATH_CONNTRACK};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl, pod: Option<&str>) -> Result<(), CtlError> {
    let path = match pod {
        Some(p) => format!("{PATH_CONNTRACK}?pod={}", encode(p)),
        None => PATH_CONNTRACK.to_string(),
    };
    let r: ConntrackReply = ctl.get(&path).await?;
    ctl.show(&r, render);
    Ok(())
}

/// Percent-encode a query value (pod names are DNS labels; `/` separates the namespace).
pub(crate) fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn render(r: &ConntrackReply) -> String {
    let rows: Vec<Vec<String>> = r
        .flows
        .iter()
        .map(|f| {
            let port = |p: u16| {
                if f.proto == "icmp" {
                    format!("id {p}")
                } else {
                    p.to_string()
                }
            };
            vec![
                format!("{} ({})", f.pod, f.interface),
                f.proto.clone(),
                format!("{}:{}", f.local_ip, port(f.local_port)),
                format!("{}:{}", f.remote_ip, port(f.remote_port)),
                f.origin.clone(),
                f.state.clone(),
                format!("{}s/{}s", f.idle_secs, f.timeout_secs),
                format!("#{} {}", f.rule_id, f.rule),
                f.generation.to_string(),
            ]
        })
        .collect();
    let pct = if r.capacity == 0 {
        0.0
    } else {
        f64::from(r.entries) * 100.0 / f64::from(r.capacity)
    };
    format!(
        "conntrack: {} of {} entries ({pct:.2}%), rule set generation {}\n\n{}",
        r.entries,
        r.capacity,
        r.generation,
        table::render(
            &[
                "POD (IF)",
                "PROTO",
                "LOCAL",
                "REMOTE",
                "OPENED BY",
                "STATE",
                "IDLE/TIMEOUT",
                "RULE",
                "GEN"
            ],
            &rows
        )
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(super::encode("acme/p-1"), "acme%2Fp-1");
    }
}
