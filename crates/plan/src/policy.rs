//! The administrator's policy: what each plugin may ask for. Read from a
//! root-owned file (`policyFile` in the settings, default
//! `/etc/wasm-cni/policy.json`), never from the network configuration a tenant
//! writes. A plugin is matched by name and/or `sha256:` digest; the bundled
//! bridge, host-local and loopback get built-in grants; any other plugin gets
//! nothing until granted.

use std::fmt;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use cni::{CniError, ErrorCode};

use crate::IntentKind;

/// The policy file read when the settings name none.
pub const DEFAULT_POLICY_PATH: &str = "/etc/wasm-cni/policy.json";

/// The sysctls any grant may name: `<if>` stands for an interface the plugin may
/// touch in that namespace. Nothing outside this list can ever be granted.
pub const SYSCTL_ALLOW_LIST: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/<if>/arp_notify",
    "net/ipv4/conf/<if>/proxy_arp",
    "net/ipv4/conf/<if>/rp_filter",
    "net/ipv6/conf/<if>/accept_ra",
    "net/ipv6/conf/<if>/accept_dad",
    "net/ipv6/conf/<if>/enhanced_dad",
    "net/ipv6/conf/<if>/disable_ipv6",
    "net/ipv6/conf/<if>/keep_addr_on_down",
];

/// A string that must be one of `allowed`, or a deserialization error naming it.
fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    allowed: &[&str],
    what: &str,
) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "{what} {s:?} (allowed: {})",
            allowed.join(", ")
        )))
    }
}

/// A sysctl pattern from [`SYSCTL_ALLOW_LIST`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlPattern(pub String);

impl<'de> Deserialize<'de> for SysctlPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(d, SYSCTL_ALLOW_LIST, "sysctl not on the allow-list:").map(SysctlPattern)
    }
}

/// A link-name pattern: a literal, or with one `*` standing for any text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(pub String);

impl NamePattern {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self.0.split_once('*') {
            None => self.0 == name,
            Some((pre, post)) => {
                name.len() >= pre.len() + post.len()
                    && name.starts_with(pre)
                    && name.ends_with(post)
            }
        }
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.matches('*').count() <= 1
            && s.len() <= 16
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.*".contains(c));
        if ok {
            Ok(NamePattern(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "link name pattern {s:?} must be letters, digits, '-', '_', '.' and at most one '*'"
            )))
        }
    }
}

/// Which plugins a grant applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The plugin type / component name.
    pub name: Option<String>,
    /// `sha256:<64 hex>` of the component.
    #[serde(default, deserialize_with = "digest")]
    pub digest: Option<String>,
}

fn digest<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let hex = s.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(hex.to_ascii_lowercase()))
    } else {
        Err(serde::de::Error::custom(format!(
            "digest {s:?} must be sha256:<64 hex digits>"
        )))
    }
}

/// Per-plugin limits that override the settings' limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitOverrides {
    pub deadline_ms: Option<u64>,
    pub memory_bytes: Option<usize>,
    pub max_intents: Option<usize>,
}

impl LimitOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: &crate::Limits) -> crate::Limits {
        let mut l = base.clone();
        if let Some(ms) = self.deadline_ms {
            l.deadline = std::time::Duration::from_millis(ms);
        }
        if let Some(m) = self.memory_bytes {
            l.memory_bytes = m;
        }
        if let Some(n) = self.max_intents {
            l.max_intents = n;
        }
        l
    }
}

/// The component a grant is looked up for: its name (the plugin type), its
/// digest, and whether it is one of the components bundled into the binary
/// (only those get a built-in grant; an installed file of the same name does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub name: &'a str,
    /// Lowercase hex sha256 of the component's bytes.
    pub sha256: &'a str,
    pub bundled: bool,
}

/// What one plugin may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Grant {
    /// Which plugins this grant is for.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// Intent kinds it may use.
    #[serde(default)]
    pub intents: Vec<IntentKind>,
    /// Bridges it may create or adopt.
    #[serde(default)]
    pub bridges: Vec<NamePattern>,
    /// Existing host links (the node's own bridges, say) it may take up
    /// though wasm-cni did not create them for the network: none by default.
    #[serde(default)]
    pub adopt: Vec<NamePattern>,
    /// Existing host interfaces it may use as a master (none by default).
    #[serde(default)]
    pub uplinks: Vec<NamePattern>,
    /// The address space its networks may use at all: IPAM's results,
    /// addresses on either side, gateways, host routes and masquerade sources
    /// must lie inside. Unset: the policy's `addressSpace`, else
    /// [`DEFAULT_ADDRESS_SPACE`].
    #[serde(default)]
    pub address_space: Option<Vec<IpNet>>,
    /// Where it may assign addresses and route, besides what IPAM returned.
    #[serde(default)]
    pub cidrs: Vec<IpNet>,
    /// Whether it may masquerade (only addresses IPAM returned or in `cidrs`).
    #[serde(default)]
    pub masquerade: bool,
    /// Whether it may add routes in the host namespace (inside `cidrs`).
    #[serde(default)]
    pub host_routes: bool,
    /// Sysctls it may set, from the allow-list.
    #[serde(default)]
    pub sysctls: Vec<SysctlPattern>,
    /// Limits for this plugin.
    #[serde(default)]
    pub limits: LimitOverrides,
}

impl Grant {
    /// The address space in effect.
    pub fn address_space(&self) -> &[IpNet] {
        match &self.address_space {
            Some(space) => space,
            None => default_address_space(),
        }
    }

    /// Whether the grant allows intents of `kind`.
    pub fn allows_kind(&self, kind: IntentKind) -> bool {
        self.intents.contains(&kind)
    }

    /// Whether `key` (e.g. `net/ipv4/conf/eth0/arp_notify`) is granted, given
    /// whether its interface part may be touched.
    pub fn allows_sysctl(&self, key: &str, interface_ok: impl Fn(&str) -> bool) -> bool {
        self.sysctls.iter().any(|p| match p.0.split_once("<if>") {
            None => p.0 == key,
            Some((pre, post)) => key
                .strip_prefix(pre)
                .and_then(|rest| rest.strip_suffix(post))
                .is_some_and(|ifname| !ifname.contains('/') && interface_ok(ifname)),
        })
    }
}

/// The address space when neither the grant nor the policy sets one: the
/// private ranges (RFC 1918, shared address space RFC 6598, unique local
/// IPv6 RFC 4193) and the documentation prefixes the reference plugins'
/// examples use (2001:db8::/32, and 3ffe::/16, the retired 6bone space).
/// Public space a tenant names is refused: the node would route it to them.
pub const DEFAULT_ADDRESS_SPACE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "2001:db8::/32",
    "3ffe::/16",
];

/// [`DEFAULT_ADDRESS_SPACE`], parsed.
pub fn default_address_space() -> &'static [IpNet] {
    static SPACE: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    SPACE.get_or_init(|| {
        DEFAULT_ADDRESS_SPACE
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    })
}

/// The policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// The address space of every grant that sets none of its own.
    #[serde(default)]
    pub address_space: Option<Vec<IpNet>>,
    /// Grants, first match wins.
    #[serde(default)]
    pub plugins: Vec<Grant>,
}

/// A policy file that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}, at {}: {}",
            self.line, self.column, self.path, self.message
        )
    }
}

fn json_error(e: serde_json::Error, path: String) -> PolicyError {
    let message = e.to_string();
    // serde_json appends " at line L column C"; keep the message clean.
    let message = message
        .rsplit_once(" at line ")
        .map(|(m, _)| m.to_string())
        .unwrap_or(message);
    PolicyError {
        line: e.line(),
        column: e.column(),
        path,
        message,
    }
}

fn sysctls(list: &[&str]) -> Vec<SysctlPattern> {
    list.iter().map(|k| SysctlPattern(k.to_string())).collect()
}

impl Policy {
    /// Parse a policy file's text; errors carry line, column and key path.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let policy: Policy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = match e.path().to_string().as_str() {
                "." | "" => "the top level".to_string(),
                p => p.to_string(),
            };
            json_error(e.into_inner(), path)
        })?;
        de.end()
            .map_err(|e| json_error(e, "the end of the file".to_string()))?;
        Ok(policy)
    }

    /// The policy in `path`, or none when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, CniError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CniError::new(
                    ErrorCode::IoFailure,
                    format!("cannot read policy {}: {e}", path.display()),
                ))
            }
        };
        Self::parse(&text).map(Some).map_err(|e| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("invalid policy {}: {e}", path.display()),
            )
            .with_details("fix the file (wasm-cni policy check explains it); nothing was run")
        })
    }

    /// The first grant of the file that matches the component.
    pub fn file_grant<'p>(policy: Option<&'p Policy>, source: &Subject<'_>) -> Option<&'p Grant> {
        policy.and_then(|p| {
            p.plugins.iter().find(|g| {
                let m = &g.matcher;
                (m.name.is_some() || m.digest.is_some())
                    && m.name.as_ref().is_none_or(|n| *n == source.name)
                    && m.digest.as_ref().is_none_or(|d| *d == source.sha256)
            })
        })
    }

    /// Whether an IPAM component may run: the bundled ones may; an installed
    /// one only when a grant of the file matches it (its results are trusted
    /// as the addresses a plan may use, and it gets a state directory, so a
    /// file dropped in the plugin directory must not replace the bundled
    /// host-local unnoticed).
    pub fn may_run_ipam(policy: Option<&Policy>, source: &Subject<'_>) -> bool {
        source.bundled || Self::file_grant(policy, source).is_some()
    }

    /// The grant for a component: the first matching grant of the file, else the
    /// built-in grant of a bundled plugin, else nothing.
    pub fn grant_for(policy: Option<&Policy>, source: &Subject<'_>) -> Grant {
        if let Some(g) = Self::file_grant(policy, source) {
            let mut g = g.clone();
            if g.address_space.is_none() {
                g.address_space = policy.and_then(|p| p.address_space.clone());
            }
            return g;
        }
        if source.bundled {
            if let Some(mut g) = builtin_grant(source.name) {
                g.address_space = policy.and_then(|p| p.address_space.clone());
                return g;
            }
        }
        Grant::default()
    }
}

/// The grants of the bundled plugins: what the reference plugins do.
pub fn builtin_grant(name: &str) -> Option<Grant> {
    let matcher = Matcher {
        name: Some(name.to_string()),
        digest: None,
    };
    match name {
        "loopback" => Some(Grant {
            matcher,
            intents: vec![IntentKind::SetLinkUp, IntentKind::SetLinkDown],
            ..Grant::default()
        }),
        "bridge" => Some(Grant {
            matcher,
            intents: vec![
                IntentKind::EnsureBridge,
                IntentKind::CreateVeth,
                IntentKind::EnsureHostVeth,
                IntentKind::DeleteLink,
                IntentKind::SetLinkUp,
                IntentKind::AttachPort,
                IntentKind::FlushPortVlans,
                IntentKind::AddPortVlan,
                IntentKind::AddAddress,
                IntentKind::DeleteAddress,
                IntentKind::AddRoute,
                IntentKind::SetSysctl,
                IntentKind::Masquerade,
                IntentKind::Unmasquerade,
                IntentKind::GcMasquerade,
                IntentKind::WaitOperUp,
                IntentKind::WaitAddressesSettled,
                IntentKind::SpoofCheck,
                IntentKind::UnspoofCheck,
            ],
            // A drop-in must accept whatever bridge name the config uses.
            bridges: vec![NamePattern("*".into())],
            masquerade: true,
            sysctls: sysctls(SYSCTL_ALLOW_LIST),
            ..Grant::default()
        }),
        "host-local" => Some(Grant {
            matcher,
            ..Grant::default()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_key() {
        let text = "{\n  \"plugins\": [\n    {\"match\": {\"name\": \"x\"},\n     \"intents\": [\"set-link-up\", \"frobnicate\"]}\n  ]\n}";
        let e = Policy::parse(text).expect_err("bad kind");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.path.contains("plugins[0].intents[1]"), "{e}");
        assert!(
            e.message.contains("unknown intent kind \"frobnicate\""),
            "{e}"
        );

        let e = Policy::parse(
            "{\"plugins\": [{\"match\": {}, \"sysctls\": [\"kernel/core_pattern\"]}]}",
        )
        .expect_err("bad sysctl");
        assert!(e.message.contains("not on the allow-list"), "{e}");
        let e = Policy::parse("{\"plugin\": []}").expect_err("typo");
        assert!(e.message.contains("unknown field `plugin`"), "{e}");
        let e = Policy::parse("{\"plugins\": [{\"match\": {\"digest\": \"md5:1\"}}]}")
            .expect_err("digest");
        assert!(e.path.contains("digest"), "{e}");
        let e = Policy::parse("{\"plugins\": [{\"match\": {}, \"cidrs\": [\"10.0.0.0/33\"]}]}")
            .expect_err("cidr");
        assert!(e.path.contains("cidrs[0]"), "{e}");
    }

    const AB: &str = "abababababababababababababababababababababababababababababababab";
    const CD: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

    fn source(name: &str, bundled: bool) -> Subject<'_> {
        Subject {
            name,
            sha256: AB,
            bundled,
        }
    }

    #[test]
    fn grants_match_by_name_and_digest_and_default_to_nothing() {
        let p = Policy::parse(&format!(
            r#"{{"plugins": [
                {{"match": {{"name": "tenant", "digest": "sha256:{}"}}, "intents": ["set-link-up"]}},
                {{"match": {{"name": "bridge"}}, "intents": ["create-veth"]}}
            ]}}"#,
            "AB".repeat(32)
        ))
        .expect("parses");
        let g = Policy::grant_for(Some(&p), &source("tenant", false));
        assert!(g.allows_kind(IntentKind::SetLinkUp));
        let mut other = source("tenant", false);
        other.sha256 = CD;
        assert_eq!(Policy::grant_for(Some(&p), &other).intents, vec![]);
        // A file grant replaces the built-in one.
        let b = Policy::grant_for(Some(&p), &source("bridge", true));
        assert!(b.allows_kind(IntentKind::CreateVeth) && !b.allows_kind(IntentKind::Masquerade));
        // No file: bundled plugins get their built-in grant, others nothing.
        assert!(Policy::grant_for(None, &source("bridge", true)).masquerade);
        let installed = Policy::grant_for(None, &source("bridge", false));
        assert!(
            installed.intents.is_empty(),
            "an installed file is not the bundled bridge"
        );
    }

    #[test]
    fn patterns_and_sysctls() {
        let p = NamePattern("cni*".into());
        assert!(p.matches("cni0") && p.matches("cni") && !p.matches("docker0"));
        assert!(NamePattern("*".into()).matches("anything"));
        assert!(
            NamePattern("br0".into()).matches("br0") && !NamePattern("br0".into()).matches("br01")
        );
        let g = builtin_grant("bridge").expect("bridge");
        assert!(g.allows_sysctl("net/ipv4/ip_forward", |_| false));
        assert!(g.allows_sysctl("net/ipv4/conf/eth0/arp_notify", |i| i == "eth0"));
        assert!(!g.allows_sysctl("net/ipv4/conf/eth1/arp_notify", |i| i == "eth0"));
        assert!(!g.allows_sysctl("net/ipv4/conf/a/b/arp_notify", |_| true));
        assert!(!g.allows_sysctl("kernel/core_pattern", |_| true));
    }
}
