//! The lab's emulated cloud, spoken to over its unix socket.

use std::net::Ipv4Addr;
use std::path::Path;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_common::http::{ClientError, UdsClient};
use tandem_common::vpcsim::*;

use super::{CloudProvider, ProviderError, ProviderResult};

pub struct VpcSim {
    client: UdsClient,
}

impl VpcSim {
    pub fn new(socket: &Path) -> VpcSim {
        VpcSim {
            client: UdsClient::new(socket),
        }
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        api: &'static str,
        body: &B,
    ) -> ProviderResult<R> {
        self.client
            .post(&format!("/{api}"), body)
            .await
            .map_err(|e| match e {
                ClientError::Status { body, .. } => {
                    match serde_json::from_slice::<CloudError>(&body) {
                        Ok(ce) => ProviderError::Api {
                            api,
                            code: ce.code,
                            message: ce.message,
                        },
                        Err(_) => ProviderError::Transport {
                            api,
                            message: String::from_utf8_lossy(&body).into_owned(),
                        },
                    }
                }
                other => ProviderError::Transport {
                    api,
                    message: other.to_string(),
                },
            })
    }
}

#[derive(Serialize)]
struct Empty {}

#[derive(serde::Deserialize)]
struct Ignored {}

#[async_trait]
impl CloudProvider for VpcSim {
    async fn describe_instance(&self, instance_id: &str) -> ProviderResult<Instance> {
        let req = DescribeInstanceRequest {
            instance_id: instance_id.to_string(),
        };
        self.call("DescribeInstance", &req).await
    }

    async fn describe_vswitches(&self) -> ProviderResult<Vec<VSwitch>> {
        let r: DescribeVSwitchesReply = self.call("DescribeVSwitches", &Empty {}).await?;
        Ok(r.vswitches)
    }

    async fn describe_enis(&self, filter: &DescribeEnisRequest) -> ProviderResult<Vec<Eni>> {
        let r: DescribeEnisReply = self.call("DescribeNetworkInterfaces", filter).await?;
        Ok(r.enis)
    }

    async fn create_eni(&self, req: &CreateEniRequest) -> ProviderResult<Eni> {
        self.call("CreateNetworkInterface", req).await
    }

    async fn attach_eni(&self, eni_id: &str, instance_id: &str) -> ProviderResult<Eni> {
        let req = AttachEniRequest {
            eni_id: eni_id.to_string(),
            instance_id: instance_id.to_string(),
        };
        self.call("AttachNetworkInterface", &req).await
    }

    async fn detach_eni(&self, eni_id: &str) -> ProviderResult<Eni> {
        let req = EniIdRequest {
            eni_id: eni_id.to_string(),
        };
        self.call("DetachNetworkInterface", &req).await
    }

    async fn delete_eni(&self, eni_id: &str) -> ProviderResult<()> {
        let req = EniIdRequest {
            eni_id: eni_id.to_string(),
        };
        let _: Ignored = self.call("DeleteNetworkInterface", &req).await?;
        Ok(())
    }

    async fn assign_ips(&self, eni_id: &str, count: u32) -> ProviderResult<Vec<Ipv4Addr>> {
        let req = AssignIpsRequest {
            eni_id: eni_id.to_string(),
            count,
        };
        let r: AssignIpsReply = self.call("AssignPrivateIpAddresses", &req).await?;
        Ok(r.assigned)
    }

    async fn unassign_ips(&self, eni_id: &str, ips: &[Ipv4Addr]) -> ProviderResult<()> {
        let req = UnassignIpsRequest {
            eni_id: eni_id.to_string(),
            ips: ips.to_vec(),
        };
        let _: Ignored = self.call("UnassignPrivateIpAddresses", &req).await?;
        Ok(())
    }
}
