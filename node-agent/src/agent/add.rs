//! ADD: allocate a control IP and a tenant IP, make the allocation durable, wire the pod.

use std::time::Duration;

use ipnet::Ipv4Net;
use tandem_common::api::{AddReply, AddRequest, PodInterface, PodRoute, Role, POD_GATEWAY};
use tandem_hostnet::NetNs;

use super::{now_secs, Agent};
use crate::error::{AgentError, AgentResult};
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
        let spec = {
            let model = self.model.read().expect("model lock");
            self.pod_policy(&model, &tenant.name, &req.pod)
        };
        if let Some(spec) = &spec {
            // A policy that does not compile (an unknown group, mixed models) fails the ADD
            // before anything is allocated.
            self.ensure_policy(spec).await?;
        }
        let (alloc, snapshot) = self.allocate(&req, &tenant.name).await?;
        // The allocation becomes durable while the pod is wired; ADD answers only when both
        // are done. A crash in between leaves either a durable allocation whose wiring the
        // start-up repair redoes, or wiring no allocation explains, which it removes.
        let enforce = |pod: &NetNs, wired: &[wiring::Wired<'_>]| self.enforce(&alloc, pod, wired);
        let (wired, durable) = tokio::join!(
            wiring::setup(
                &self.host,
                &pod_ns,
                &alloc.interfaces,
                alloc.link_group,
                &enforce
            ),
            self.commit_snapshot(snapshot)
        );
        if let Err(e) = wired.and(durable) {
            // Undo what was built, then return the addresses.
            let ns = wiring::Namespaces {
                host: &self.host,
                node: &self.node_ns,
                pod: Some(&pod_ns),
            };
            self.unenforce(&alloc);
            let left = wiring::teardown(
                &ns,
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
            self.commit(&mut state)?;
            return Err(e);
        }
        // The pod's address joins its groups' members, here and on the other nodes.
        self.policy_changed();
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

    /// Take one control and one tenant IP, and return the state to make durable with them;
    /// wait (bounded) for the refill when a pool is empty.
    async fn allocate(&self, req: &AddRequest, tenant: &str) -> AgentResult<(Allocation, State)> {
        let wait = Duration::from_millis(self.cfg.pool.empty_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let refilled = self.refilled.notified();
            {
                let mut state = self.state.lock().await;
                if let Some(alloc) = self.try_allocate(&mut state, req, tenant) {
                    state.generation += 1;
                    let snapshot = state.clone();
                    self.refill_wanted.notify_one();
                    return Ok((alloc, snapshot));
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
        let mut short = Vec::new();
        if state.free_ips(CONTROL_PLANE).is_empty() {
            short.push(CONTROL_PLANE.to_string());
        }
        let tenant_free = if self.is_exclusive(tenant) {
            !state.free_enis(tenant).is_empty()
        } else {
            !state.free_ips(tenant).is_empty()
        };
        if !tenant_free {
            short.push(tenant.to_string());
        }
        short
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

    /// Both interfaces' plans, if both planes have something free; recorded in `state`.
    fn try_allocate(
        &self,
        state: &mut State,
        req: &AddRequest,
        tenant: &str,
    ) -> Option<Allocation> {
        let mtu = req.mtu.unwrap_or(DEFAULT_MTU);
        let (control_ip, control_eni) = state.free_ips(CONTROL_PLANE).into_iter().next()?;
        let tenant_iface = if self.is_exclusive(tenant) {
            let eni = state.free_enis(tenant).into_iter().next()?;
            exclusive_iface(state, &eni, &req.tenant_ifname, mtu)?
        } else {
            let (ip, eni) = state.free_ips(tenant).into_iter().next()?;
            let routes = vec![
                route(Ipv4Net::default(), POD_GATEWAY, Some(POD_TABLE_BASE + 1)),
                route(Ipv4Net::default(), POD_GATEWAY, None),
            ];
            let slot = VethSlot {
                role: Role::Tenant,
                ifname: &req.tenant_ifname,
                ip,
                eni: &eni,
                plane: tenant,
                pod_table: POD_TABLE_BASE + 1,
            };
            veth_iface(state, &req.key.container_id, slot, routes, mtu)
        };
        let mut control_routes = vec![route(Ipv4Net::default(), POD_GATEWAY, Some(POD_TABLE_BASE))];
        control_routes.extend(
            self.cfg
                .control
                .platform_cidrs
                .iter()
                .map(|c| route(*c, POD_GATEWAY, None)),
        );
        let slot = VethSlot {
            role: Role::Control,
            ifname: &req.key.ifname,
            ip: control_ip,
            eni: &control_eni,
            plane: CONTROL_PLANE,
            pod_table: POD_TABLE_BASE,
        };
        let control_iface = veth_iface(state, &req.key.container_id, slot, control_routes, mtu);
        let alloc = Allocation {
            key: req.key.clone(),
            pod: req.pod.clone(),
            netns: req.netns.clone(),
            tenant: tenant.to_string(),
            interfaces: vec![control_iface, tenant_iface],
            link_group: state.take_link_group(),
            created_at: now_secs(),
        };
        state
            .allocations
            .insert(key_string(&req.key), alloc.clone());
        Some(alloc)
    }
}

fn route(dst: Ipv4Net, gw: std::net::Ipv4Addr, table: Option<u32>) -> PodRoute {
    PodRoute { dst, gw, table }
}

struct VethSlot<'a> {
    role: Role,
    ifname: &'a str,
    ip: std::net::Ipv4Addr,
    eni: &'a str,
    plane: &'a str,
    pod_table: u32,
}

/// A veth interface with a secondary IP of `eni`.
fn veth_iface(
    state: &State,
    container_id: &str,
    s: VethSlot<'_>,
    routes: Vec<PodRoute>,
    mtu: u32,
) -> PodInterface {
    let names = host_names(container_id, s.ifname);
    PodInterface {
        role: s.role,
        ifname: s.ifname.to_string(),
        mac: names.pod_mac.to_string(),
        host_ifname: names.host_ifname,
        host_mac: names.host_mac.to_string(),
        mtu,
        ip: s.ip,
        prefix_len: 32,
        gateway: POD_GATEWAY,
        routes,
        eni_id: s.eni.to_string(),
        host_table: state.enis[s.eni].table,
        pod_table: s.pod_table,
        plane: s.plane.to_string(),
        exclusive: false,
    }
}

/// The whole ENI, addressed with its primary IP in its vSwitch's prefix and routed via the
/// vSwitch gateway, as the reference `host-device` plugin hands a device to a pod.
fn exclusive_iface(state: &State, eni_id: &str, ifname: &str, mtu: u32) -> Option<PodInterface> {
    let e = state.enis.get(eni_id)?;
    if e.device.is_empty() {
        return None;
    }
    let table = POD_TABLE_BASE + 1;
    Some(PodInterface {
        role: Role::Tenant,
        ifname: ifname.to_string(),
        mac: e.mac.clone(),
        host_ifname: e.device.clone(),
        host_mac: e.mac.clone(),
        mtu,
        ip: e.primary_ip,
        prefix_len: e.cidr.prefix_len(),
        gateway: e.gateway,
        routes: vec![
            route(Ipv4Net::default(), e.gateway, Some(table)),
            route(Ipv4Net::default(), e.gateway, None),
        ],
        eni_id: eni_id.to_string(),
        host_table: 0,
        pod_table: table,
        plane: e.plane.clone(),
        exclusive: true,
    })
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
