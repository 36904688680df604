//! The emulated cloud's bookkeeping: vSwitches, instances, ENIs, IP allocation and limits.
//!
//! Pure data, no I/O: `server.rs` calls into it under a lock and then applies the dataplane
//! effect (`dataplane.rs`) of what changed. Throttling and failure injection belong in front of
//! these calls (server) or as extra checks here; nothing below assumes a network exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_common::vpcsim::{
    codes, AssignIpsRequest, Attachment, CreateEniRequest, DescribeEnisRequest, Eni, Instance,
    UnassignIpsRequest, VSwitch,
};

use crate::lab::topology::Topology;

/// The tag vpcsim puts on every instance's primary ENI.
pub const PRIMARY_TAG: &str = "tandem.dev/primary";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("network interface {0} does not exist")]
    EniNotFound(String),
    #[error("instance {0} does not exist")]
    InstanceNotFound(String),
    #[error("vswitch {0} does not exist")]
    VSwitchNotFound(String),
    #[error("instance {instance} already has its maximum of {max} network interfaces")]
    EniLimit { instance: String, max: u32 },
    #[error("network interface {eni} would exceed its maximum of {max} private addresses")]
    IpLimit { eni: String, max: u32 },
    #[error("vswitch {vswitch} has fewer than {wanted} free addresses")]
    SubnetFull { vswitch: String, wanted: u32 },
    #[error("network interface {eni} is attached to {instance}")]
    InUse { eni: String, instance: String },
    #[error("network interface {eni}: {reason}")]
    IncorrectState { eni: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
}

impl StateError {
    /// The cloud error code of this error (`tandem_common::vpcsim::codes`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::EniNotFound(_) => codes::ENI_NOT_FOUND,
            Self::InstanceNotFound(_) => codes::INSTANCE_NOT_FOUND,
            Self::VSwitchNotFound(_) => codes::VSWITCH_NOT_FOUND,
            Self::EniLimit { .. } => codes::ENI_LIMIT,
            Self::IpLimit { .. } => codes::IP_LIMIT,
            Self::SubnetFull { .. } => codes::SUBNET_FULL,
            Self::InUse { .. } => codes::IN_USE,
            Self::IncorrectState { .. } => codes::INCORRECT_STATE,
            Self::BadRequest(_) => codes::BAD_REQUEST,
        }
    }

    /// The HTTP status: 404 for what does not exist, 400 for everything else here.
    pub fn status(&self) -> u16 {
        match self {
            Self::EniNotFound(_) | Self::InstanceNotFound(_) | Self::VSwitchNotFound(_) => 404,
            _ => 400,
        }
    }
}

#[derive(Debug)]
struct SubnetState {
    vswitch: VSwitch,
    reserved: BTreeSet<Ipv4Addr>,
    used: BTreeSet<Ipv4Addr>,
}

impl SubnetState {
    /// The `count` lowest free addresses, skipping network, gateway, broadcast and reserved ones.
    fn lowest_free(&self, count: u32) -> Option<Vec<Ipv4Addr>> {
        let net = u32::from(self.vswitch.cidr.network());
        let bcast = u32::from(self.vswitch.cidr.broadcast());
        let free: Vec<Ipv4Addr> = (net.saturating_add(1)..bcast)
            .map(Ipv4Addr::from)
            .filter(|ip| {
                *ip != self.vswitch.gateway
                    && !self.reserved.contains(ip)
                    && !self.used.contains(ip)
            })
            .take(count as usize)
            .collect();
        (free.len() == count as usize).then_some(free)
    }
}

#[derive(Debug)]
pub struct CloudState {
    subnets: BTreeMap<String, SubnetState>,
    instances: BTreeMap<String, Instance>,
    enis: BTreeMap<String, Eni>,
    /// clientToken → ENI id, for idempotent creates.
    tokens: HashMap<String, String>,
    rng: StdRng,
}

impl CloudState {
    pub fn new(topology: &Topology) -> Self {
        Self::with_rng(topology, StdRng::from_os_rng())
    }

    /// Deterministic ids and MACs, for tests.
    pub fn with_seed(topology: &Topology, seed: u64) -> Self {
        Self::with_rng(topology, StdRng::seed_from_u64(seed))
    }

    fn with_rng(topology: &Topology, rng: StdRng) -> Self {
        let subnets = topology
            .vswitches
            .iter()
            .map(|v| {
                let vswitch = VSwitch {
                    id: v.id.clone(),
                    cidr: v.cidr,
                    gateway: v.gateway,
                };
                let reserved = v.reserved.iter().copied().collect();
                let state = SubnetState {
                    vswitch,
                    reserved,
                    used: BTreeSet::new(),
                };
                (v.id.clone(), state)
            })
            .collect();
        let instances = topology
            .instances
            .iter()
            .map(|i| {
                let inst = Instance {
                    id: i.id.clone(),
                    max_enis: i.max_enis,
                    max_ips_per_eni: i.max_ips_per_eni,
                };
                (i.id.clone(), inst)
            })
            .collect();
        Self {
            subnets,
            instances,
            enis: BTreeMap::new(),
            tokens: HashMap::new(),
            rng,
        }
    }

    pub fn vswitches(&self) -> Vec<VSwitch> {
        self.subnets.values().map(|s| s.vswitch.clone()).collect()
    }

    pub fn instance(&self, id: &str) -> Result<Instance, StateError> {
        self.instances
            .get(id)
            .cloned()
            .ok_or_else(|| StateError::InstanceNotFound(id.to_owned()))
    }

    pub fn eni(&self, id: &str) -> Result<&Eni, StateError> {
        self.enis
            .get(id)
            .ok_or_else(|| StateError::EniNotFound(id.to_owned()))
    }

    fn eni_mut(&mut self, id: &str) -> Result<&mut Eni, StateError> {
        self.enis
            .get_mut(id)
            .ok_or_else(|| StateError::EniNotFound(id.to_owned()))
    }

    fn subnet_mut(&mut self, id: &str) -> Result<&mut SubnetState, StateError> {
        self.subnets
            .get_mut(id)
            .ok_or_else(|| StateError::VSwitchNotFound(id.to_owned()))
    }

    fn new_id_and_mac(&mut self) -> (String, String) {
        loop {
            let id = format!("eni-{:08x}", self.rng.random::<u32>());
            let b: [u8; 5] = self.rng.random();
            // 0x02: locally administered, unicast.
            let mac = format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0], b[1], b[2], b[3], b[4]
            );
            if !self.enis.contains_key(&id) && !self.enis.values().any(|e| e.mac == mac) {
                return (id, mac);
            }
        }
    }

    /// `CreateNetworkInterface`: a detached ENI with the lowest free address of the vSwitch.
    /// A retry with the same `clientToken` returns the ENI the first call created.
    pub fn create_eni(&mut self, req: &CreateEniRequest) -> Result<Eni, StateError> {
        if let Some(token) = &req.client_token {
            if let Some(eni) = self.tokens.get(token).and_then(|id| self.enis.get(id)) {
                if eni.vswitch_id != req.vswitch_id {
                    return Err(StateError::BadRequest(format!(
                        "clientToken {token} was used for vswitch {}",
                        eni.vswitch_id
                    )));
                }
                return Ok(eni.clone());
            }
        }
        let subnet = self.subnet_mut(&req.vswitch_id)?;
        let ip = subnet
            .lowest_free(1)
            .ok_or_else(|| StateError::SubnetFull {
                vswitch: req.vswitch_id.clone(),
                wanted: 1,
            })?[0];
        let eni = self.insert_eni(&req.vswitch_id, ip, req.tags.clone());
        if let Some(token) = &req.client_token {
            self.tokens.insert(token.clone(), eni.id.clone());
        }
        Ok(eni)
    }

    fn insert_eni(&mut self, vswitch: &str, ip: Ipv4Addr, tags: BTreeMap<String, String>) -> Eni {
        let (id, mac) = self.new_id_and_mac();
        if let Some(s) = self.subnets.get_mut(vswitch) {
            s.used.insert(ip);
        }
        let eni = Eni {
            id: id.clone(),
            vswitch_id: vswitch.to_owned(),
            mac,
            primary_ip: ip,
            secondary_ips: Vec::new(),
            attachment: None,
            tags,
            created_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        self.enis.insert(id, eni.clone());
        eni
    }

    /// The instance's primary ENI at device index 0, with the address the topology gives it
    /// (which may be a reserved one: reservations only keep the allocator away).
    pub fn create_primary(
        &mut self,
        instance_id: &str,
        vswitch_id: &str,
        ip: Ipv4Addr,
    ) -> Result<Eni, StateError> {
        self.instance(instance_id)?;
        let subnet = self.subnet_mut(vswitch_id)?;
        if !subnet.vswitch.cidr.contains(&ip) || subnet.used.contains(&ip) {
            return Err(StateError::BadRequest(format!(
                "{ip} is not a free address of {vswitch_id}"
            )));
        }
        let tags = BTreeMap::from([(PRIMARY_TAG.to_owned(), "true".to_owned())]);
        let mut eni = self.insert_eni(vswitch_id, ip, tags);
        let attachment = Attachment {
            instance_id: instance_id.to_owned(),
            device_index: 0,
        };
        eni.attachment = Some(attachment.clone());
        self.eni_mut(&eni.id)?.attachment = Some(attachment);
        Ok(eni)
    }

    /// `AttachNetworkInterface` at the lowest free device index ≥ 1.
    pub fn attach(&mut self, eni_id: &str, instance_id: &str) -> Result<Eni, StateError> {
        let inst = self.instance(instance_id)?;
        let eni = self.eni(eni_id)?;
        if let Some(a) = &eni.attachment {
            return Err(StateError::InUse {
                eni: eni_id.to_owned(),
                instance: a.instance_id.clone(),
            });
        }
        let ips = 1 + eni.secondary_ips.len() as u32;
        if ips > inst.max_ips_per_eni {
            return Err(StateError::IpLimit {
                eni: eni_id.to_owned(),
                max: inst.max_ips_per_eni,
            });
        }
        let used: BTreeSet<u32> = self
            .enis
            .values()
            .filter_map(|e| e.attachment.as_ref())
            .filter(|a| a.instance_id == instance_id)
            .map(|a| a.device_index)
            .collect();
        if used.len() as u32 >= inst.max_enis {
            return Err(StateError::EniLimit {
                instance: instance_id.to_owned(),
                max: inst.max_enis,
            });
        }
        let device_index = (1..).find(|i| !used.contains(i)).expect("an index is free");
        let eni = self.eni_mut(eni_id)?;
        eni.attachment = Some(Attachment {
            instance_id: instance_id.to_owned(),
            device_index,
        });
        Ok(eni.clone())
    }

    /// Whether `DetachNetworkInterface` may proceed; returns the ENI as it is (attached).
    pub fn check_detach(&self, eni_id: &str) -> Result<Eni, StateError> {
        let eni = self.eni(eni_id)?;
        match &eni.attachment {
            None => Err(StateError::IncorrectState {
                eni: eni_id.to_owned(),
                reason: "is not attached".to_owned(),
            }),
            Some(a) if a.device_index == 0 => Err(StateError::IncorrectState {
                eni: eni_id.to_owned(),
                reason: "is the primary interface of its instance".to_owned(),
            }),
            Some(_) => Ok(eni.clone()),
        }
    }

    /// `DetachNetworkInterface`; returns the ENI as it was while attached.
    pub fn detach(&mut self, eni_id: &str) -> Result<Eni, StateError> {
        let before = self.check_detach(eni_id)?;
        self.eni_mut(eni_id)?.attachment = None;
        Ok(before)
    }

    /// Undo a successful [`Self::attach`] whose dataplane effect failed.
    pub fn rollback_attach(&mut self, eni_id: &str) {
        if let Some(e) = self.enis.get_mut(eni_id) {
            e.attachment = None;
        }
    }

    /// `DeleteNetworkInterface`; the ENI must be detached. Frees all its addresses.
    pub fn delete(&mut self, eni_id: &str) -> Result<(), StateError> {
        let eni = self.eni(eni_id)?;
        if let Some(a) = &eni.attachment {
            return Err(StateError::InUse {
                eni: eni_id.to_owned(),
                instance: a.instance_id.clone(),
            });
        }
        let eni = self.enis.remove(eni_id).expect("checked above");
        if let Some(s) = self.subnets.get_mut(&eni.vswitch_id) {
            s.used.remove(&eni.primary_ip);
            for ip in &eni.secondary_ips {
                s.used.remove(ip);
            }
        }
        self.tokens.retain(|_, id| id != eni_id);
        Ok(())
    }

    /// The per-ENI address limit: the attached instance's, else the largest any instance has.
    fn ip_limit(&self, eni: &Eni) -> u32 {
        match &eni.attachment {
            Some(a) => self
                .instances
                .get(&a.instance_id)
                .map(|i| i.max_ips_per_eni),
            None => self.instances.values().map(|i| i.max_ips_per_eni).max(),
        }
        .unwrap_or(u32::MAX)
    }

    /// `AssignPrivateIpAddresses`: all `count` addresses or none. Returns the ENI after.
    pub fn assign(&mut self, req: &AssignIpsRequest) -> Result<(Eni, Vec<Ipv4Addr>), StateError> {
        if req.count == 0 {
            return Err(StateError::BadRequest(
                "count must be at least 1".to_owned(),
            ));
        }
        let eni = self.eni(&req.eni_id)?;
        let max = self.ip_limit(eni);
        let have = 1 + eni.secondary_ips.len() as u32;
        if have.saturating_add(req.count) > max {
            return Err(StateError::IpLimit {
                eni: req.eni_id.clone(),
                max,
            });
        }
        let vswitch = eni.vswitch_id.clone();
        let subnet = self.subnet_mut(&vswitch)?;
        let ips = subnet
            .lowest_free(req.count)
            .ok_or_else(|| StateError::SubnetFull {
                vswitch: vswitch.clone(),
                wanted: req.count,
            })?;
        subnet.used.extend(ips.iter().copied());
        let eni = self.eni_mut(&req.eni_id)?;
        eni.secondary_ips.extend(ips.iter().copied());
        Ok((eni.clone(), ips))
    }

    /// `UnassignPrivateIpAddresses`: every address must be a secondary address of the ENI.
    pub fn unassign(&mut self, req: &UnassignIpsRequest) -> Result<Eni, StateError> {
        let eni = self.eni(&req.eni_id)?;
        if let Some(ip) = req.ips.iter().find(|ip| !eni.secondary_ips.contains(ip)) {
            return Err(StateError::BadRequest(format!(
                "{ip} is not a secondary address of {}",
                req.eni_id
            )));
        }
        let vswitch = eni.vswitch_id.clone();
        let eni = self.eni_mut(&req.eni_id)?;
        eni.secondary_ips.retain(|ip| !req.ips.contains(ip));
        let after = eni.clone();
        if let Some(s) = self.subnets.get_mut(&vswitch) {
            for ip in &req.ips {
                s.used.remove(ip);
            }
        }
        Ok(after)
    }

    /// `DescribeNetworkInterfaces`: every given filter must match. Asking for an id that does
    /// not exist is an error, as on EC2.
    pub fn describe(&self, req: &DescribeEnisRequest) -> Result<Vec<Eni>, StateError> {
        if let Some(missing) = req.eni_ids.iter().find(|id| !self.enis.contains_key(*id)) {
            return Err(StateError::EniNotFound(missing.clone()));
        }
        Ok(self
            .enis
            .values()
            .filter(|e| req.eni_ids.is_empty() || req.eni_ids.contains(&e.id))
            .filter(|e| match &req.instance_id {
                None => true,
                Some(i) => e.attachment.as_ref().is_some_and(|a| &a.instance_id == i),
            })
            .filter(|e| req.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v)))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
