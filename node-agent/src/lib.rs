//! The Tandem node agent: warm ENI/IP pools, durable allocations, pod wiring, and the API the
//! `tandem` CNI binary and `tandemctl` use.

pub mod agent;
pub mod api;
pub mod config;
pub mod ctl;
pub mod eni;
pub mod error;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod pool;
pub mod provider;
pub mod state;
pub mod store;
pub mod wiring;
