//! ADD: allocate a control IP and a tenant IP, make the allocation durable, wire the pod.

use std::time::Duration;

use ipnet::Ipv4Net;
use tandem_common::api::{AddReply, AddRequest, PodInterface, PodRoute, Role, POD_GATEWAY};
use tandem_hostnet::NetNs;

use super::{now_secs, Agent};
use crate::error::{AgentError, AgentResult};
use crate::model::InterfaceMode;
use crate::state::{key_string, Allocation, State, CONTROL_PLANE};
use crate::wiring::{self, host_names, POD_TABLE_BASE};

const DEFAULT_MTU: u32 = 1500;

impl Agent {
    pub async fn add(&self, req: AddRequest) -> AgentResult<AddReply> {
        validate(&req)?;
        if !self.is_ready() {
            return Err(AgentError::NotReady(
                "start-up reconciliation is running".into(),
            ));
        }
        // Validate everything before changing anything.
        let pod_ns = NetNs::open(&req.netns).map_err(|source| AgentError::Netns {
            path: req.netns.clone(),
            source,
        })?;
        let tenant = {
            let model = self.model.read().expect("model lock");
            model
                .tenant_for(req.tenant.as_deref(), &req.pod.namespace)
                .cloned()
                .ok_or_else(|| AgentError::UnknownTenant {
                    namespace: req.pod.namespace.clone(),
                    explicit: req.tenant.clone(),
                })?
        };
        if tenant.spec.interface_mode == InterfaceMode::Exclusive {
            return Err(AgentError::BadRequest(format!(
                "tenant {} asks for exclusive interfaces, which this agent does not support yet",
                tenant.name
            )));
        }
        if let Some(existing) = self.state.lock().await.allocation(&req.key) {
            // A retried ADD for the same attachment answers the same result.
            if existing.netns == req.netns {
                return Ok(AddReply {
                    interfaces: existing.interfaces.clone(),
                });
            }
            return Err(AgentError::BadRequest(format!(
                "container {} interface {} is already attached in {}",
                req.key.container_id,
                req.key.ifname,
                existing.netns.display()
            )));
        }
        let alloc = self.allocate(&req, &tenant.name).await?;
        if let Err(e) =
            wiring::setup(&self.host, &pod_ns, &alloc.interfaces, alloc.link_group).await
        {
            // Undo what was built, then return the addresses.
            let left = wiring::teardown(
                &self.host,
                &req.key.container_id,
                &alloc.interfaces,
                alloc.link_group,
            )
            .await;
            for l in left {
                tracing::warn!(error = %l, "rollback of a failed ADD left something behind");
            }
            let mut state = self.state.lock().await;
            state.allocations.remove(&key_string(&req.key));
            self.commit(&state)?;
            return Err(e);
        }
        tracing::info!(
            container = %req.key.container_id,
            pod = %format!("{}/{}", req.pod.namespace, req.pod.name),
            control = %alloc.interfaces[0].ip,
            tenant_ip = %alloc.interfaces[1].ip,
            "pod wired"
        );
        Ok(AddReply {
            interfaces: alloc.interfaces,
        })
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Take one control and one tenant IP and commit the allocation; wait (bounded) for the
    /// refill when a pool is empty.
    async fn allocate(&self, req: &AddRequest, tenant: &str) -> AgentResult<Allocation> {
        let wait = Duration::from_millis(self.cfg.pool.empty_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let refilled = self.refilled.notified();
            {
                let mut state = self.state.lock().await;
                if let Some(alloc) = self.try_allocate(&mut state, req, tenant) {
                    self.commit(&state)?;
                    self.refill_wanted.notify_one();
                    return Ok(alloc);
                }
            }
            let short = self.short_planes(tenant).await;
            self.mark_waiting(&short, 1);
            self.refill_wanted.notify_one();
            let timed_out = tokio::time::timeout_at(deadline, refilled).await.is_err();
            self.mark_waiting(&short, -1);
            if timed_out {
                return Err(AgentError::PoolExhausted {
                    plane: short.join(","),
                    waited_ms: wait.as_millis() as u64,
                });
            }
        }
    }

    async fn short_planes(&self, tenant: &str) -> Vec<String> {
        let state = self.state.lock().await;
        [CONTROL_PLANE, tenant]
            .iter()
            .filter(|p| state.free_ips(p).is_empty())
            .map(|p| p.to_string())
            .collect()
    }

    fn mark_waiting(&self, planes: &[String], delta: i32) {
        let mut w = self.waiting.lock().expect("waiting lock");
        for p in planes {
            let n = w.entry(p.clone()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                w.remove(p);
            }
        }
    }

    fn try_allocate(
        &self,
        state: &mut State,
        req: &AddRequest,
        tenant: &str,
    ) -> Option<Allocation> {
        let (control_ip, control_eni) = state.free_ips(CONTROL_PLANE).into_iter().next()?;
        let (tenant_ip, tenant_eni) = state.free_ips(tenant).into_iter().next()?;
        let mtu = req.mtu.unwrap_or(DEFAULT_MTU);
        let cid = &req.key.container_id;
        let everywhere = Ipv4Net::default();
        let mut control_routes = vec![PodRoute {
            dst: everywhere,
            gw: POD_GATEWAY,
            table: Some(POD_TABLE_BASE),
        }];
        control_routes.extend(self.cfg.control.platform_cidrs.iter().map(|c| PodRoute {
            dst: *c,
            gw: POD_GATEWAY,
            table: None,
        }));
        let tenant_routes = vec![
            PodRoute {
                dst: everywhere,
                gw: POD_GATEWAY,
                table: Some(POD_TABLE_BASE + 1),
            },
            PodRoute {
                dst: everywhere,
                gw: POD_GATEWAY,
                table: None,
            },
        ];
        let iface = |role, ifname: &str, ip, eni: &str, plane: &str, routes, pod_table| {
            let names = host_names(cid, ifname);
            PodInterface {
                role,
                ifname: ifname.to_string(),
                mac: names.pod_mac.to_string(),
                host_ifname: names.host_ifname,
                host_mac: names.host_mac.to_string(),
                mtu,
                ip,
                prefix_len: 32,
                gateway: POD_GATEWAY,
                routes,
                eni_id: eni.to_string(),
                host_table: state.enis[eni].table,
                pod_table,
                plane: plane.to_string(),
            }
        };
        let interfaces = vec![
            iface(
                Role::Control,
                &req.key.ifname,
                control_ip,
                &control_eni,
                CONTROL_PLANE,
                control_routes,
                POD_TABLE_BASE,
            ),
            iface(
                Role::Tenant,
                &req.tenant_ifname,
                tenant_ip,
                &tenant_eni,
                tenant,
                tenant_routes,
                POD_TABLE_BASE + 1,
            ),
        ];
        let alloc = Allocation {
            key: req.key.clone(),
            pod: req.pod.clone(),
            netns: req.netns.clone(),
            tenant: tenant.to_string(),
            interfaces,
            link_group: state.take_link_group(),
            created_at: now_secs(),
        };
        state
            .allocations
            .insert(key_string(&req.key), alloc.clone());
        Some(alloc)
    }
}

fn validate(req: &AddRequest) -> AgentResult<()> {
    let bad = |m: String| Err(AgentError::BadRequest(m));
    if req.key.container_id.is_empty() {
        return bad("container id is empty".into());
    }
    for name in [&req.key.ifname, &req.tenant_ifname] {
        if name.is_empty() || name.len() > 15 {
            return bad(format!("interface name {name:?} must be 1-15 bytes"));
        }
    }
    if req.key.ifname == req.tenant_ifname {
        return bad(format!(
            "control and tenant interfaces are both named {:?}",
            req.key.ifname
        ));
    }
    if !req.netns.is_absolute() {
        return bad(format!(
            "netns {} is not an absolute path",
            req.netns.display()
        ));
    }
    Ok(())
}
