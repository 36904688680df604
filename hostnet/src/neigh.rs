//! Neighbours: `ip neigh replace IP lladdr MAC dev INDEX nud permanent`.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::neighbour::NeighbourState;

use crate::error::{HostnetError, Result};
use crate::mac::Mac;
use crate::netlink::Netlink;

impl Netlink {
    /// A permanent entry, so the pod never ARPs for its gateway (169.254.1.1 exists nowhere).
    pub async fn replace_permanent_neigh(&self, index: u32, ip: Ipv4Addr, mac: Mac) -> Result<()> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(&mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                HostnetError::netlink(
                    format!("ip neigh replace {ip} lladdr {mac} dev {index} nud permanent"),
                    e,
                )
            })
    }
}
