//! The emulated VPC lab: `vpcsim` (the emulated cloud), the lab topology in network
//! namespaces, pods and real CNI invocations, probes, and tenant isolation measured against the
//! security groups. DESIGN.md §7.

pub mod bench;
pub mod demo;
pub mod isolation;
pub mod lab;
pub mod vpcsim;
