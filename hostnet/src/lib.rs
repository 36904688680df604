//! Network namespace handles and netlink/sysctl helpers shared by the plugin, the agent and the
//! tests.
//!
//! One file per kernel object (`link`, `addr`, `route`, `rule`, `neigh`, `sysctl`); each helper
//! reads like the `ip` command it replaces. Namespaces are entered only on dedicated threads
//! (`netns`), and only long enough to open a netlink socket or write a sysctl.

pub mod addr;
pub mod error;
pub mod link;
pub mod mac;
pub mod neigh;
pub mod netlink;
pub mod netns;
pub mod route;
pub mod rule;
pub mod sysctl;

pub use error::HostnetError;
pub use mac::Mac;
pub use netlink::Netlink;
pub use netns::NetNs;
