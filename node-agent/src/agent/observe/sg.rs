//! `GET /v1/sg`: every security group, its rules as compiled, its members (here and on the
//! other nodes), and which local interfaces enforce it under which policy id.

use std::collections::BTreeMap;

use tandem_common::api::{Role, SgInfo, SgMember, SgPolicy, SgReply, SgUser};

use super::super::Agent;
use super::describe_rule;
use super::endpoints::local_ifaces;
use crate::policy::model::{Action, GroupType, RuleModel};

impl Agent {
    pub async fn security_groups(&self) -> SgReply {
        let (ifaces, groups, remote) = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            let remote: Vec<(String, SgMember)> = model
                .endpoints
                .iter()
                .filter(|e| e.node != self.cfg.node)
                .flat_map(|e| {
                    e.security_groups.iter().map(move |g| {
                        let m = SgMember {
                            ip: e.ip,
                            pod: format!("{}/{}", e.namespace, e.pod),
                            node: e.node.clone(),
                            local: false,
                        };
                        (g.clone(), m)
                    })
                })
                .collect();
            (
                local_ifaces(self, &state, &model),
                model.security_groups.clone(),
                remote,
            )
        };
        let mut members: BTreeMap<String, Vec<SgMember>> = BTreeMap::new();
        for (g, m) in remote {
            members.entry(g).or_default().push(m);
        }
        let mut users: BTreeMap<String, Vec<SgUser>> = BTreeMap::new();
        for i in ifaces.iter().filter(|i| i.role == Role::Tenant) {
            for g in i.policy.iter().flat_map(|p| p.groups.iter()) {
                members.entry(g.clone()).or_default().push(SgMember {
                    ip: i.ip,
                    pod: i.pod.clone(),
                    node: self.cfg.node.clone(),
                    local: true,
                });
                users.entry(g.clone()).or_default().push(SgUser {
                    pod: i.pod.clone(),
                    interface: i.host_ifname.clone(),
                    policy_id: i.policy_id(),
                });
            }
        }
        let Some(enf) = self.enforcement() else {
            return SgReply {
                enforced: false,
                ..Default::default()
            };
        };
        let dp = enf.dp.lock().expect("datapath lock");
        let compiled = dp.current();
        let rules_of = |name: &str| -> Vec<String> {
            compiled
                .into_iter()
                .flat_map(|c| {
                    c.rules.by_group.get(name).into_iter().flatten().map(|&i| {
                        format!(
                            "#{} {}",
                            c.rules.rules[i].id,
                            describe_rule(&c.rules.rules[i])
                        )
                    })
                })
                .collect()
        };
        let groups = groups
            .iter()
            .map(|(name, g)| {
                let mut m = members.remove(name).unwrap_or_default();
                m.sort_by(|a, b| (!a.local, &a.pod).cmp(&(!b.local, &b.pod)));
                SgInfo {
                    name: name.clone(),
                    model: match g.spec.model {
                        RuleModel::AllowUnion => "allowUnion",
                        RuleModel::Priority => "priority",
                    }
                    .into(),
                    group_type: match g.spec.group_type {
                        GroupType::Basic => "basic",
                        GroupType::Enterprise => "enterprise",
                    }
                    .into(),
                    inner_access_policy: match g.spec.inner_access_policy {
                        Action::Accept => "accept",
                        Action::Drop => "drop",
                    }
                    .into(),
                    ingress_rules: g.spec.ingress.len() as u32,
                    egress_rules: g.spec.egress.as_ref().map(|e| e.len() as u32),
                    rules: rules_of(name),
                    members: m,
                    used_by: users.remove(name).unwrap_or_default(),
                }
            })
            .collect();
        let policies = compiled
            .into_iter()
            .flat_map(|c| {
                c.specs.iter().map(|(id, s)| SgPolicy {
                    policy_id: *id,
                    groups: s.groups.clone(),
                    environment: s.environment.name.clone(),
                    trie_entries: c.policies.get(id).map_or(0, |e| e.len() as u32),
                })
            })
            .collect();
        SgReply {
            enforced: true,
            generation: dp.generation().unwrap_or(0),
            groups,
            policies,
        }
    }
}
