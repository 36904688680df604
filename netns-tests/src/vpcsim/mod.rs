//! `vpcsim`, the lab's emulated cloud: the `tandem_common::vpcsim` API over HTTP on a unix
//! socket, with bookkeeping in [`state`], the matching veths and neighbour entries in
//! [`dataplane`], the HTTP face in [`server`] (calls on one ENI in `ops.rs`), injected latency,
//! throttling and failures in [`faults`], and a typed [`client`].

pub mod client;
pub mod dataplane;
pub mod faults;
mod ops;
pub mod server;
pub mod state;

pub use client::{ClientError, VpcsimClient};
pub use server::{run, SimOptions};
