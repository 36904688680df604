//! Policy routing rules: `ip rule add|del [from P] [to P] lookup T priority N`.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::IpVersion;

use crate::error::{HostnetError, Result};
use crate::netlink::{tolerate, Netlink};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub priority: u32,
    pub src: Option<Ipv4Net>,
    pub dst: Option<Ipv4Net>,
    pub table: u32,
}

impl RuleSpec {
    fn describe(&self, verb: &str) -> String {
        let mut s = format!("ip rule {verb}");
        if let Some(src) = self.src {
            s += &format!(" from {src}");
        }
        if let Some(dst) = self.dst {
            s += &format!(" to {dst}");
        }
        s + &format!(" lookup {} priority {}", self.table, self.priority)
    }

    fn message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.action = RuleAction::ToTable;
        m.header.table = if self.table < 256 {
            self.table as u8
        } else {
            0
        };
        m.attributes.push(RuleAttribute::Table(self.table));
        m.attributes.push(RuleAttribute::Priority(self.priority));
        if let Some(src) = self.src {
            m.header.src_len = src.prefix_len();
            m.attributes
                .push(RuleAttribute::Source(IpAddr::V4(src.addr())));
        }
        if let Some(dst) = self.dst {
            m.header.dst_len = dst.prefix_len();
            m.attributes
                .push(RuleAttribute::Destination(IpAddr::V4(dst.addr())));
        }
        m
    }

    fn from_message(m: &RuleMessage) -> RuleSpec {
        let mut r = RuleSpec {
            priority: 0,
            src: None,
            dst: None,
            table: m.header.table as u32,
        };
        for a in &m.attributes {
            match a {
                RuleAttribute::Priority(p) => r.priority = *p,
                RuleAttribute::Table(t) => r.table = *t,
                RuleAttribute::Source(IpAddr::V4(ip)) => {
                    r.src = Ipv4Net::new(*ip, m.header.src_len).ok()
                }
                RuleAttribute::Destination(IpAddr::V4(ip)) => {
                    r.dst = Ipv4Net::new(*ip, m.header.dst_len).ok()
                }
                _ => {}
            }
        }
        r
    }
}

impl Netlink {
    /// `ip rule add …`; the same rule already present is fine.
    pub async fn add_rule(&self, r: &RuleSpec) -> Result<()> {
        let mut req = self.handle.rule().add().v4();
        *req.message_mut() = r.message();
        let res = req
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(r.describe("add"), e));
        tolerate(res, libc::EEXIST)
    }

    /// `ip rule del …`; a rule already gone is fine.
    pub async fn del_rule(&self, r: &RuleSpec) -> Result<()> {
        let res = self
            .handle
            .rule()
            .del(r.message())
            .execute()
            .await
            .map_err(|e| HostnetError::netlink(r.describe("del"), e));
        tolerate(res, libc::ENOENT)
    }

    /// `ip -4 rule show`.
    pub async fn rules(&self) -> Result<Vec<RuleSpec>> {
        let _turn = self.dump.lock().await;
        let msgs: Vec<RuleMessage> = self
            .handle
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(|e| HostnetError::netlink("ip rule show".into(), e))?;
        Ok(msgs.iter().map(RuleSpec::from_message).collect())
    }
}
