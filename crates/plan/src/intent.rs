//! The host's typed model of what a guest asks for: intents with parsed values.
//!
//! The WIT contract carries addresses and MACs as strings; `runtime` turns them into
//! these types (a string that does not parse is a contract violation), so the
//! validator and the applier only ever see well-formed values.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::IntentKind;

/// Which network namespace an intent or observation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The namespace wasm-cni runs in (the node's side).
    Host,
    /// The invocation's own `CNI_NETNS`.
    Container,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Host => "host",
            Side::Container => "container",
        })
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| format!("invalid MAC {s:?}"))?;
            if part.len() != 2 {
                return Err(format!("invalid MAC {s:?}"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC {s:?}"));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A link in one of the two namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LinkRef {
    pub side: Side,
    pub name: String,
}

impl LinkRef {
    /// A link in the host namespace.
    pub fn host(name: impl Into<String>) -> Self {
        LinkRef {
            side: Side::Host,
            name: name.into(),
        }
    }

    /// A link in the container namespace.
    pub fn container(name: impl Into<String>) -> Self {
        LinkRef {
            side: Side::Container,
            name: name.into(),
        }
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.side, self.name)
    }
}

/// A route in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteIntent {
    pub side: Side,
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub dev: Option<String>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

/// Identifies the masquerade rules of one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AttachmentKey {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

/// Where masquerade rules live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MasqBackend {
    Nftables,
    Iptables,
}

/// One masquerade rule as the host found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MasqRuleFacts {
    pub source: IpNet,
    pub key: AttachmentKey,
}

/// One thing a plugin wants done, with parsed values. Mirrors the WIT `intent`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Intent {
    EnsureBridge {
        name: String,
        mtu: Option<u32>,
        vlan_filtering: bool,
        promisc: bool,
    },
    CreateVeth {
        name: String,
        peer: String,
        mtu: Option<u32>,
        mac: Option<Mac>,
    },
    EnsureHostVeth {
        name: String,
        peer: String,
        mtu: Option<u32>,
    },
    DeleteLink {
        link: LinkRef,
    },
    SetLinkUp {
        link: LinkRef,
    },
    SetLinkDown {
        link: LinkRef,
    },
    SetMtu {
        link: LinkRef,
        mtu: u32,
    },
    SetMac {
        link: LinkRef,
        mac: Mac,
    },
    AttachPort {
        port: String,
        master: String,
        hairpin: bool,
        isolated: bool,
    },
    FlushPortVlans {
        port: String,
    },
    AddPortVlan {
        port: String,
        vid: u16,
        pvid: bool,
        untagged: bool,
    },
    AddAddress {
        link: LinkRef,
        address: IpNet,
        ensure: bool,
    },
    DeleteAddress {
        link: LinkRef,
        address: IpNet,
    },
    AddRoute(RouteIntent),
    SetSysctl {
        side: Side,
        key: String,
        value: String,
    },
    Masquerade {
        source: IpNet,
        key: AttachmentKey,
        backend: MasqBackend,
    },
    Unmasquerade {
        key: AttachmentKey,
    },
    GcMasquerade {
        network: String,
    },
    WaitOperUp {
        link: LinkRef,
    },
    WaitAddressesSettled {
        link: LinkRef,
    },
    SpoofCheck {
        port: String,
        mac: Mac,
        container_id: String,
        ifname: String,
    },
    UnspoofCheck {
        container_id: String,
        ifname: String,
    },
}

impl Intent {
    /// The intent's kind.
    pub fn kind(&self) -> IntentKind {
        match self {
            Intent::EnsureBridge { .. } => IntentKind::EnsureBridge,
            Intent::CreateVeth { .. } => IntentKind::CreateVeth,
            Intent::EnsureHostVeth { .. } => IntentKind::EnsureHostVeth,
            Intent::DeleteLink { .. } => IntentKind::DeleteLink,
            Intent::SetLinkUp { .. } => IntentKind::SetLinkUp,
            Intent::SetLinkDown { .. } => IntentKind::SetLinkDown,
            Intent::SetMtu { .. } => IntentKind::SetMtu,
            Intent::SetMac { .. } => IntentKind::SetMac,
            Intent::AttachPort { .. } => IntentKind::AttachPort,
            Intent::FlushPortVlans { .. } => IntentKind::FlushPortVlans,
            Intent::AddPortVlan { .. } => IntentKind::AddPortVlan,
            Intent::AddAddress { .. } => IntentKind::AddAddress,
            Intent::DeleteAddress { .. } => IntentKind::DeleteAddress,
            Intent::AddRoute(_) => IntentKind::AddRoute,
            Intent::SetSysctl { .. } => IntentKind::SetSysctl,
            Intent::Masquerade { .. } => IntentKind::Masquerade,
            Intent::Unmasquerade { .. } => IntentKind::Unmasquerade,
            Intent::GcMasquerade { .. } => IntentKind::GcMasquerade,
            Intent::WaitOperUp { .. } => IntentKind::WaitOperUp,
            Intent::WaitAddressesSettled { .. } => IntentKind::WaitAddressesSettled,
            Intent::SpoofCheck { .. } => IntentKind::SpoofCheck,
            Intent::UnspoofCheck { .. } => IntentKind::UnspoofCheck,
        }
    }

    /// Every link the intent names, with the namespace it lives in.
    pub fn links(&self) -> Vec<LinkRef> {
        match self {
            Intent::EnsureBridge { name, .. } => vec![LinkRef::host(name)],
            Intent::CreateVeth { name, peer, .. } => {
                vec![LinkRef::container(name), LinkRef::host(peer)]
            }
            Intent::EnsureHostVeth { name, peer, .. } => {
                vec![LinkRef::host(name), LinkRef::host(peer)]
            }
            Intent::DeleteLink { link }
            | Intent::SetLinkUp { link }
            | Intent::SetLinkDown { link }
            | Intent::SetMtu { link, .. }
            | Intent::SetMac { link, .. }
            | Intent::AddAddress { link, .. }
            | Intent::DeleteAddress { link, .. }
            | Intent::WaitOperUp { link }
            | Intent::WaitAddressesSettled { link } => vec![link.clone()],
            Intent::SpoofCheck { port, .. } => vec![LinkRef::host(port)],
            Intent::AttachPort { port, master, .. } => {
                vec![LinkRef::host(port), LinkRef::host(master)]
            }
            Intent::FlushPortVlans { port } | Intent::AddPortVlan { port, .. } => {
                vec![LinkRef::host(port)]
            }
            Intent::AddRoute(r) => r
                .dev
                .iter()
                .map(|d| LinkRef {
                    side: r.side,
                    name: d.clone(),
                })
                .collect(),
            Intent::SetSysctl { .. }
            | Intent::Masquerade { .. }
            | Intent::Unmasquerade { .. }
            | Intent::GcMasquerade { .. }
            | Intent::UnspoofCheck { .. } => vec![],
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str(self.kind().name()),
        }
    }
}

/// What the kernel says about one link, as handed back to a guest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObservedLink {
    pub side: Side,
    pub name: String,
    pub index: u32,
    pub kind: Option<String>,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub admin_up: bool,
    pub oper_up: bool,
    pub promisc: bool,
    pub master: Option<String>,
    pub peer_index: Option<u32>,
    pub addresses: Vec<IpNet>,
}

/// What the kernel says about one route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObservedRoute {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub dev: Option<String>,
    pub priority: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let mac: Mac = "0a:58:0A:00:00:01".parse().expect("valid");
        assert_eq!(mac.to_string(), "0a:58:0a:00:00:01");
        for bad in [
            "",
            "0a:58",
            "0a:58:0a:00:00:01:02",
            "zz:58:0a:00:00:01",
            "a:58:0a:00:00:1",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad} should be rejected");
        }
    }

    /// One intent of `kind`; exhaustive, so a new kind needs a sample here.
    fn sample(kind: IntentKind) -> Intent {
        let link = LinkRef::container("eth0");
        let key = AttachmentKey {
            network: "net".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
        };
        let net: IpNet = "10.0.0.2/24".parse().expect("net");
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        match kind {
            IntentKind::EnsureBridge => Intent::EnsureBridge {
                name: "cni0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            },
            IntentKind::CreateVeth => Intent::CreateVeth {
                name: "eth0".into(),
                peer: "veth0".into(),
                mtu: None,
                mac: None,
            },
            IntentKind::EnsureHostVeth => Intent::EnsureHostVeth {
                name: "veth0".into(),
                peer: "veth1".into(),
                mtu: None,
            },
            IntentKind::DeleteLink => Intent::DeleteLink { link },
            IntentKind::SetLinkUp => Intent::SetLinkUp { link },
            IntentKind::SetLinkDown => Intent::SetLinkDown { link },
            IntentKind::SetMtu => Intent::SetMtu { link, mtu: 1500 },
            IntentKind::SetMac => Intent::SetMac { link, mac },
            IntentKind::AttachPort => Intent::AttachPort {
                port: "veth0".into(),
                master: "cni0".into(),
                hairpin: false,
                isolated: false,
            },
            IntentKind::FlushPortVlans => Intent::FlushPortVlans {
                port: "veth0".into(),
            },
            IntentKind::AddPortVlan => Intent::AddPortVlan {
                port: "veth0".into(),
                vid: 1,
                pvid: true,
                untagged: true,
            },
            IntentKind::AddAddress => Intent::AddAddress {
                link,
                address: net,
                ensure: false,
            },
            IntentKind::DeleteAddress => Intent::DeleteAddress { link, address: net },
            IntentKind::AddRoute => Intent::AddRoute(RouteIntent {
                side: Side::Container,
                dst: net,
                gw: None,
                dev: None,
                priority: None,
                table: None,
                scope: None,
            }),
            IntentKind::SetSysctl => Intent::SetSysctl {
                side: Side::Host,
                key: "net/ipv4/ip_forward".into(),
                value: "1".into(),
            },
            IntentKind::Masquerade => Intent::Masquerade {
                source: net,
                key,
                backend: MasqBackend::Nftables,
            },
            IntentKind::Unmasquerade => Intent::Unmasquerade { key },
            IntentKind::GcMasquerade => Intent::GcMasquerade {
                network: "net".into(),
            },
            IntentKind::WaitOperUp => Intent::WaitOperUp { link },
            IntentKind::WaitAddressesSettled => Intent::WaitAddressesSettled { link },
            IntentKind::SpoofCheck => Intent::SpoofCheck {
                port: "veth0".into(),
                mac,
                container_id: "c".into(),
                ifname: "eth0".into(),
            },
            IntentKind::UnspoofCheck => Intent::UnspoofCheck {
                container_id: "c".into(),
                ifname: "eth0".into(),
            },
        }
    }

    #[test]
    fn every_kind_is_spelled_once() {
        for &kind in IntentKind::ALL {
            let intent = sample(kind);
            assert_eq!(intent.kind(), kind);
            // serde's tag (the audit trail's and `wasm-cni plan`'s spelling) is
            // the kind's name.
            let json = serde_json::to_value(&intent).expect("serializes");
            assert_eq!(json["kind"], kind.name(), "{intent}");
        }
    }

    #[test]
    fn intents_name_their_links() {
        let veth = Intent::CreateVeth {
            name: "eth0".into(),
            peer: "veth1234abcd".into(),
            mtu: None,
            mac: None,
        };
        assert_eq!(
            veth.links(),
            vec![LinkRef::container("eth0"), LinkRef::host("veth1234abcd")]
        );
        assert_eq!(veth.kind(), IntentKind::CreateVeth);
    }
}
