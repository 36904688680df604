//! Cloud providers behind one trait. The agent never calls a cloud API on a warm ADD; these
//! calls come from start-up reconciliation and the background pool refill.

pub mod guard;
pub mod vpcsim;

use std::net::Ipv4Addr;

use async_trait::async_trait;
use tandem_common::vpcsim::{CreateEniRequest, DescribeEnisRequest, Eni, Instance, VSwitch};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The cloud answered with an error document.
    #[error("{api}: {code}: {message}")]
    Api {
        api: &'static str,
        code: String,
        message: String,
    },
    /// The cloud could not be reached or answered garbage.
    #[error("{api}: {message}")]
    Transport { api: &'static str, message: String },
}

impl ProviderError {
    /// Throttling and transport faults are worth retrying; a refused request is not.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Api { code, .. } => {
                code == tandem_common::vpcsim::codes::THROTTLED
                    || code == tandem_common::vpcsim::codes::INTERNAL
            }
            ProviderError::Transport { .. } => true,
        }
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

#[async_trait]
pub trait CloudProvider: Send + Sync {
    async fn describe_instance(&self, instance_id: &str) -> ProviderResult<Instance>;
    async fn describe_vswitches(&self) -> ProviderResult<Vec<VSwitch>>;
    async fn describe_enis(&self, filter: &DescribeEnisRequest) -> ProviderResult<Vec<Eni>>;
    async fn create_eni(&self, req: &CreateEniRequest) -> ProviderResult<Eni>;
    async fn attach_eni(&self, eni_id: &str, instance_id: &str) -> ProviderResult<Eni>;
    async fn detach_eni(&self, eni_id: &str) -> ProviderResult<Eni>;
    async fn delete_eni(&self, eni_id: &str) -> ProviderResult<()>;
    async fn assign_ips(&self, eni_id: &str, count: u32) -> ProviderResult<Vec<Ipv4Addr>>;
    async fn unassign_ips(&self, eni_id: &str, ips: &[Ipv4Addr]) -> ProviderResult<()>;
}
