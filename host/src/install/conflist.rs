//! The conflist `install --subnet` writes: the bridge with host-local, and any
//! native plugins chained after it.

use super::*;

/// The conflist for `net`, as a value and as the text to write.
pub fn build_conflist(net: &NetworkOptions) -> Result<(Value, String), CniError> {
    cni::CniVersion::parse(&net.cni_version)
        .map_err(|_| bad_value(format!("unsupported --cni-version {:?}", net.cni_version)))?;
    if cni::request::validate_network_name(&net.name).is_err() {
        return Err(bad_value(format!(
            "invalid network name {:?}: letters, digits, '_', '.', '-', starting with a \
             letter or digit",
            net.name
        )));
    }
    cni::request::validate_interface_name(&net.bridge)
        .map_err(|e| bad_value(format!("invalid bridge name {:?}: {}", net.bridge, e.msg)))?;
    let file_ok = net.file_name.ends_with(".conflist")
        && !net.file_name.contains('/')
        && !net.file_name.starts_with('.');
    if !file_ok {
        return Err(bad_value(format!(
            "invalid conflist name {:?}: a file name ending in .conflist",
            net.file_name
        )));
    }
    if net.subnets.is_empty() {
        return Err(bad_value("a conflist needs at least one --subnet".into()));
    }
    for s in &net.subnets {
        if s.trunc() != *s {
            return Err(bad_value(format!(
                "subnet {s} has host bits set; did you mean {}?",
                s.trunc()
            )));
        }
        let too_small = match s {
            IpNet::V4(n) => n.prefix_len() > 30,
            IpNet::V6(n) => n.prefix_len() > 126,
        };
        if too_small {
            return Err(bad_value(format!(
                "subnet {s} is too small for a gateway and a container"
            )));
        }
    }
    if let Some(mtu) = net.mtu {
        if !(68..=65535).contains(&mtu) {
            return Err(bad_value(format!("--mtu {mtu} is outside 68..65535")));
        }
    }
    let mut routes = Vec::new();
    if net.subnets.iter().any(|s| matches!(s, IpNet::V4(_))) {
        routes.push(Route { dst: "0.0.0.0/0" });
    }
    if net.subnets.iter().any(|s| matches!(s, IpNet::V6(_))) {
        routes.push(Route { dst: "::/0" });
    }
    let mut plugins = vec![PluginConf::Bridge(BridgeConf {
        plugin_type: "bridge",
        bridge: &net.bridge,
        is_gateway: true,
        ip_masq: net.ip_masq,
        hairpin_mode: true,
        mtu: net.mtu,
        ipam: HostLocalConf {
            plugin_type: "host-local",
            ranges: net.subnets.iter().map(|s| [Range { subnet: *s }]).collect(),
            routes,
        },
    })];
    for t in &net.chain {
        if t.is_empty()
            || t.starts_with('.')
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad_value(format!("invalid plugin type {t:?} in --chain")));
        }
        let capabilities = match t.as_str() {
            "portmap" => Some(json!({"portMappings": true})),
            "bandwidth" => Some(json!({"bandwidth": true})),
            _ => None,
        };
        plugins.push(PluginConf::Chained(ChainConf {
            plugin_type: t,
            capabilities,
        }));
    }
    let list = ConfList {
        cni_version: &net.cni_version,
        name: &net.name,
        plugins,
    };
    let value = serde_json::to_value(&list).unwrap_or_default();
    let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
    text.push('\n');
    Ok((value, text))
}

// The conflist's shape, so that its keys come out in the order people write them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfList<'a> {
    cni_version: &'a str,
    name: &'a str,
    plugins: Vec<PluginConf<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum PluginConf<'a> {
    Bridge(BridgeConf<'a>),
    Chained(ChainConf<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BridgeConf<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    bridge: &'a str,
    is_gateway: bool,
    ip_masq: bool,
    hairpin_mode: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    ipam: HostLocalConf<'a>,
}

#[derive(Serialize)]
pub(super) struct HostLocalConf<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    ranges: Vec<[Range; 1]>,
    routes: Vec<Route>,
}

#[derive(Serialize)]
pub(super) struct Range {
    subnet: IpNet,
}

#[derive(Serialize)]
pub(super) struct Route {
    dst: &'static str,
}

#[derive(Serialize)]
pub(super) struct ChainConf<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<Value>,
}
