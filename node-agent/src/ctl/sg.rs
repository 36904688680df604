//! `tandemctl sg`: security groups, their members here and elsewhere, the local pods that
//! enforce them and the compiled policies.

use tandem_common::api::{SgReply, PATH_SG};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let r: SgReply = ctl.get(PATH_SG).await?;
    ctl.show(&r, render);
    if !r.enforced {
        return Err(CtlError::Unhealthy(
            "security groups are not enforced on this node (bpfRoot is not set)".into(),
        ));
    }
    Ok(())
}

fn render(r: &SgReply) -> String {
    let rows: Vec<Vec<String>> = r
        .groups
        .iter()
        .map(|g| {
            let local = g.members.iter().filter(|m| m.local).count();
            vec![
                g.name.clone(),
                g.model.clone(),
                g.group_type.clone(),
                g.ingress_rules.to_string(),
                g.egress_rules.map_or("default".into(), |n| n.to_string()),
                format!("{local}/{}", g.members.len()),
                g.used_by.len().to_string(),
            ]
        })
        .collect();
    let mut s = format!("rule set generation {}\n\n", r.generation);
    s += &table::render(
        &[
            "GROUP",
            "MODEL",
            "TYPE",
            "INGRESS",
            "EGRESS",
            "MEMBERS",
            "LOCAL PODS",
        ],
        &rows,
    );
    for g in &r.groups {
        s += &format!("\n{}\n", g.name);
        for rule in &g.rules {
            s += &format!("  rule   {rule}\n");
        }
        for m in &g.members {
            let at = if m.local {
                "here".into()
            } else {
                m.node.clone()
            };
            s += &format!("  member {} {} ({at})\n", m.ip, m.pod);
        }
        for u in &g.used_by {
            s += &format!(
                "  used by {} on {} (policy {:#010x})\n",
                u.pod, u.interface, u.policy_id
            );
        }
    }
    let rows: Vec<Vec<String>> = r
        .policies
        .iter()
        .map(|p| {
            vec![
                format!("{:#010x}", p.policy_id),
                p.groups.join(","),
                p.environment.clone(),
                p.trie_entries.to_string(),
            ]
        })
        .collect();
    s += "\n";
    s += &table::render(&["POLICY", "GROUPS", "ENVIRONMENT", "TRIE ENTRIES"], &rows);
    s
}
