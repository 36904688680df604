//! Addresses: `ip addr add`, `ip addr show`.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use crate::error::{HostnetError, Result};
use crate::netlink::{tolerate, Netlink};

impl Netlink {
    /// `ip addr add IP/PREFIX dev INDEX`; an address already present is fine.
    pub async fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let res = self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(|e| {
                HostnetError::netlink(format!("ip addr add {ip}/{prefix} dev {index}"), e)
            });
        tolerate(res, libc::EEXIST)
    }

    /// `ip -4 addr show dev INDEX`.
    pub async fn addrs(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        let _turn = self.dump.lock().await;
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip addr show dev {index}"), e))?;
        let mut out = Vec::new();
        for m in msgs {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                    if let Ok(net) = Ipv4Net::new(*ip, m.header.prefix_len) {
                        out.push(net);
                    }
                }
            }
        }
        Ok(out)
    }
}
