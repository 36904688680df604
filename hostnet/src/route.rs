//! Routes: `ip route replace …`, `ip route del …`, `ip route show table …`.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteScope,
};
use rtnetlink::RouteMessageBuilder;

use crate::error::{HostnetError, Result};
use crate::netlink::{tolerate, Netlink};

pub const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// One IPv4 route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: Ipv4Net,
    pub gw: Option<Ipv4Addr>,
    /// Output device index.
    pub oif: u32,
    pub table: u32,
    /// The gateway is reachable on `oif` even though no address there covers it.
    pub onlink: bool,
}

impl RouteSpec {
    fn describe(&self, verb: &str) -> String {
        let mut s = format!("ip route {verb} {}", self.dst);
        if let Some(gw) = self.gw {
            s += &format!(" via {gw}");
        }
        s += &format!(" dev {}", self.oif);
        if self.onlink {
            s += " onlink";
        }
        if self.table != TABLE_MAIN {
            s += &format!(" table {}", self.table);
        }
        s
    }

    fn message(&self) -> RouteMessage {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(self.dst.addr(), self.dst.prefix_len())
            .output_interface(self.oif)
            .table_id(self.table);
        match self.gw {
            Some(gw) => b = b.gateway(gw),
            None => b = b.scope(RouteScope::Link),
        }
        if self.onlink {
            b = b.onlink();
        }
        b.build()
    }

    fn from_message(m: &RouteMessage) -> Option<RouteSpec> {
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut gw = None;
        let mut oif = 0;
        let mut table = m.header.table as u32;
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gw = Some(*ip),
                RouteAttribute::Oif(i) => oif = *i,
                RouteAttribute::Table(t) => table = *t,
                _ => {}
            }
        }
        Some(RouteSpec {
            dst: Ipv4Net::new(dst, m.header.destination_prefix_length).ok()?,
            gw,
            oif,
            table,
            onlink: m.header.flags.contains(RouteFlags::Onlink),
        })
    }
}

impl Netlink {
    /// `ip route replace …`: creates the route or makes an existing one match.
    pub async fn replace_route(&self, r: &RouteSpec) -> Result<()> {
        self.handle
            .route()
            .add(r.message())
            .replace()
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(r.describe("replace"), e))
    }

    /// `ip route del …`; a route already gone is fine.
    pub async fn del_route(&self, r: &RouteSpec) -> Result<()> {
        let res = self
            .handle
            .route()
            .del(r.message())
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(r.describe("del"), e));
        tolerate(res, libc::ESRCH)
    }

    /// `ip -4 route show table TABLE`.
    pub async fn routes(&self, table: u32) -> Result<Vec<RouteSpec>> {
        let _turn = self.dump.lock().await;
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip route show table {table}"), e))?;
        Ok(msgs
            .iter()
            .filter_map(RouteSpec::from_message)
            .filter(|r| r.table == table)
            .collect())
    }

    /// The route the kernel would take to `dst` (`ip route get DST`), as its output device.
    pub async fn route_get_oif(&self, dst: Ipv4Addr) -> Result<Option<u32>> {
        let mut msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        msg.header.destination_prefix_length = 32;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        let got: Option<RouteMessage> = self
            .handle
            .route()
            .get(msg)
            .execute()
            .try_next()
            .await
            .map_err(|e| HostnetError::netlink(format!("ip route get {dst}"), e))?;
        Ok(got.and_then(|m| {
            m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }))
    }
}
