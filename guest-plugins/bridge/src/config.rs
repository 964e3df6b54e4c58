//! The bridge configuration: every key of the reference bridge, its defaults, and
//! its validation errors (same messages), parsed from the raw JSON so that a value
//! of the wrong type is reported with its key.

use cni::json::Fields;
use cni::{go_quote, CniArgs, CniError};
use serde_json::Value;

/// The reference's default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// A VLAN range of `vlanTrunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanRange {
    pub min: u16,
    pub max: u16,
}

/// Where masquerade rules go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasqBackend {
    Nftables,
    Iptables,
}

/// The parsed bridge configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConf {
    pub network: String,
    pub cni_version: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub ip_masq_backend: MasqBackend,
    pub mtu: Option<u32>,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    pub vlan: u16,
    pub vlan_trunk: Vec<VlanRange>,
    pub preserve_default_vlan: bool,
    pub macspoofchk: bool,
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// `ipam.type`, or none for L2 mode.
    pub ipam_type: Option<String>,
    /// The config's `dns`, when any field is set (it replaces IPAM's).
    pub dns: Option<Dns>,
    /// The container MAC: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC=`.
    pub mac: Option<String>,
}

/// `dns` of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

type Res<T> = Result<T, CniError>;

/// Code 7 (invalid network config) with the reference's message.
fn err<T>(msg: impl Into<String>) -> Res<T> {
    Err(CniError::invalid_config(msg))
}

/// Parse and validate the config, with CNI_ARGS for the `MAC` key.
pub fn parse(config: &str, cni_args: &[(String, String)]) -> Res<BridgeConf> {
    let value: Value = serde_json::from_str(config)
        .map_err(|e| CniError::invalid_config(format!("failed to load netconf: {e}")))?;
    let Some(m) = value.as_object().map(Fields::root) else {
        return err("failed to load netconf: not a JSON object");
    };
    let bridge = m
        .str("bridge")?
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_BRIDGE)
        .to_string();

    let vlan = match m.int("vlan")? {
        None => 0,
        Some(v) if (0..=4094).contains(&v) => v as u16,
        Some(v) => return err(format!("invalid VLAN ID {v} (must be between 0 and 4094)")),
    };
    let vlan_trunk = parse_trunk(&m)?;

    let ip_masq_backend = match m.str("ipMasqBackend")? {
        None | Some("") | Some("nftables") => MasqBackend::Nftables,
        Some("iptables") => MasqBackend::Iptables,
        Some(other) => return err(format!("unknown ipmasq backend {}", go_quote(other))),
    };

    let mtu = match m.int("mtu")? {
        None | Some(0) => None,
        Some(v) if (68..=65535).contains(&v) => Some(v as u32),
        Some(v) => return err(format!("invalid MTU {v} (must be between 68 and 65535)")),
    };

    let ipam_type = match m.get("ipam") {
        None => None,
        Some(ipam) => Fields::of(ipam, "ipam")?
            .str("type")?
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    };

    let dns = match m.get("dns") {
        None => None,
        Some(d) => {
            let d = Fields::of(d, "dns")?;
            let dns = Dns {
                nameservers: d.str_list("nameservers")?,
                domain: d
                    .str("domain")?
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                search: d.str_list("search")?,
                options: d.str_list("options")?,
            };
            (dns != Dns::default()).then_some(dns)
        }
    };
    let flag = |key: &str| m.bool(key).map(Option::unwrap_or_default);

    let mut conf = BridgeConf {
        network: m.str("name")?.unwrap_or_default().to_string(),
        cni_version: m.str("cniVersion")?.unwrap_or_default().to_string(),
        bridge,
        is_gateway: flag("isGateway")?,
        is_default_gateway: flag("isDefaultGateway")?,
        force_address: flag("forceAddress")?,
        ip_masq: flag("ipMasq")?,
        ip_masq_backend,
        mtu,
        hairpin_mode: flag("hairpinMode")?,
        promisc_mode: flag("promiscMode")?,
        vlan,
        vlan_trunk,
        preserve_default_vlan: flag("preserveDefaultVlan")?,
        macspoofchk: flag("macspoofchk")?,
        enable_dad: flag("enabledad")?,
        disable_container_interface: flag("disableContainerInterface")?,
        port_isolation: flag("portIsolation")?,
        ipam_type,
        dns,
        mac: None,
    };
    conf.mac = container_mac(&m, cni_args)?;

    if conf.is_default_gateway {
        conf.is_gateway = true;
    }
    if conf.hairpin_mode && conf.promisc_mode {
        return err("cannot set hairpin mode and promiscuous mode at the same time");
    }
    if conf.disable_container_interface && conf.ipam_type.is_some() {
        return err("cannot use IPAM when DisableContainerInterface flag is set");
    }
    Ok(conf)
}

fn parse_trunk(m: &Fields<'_>) -> Res<Vec<VlanRange>> {
    let Some(items) = m.array("vlanTrunk")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("vlanTrunk[{i}]");
        let t = Fields::of(item, &path)?;
        let check = |v: i64| -> Res<u16> {
            if (1..=4094).contains(&v) {
                Ok(v as u16)
            } else {
                err(format!(
                    "incorrect trunk vlan id {v} (must be between 1 and 4094)"
                ))
            }
        };
        let (min, max) = (t.int("minID")?, t.int("maxID")?);
        match (min, max) {
            (Some(min), Some(max)) => {
                let (min, max) = (check(min)?, check(max)?);
                if min > max {
                    return err("minID is greater than maxID in trunk parameter");
                }
                out.push(VlanRange { min, max });
            }
            (None, None) => {}
            _ => return err("minID and maxID should be configured simultaneously"),
        }
        if let Some(id) = t.int("id")? {
            let id = check(id)?;
            out.push(VlanRange { min: id, max: id });
        }
    }
    Ok(out)
}

/// The container MAC, by the reference's precedence (the later source wins):
/// CNI_ARGS `MAC=`, then `args.cni.mac`, then `runtimeConfig.mac`.
fn container_mac(m: &Fields<'_>, cni_args: &[(String, String)]) -> Res<Option<String>> {
    let mut mac = None;
    CniArgs::from_pairs(cni_args).load(&["MAC"], |_, v| {
        mac = Some(v.to_string());
        Ok(())
    })?;
    if let Some(args) = m.get("args") {
        if let Some(cni) = Fields::of(args, "args")?.get("cni") {
            if let Some(v) = Fields::of(cni, "args.cni")?.str("mac")? {
                mac = Some(v.to_string());
            }
        }
    }
    if let Some(rc) = m.get("runtimeConfig") {
        if let Some(v) = Fields::of(rc, "runtimeConfig")?.str("mac")? {
            mac = Some(v.to_string());
        }
    }
    match mac {
        Some(mac) if !valid_mac(&mac) => err(format!("invalid MAC address {}", go_quote(&mac))),
        other => Ok(other.map(|m| m.to_ascii_lowercase())),
    }
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::ErrorCode;

    fn conf(extra: &str) -> Res<BridgeConf> {
        parse(
            &format!(r#"{{"cniVersion":"1.0.0","name":"net","type":"bridge"{extra}}}"#),
            &[],
        )
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = conf("").expect("parses");
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.promisc_mode && !c.preserve_default_vlan);
        assert_eq!(c.ip_masq_backend, MasqBackend::Nftables);
        assert_eq!(c.ipam_type, None);
        assert_eq!(c.vlan, 0);
    }

    #[test]
    fn default_gateway_implies_gateway() {
        let c = conf(r#","isDefaultGateway":true"#).expect("parses");
        assert!(c.is_gateway);
    }

    #[test]
    fn validation_errors_name_the_value() {
        let cases = [
            (
                r#","vlan":5000"#,
                "invalid VLAN ID 5000 (must be between 0 and 4094)",
            ),
            (r#","vlan":-1"#, "invalid VLAN ID -1"),
            (
                r#","hairpinMode":true,"promiscMode":true"#,
                "cannot set hairpin mode",
            ),
            (
                r#","disableContainerInterface":true,"ipam":{"type":"host-local"}"#,
                "cannot use IPAM when DisableContainerInterface",
            ),
            (r#","ipMasqBackend":"pf""#, "unknown ipmasq backend \"pf\""),
            (
                r#","isGateway":"yes""#,
                "isGateway: expected a boolean, got \"yes\"",
            ),
            (r#","mtu":"1500""#, "mtu: expected an integer, got \"1500\""),
            (r#","mtu":10"#, "invalid MTU 10"),
            (
                r#","vlanTrunk":[{"minID":10}]"#,
                "configured simultaneously",
            ),
            (r#","vlanTrunk":[{"id":0}]"#, "incorrect trunk vlan id 0"),
            (
                r#","vlanTrunk":[{"minID":20,"maxID":10}]"#,
                "minID is greater than maxID",
            ),
            (
                r#","runtimeConfig":{"mac":"zz"}"#,
                "invalid MAC address \"zz\"",
            ),
            (r#","ipam":[]"#, "ipam: expected an object, got []"),
        ];
        for (extra, want) in cases {
            let e = conf(extra).expect_err(extra);
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{extra}");
            assert!(e.msg.contains(want), "{extra}: {} lacks {want}", e.msg);
        }
    }

    #[test]
    fn mac_precedence_runtime_config_then_args_then_cni_args() {
        let args = vec![("MAC".to_string(), "0a:00:00:00:00:01".to_string())];
        let base = r#"{"cniVersion":"1.0.0","name":"n""#;
        let c = parse(&format!("{base}}}"), &args).expect("parses");
        assert_eq!(c.mac.as_deref(), Some("0a:00:00:00:00:01"));
        let c = parse(
            &format!(r#"{base},"args":{{"cni":{{"mac":"0a:00:00:00:00:02"}}}}}}"#),
            &args,
        )
        .expect("parses");
        assert_eq!(c.mac.as_deref(), Some("0a:00:00:00:00:02"));
        let c = parse(
            &format!(
                r#"{base},"args":{{"cni":{{"mac":"0a:00:00:00:00:02"}}}},"runtimeConfig":{{"mac":"0A:00:00:00:00:03"}}}}"#
            ),
            &args,
        )
        .expect("parses");
        assert_eq!(c.mac.as_deref(), Some("0a:00:00:00:00:03"));
    }

    #[test]
    fn cni_args_unknown_keys() {
        let base = r#"{"cniVersion":"1.0.0","name":"n"}"#;
        let unknown = vec![("FOO".to_string(), "1".to_string())];
        let e = parse(base, &unknown).expect_err("unknown");
        // The shared CNI_ARGS reader: code 4, as host-local and the host say.
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
        assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=1"]"#);
        let ignored = vec![
            ("IgnoreUnknown".to_string(), "1".to_string()),
            ("FOO".to_string(), "1".to_string()),
        ];
        parse(base, &ignored).expect("ignored");
        let k8s = vec![("K8S_POD_NAME".to_string(), "p".to_string())];
        parse(base, &k8s).expect("k8s keys tolerated");
    }

    #[test]
    fn keys_match_like_go_decoding() {
        // encoding/json matches a key ignoring ASCII case; null is absent.
        let c = conf(r#","IsGateway":true,"MTU":1400,"bridge":null"#).expect("parses");
        assert!(c.is_gateway);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.bridge, DEFAULT_BRIDGE);
    }

    #[test]
    fn trunk_ranges() {
        let c = conf(r#","vlanTrunk":[{"id":5},{"minID":10,"maxID":12}]"#).expect("parses");
        assert_eq!(
            c.vlan_trunk,
            vec![VlanRange { min: 5, max: 5 }, VlanRange { min: 10, max: 12 }]
        );
    }

    #[test]
    fn dns_only_when_set() {
        assert_eq!(conf(r#","dns":{}"#).expect("parses").dns, None);
        let c = conf(r#","dns":{"nameservers":["10.0.0.53"]}"#).expect("parses");
        assert_eq!(c.dns.expect("dns").nameservers, vec!["10.0.0.53"]);
    }
}
