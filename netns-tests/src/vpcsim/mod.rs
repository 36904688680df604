//! `vpcsim`, the lab's emulated cloud: the `tandem_common::vpcsim` API over HTTP on a unix
//! socket, with bookkeeping in [`state`] and the matching veths and neighbour entries in
//! [`dataplane`].

pub mod state;
