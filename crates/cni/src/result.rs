//! The ADD result: one internal model (the 1.1.0 shape) read from and
//! written to every supported version, following the reference converters
//! (cni `pkg/types/100`, `040`, `020`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::{pretty_json, CniError};
use super::quote::go_quote;
use super::version::CniVersion;

/// A result in the 1.1.0 model. `Serialize` writes the 1.x shape without
/// `cniVersion` (use [`render_result`] for output); `Deserialize` accepts any
/// version's shape like [`parse_result`] with 1.1.0 as the default version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CniResult {
    /// The interfaces created or touched, indexed by `IpConfig::interface`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// The assigned addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// The routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings; the whole key is dropped when empty (the 1.x custom
    /// `MarshalJSON`).
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// `interfaces[]` of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Interface name (always written, even if empty, as in the reference).
    pub name: String,
    /// MAC address as a string.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub mac: Option<String>,
    /// MTU (1.1.0; 0 is never written, Go `omitempty`).
    #[serde(skip_serializing_if = "is_none_or_zero")]
    pub mtu: Option<u32>,
    /// The netns path for a container-side interface; absent for host ones.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub sandbox: Option<String>,
    /// vhost-user / vDPA socket path (1.1.0).
    #[serde(rename = "socketPath", skip_serializing_if = "is_none_or_empty")]
    pub socket_path: Option<String>,
    /// PCI ID of the device (1.1.0).
    #[serde(rename = "pciID", skip_serializing_if = "is_none_or_empty")]
    pub pci_id: Option<String>,
}

/// `ips[]` of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// Index into `interfaces` (0 is a real index and is written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<u32>,
    /// Address with prefix length; host bits are kept ("10.1.0.5/16").
    pub address: IpNet,
    /// Default gateway for this subnet, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// `routes[]` of a result (the reference `types.Route`, shared by 0.3+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; absent means the runtime picks (e.g. the ip's gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (0 never written).
    #[serde(skip_serializing_if = "is_none_or_zero")]
    pub mtu: Option<u32>,
    /// Advertised MSS (0 never written).
    #[serde(skip_serializing_if = "is_none_or_zero")]
    pub advmss: Option<u32>,
    /// Route metric (0 never written).
    #[serde(skip_serializing_if = "is_none_or_zero")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0; a pointer in the reference, so 0 is written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Route scope (1.1.0; a pointer in the reference, so 0 is written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only a destination and an optional gateway.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// `dns` of a result (and of a config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set (the reference `DNS.IsEmpty`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && is_none_or_empty(&self.domain)
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

fn is_none_or_empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

fn is_none_or_zero(n: &Option<u32>) -> bool {
    n.is_none_or(|n| n == 0)
}

impl<'de> Deserialize<'de> for CniResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        parse_result(&v, CniVersion::CURRENT).map_err(|e| serde::de::Error::custom(e.msg))
    }
}

/// Reads a result in any supported version's shape.
///
/// The version is the result's own non-empty `cniVersion`, else
/// `default_version`: what libcni does with plugin output (`fixupResultVersion`)
/// and the reference `ParsePrevResult` with the config's version. Unlike
/// the reference, a result whose version differs from the config's is
/// accepted (any supported version), since the data converts losslessly
/// into this model.
///
/// Shapes: 1.0.0/1.1.0 as is; 0.3.0/0.3.1/0.4.0 with `ips[].version`, which
/// is ignored; 0.1.0/0.2.0 `ip4`/`ip6` with `ip`, `gateway`, `routes`,
/// converted as the reference's up-converter does (ip4 then ip6, their
/// routes concatenated in that order, no interfaces). Unknown keys are
/// ignored, `null` counts as absent, and empty strings and zero MTUs count
/// as unset (Go's zero values). Errors are code 6, naming the JSON path.
pub fn parse_result(value: &Value, default_version: CniVersion) -> Result<CniResult, CniError> {
    parse_result_inner(value, default_version).map_err(CniError::decoding)
}

fn parse_result_inner(value: &Value, default_version: CniVersion) -> Result<CniResult, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", kind(value)))?;
    let version = match opt_str(obj, "cniVersion", "")? {
        None => default_version,
        Some(s) => CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unsupported CNI result version {}", go_quote(&s)))?,
    };
    let dns = match field(obj, "dns") {
        None => Dns::default(),
        Some(v) => parse_dns(v, "dns")?,
    };
    if version.is_legacy_result() {
        let mut result = CniResult {
            dns,
            ..CniResult::default()
        };
        for key in ["ip4", "ip6"] {
            let Some(v) = field(obj, key) else { continue };
            let ipc = as_obj(v, key)?;
            let ip_path = format!("{key}.ip");
            let address = match field(ipc, "ip") {
                Some(v) => parse_ipnet(v, &ip_path)?,
                None => return Err(format!("{ip_path}: missing")),
            };
            let gateway = opt_ip(ipc, "gateway", key)?;
            result.ips.push(IpConfig {
                interface: None,
                address,
                gateway,
            });
            let routes_path = format!("{key}.routes");
            for (i, r) in opt_array(ipc, "routes", key)?.iter().enumerate() {
                result
                    .routes
                    .push(parse_route(r, &format!("{routes_path}[{i}]"))?);
            }
        }
        return Ok(result);
    }
    let mut result = CniResult {
        dns,
        ..CniResult::default()
    };
    for (i, v) in opt_array(obj, "interfaces", "")?.iter().enumerate() {
        result
            .interfaces
            .push(parse_interface(v, &format!("interfaces[{i}]"))?);
    }
    for (i, v) in opt_array(obj, "ips", "")?.iter().enumerate() {
        let path = format!("ips[{i}]");
        let o = as_obj(v, &path)?;
        let address = match field(o, "address") {
            Some(v) => parse_ipnet(v, &format!("{path}.address"))?,
            None => return Err(format!("{path}.address: missing")),
        };
        result.ips.push(IpConfig {
            interface: opt_u32(o, "interface", &path)?,
            address,
            gateway: opt_ip(o, "gateway", &path)?,
        });
    }
    for (i, v) in opt_array(obj, "routes", "")?.iter().enumerate() {
        result.routes.push(parse_route(v, &format!("routes[{i}]"))?);
    }
    Ok(result)
}

fn parse_interface(v: &Value, path: &str) -> Result<Interface, String> {
    let o = as_obj(v, path)?;
    Ok(Interface {
        name: opt_str(o, "name", path)?.unwrap_or_default(),
        mac: opt_str(o, "mac", path)?,
        mtu: opt_u32(o, "mtu", path)?.filter(|&m| m != 0),
        sandbox: opt_str(o, "sandbox", path)?,
        socket_path: opt_str(o, "socketPath", path)?,
        pci_id: opt_str(o, "pciID", path)?,
    })
}

fn parse_route(v: &Value, path: &str) -> Result<Route, String> {
    let o = as_obj(v, path)?;
    let dst = match field(o, "dst") {
        Some(v) => parse_ipnet(v, &format!("{path}.dst"))?,
        None => return Err(format!("{path}.dst: missing")),
    };
    let scope = match opt_u32(o, "scope", path)? {
        None => None,
        Some(s) => Some(
            u8::try_from(s)
                .map_err(|_| format!("{path}.scope: {s} is not a route scope (0-255)"))?,
        ),
    };
    Ok(Route {
        dst,
        gw: opt_ip(o, "gw", path)?,
        mtu: opt_u32(o, "mtu", path)?.filter(|&n| n != 0),
        advmss: opt_u32(o, "advmss", path)?.filter(|&n| n != 0),
        priority: opt_u32(o, "priority", path)?.filter(|&n| n != 0),
        table: opt_u32(o, "table", path)?,
        scope,
    })
}

/// Reads a `dns` object (as found in results and in configs).
pub(crate) fn parse_dns(v: &Value, path: &str) -> Result<Dns, String> {
    let o = as_obj(v, path)?;
    Ok(Dns {
        nameservers: opt_str_list(o, "nameservers", path)?,
        domain: opt_str(o, "domain", path)?,
        search: opt_str_list(o, "search", path)?,
        options: opt_str_list(o, "options", path)?,
    })
}

// --- small typed readers over serde_json::Value, with JSON paths in errors

/// The JSON type name used in error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A key's value, with `null` treated as absent (Go leaves the zero value).
pub(crate) fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: expected an object, found {}", kind(v)))
}

/// An optional string; the empty string counts as absent.
pub(crate) fn opt_str(
    o: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, String> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!(
            "{}: expected a string, found {}",
            join(path, key),
            kind(v)
        )),
    }
}

fn opt_u32(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u32>, String> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{}: expected an integer 0-4294967295, found {v}",
                    join(path, key)
                )
            }),
    }
}

fn opt_array<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a [Value], String> {
    match field(o, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!(
            "{}: expected an array, found {}",
            join(path, key),
            kind(v)
        )),
    }
}

fn opt_str_list(o: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<String>, String> {
    let p = join(path, key);
    opt_array(o, key, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            v => Err(format!("{p}[{i}]: expected a string, found {}", kind(v))),
        })
        .collect()
}

fn opt_ip(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<IpAddr>, String> {
    // Go's net.IP accepts "" as nil.
    match opt_str(o, key, path)? {
        None => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| format!("{}: invalid IP address {}", join(path, key), go_quote(&s))),
    }
}

fn parse_ipnet(v: &Value, path: &str) -> Result<IpNet, String> {
    match v {
        Value::String(s) => s
            .parse::<IpNet>()
            .map_err(|_| format!("{path}: invalid CIDR address {}", go_quote(s))),
        v => Err(format!("{path}: expected a string, found {}", kind(v))),
    }
}

// --- rendering

/// The reference's error when a result cannot be expressed in 0.1.0/0.2.0.
const NO_VALID_IPS: &str = "cannot convert: no valid IP addresses";

mod render;

pub use render::{render_result, render_result_string};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
