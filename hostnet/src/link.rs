//! Links: `ip link add … type veth`, `ip link set … up`, `ip link del …`.

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::error::{HostnetError, Result};
use crate::mac::Mac;
use crate::netlink::{tolerate, Netlink};
use crate::netns::NetNs;

/// What `ip link show` tells about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub up: bool,
    pub group: u32,
    pub kind: Option<String>,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            group: 0,
            kind: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) => info.mac = Mac::from_slice(a),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::Group(g) => info.group = *g,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let netlink_packet_route::link::LinkInfo::Kind(k) = i {
                            info.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// What [`Netlink::change_link`] changes; `None` keeps.
#[derive(Debug, Default)]
pub struct LinkChange<'a> {
    pub name: Option<&'a str>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub group: Option<u32>,
}

/// A veth pair whose peer is created directly inside another namespace, so the pod end never
/// appears in the host namespace.
pub struct VethSpec<'a> {
    pub name: &'a str,
    pub mac: Mac,
    pub peer_name: &'a str,
    pub peer_mac: Mac,
    pub peer_netns: &'a NetNs,
    pub mtu: u32,
    /// Link group of the host end (0: none), for [`Netlink::del_group`].
    pub group: u32,
}

impl Netlink {
    /// `ip link show NAME`; `None` if there is no such link.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>> {
        let res = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match res {
            Ok(msg) => Ok(msg.as_ref().map(LinkInfo::from_message)),
            Err(e) => {
                let e = HostnetError::netlink(format!("ip link show {name}"), e);
                if e.errno() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `ip link show`.
    pub async fn links(&self) -> Result<Vec<LinkInfo>> {
        let _turn = self.dump.lock().await;
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| HostnetError::netlink("ip link show".into(), e))?;
        Ok(msgs.iter().map(LinkInfo::from_message).collect())
    }

    /// The link carrying `mac`, if any (how an attached ENI is found on the node).
    pub async fn link_by_mac(&self, mac: Mac) -> Result<Option<LinkInfo>> {
        Ok(self.links().await?.into_iter().find(|l| l.mac == Some(mac)))
    }

    /// `ip link add NAME address MAC mtu MTU type veth peer name PEER address PEERMAC netns NS`.
    pub async fn add_veth(&self, spec: &VethSpec<'_>) -> Result<()> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer_name.to_string())
            .address(spec.peer_mac.0.to_vec())
            .mtu(spec.mtu)
            .setns_by_fd(spec.peer_netns.raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.name.to_string())
            .address(spec.mac.0.to_vec())
            .mtu(spec.mtu)
            .link_group(spec.group)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle.link().add(msg).execute().await.map_err(|e| {
            HostnetError::netlink(
                format!(
                    "ip link add {} type veth peer name {} netns {}",
                    spec.name,
                    spec.peer_name,
                    spec.peer_netns.path().display()
                ),
                e,
            )
        })
    }

    /// `ip link set dev INDEX up`.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip link set {index} up"), e))
    }

    /// `ip link set dev INDEX group GROUP`.
    pub async fn set_group(&self, index: u32, group: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).link_group(group).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip link set {index} group {group}"), e))
    }

    /// `ip link set dev INDEX [name NAME] [address MAC] [mtu MTU] [group GROUP]` in one request.
    pub async fn change_link(&self, index: u32, change: &LinkChange<'_>) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index);
        if let Some(name) = change.name {
            b = b.name(name.to_string());
        }
        if let Some(mac) = change.mac {
            b = b.address(mac.0.to_vec());
        }
        if let Some(mtu) = change.mtu {
            b = b.mtu(mtu);
        }
        if let Some(group) = change.group {
            b = b.link_group(group);
        }
        self.handle
            .link()
            .set(b.build())
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip link set {index} {change:?}"), e))
    }

    /// `ip link set dev INDEX netns NS name NAME`: move (and rename) a device into a namespace.
    /// It keeps its ifindex there (IFLA_NEW_IFINDEX), or the move fails (EEXIST): ifindexes
    /// of devices that came from one namespace stay unique, wherever they are.
    pub async fn move_to_netns(&self, index: u32, ns: &NetNs, new_name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.raw_fd())
            .name(new_name.to_string())
            .append_extra_attribute(LinkAttribute::NewIfIndex(index as i32))
            .build();
        self.handle.link().set(msg).execute().await.map_err(|e| {
            HostnetError::netlink(
                format!(
                    "ip link set {index} netns {} name {new_name}",
                    ns.path().display()
                ),
                e,
            )
        })
    }

    /// `ip link del INDEX`; a link that is already gone is not an error.
    pub async fn del_link(&self, index: u32) -> Result<()> {
        let res = self
            .handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip link del {index}"), e));
        tolerate(res, libc::ENODEV)
    }

    /// `ip link del group GROUP`: every link of the group goes in one request, so they share one
    /// RCU grace period (~16 ms here) instead of paying one each.
    pub async fn del_group(&self, group: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        let res = self
            .handle
            .link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip link del group {group}"), e));
        tolerate(res, libc::ENODEV)
    }
}
