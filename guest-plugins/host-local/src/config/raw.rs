//! The config as JSON gives it, before validation: Go's decoding habits
//! (case-insensitive keys, `null` as absent, empty strings as nil addresses)
//! and messages that name the key and the value.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::Route;
use crate::ip::{self, Cidr};
use cni::json::{field, type_error};
use cni::CniError;

/// The config as decoded, before validation; each range set is kept with the
/// key it came from, for error details.
pub(super) struct RawConfig {
    pub(super) cni_version: String,
    pub(super) ipam: Option<RawIpam>,
    pub(super) runtime_ranges: Vec<(String, Vec<RawRange>)>,
    /// `None` stands for an empty string, which the reference decodes to a nil IP.
    pub(super) runtime_ips: Vec<Option<IpAddr>>,
    pub(super) args_ips: Vec<Option<IpAddr>>,
}

pub(super) struct RawIpam {
    pub(super) legacy: Option<(String, Vec<RawRange>)>,
    pub(super) ranges: Vec<(String, Vec<RawRange>)>,
    pub(super) routes: Vec<Route>,
    pub(super) data_dir: Option<String>,
    pub(super) resolv_conf: Option<String>,
}

#[derive(Default)]
pub(super) struct RawRange {
    pub(super) subnet: Option<Cidr>,
    pub(super) range_start: Option<IpAddr>,
    pub(super) range_end: Option<IpAddr>,
    pub(super) gateway: Option<IpAddr>,
}

impl RawConfig {
    pub(super) fn parse(root: &Value) -> Result<RawConfig, CniError> {
        let root = object(root, "network configuration")?;
        let cni_version = string(root, "cniVersion", "cniVersion")?
            .unwrap_or_default()
            .to_string();
        let mut runtime_ranges = Vec::new();
        let mut runtime_ips = Vec::new();
        if let Some(rc) = field(root, "runtimeConfig") {
            let rc = object(rc, "runtimeConfig")?;
            if let Some(sets) = field(rc, "ipRanges") {
                runtime_ranges = range_sets(sets, "runtimeConfig.ipRanges")?;
            }
            if let Some(ips) = field(rc, "ips") {
                runtime_ips = ip_list(ips, "runtimeConfig.ips")?;
            }
        }
        let mut args_ips = Vec::new();
        if let Some(args) = field(root, "args") {
            let args = object(args, "args")?;
            if let Some(cni) = field(args, "cni") {
                let cni = object(cni, "args.cni")?;
                if let Some(ips) = field(cni, "ips") {
                    args_ips = ip_list(ips, "args.cni.ips")?;
                }
            }
        }
        let ipam = match field(root, "ipam") {
            Some(v) => Some(RawIpam::parse(object(v, "ipam")?)?),
            None => None,
        };
        Ok(RawConfig {
            cni_version,
            ipam,
            runtime_ranges,
            runtime_ips,
            args_ips,
        })
    }
}

impl RawIpam {
    fn parse(ipam: &Map<String, Value>) -> Result<RawIpam, CniError> {
        // `type` is the reference's too, but nothing reads it; only its JSON type is checked.
        string(ipam, "type", "ipam.type")?;
        let data_dir = string(ipam, "dataDir", "ipam.dataDir")?.map(str::to_string);
        let resolv_conf = string(ipam, "resolvConf", "ipam.resolvConf")?.map(str::to_string);
        let routes = match field(ipam, "routes") {
            Some(v) => array(v, "ipam.routes")?
                .iter()
                .enumerate()
                .map(|(i, r)| route(r, &format!("ipam.routes[{i}]")))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let ranges = match field(ipam, "ranges") {
            Some(v) => range_sets(v, "ipam.ranges")?,
            None => Vec::new(),
        };
        // The reference embeds a `*Range` in its IPAM struct, so these four keys may
        // sit directly under `ipam`; it uses them only when `subnet` is set.
        let top = raw_range(ipam, "ipam")?;
        let legacy = top
            .subnet
            .is_some()
            .then(|| ("the legacy ipam.subnet".to_string(), vec![top]));
        Ok(RawIpam {
            legacy,
            ranges,
            routes,
            data_dir,
            resolv_conf,
        })
    }
}

fn range_sets(v: &Value, path: &str) -> Result<Vec<(String, Vec<RawRange>)>, CniError> {
    let mut sets = Vec::new();
    for (i, set) in array(v, path)?.iter().enumerate() {
        let set_path = format!("{path}[{i}]");
        let ranges = array(set, &set_path)?
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let range_path = format!("{set_path}[{j}]");
                raw_range(object(r, &range_path)?, &range_path)
            })
            .collect::<Result<_, _>>()?;
        sets.push((set_path, ranges));
    }
    Ok(sets)
}

fn raw_range(obj: &Map<String, Value>, path: &str) -> Result<RawRange, CniError> {
    let subnet = match string(obj, "subnet", &format!("{path}.subnet"))? {
        Some(s) => Some(Cidr::parse(s).ok_or_else(|| {
            CniError::invalid_config(format!("{path}.subnet: invalid CIDR address: {s}"))
        })?),
        None => None,
    };
    let addr = |key: &str| -> Result<Option<IpAddr>, CniError> {
        match string(obj, key, &format!("{path}.{key}"))? {
            // Go decodes an empty string into a nil `net.IP`: the key counts as absent.
            None | Some("") => Ok(None),
            Some(s) => ip::parse_ip(s).map(Some).ok_or_else(|| {
                CniError::invalid_config(format!("{path}.{key}: invalid IP address: {s}"))
            }),
        }
    };
    Ok(RawRange {
        subnet,
        range_start: addr("rangeStart")?,
        range_end: addr("rangeEnd")?,
        gateway: addr("gateway")?,
    })
}

/// A list of `<ip>[/<prefix>]` strings (CNI's `ip.IP`); an empty string
/// becomes `None`.
fn ip_list(v: &Value, path: &str) -> Result<Vec<Option<IpAddr>>, CniError> {
    array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = format!("{path}[{i}]");
            let Value::String(s) = item else {
                return Err(type_error(&item_path, "a string", item));
            };
            parse_ip_arg(s).map_err(|e| CniError::invalid_config(format!("{item_path}: {e}")))
        })
        .collect()
}

/// CNI's `ip.IP` text form: empty → none, `<ip>/<prefix>` → the host address,
/// `<ip>` → the address.
pub(super) fn parse_ip_arg(s: &str) -> Result<Option<IpAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let parsed = if s.contains('/') {
        Cidr::parse(s).map(|c| ip::canonical(c.addr))
    } else {
        ip::parse_ip(s)
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("invalid IP address {s}"))
}

fn route(v: &Value, path: &str) -> Result<Route, CniError> {
    let obj = object(v, path)?;
    let dst = match string(obj, "dst", &format!("{path}.dst"))? {
        Some(s) => Cidr::parse(s).ok_or_else(|| {
            CniError::invalid_config(format!("{path}.dst: invalid CIDR address: {s}"))
        })?,
        // The reference would print a route to "<nil>"; refuse it instead.
        None => return Err(CniError::invalid_config(format!("{path}: missing \"dst\""))),
    };
    let gw = match string(obj, "gw", &format!("{path}.gw"))? {
        None | Some("") => None,
        Some(s) => Some(
            ip::parse_ip(s)
                .ok_or_else(|| {
                    CniError::invalid_config(format!("{path}.gw: invalid IP address: {s}"))
                })?
                .to_string(),
        ),
    };
    let number = |key: &str| -> Result<Option<u32>, CniError> {
        let Some(v) = field(obj, key) else {
            return Ok(None);
        };
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                type_error(
                    &format!("{path}.{key}"),
                    "an integer from 0 to 4294967295",
                    v,
                )
            })
    };
    let nonzero = |n: Option<u32>| n.filter(|&n| n != 0);
    Ok(Route {
        dst: dst.to_string(),
        gw,
        mtu: nonzero(number("mtu")?),
        advmss: nonzero(number("advmss")?),
        priority: nonzero(number("priority")?),
        table: number("table")?,
        scope: number("scope")?,
    })
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, CniError> {
    v.as_object()
        .ok_or_else(|| type_error(path, "an object", v))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, CniError> {
    v.as_array().ok_or_else(|| type_error(path, "an array", v))
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, CniError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(type_error(path, "a string", v)),
    }
}
