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

/// Renders `r` in version `v`, as the reference converters followed by Go's
/// JSON encoding produce it. Every rendering carries `cniVersion`.
///
/// - 1.0.0/1.1.0: the model as is (`dns` dropped when empty).
/// - 0.3.0/0.3.1/0.4.0: each ip gains `"version": "4"|"6"`; interfaces keep
///   only name/mac/sandbox; routes keep every field; `dns` is always written
///   (`{}` when empty: these versions have no custom marshaller and Go's
///   `omitempty` never omits a struct).
/// - 0.1.0/0.2.0: the first v4 and first v6 address become `ip4`/`ip6`
///   (with gateway); routes go to the block of their destination's family,
///   reduced to `{dst, gw}`, and are dropped if that family has no address;
///   interfaces and ip interface indices are dropped; `dns` always written.
///   With no address at all this fails with the reference's message
///   `cannot convert: no valid IP addresses`, code 999: the reference
///   surfaces it as an untyped plugin error (999), and neither 1 (the
///   version itself is supported) nor 2 (no offending key) would say more.
pub fn render_result(r: &CniResult, v: CniVersion) -> Result<Value, CniError> {
    let mut out = Map::new();
    out.insert("cniVersion".into(), Value::from(v.as_str()));
    if v.is_legacy_result() {
        let v4 = r.ips.iter().find(|ip| matches!(ip.address, IpNet::V4(_)));
        let v6 = r.ips.iter().find(|ip| matches!(ip.address, IpNet::V6(_)));
        if v4.is_none() && v6.is_none() {
            return Err(CniError::internal(NO_VALID_IPS));
        }
        for (key, ip, want_v4) in [("ip4", v4, true), ("ip6", v6, false)] {
            let Some(ip) = ip else { continue };
            let mut block = Map::new();
            block.insert("ip".into(), Value::from(ip.address.to_string()));
            if let Some(gw) = ip.gateway {
                block.insert("gateway".into(), Value::from(gw.to_string()));
            }
            let routes: Vec<Value> = r
                .routes
                .iter()
                .filter(|rt| matches!(rt.dst, IpNet::V4(_)) == want_v4)
                .map(|rt| to_value(&Route::new(rt.dst, rt.gw)))
                .collect::<Result<_, _>>()?;
            if !routes.is_empty() {
                block.insert("routes".into(), Value::Array(routes));
            }
            out.insert(key.into(), Value::Object(block));
        }
        out.insert("dns".into(), to_value(&r.dns)?);
    } else if v.is_04x_result() {
        if !r.interfaces.is_empty() {
            let ifs = r
                .interfaces
                .iter()
                .map(|i| {
                    to_value(&Interface {
                        name: i.name.clone(),
                        mac: i.mac.clone(),
                        sandbox: i.sandbox.clone(),
                        ..Interface::default()
                    })
                })
                .collect::<Result<_, _>>()?;
            out.insert("interfaces".into(), Value::Array(ifs));
        }
        if !r.ips.is_empty() {
            let ips = r
                .ips
                .iter()
                .map(|ip| {
                    let mut o = match to_value(ip)? {
                        Value::Object(o) => o,
                        _ => Map::new(),
                    };
                    let family = if matches!(ip.address, IpNet::V4(_)) {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".into(), Value::from(family));
                    Ok(Value::Object(o))
                })
                .collect::<Result<_, CniError>>()?;
            out.insert("ips".into(), Value::Array(ips));
        }
        if !r.routes.is_empty() {
            out.insert("routes".into(), to_value(&r.routes)?);
        }
        out.insert("dns".into(), to_value(&r.dns)?);
    } else if let Value::Object(body) = to_value(r)? {
        out.extend(body);
    }
    Ok(Value::Object(out))
}

/// [`render_result`] pretty-printed for stdout (four-space indent as the
/// reference, plus a trailing newline).
pub fn render_result_string(r: &CniResult, v: CniVersion) -> Result<String, CniError> {
    let value = render_result(r, v)?;
    pretty_json(&value).map_err(|e| CniError::internal(format!("rendering result: {e}")))
}

fn to_value<T: Serialize>(t: &T) -> Result<Value, CniError> {
    serde_json::to_value(t).map_err(|e| CniError::internal(format!("rendering result: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::error::ErrorCode;
    use super::*;
    use serde_json::json;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A bridge-like ADD result: bridge, host veth, container veth (with
    /// sandbox), one v4 and one v6 address on interface 2, a default route
    /// per family, one route using every optional field, and DNS. The
    /// container interface also carries the 1.1-only mtu/socketPath/pciID
    /// so the down-converters' dropping shows.
    fn rich() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: Some("0a:58:0a:58:00:01".into()),
                    mtu: Some(1500),
                    ..Interface::default()
                },
                Interface {
                    name: "veth3243a1b2".into(),
                    mac: Some("be:ef:12:34:56:78".into()),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:58:00:05".into()),
                    mtu: Some(1450),
                    sandbox: Some("/var/run/netns/test-ns".into()),
                    socket_path: Some("/run/vhost/eth0.sock".into()),
                    pci_id: Some("0000:00:1f.6".into()),
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(2),
                    address: net("10.88.0.5/16"),
                    gateway: Some(ip("10.88.0.1")),
                },
                IpConfig {
                    interface: Some(2),
                    address: net("2001:4860:4860::5/64"),
                    gateway: Some(ip("2001:4860:4860::1")),
                },
            ],
            routes: vec![
                Route::new(net("0.0.0.0/0"), Some(ip("10.88.0.1"))),
                Route::new(net("::/0"), Some(ip("2001:4860:4860::1"))),
                Route {
                    dst: net("192.168.100.0/24"),
                    gw: Some(ip("10.88.0.254")),
                    mtu: Some(1400),
                    advmss: Some(1360),
                    priority: Some(100),
                    table: Some(0),
                    scope: Some(0),
                },
            ],
            dns: Dns {
                nameservers: vec!["10.88.0.1".into(), "2001:4860:4860::8888".into()],
                domain: Some("cluster.local".into()),
                search: vec![
                    "default.svc.cluster.local".into(),
                    "svc.cluster.local".into(),
                ],
                options: vec!["ndots:5".into()],
            },
        }
    }

    fn golden(v: CniVersion) -> Value {
        let text = match v {
            CniVersion::V010 => include_str!("testdata/rich-0.1.0.json"),
            CniVersion::V020 => include_str!("testdata/rich-0.2.0.json"),
            CniVersion::V030 => include_str!("testdata/rich-0.3.0.json"),
            CniVersion::V031 => include_str!("testdata/rich-0.3.1.json"),
            CniVersion::V040 => include_str!("testdata/rich-0.4.0.json"),
            CniVersion::V100 => include_str!("testdata/rich-1.0.0.json"),
            CniVersion::V110 => include_str!("testdata/rich-1.1.0.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn golden_render_every_version() {
        for v in CniVersion::ALL {
            assert_eq!(render_result(&rich(), v).unwrap(), golden(v), "version {v}");
        }
    }

    #[test]
    fn golden_string_is_pretty_with_newline() {
        for v in CniVersion::ALL {
            let s = render_result_string(&rich(), v).unwrap();
            assert!(s.ends_with("}\n"), "{v}");
            assert!(s.contains("\n    \"cniVersion\": "), "{v}");
            let back: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(back, golden(v));
        }
    }

    #[test]
    fn golden_parse_round_trips() {
        for v in CniVersion::ALL {
            let g = golden(v);
            // Parsed with a different default: the result's own version wins.
            let other = if v == CniVersion::V110 {
                CniVersion::V010
            } else {
                CniVersion::V110
            };
            let parsed = parse_result(&g, other).unwrap();
            assert_eq!(render_result(&parsed, v).unwrap(), g, "version {v}");
        }
        // 1.x loses nothing.
        assert_eq!(
            parse_result(&golden(CniVersion::V110), CniVersion::V110).unwrap(),
            rich()
        );
        // 0.4.0 loses the 1.1-only interface fields.
        let mut expect = rich();
        for i in &mut expect.interfaces {
            i.mtu = None;
            i.socket_path = None;
            i.pci_id = None;
        }
        assert_eq!(
            parse_result(&golden(CniVersion::V040), CniVersion::V040).unwrap(),
            expect
        );
        // 0.2.0 keeps one address per family and reduced routes.
        let expect = CniResult {
            interfaces: vec![],
            ips: rich()
                .ips
                .into_iter()
                .map(|i| IpConfig {
                    interface: None,
                    ..i
                })
                .collect(),
            routes: rich()
                .routes
                .into_iter()
                .map(|r| Route::new(r.dst, r.gw))
                .collect(),
            dns: rich().dns,
        };
        // ip4's routes come before ip6's on the way up.
        let mut expect = expect;
        expect.routes = vec![
            expect.routes[0].clone(),
            expect.routes[2].clone(),
            expect.routes[1].clone(),
        ];
        assert_eq!(
            parse_result(&golden(CniVersion::V020), CniVersion::V020).unwrap(),
            expect
        );
    }

    #[test]
    fn prev_result_without_version_uses_default() {
        let legacy = json!({"ip4": {"ip": "10.0.0.2/24"}});
        let r = parse_result(&legacy, CniVersion::V020).unwrap();
        assert_eq!(r.ips[0].address, net("10.0.0.2/24"));
        // The same object read as 1.x has no ips at all.
        assert_eq!(
            parse_result(&legacy, CniVersion::V100).unwrap(),
            CniResult::default()
        );
        let modern = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}], "cniVersion": ""});
        let r = parse_result(&modern, CniVersion::V040).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].interface, None);
    }

    #[test]
    fn l2_result_cannot_be_legacy() {
        let l2 = CniResult {
            interfaces: rich().interfaces,
            ..CniResult::default()
        };
        for v in [CniVersion::V010, CniVersion::V020] {
            let e = render_result(&l2, v).unwrap_err();
            assert_eq!(e.code, ErrorCode::Internal);
            assert_eq!(e.msg, "cannot convert: no valid IP addresses");
            assert!(render_result_string(&l2, v).is_err());
        }
        assert_eq!(
            render_result(&l2, CniVersion::V040).unwrap(),
            json!({
                "cniVersion": "0.4.0",
                "interfaces": [
                    {"name": "cni0", "mac": "0a:58:0a:58:00:01"},
                    {"name": "veth3243a1b2", "mac": "be:ef:12:34:56:78"},
                    {"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": "/var/run/netns/test-ns"}
                ],
                "dns": {}
            })
        );
        let v1 = render_result(&l2, CniVersion::V110).unwrap();
        assert!(v1.get("dns").is_none());
        assert!(v1.get("ips").is_none());
        assert_eq!(v1["interfaces"][0]["mtu"], 1500);
    }

    #[test]
    fn legacy_keeps_first_ip_per_family_and_drops_orphan_routes() {
        let r = CniResult {
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: net("10.0.0.2/24"),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(0),
                    address: net("10.0.1.2/24"),
                    gateway: Some(ip("10.0.1.1")),
                },
            ],
            routes: vec![
                Route::new(net("10.10.0.0/16"), None),
                Route::new(net("fd00::/8"), Some(ip("fd00::1"))),
            ],
            ..CniResult::default()
        };
        assert_eq!(
            render_result(&r, CniVersion::V010).unwrap(),
            json!({
                "cniVersion": "0.1.0",
                "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "10.10.0.0/16"}]},
                "dns": {}
            })
        );
    }

    #[test]
    fn loopback_shapes() {
        // What the reference loopback prints without a prevResult.
        let r = CniResult {
            interfaces: vec![Interface {
                name: "lo".into(),
                mac: Some("00:00:00:00:00:00".into()),
                sandbox: Some("/var/run/netns/x".into()),
                ..Interface::default()
            }],
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: net("127.0.0.1/8"),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(0),
                    address: net("::1/128"),
                    gateway: None,
                },
            ],
            ..CniResult::default()
        };
        assert_eq!(
            render_result(&r, CniVersion::V100).unwrap(),
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/x"}],
                "ips": [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}]
            })
        );
        assert_eq!(
            render_result(&r, CniVersion::V020).unwrap(),
            json!({"cniVersion": "0.2.0", "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"}, "dns": {}})
        );
    }

    #[test]
    fn empty_result_renders() {
        let r = CniResult::default();
        assert_eq!(
            render_result(&r, CniVersion::V110).unwrap(),
            json!({"cniVersion": "1.1.0"})
        );
        assert_eq!(
            render_result(&r, CniVersion::V031).unwrap(),
            json!({"cniVersion": "0.3.1", "dns": {}})
        );
    }

    #[test]
    fn zero_values_like_go() {
        let v = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "", "mtu": 0, "sandbox": ""}],
            "ips": [{"address": "10.0.0.2/24", "gateway": "", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": null, "mtu": 0, "advmss": 0, "priority": 0, "table": 0, "scope": 0}],
            "dns": {"nameservers": null, "domain": ""}
        });
        let r = parse_result(&v, CniVersion::V110).unwrap();
        assert_eq!(
            r.interfaces[0],
            Interface {
                name: "eth0".into(),
                ..Interface::default()
            }
        );
        assert_eq!(r.ips[0].gateway, None);
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(r.routes[0].mtu, None);
        assert_eq!(r.routes[0].table, Some(0));
        assert!(r.dns.is_empty());
        assert_eq!(
            render_result(&r, CniVersion::V110).unwrap(),
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0"}],
                "ips": [{"address": "10.0.0.2/24", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "table": 0, "scope": 0}]
            })
        );
        // Some(0)/Some("") built in code are omitted the same way.
        let r = CniResult {
            interfaces: vec![Interface {
                name: String::new(),
                mac: Some(String::new()),
                mtu: Some(0),
                ..Interface::default()
            }],
            ..CniResult::default()
        };
        assert_eq!(
            render_result(&r, CniVersion::V110).unwrap(),
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": ""}]})
        );
    }

    #[test]
    fn parse_errors_name_the_path() {
        let cases = [
            (json!([]), "expected a JSON object, found array"),
            (
                json!({"cniVersion": 1}),
                "cniVersion: expected a string, found number",
            ),
            (
                json!({"cniVersion": "0.5.0"}),
                "unsupported CNI result version \"0.5.0\"",
            ),
            (json!({"ips": {}}), "ips: expected an array, found object"),
            (
                json!({"ips": [{"address": "10.0.0.1"}]}),
                "ips[0].address: invalid CIDR address \"10.0.0.1\"",
            ),
            (json!({"ips": [{}]}), "ips[0].address: missing"),
            (
                json!({"ips": [{"address": "10.0.0.1/8", "gateway": "x"}]}),
                "ips[0].gateway: invalid IP address \"x\"",
            ),
            (
                json!({"ips": [{"address": "10.0.0.1/8", "interface": -1}]}),
                "ips[0].interface: expected an integer 0-4294967295, found -1",
            ),
            (
                json!({"interfaces": [{"name": 5}]}),
                "interfaces[0].name: expected a string, found number",
            ),
            (
                json!({"interfaces": ["eth0"]}),
                "interfaces[0]: expected an object, found string",
            ),
            (
                json!({"routes": [{"dst": "0.0.0.0/0", "scope": 300}]}),
                "routes[0].scope: 300 is not a route scope (0-255)",
            ),
            (
                json!({"routes": [{"gw": "10.0.0.1"}]}),
                "routes[0].dst: missing",
            ),
            (
                json!({"dns": {"nameservers": [1]}}),
                "dns.nameservers[0]: expected a string, found number",
            ),
            (json!({"dns": "x"}), "dns: expected an object, found string"),
            (
                json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
                "ip4.ip: missing",
            ),
            (
                json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::2/64", "routes": [{"dst": 1}]}}),
                "ip6.routes[0].dst: expected a string, found number",
            ),
        ];
        for (v, msg) in cases {
            let e = parse_result(&v, CniVersion::V110).unwrap_err();
            assert_eq!(e.code, ErrorCode::DecodingFailure, "{v}");
            assert_eq!(e.msg, msg, "{v}");
        }
    }

    #[test]
    fn deserialize_and_serialize() {
        let r: CniResult = serde_json::from_value(golden(CniVersion::V040)).unwrap();
        assert_eq!(r.ips.len(), 2);
        let v = serde_json::to_value(rich()).unwrap();
        assert!(v.get("cniVersion").is_none());
        let mut g = golden(CniVersion::V110);
        if let Value::Object(o) = &mut g {
            o.remove("cniVersion");
        }
        assert_eq!(v, g);
        assert!(serde_json::from_value::<CniResult>(json!({"ips": 1})).is_err());
    }
}
