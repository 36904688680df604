//! The CNI environment (spec "Section 2: Execution Protocol"), validated the way libcni's
//! `skel` does before any work starts.

use std::collections::BTreeMap;

use crate::error::PluginError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    fn parse(s: &str) -> Result<Command, PluginError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => return Err(PluginError::Env(format!("unknown CNI_COMMAND: {other:?}"))),
        })
    }
}

/// The Kubernetes args the plugin understands (CNI_ARGS is `K=V;K=V`, in any order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub infra_container_id: String,
    /// `TANDEM_TENANT`: name the tenant explicitly instead of resolving it from the namespace.
    pub tenant: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CniEnv {
    pub command: Command,
    pub container_id: String,
    /// Empty for DEL when the runtime no longer has a netns.
    pub netns: String,
    pub ifname: String,
    pub args: CniArgs,
}

impl CniEnv {
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<CniEnv, PluginError> {
        let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
        let command = Command::parse(get("CNI_COMMAND"))?;
        let mut env = CniEnv {
            command,
            container_id: get("CNI_CONTAINERID").to_string(),
            netns: get("CNI_NETNS").to_string(),
            ifname: get("CNI_IFNAME").to_string(),
            args: CniArgs::default(),
        };
        if command == Command::Version {
            return Ok(env);
        }
        let needs = |c: &[Command]| c.contains(&command);
        let mut missing = Vec::new();
        if get("CNI_PATH").is_empty() {
            missing.push("CNI_PATH");
        }
        let attachment = [Command::Add, Command::Del, Command::Check];
        if needs(&attachment) && env.container_id.is_empty() {
            missing.push("CNI_CONTAINERID");
        }
        if needs(&[Command::Add, Command::Check]) && env.netns.is_empty() {
            missing.push("CNI_NETNS");
        }
        if needs(&attachment) && env.ifname.is_empty() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err(PluginError::Env(format!(
                "required env variables [{}] missing",
                missing.join(",")
            )));
        }
        if needs(&attachment) {
            validate_container_id(&env.container_id)?;
            validate_ifname(&env.ifname)?;
        }
        env.args = parse_args(get("CNI_ARGS"))?;
        Ok(env)
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, as libcni's `ValidateContainerID`.
pub fn validate_container_id(id: &str) -> Result<(), PluginError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(PluginError::Env(format!(
            "invalid characters in CNI_CONTAINERID {id:?}"
        )))
    }
}

/// 1–15 bytes (IFNAMSIZ-1), not `.`/`..`, without `/`, `:` or whitespace (libcni's
/// `ValidateInterfaceName`).
pub fn validate_ifname(name: &str) -> Result<(), PluginError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 15 {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("is not a valid name")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match problem {
        Some(p) => Err(PluginError::Env(format!("interface name {name:?} {p}"))),
        None => Ok(()),
    }
}

fn parse_args(raw: &str) -> Result<CniArgs, PluginError> {
    let mut map = BTreeMap::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| PluginError::Env(format!("CNI_ARGS: invalid pair {pair:?}")))?;
        map.insert(k.to_string(), v.to_string());
    }
    let ignore_unknown = map
        .get("IgnoreUnknown")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
    let mut args = CniArgs::default();
    let mut unknown = Vec::new();
    for (k, v) in map {
        match k.as_str() {
            "IgnoreUnknown" => {}
            "K8S_POD_NAMESPACE" => args.pod_namespace = v,
            "K8S_POD_NAME" => args.pod_name = v,
            "K8S_POD_UID" => args.pod_uid = v,
            "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = v,
            "TANDEM_TENANT" => args.tenant = Some(v),
            _ => unknown.push(k),
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        return Err(PluginError::Env(format!(
            "CNI_ARGS: unknown args {unknown:?} (set IgnoreUnknown=1 to allow them)"
        )));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn args_parse_in_any_order_and_honour_ignore_unknown() {
        let a =
            parse_args("K8S_POD_NAME=web;IgnoreUnknown=1;Foo=bar;K8S_POD_NAMESPACE=acme").unwrap();
        assert_eq!(a.pod_name, "web");
        assert_eq!(a.pod_namespace, "acme");
        assert!(parse_args("Foo=bar").is_err());
        assert!(parse_args("novalue").is_err());
        assert_eq!(parse_args("").unwrap(), CniArgs::default());
    }

    #[test]
    fn validates_like_skel() {
        assert!(validate_container_id("a1_b.c-d").is_ok());
        assert!(validate_container_id("-abc").is_err());
        assert!(validate_container_id("a/b").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("0123456789abcdef").is_err());
        assert!(validate_ifname("a:b").is_err());
        assert!(validate_ifname("a b").is_err());
        assert!(validate_ifname("..").is_err());
    }

    #[test]
    fn netns_is_optional_only_for_del() {
        let base = [
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ];
        let mut v = vars(&base);
        v.insert("CNI_COMMAND".into(), "DEL".into());
        assert!(CniEnv::from_vars(&v).is_ok());
        v.insert("CNI_COMMAND".into(), "ADD".into());
        let err = CniEnv::from_vars(&v).unwrap_err().to_string();
        assert!(err.contains("CNI_NETNS"), "{err}");
        let v = vars(&[("CNI_COMMAND", "VERSION")]);
        assert!(CniEnv::from_vars(&v).is_ok());
        let v = vars(&[("CNI_COMMAND", "GC")]);
        assert!(CniEnv::from_vars(&v)
            .unwrap_err()
            .to_string()
            .contains("CNI_PATH"));
    }
}
