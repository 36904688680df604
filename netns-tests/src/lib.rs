//! The emulated VPC lab: `vpcsim` (the emulated cloud), the lab topology in network
//! namespaces, pods and real CNI invocations, and probes. DESIGN.md §7.

pub mod bench;
pub mod demo;
pub mod lab;
pub mod vpcsim;
