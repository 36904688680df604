//! A typed client of vpcsim's API, for tests and the demo (the agent has its own provider).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use hyper::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tandem_common::vpcsim::{
    AssignIpsReply, AssignIpsRequest, AttachEniRequest, CloudError, CreateEniRequest,
    DescribeEnisReply, DescribeEnisRequest, DescribeInstanceRequest, DescribeVSwitchesReply, Eni,
    EniIdRequest, Faults, Instance, SetFaultsRequest, StatsReply, UnassignIpsRequest, VSwitch,
};

use crate::lab::http::{self, HttpError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{action}: {status} {}: {}", error.code, error.message)]
    Cloud {
        action: String,
        status: u16,
        error: CloudError,
    },
    #[error("{action}: undecodable reply ({status}) {body:?}: {source}")]
    Decode {
        action: String,
        status: u16,
        body: String,
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The cloud error code, if the cloud answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Cloud { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct VpcsimClient {
    socket: PathBuf,
}

impl VpcsimClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `POST /<action>` with `req` as JSON; a non-2xx reply becomes [`ClientError::Cloud`].
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        action: &str,
        req: &Req,
    ) -> Result<Resp, ClientError> {
        let body = serde_json::to_vec(req).expect("request serialises");
        self.request(Method::POST, action, Some(body)).await
    }

    /// Change fault knobs at run time (absent ones keep their value); returns them all.
    pub async fn set_faults(&self, req: &SetFaultsRequest) -> Result<Faults, ClientError> {
        self.call("_admin/SetFaults", req).await
    }

    /// Turn every fault off (latency included).
    pub async fn clear_faults(&self) -> Result<Faults, ClientError> {
        self.set_faults(&SetFaultsRequest::all(&Faults::default()))
            .await
    }

    /// The knobs in force and per-action counts of calls, throttles and injected failures.
    pub async fn stats(&self) -> Result<StatsReply, ClientError> {
        self.request(Method::GET, "_admin/Stats", None).await
    }

    async fn request<Resp: DeserializeOwned>(
        &self,
        method: Method,
        action: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Resp, ClientError> {
        let path = format!("/{action}");
        let (status, bytes) = http::request(&self.socket, method, &path, body).await?;
        let decode = |source| ClientError::Decode {
            action: action.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            source,
        };
        if !status.is_success() {
            let error: CloudError = serde_json::from_slice(&bytes).map_err(decode)?;
            return Err(ClientError::Cloud {
                action: action.to_owned(),
                status: status.as_u16(),
                error,
            });
        }
        serde_json::from_slice(&bytes).map_err(decode)
    }

    pub async fn create_eni(&self, req: &CreateEniRequest) -> Result<Eni, ClientError> {
        self.call("CreateNetworkInterface", req).await
    }

    pub async fn attach(&self, eni_id: &str, instance_id: &str) -> Result<Eni, ClientError> {
        let req = AttachEniRequest {
            eni_id: eni_id.to_owned(),
            instance_id: instance_id.to_owned(),
        };
        self.call("AttachNetworkInterface", &req).await
    }

    pub async fn detach(&self, eni_id: &str) -> Result<Eni, ClientError> {
        self.call("DetachNetworkInterface", &eni_req(eni_id)).await
    }

    pub async fn delete(&self, eni_id: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call("DeleteNetworkInterface", &eni_req(eni_id))
            .await?;
        Ok(())
    }

    pub async fn assign(&self, eni_id: &str, count: u32) -> Result<Vec<Ipv4Addr>, ClientError> {
        let req = AssignIpsRequest {
            eni_id: eni_id.to_owned(),
            count,
        };
        let reply: AssignIpsReply = self.call("AssignPrivateIpAddresses", &req).await?;
        Ok(reply.assigned)
    }

    pub async fn unassign(&self, eni_id: &str, ips: &[Ipv4Addr]) -> Result<(), ClientError> {
        let req = UnassignIpsRequest {
            eni_id: eni_id.to_owned(),
            ips: ips.to_vec(),
        };
        let _: Value = self.call("UnassignPrivateIpAddresses", &req).await?;
        Ok(())
    }

    pub async fn describe(&self, req: &DescribeEnisRequest) -> Result<Vec<Eni>, ClientError> {
        let reply: DescribeEnisReply = self.call("DescribeNetworkInterfaces", req).await?;
        Ok(reply.enis)
    }

    pub async fn describe_instance(&self, instance_id: &str) -> Result<Instance, ClientError> {
        let req = DescribeInstanceRequest {
            instance_id: instance_id.to_owned(),
        };
        self.call("DescribeInstance", &req).await
    }

    pub async fn describe_vswitches(&self) -> Result<Vec<VSwitch>, ClientError> {
        let reply: DescribeVSwitchesReply = self.call("DescribeVSwitches", &json!({})).await?;
        Ok(reply.vswitches)
    }
}

fn eni_req(eni_id: &str) -> EniIdRequest {
    EniIdRequest {
        eni_id: eni_id.to_owned(),
    }
}
