//! Wire types shared by the `tandem` CNI binary, the node agent, `tandemctl` and the lab.
//!
//! Only data shapes and their (de)serialisation live here: the CNI protocol (`cni`), the agent's
//! HTTP API (`api`), the emulated cloud's HTTP API (`vpcsim`) and the on-disk release queue the
//! plugin writes when the agent is down (`release_queue`).

pub mod api;
pub mod cni;
#[cfg(feature = "client")]
pub mod http;
pub mod release_queue;
pub mod vpcsim;
