//! The `validate_plan` input: a fuzz-side description of an invocation and a plan,
//! decoded with `arbitrary` and turned into the host's [`Intent`]s.
//!
//! Names are not arbitrary strings: those would almost never equal `CNI_IFNAME` or a
//! name that another intent of the plan creates, and the validator's interesting
//! decisions are all about such equalities. They come instead from a few names that
//! matter ([`NameInput`]), a table of edge cases and a small alphabet that has the
//! characters the kernel refuses ('/', ':', whitespace) and multi-byte ones.
//!
//! [`Encode`] writes a description back as the bytes `arbitrary` decodes it from, so
//! the seed corpus can hold real plans (`examples/plan_seeds.rs` writes them from
//! [`seeds`]); a unit test checks that the two agree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use ipnet::IpNet;

use crate::cni::{CniResult, IpConfig};
use crate::plan::{
    AttachmentKey, Intent, IntentKind, LinkRef, Mac, MasqBackend, RouteIntent, Side,
};
use crate::policy::{Grant, NamePattern, SysctlPattern, SYSCTL_ALLOW_LIST};
use crate::validate::{ContainerNs, Invocation};

/// Names with a meaning of their own for the validator, or just past an edge.
pub const NAME_TABLE: &[&str] = &[
    "",
    ".",
    "..",
    "eth1",
    "cni1",
    "a/b",
    "a:b",
    "a b",
    "eth0 ",
    "eth0\n",
    "eth\t0",
    "eth\u{a0}0",
    "eth\u{2028}0",
    "eth\u{85}",
    "eth\u{1}",
    "eth\u{7f}",
    "LO",
    "lo ",
    "exactly15charsx",
    "sixteen-chars-xx",
    "ééééééé",
    "éééééééé",
    "a-name-that-is-far-too-long-for-ifnamsiz",
    "net",
    "ctr",
    "all",
    "default",
    "eth0/../../kernel",
    "../../kernel",
    "ipv4",
];

/// The characters of [`NameInput::Chars`].
pub const NAME_ALPHABET: &[char] = &[
    'e', 't', 'h', '0', '1', 'l', 'o', 'v', 'c', 'n', 'i', 'x', '.', '-', '_', '/', ':', ' ', '\t',
    '\n', '\u{a0}', '\u{85}', '\u{2028}', 'é', '\u{1}', '\u{7f}',
];

/// Sysctl keys that are not per interface: the two the validator allows and near misses.
pub const GLOBAL_SYSCTL_TABLE: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/ip_forward/",
    "/net/ipv4/ip_forward",
    "net/ipv4//ip_forward",
    "net/ipv6/conf/default/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net.ipv4.ip_forward",
    "kernel/core_pattern",
    "",
];

/// The protocol part of a per-interface sysctl key.
pub const SYSCTL_FAMILY_TABLE: &[&str] = &["ipv4", "ipv6", "ipv5", "IPV4", ""];

/// The last part of a per-interface sysctl key: every leaf the validator allows for
/// either family (so also the other family's), and near misses.
pub const SYSCTL_LEAF_TABLE: &[&str] = &[
    "arp_notify",
    "proxy_arp",
    "rp_filter",
    "accept_ra",
    "accept_dad",
    "enhanced_dad",
    "disable_ipv6",
    "keep_addr_on_down",
    "forwarding",
    "mc_forwarding",
    "rp_filter/",
    "rp_filter/../../../kernel/core_pattern",
    "..",
    "",
];

/// Sysctl values (the validator does not look at them).
pub const SYSCTL_VALUE_TABLE: &[&str] = &["1", "0", "2", "", "1\n", "-1", "x"];

/// Link-name patterns for a grant's bridges and uplinks; all of them are patterns a
/// policy file may hold (a unit test parses them).
pub const PATTERN_TABLE: &[&str] = &[
    "*",
    "cni*",
    "cni0",
    "cni1",
    "eth*",
    "*0",
    "veth*",
    "lo",
    "l*",
    "e*0",
    "br-*",
    "sixteen-chars-xx",
    "exactly15charsx",
];

/// One invocation and one plan.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct PlanInput {
    /// What the validator is told about the invocation.
    pub inv: InvInput,
    /// The plan.
    pub intents: Vec<IntentInput>,
}

/// The invocation side of [`Invocation`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct InvInput {
    /// `CNI_IFNAME`; [`NameInput::Ifname`] here means "eth0".
    pub ifname: NameInput,
    /// The container namespace.
    pub container: NsInput,
    /// The intent limit.
    pub max_intents: u8,
    /// The network's name; [`NameInput::Ifname`] means `CNI_IFNAME`.
    pub network: NameInput,
    /// `CNI_CONTAINERID`; [`NameInput::Ifname`] means `CNI_IFNAME`.
    pub container_id: NameInput,
    /// What the plugin is granted.
    pub grant: GrantInput,
    /// What IPAM returned: the addresses of each result.
    pub ipam: Vec<Vec<IpamIpInput>>,
}

/// A [`Grant`], with only values a policy file may hold.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct GrantInput {
    /// The intent kinds: all, or bit `d` for the [`IntentKind`] whose
    /// discriminant is `d`.
    pub intents: Option<u32>,
    /// Bridge patterns, from [`PATTERN_TABLE`].
    pub bridges: Vec<u8>,
    /// Uplink patterns, from [`PATTERN_TABLE`].
    pub uplinks: Vec<u8>,
    /// Granted CIDRs.
    pub cidrs: Vec<NetInput>,
    pub masquerade: bool,
    pub host_routes: bool,
    /// The sysctls: all, or bit `i` for [`SYSCTL_ALLOW_LIST`]`[i]`.
    pub sysctls: Option<u16>,
}

/// One address of an IPAM result.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct IpamIpInput {
    pub address: NetInput,
    pub gateway: Option<AddrInput>,
}

/// [`ContainerNs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum NsInput {
    Present,
    Gone,
    Absent,
}

/// [`Side`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum SideInput {
    Host,
    Container,
}

/// A name, of a link or anything else.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum NameInput {
    /// The invocation's `CNI_IFNAME`.
    Ifname,
    /// `lo`.
    Lo,
    /// `eth0`.
    Eth0,
    /// `cni0`, the bridge plugin's default bridge.
    Bridge,
    /// `veth0badc0de`, a host-side veth end.
    Veth,
    /// An entry of [`NAME_TABLE`] (modulo its length).
    Table(u8),
    /// Characters of [`NAME_ALPHABET`] (each modulo its length).
    Chars(Vec<u8>),
}

/// A link: a name in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct LinkInput {
    pub side: SideInput,
    pub name: NameInput,
}

/// A field that the validator compares with the invocation.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum InvField {
    /// The invocation's own value for the field.
    Same,
    /// Another name.
    Name(NameInput),
}

/// [`AttachmentKey`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct KeyInput {
    pub network: InvField,
    pub container_id: InvField,
    pub ifname: InvField,
}

/// An address with a prefix length (modulo the family's maximum plus one).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum NetInput {
    V4([u8; 4], u8),
    V6([u8; 16], u8),
}

/// An address.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum AddrInput {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// A sysctl key.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum SysctlKeyInput {
    /// An entry of [`GLOBAL_SYSCTL_TABLE`].
    Global(u8),
    /// `net/<family>/conf/<ifname>/<leaf>`, from [`SYSCTL_FAMILY_TABLE`] and
    /// [`SYSCTL_LEAF_TABLE`].
    PerIf {
        family: u8,
        ifname: NameInput,
        leaf: u8,
    },
}

/// One intent; mirrors [`Intent`] variant for variant. Its encoding starts with
/// the kind's discriminant ([`IntentKind`], one byte), which never changes when
/// kinds are added, so the committed corpus keeps its meaning; a byte that is no
/// kind's discriminant is not an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentInput {
    EnsureBridge {
        name: NameInput,
        mtu: Option<u32>,
        vlan_filtering: bool,
        promisc: bool,
    },
    CreateVeth {
        name: NameInput,
        peer: NameInput,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    },
    DeleteLink {
        link: LinkInput,
    },
    SetLinkUp {
        link: LinkInput,
    },
    SetLinkDown {
        link: LinkInput,
    },
    SetMtu {
        link: LinkInput,
        mtu: u32,
    },
    SetMac {
        link: LinkInput,
        mac: [u8; 6],
    },
    AttachPort {
        port: NameInput,
        master: NameInput,
        hairpin: bool,
        isolated: bool,
    },
    FlushPortVlans {
        port: NameInput,
    },
    AddPortVlan {
        port: NameInput,
        vid: u16,
        pvid: bool,
        untagged: bool,
    },
    AddAddress {
        link: LinkInput,
        address: NetInput,
        ensure: bool,
    },
    DeleteAddress {
        link: LinkInput,
        address: NetInput,
    },
    AddRoute {
        side: SideInput,
        dst: NetInput,
        gw: Option<AddrInput>,
        dev: Option<NameInput>,
        priority: Option<u32>,
        table: Option<u32>,
        scope: Option<u8>,
    },
    SetSysctl {
        side: SideInput,
        key: SysctlKeyInput,
        value: u8,
    },
    Masquerade {
        source: NetInput,
        key: KeyInput,
        iptables: bool,
    },
    Unmasquerade {
        key: KeyInput,
    },
    GcMasquerade {
        network: InvField,
    },
    WaitOperUp {
        link: LinkInput,
    },
    WaitAddressesSettled {
        link: LinkInput,
    },
    SpoofCheck {
        port: NameInput,
        mac: [u8; 6],
        container_id: InvField,
        ifname: InvField,
    },
    UnspoofCheck {
        container_id: InvField,
        ifname: InvField,
    },
    EnsureHostVeth {
        name: NameInput,
        peer: NameInput,
        mtu: Option<u32>,
    },
}

impl IntentInput {
    /// The kind of intent this describes.
    pub fn kind(&self) -> IntentKind {
        match self {
            IntentInput::EnsureBridge { .. } => IntentKind::EnsureBridge,
            IntentInput::CreateVeth { .. } => IntentKind::CreateVeth,
            IntentInput::DeleteLink { .. } => IntentKind::DeleteLink,
            IntentInput::SetLinkUp { .. } => IntentKind::SetLinkUp,
            IntentInput::SetLinkDown { .. } => IntentKind::SetLinkDown,
            IntentInput::SetMtu { .. } => IntentKind::SetMtu,
            IntentInput::SetMac { .. } => IntentKind::SetMac,
            IntentInput::AttachPort { .. } => IntentKind::AttachPort,
            IntentInput::FlushPortVlans { .. } => IntentKind::FlushPortVlans,
            IntentInput::AddPortVlan { .. } => IntentKind::AddPortVlan,
            IntentInput::AddAddress { .. } => IntentKind::AddAddress,
            IntentInput::DeleteAddress { .. } => IntentKind::DeleteAddress,
            IntentInput::AddRoute { .. } => IntentKind::AddRoute,
            IntentInput::SetSysctl { .. } => IntentKind::SetSysctl,
            IntentInput::Masquerade { .. } => IntentKind::Masquerade,
            IntentInput::Unmasquerade { .. } => IntentKind::Unmasquerade,
            IntentInput::GcMasquerade { .. } => IntentKind::GcMasquerade,
            IntentInput::WaitOperUp { .. } => IntentKind::WaitOperUp,
            IntentInput::WaitAddressesSettled { .. } => IntentKind::WaitAddressesSettled,
            IntentInput::SpoofCheck { .. } => IntentKind::SpoofCheck,
            IntentInput::UnspoofCheck { .. } => IntentKind::UnspoofCheck,
            IntentInput::EnsureHostVeth { .. } => IntentKind::EnsureHostVeth,
        }
    }
}

impl<'a> Arbitrary<'a> for IntentInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let byte = u8::arbitrary(u)?;
        let kind = IntentKind::ALL
            .get(usize::from(byte))
            .ok_or(arbitrary::Error::IncorrectFormat)?;
        Ok(match kind {
            IntentKind::EnsureBridge => IntentInput::EnsureBridge {
                name: u.arbitrary()?,
                mtu: u.arbitrary()?,
                vlan_filtering: u.arbitrary()?,
                promisc: u.arbitrary()?,
            },
            IntentKind::CreateVeth => IntentInput::CreateVeth {
                name: u.arbitrary()?,
                peer: u.arbitrary()?,
                mtu: u.arbitrary()?,
                mac: u.arbitrary()?,
            },
            IntentKind::DeleteLink => IntentInput::DeleteLink {
                link: u.arbitrary()?,
            },
            IntentKind::SetLinkUp => IntentInput::SetLinkUp {
                link: u.arbitrary()?,
            },
            IntentKind::SetLinkDown => IntentInput::SetLinkDown {
                link: u.arbitrary()?,
            },
            IntentKind::SetMtu => IntentInput::SetMtu {
                link: u.arbitrary()?,
                mtu: u.arbitrary()?,
            },
            IntentKind::SetMac => IntentInput::SetMac {
                link: u.arbitrary()?,
                mac: u.arbitrary()?,
            },
            IntentKind::AttachPort => IntentInput::AttachPort {
                port: u.arbitrary()?,
                master: u.arbitrary()?,
                hairpin: u.arbitrary()?,
                isolated: u.arbitrary()?,
            },
            IntentKind::FlushPortVlans => IntentInput::FlushPortVlans {
                port: u.arbitrary()?,
            },
            IntentKind::AddPortVlan => IntentInput::AddPortVlan {
                port: u.arbitrary()?,
                vid: u.arbitrary()?,
                pvid: u.arbitrary()?,
                untagged: u.arbitrary()?,
            },
            IntentKind::AddAddress => IntentInput::AddAddress {
                link: u.arbitrary()?,
                address: u.arbitrary()?,
                ensure: u.arbitrary()?,
            },
            IntentKind::DeleteAddress => IntentInput::DeleteAddress {
                link: u.arbitrary()?,
                address: u.arbitrary()?,
            },
            IntentKind::AddRoute => IntentInput::AddRoute {
                side: u.arbitrary()?,
                dst: u.arbitrary()?,
                gw: u.arbitrary()?,
                dev: u.arbitrary()?,
                priority: u.arbitrary()?,
                table: u.arbitrary()?,
                scope: u.arbitrary()?,
            },
            IntentKind::SetSysctl => IntentInput::SetSysctl {
                side: u.arbitrary()?,
                key: u.arbitrary()?,
                value: u.arbitrary()?,
            },
            IntentKind::Masquerade => IntentInput::Masquerade {
                source: u.arbitrary()?,
                key: u.arbitrary()?,
                iptables: u.arbitrary()?,
            },
            IntentKind::Unmasquerade => IntentInput::Unmasquerade {
                key: u.arbitrary()?,
            },
            IntentKind::GcMasquerade => IntentInput::GcMasquerade {
                network: u.arbitrary()?,
            },
            IntentKind::WaitOperUp => IntentInput::WaitOperUp {
                link: u.arbitrary()?,
            },
            IntentKind::WaitAddressesSettled => IntentInput::WaitAddressesSettled {
                link: u.arbitrary()?,
            },
            IntentKind::SpoofCheck => IntentInput::SpoofCheck {
                port: u.arbitrary()?,
                mac: u.arbitrary()?,
                container_id: u.arbitrary()?,
                ifname: u.arbitrary()?,
            },
            IntentKind::UnspoofCheck => IntentInput::UnspoofCheck {
                container_id: u.arbitrary()?,
                ifname: u.arbitrary()?,
            },
            IntentKind::EnsureHostVeth => IntentInput::EnsureHostVeth {
                name: u.arbitrary()?,
                peer: u.arbitrary()?,
                mtu: u.arbitrary()?,
            },
        })
    }
}

/// The invocation a [`PlanInput`] describes, owning its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedInvocation {
    pub ifname: String,
    pub container: ContainerNs,
    pub max_intents: usize,
    pub network: String,
    pub container_id: String,
    pub grant: Grant,
    pub ipam: Vec<CniResult>,
}

impl OwnedInvocation {
    /// The validator's view of it.
    pub fn borrow(&self) -> Invocation<'_> {
        Invocation {
            ifname: &self.ifname,
            container: self.container,
            max_intents: self.max_intents,
            network: &self.network,
            container_id: &self.container_id,
            grant: &self.grant,
            ipam: &self.ipam,
        }
    }
}

/// The entries of `table` whose bit is set in `mask`, or all of them.
fn masked(table: &[&str], mask: Option<u32>) -> Vec<String> {
    table
        .iter()
        .enumerate()
        .filter(|(i, _)| mask.is_none_or(|m| m.checked_shr(*i as u32).is_some_and(|b| b & 1 == 1)))
        .map(|(_, k)| k.to_string())
        .collect()
}

impl GrantInput {
    /// Everything the built-in bridge grant has: all kinds, any bridge, every
    /// sysctl, masquerading; no uplinks, CIDRs or host routes.
    pub fn bridge() -> GrantInput {
        GrantInput {
            intents: None,
            bridges: vec![0],
            uplinks: vec![],
            cidrs: vec![],
            masquerade: true,
            host_routes: false,
            sysctls: None,
        }
    }

    fn grant(&self) -> Grant {
        let patterns = |ps: &[u8]| {
            ps.iter()
                .map(|&p| NamePattern(pick(PATTERN_TABLE, p).to_string()))
                .collect()
        };
        Grant {
            // Bit `d` grants the kind whose discriminant is `d`.
            intents: IntentKind::ALL
                .iter()
                .copied()
                .filter(|k| {
                    self.intents
                        .is_none_or(|m| m.checked_shr(*k as u32).is_some_and(|b| b & 1 == 1))
                })
                .collect(),
            bridges: patterns(&self.bridges),
            uplinks: patterns(&self.uplinks),
            cidrs: self.cidrs.iter().map(NetInput::net).collect(),
            masquerade: self.masquerade,
            host_routes: self.host_routes,
            sysctls: masked(SYSCTL_ALLOW_LIST, self.sysctls.map(u32::from))
                .into_iter()
                .map(SysctlPattern)
                .collect(),
            ..Grant::default()
        }
    }
}

fn pick<'t>(table: &[&'t str], i: u8) -> &'t str {
    table[usize::from(i) % table.len()]
}

impl NameInput {
    /// A name made of [`NAME_ALPHABET`] characters (for seeds; panics on others).
    pub fn chars(s: &str) -> NameInput {
        NameInput::Chars(
            s.chars()
                .map(|c| {
                    let at = NAME_ALPHABET
                        .iter()
                        .position(|&a| a == c)
                        .unwrap_or_else(|| panic!("{c:?} is not in NAME_ALPHABET"));
                    u8::try_from(at).expect("NAME_ALPHABET has fewer than 256 characters")
                })
                .collect(),
        )
    }

    /// An entry of [`NAME_TABLE`] (for seeds; panics on others).
    pub fn table(s: &str) -> NameInput {
        let at = NAME_TABLE
            .iter()
            .position(|&t| t == s)
            .unwrap_or_else(|| panic!("{s:?} is not in NAME_TABLE"));
        NameInput::Table(u8::try_from(at).expect("NAME_TABLE has fewer than 256 entries"))
    }

    fn resolve(&self, ifname: &str) -> String {
        match self {
            NameInput::Ifname => ifname.to_string(),
            NameInput::Lo => "lo".to_string(),
            NameInput::Eth0 => "eth0".to_string(),
            NameInput::Bridge => "cni0".to_string(),
            NameInput::Veth => "veth0badc0de".to_string(),
            NameInput::Table(i) => pick(NAME_TABLE, *i).to_string(),
            NameInput::Chars(cs) => cs
                .iter()
                .map(|&c| NAME_ALPHABET[usize::from(c) % NAME_ALPHABET.len()])
                .collect(),
        }
    }
}

impl InvField {
    fn resolve(&self, same: &str, ifname: &str) -> String {
        match self {
            InvField::Same => same.to_string(),
            InvField::Name(n) => n.resolve(ifname),
        }
    }
}

impl SideInput {
    fn side(self) -> Side {
        match self {
            SideInput::Host => Side::Host,
            SideInput::Container => Side::Container,
        }
    }
}

impl NetInput {
    fn net(&self) -> IpNet {
        let (addr, len, max) = match self {
            NetInput::V4(a, len) => (IpAddr::V4(Ipv4Addr::from(*a)), *len, 32),
            NetInput::V6(a, len) => (IpAddr::V6(Ipv6Addr::from(*a)), *len, 128),
        };
        IpNet::new(addr, len % (max + 1)).expect("the prefix length is within the family's")
    }
}

impl AddrInput {
    fn addr(&self) -> IpAddr {
        match self {
            AddrInput::V4(a) => IpAddr::V4(Ipv4Addr::from(*a)),
            AddrInput::V6(a) => IpAddr::V6(Ipv6Addr::from(*a)),
        }
    }
}

impl PlanInput {
    /// Decodes an input as the `validate_plan` target does.
    pub fn decode(data: &[u8]) -> Option<PlanInput> {
        PlanInput::arbitrary(&mut Unstructured::new(data)).ok()
    }

    /// The bytes [`PlanInput::decode`] turns into `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        Encode::encode(self, &mut out);
        out
    }

    /// The invocation and the plan.
    pub fn build(&self) -> (OwnedInvocation, Vec<Intent>) {
        let ifname = self.inv.ifname.resolve("eth0");
        let inv = OwnedInvocation {
            container: match self.inv.container {
                NsInput::Present => ContainerNs::Present,
                NsInput::Gone => ContainerNs::Gone,
                NsInput::Absent => ContainerNs::Absent,
            },
            max_intents: usize::from(self.inv.max_intents),
            network: self.inv.network.resolve(&ifname),
            container_id: self.inv.container_id.resolve(&ifname),
            ifname,
            grant: self.inv.grant.grant(),
            ipam: self
                .inv
                .ipam
                .iter()
                .map(|ips| CniResult {
                    ips: ips
                        .iter()
                        .map(|ip| IpConfig {
                            interface: None,
                            address: ip.address.net(),
                            gateway: ip.gateway.as_ref().map(AddrInput::addr),
                        })
                        .collect(),
                    ..CniResult::default()
                })
                .collect(),
        };
        let intents = self.intents.iter().map(|i| i.build(&inv)).collect();
        (inv, intents)
    }
}

impl IntentInput {
    fn build(&self, inv: &OwnedInvocation) -> Intent {
        let name = |n: &NameInput| n.resolve(&inv.ifname);
        let link = |l: &LinkInput| LinkRef {
            side: l.side.side(),
            name: name(&l.name),
        };
        let key = |k: &KeyInput| AttachmentKey {
            network: k.network.resolve(&inv.network, &inv.ifname),
            container_id: k.container_id.resolve(&inv.container_id, &inv.ifname),
            ifname: k.ifname.resolve(&inv.ifname, &inv.ifname),
        };
        match self {
            IntentInput::EnsureBridge {
                name: n,
                mtu,
                vlan_filtering,
                promisc,
            } => Intent::EnsureBridge {
                name: name(n),
                mtu: *mtu,
                vlan_filtering: *vlan_filtering,
                promisc: *promisc,
            },
            IntentInput::CreateVeth {
                name: n,
                peer,
                mtu,
                mac,
            } => Intent::CreateVeth {
                name: name(n),
                peer: name(peer),
                mtu: *mtu,
                mac: mac.map(Mac),
            },
            IntentInput::DeleteLink { link: l } => Intent::DeleteLink { link: link(l) },
            IntentInput::SetLinkUp { link: l } => Intent::SetLinkUp { link: link(l) },
            IntentInput::SetLinkDown { link: l } => Intent::SetLinkDown { link: link(l) },
            IntentInput::SetMtu { link: l, mtu } => Intent::SetMtu {
                link: link(l),
                mtu: *mtu,
            },
            IntentInput::SetMac { link: l, mac } => Intent::SetMac {
                link: link(l),
                mac: Mac(*mac),
            },
            IntentInput::AttachPort {
                port,
                master,
                hairpin,
                isolated,
            } => Intent::AttachPort {
                port: name(port),
                master: name(master),
                hairpin: *hairpin,
                isolated: *isolated,
            },
            IntentInput::FlushPortVlans { port } => Intent::FlushPortVlans { port: name(port) },
            IntentInput::AddPortVlan {
                port,
                vid,
                pvid,
                untagged,
            } => Intent::AddPortVlan {
                port: name(port),
                vid: *vid,
                pvid: *pvid,
                untagged: *untagged,
            },
            IntentInput::AddAddress {
                link: l,
                address,
                ensure,
            } => Intent::AddAddress {
                link: link(l),
                address: address.net(),
                ensure: *ensure,
            },
            IntentInput::DeleteAddress { link: l, address } => Intent::DeleteAddress {
                link: link(l),
                address: address.net(),
            },
            IntentInput::AddRoute {
                side,
                dst,
                gw,
                dev,
                priority,
                table,
                scope,
            } => Intent::AddRoute(RouteIntent {
                side: side.side(),
                dst: dst.net(),
                gw: gw.as_ref().map(AddrInput::addr),
                dev: dev.as_ref().map(name),
                priority: *priority,
                table: *table,
                scope: *scope,
            }),
            IntentInput::SetSysctl { side, key, value } => Intent::SetSysctl {
                side: side.side(),
                key: match key {
                    SysctlKeyInput::Global(i) => pick(GLOBAL_SYSCTL_TABLE, *i).to_string(),
                    SysctlKeyInput::PerIf {
                        family,
                        ifname,
                        leaf,
                    } => format!(
                        "net/{}/conf/{}/{}",
                        pick(SYSCTL_FAMILY_TABLE, *family),
                        name(ifname),
                        pick(SYSCTL_LEAF_TABLE, *leaf)
                    ),
                },
                value: pick(SYSCTL_VALUE_TABLE, *value).to_string(),
            },
            IntentInput::Masquerade {
                source,
                key: k,
                iptables,
            } => Intent::Masquerade {
                source: source.net(),
                key: key(k),
                backend: if *iptables {
                    MasqBackend::Iptables
                } else {
                    MasqBackend::Nftables
                },
            },
            IntentInput::Unmasquerade { key: k } => Intent::Unmasquerade { key: key(k) },
            IntentInput::GcMasquerade { network } => Intent::GcMasquerade {
                network: network.resolve(&inv.network, &inv.ifname),
            },
            IntentInput::WaitOperUp { link: l } => Intent::WaitOperUp { link: link(l) },
            IntentInput::WaitAddressesSettled { link: l } => {
                Intent::WaitAddressesSettled { link: link(l) }
            }
            IntentInput::SpoofCheck {
                port,
                mac,
                container_id,
                ifname,
            } => Intent::SpoofCheck {
                port: name(port),
                mac: Mac(*mac),
                container_id: container_id.resolve(&inv.container_id, &inv.ifname),
                ifname: ifname.resolve(&inv.ifname, &inv.ifname),
            },
            IntentInput::UnspoofCheck {
                container_id,
                ifname,
            } => Intent::UnspoofCheck {
                container_id: container_id.resolve(&inv.container_id, &inv.ifname),
                ifname: ifname.resolve(&inv.ifname, &inv.ifname),
            },
            IntentInput::EnsureHostVeth { name: n, peer, mtu } => Intent::EnsureHostVeth {
                name: name(n),
                peer: name(peer),
                mtu: *mtu,
            },
        }
    }
}

/// Writes a value as the bytes its `Arbitrary` implementation (arbitrary 1.x: integers
/// little-endian, `bool` and `Option` one byte, a `Vec` a "one more" byte before each
/// element and a zero after the last, an enum a `u32` scaled onto its variants, fields
/// in order) reads it from.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! encode_le {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
encode_le!(u8, u16, u32);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(v) = self {
            v.encode(out);
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            true.encode(out);
            v.encode(out);
        }
        false.encode(out);
    }
}

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            v.encode(out);
        }
    }
}

/// The derived `Arbitrary` picks variant `(u32 * count) >> 32`; this writes the
/// smallest `u32` that picks `index`.
fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let scaled = (u64::from(index) << 32).div_ceil(u64::from(count));
    u32::try_from(scaled)
        .expect("a variant index is below the variant count")
        .encode(out);
}

/// Encodes the fields of a struct or variant in order.
macro_rules! fields {
    ($out:expr; $($f:expr),* $(,)?) => {{
        $( Encode::encode($f, $out); )*
    }};
}

impl Encode for PlanInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.inv, &self.intents);
    }
}

impl Encode for InvInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.ifname, &self.container, &self.max_intents, &self.network,
            &self.container_id, &self.grant, &self.ipam);
    }
}

impl Encode for GrantInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.intents, &self.bridges, &self.uplinks, &self.cidrs, &self.masquerade,
            &self.host_routes, &self.sysctls);
    }
}

impl Encode for IpamIpInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.address, &self.gateway);
    }
}

impl Encode for NsInput {
    fn encode(&self, out: &mut Vec<u8>) {
        let index = match self {
            NsInput::Present => 0,
            NsInput::Gone => 1,
            NsInput::Absent => 2,
        };
        variant(out, index, 3);
    }
}

impl Encode for SideInput {
    fn encode(&self, out: &mut Vec<u8>) {
        let index = match self {
            SideInput::Host => 0,
            SideInput::Container => 1,
        };
        variant(out, index, 2);
    }
}

impl Encode for NameInput {
    fn encode(&self, out: &mut Vec<u8>) {
        const COUNT: u32 = 7;
        match self {
            NameInput::Ifname => variant(out, 0, COUNT),
            NameInput::Lo => variant(out, 1, COUNT),
            NameInput::Eth0 => variant(out, 2, COUNT),
            NameInput::Bridge => variant(out, 3, COUNT),
            NameInput::Veth => variant(out, 4, COUNT),
            NameInput::Table(i) => {
                variant(out, 5, COUNT);
                fields!(out; i);
            }
            NameInput::Chars(cs) => {
                variant(out, 6, COUNT);
                fields!(out; cs);
            }
        }
    }
}

impl Encode for LinkInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.side, &self.name);
    }
}

impl Encode for InvField {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            InvField::Same => variant(out, 0, 2),
            InvField::Name(n) => {
                variant(out, 1, 2);
                fields!(out; n);
            }
        }
    }
}

impl Encode for KeyInput {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; &self.network, &self.container_id, &self.ifname);
    }
}

impl Encode for NetInput {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NetInput::V4(a, len) => {
                variant(out, 0, 2);
                fields!(out; a, len);
            }
            NetInput::V6(a, len) => {
                variant(out, 1, 2);
                fields!(out; a, len);
            }
        }
    }
}

impl Encode for AddrInput {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            AddrInput::V4(a) => {
                variant(out, 0, 2);
                fields!(out; a);
            }
            AddrInput::V6(a) => {
                variant(out, 1, 2);
                fields!(out; a);
            }
        }
    }
}

impl Encode for SysctlKeyInput {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SysctlKeyInput::Global(i) => {
                variant(out, 0, 2);
                fields!(out; i);
            }
            SysctlKeyInput::PerIf {
                family,
                ifname,
                leaf,
            } => {
                variant(out, 1, 2);
                fields!(out; family, ifname, leaf);
            }
        }
    }
}

impl Encode for IntentInput {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.kind() as u8).encode(out);
        match self {
            IntentInput::EnsureBridge {
                name,
                mtu,
                vlan_filtering,
                promisc,
            } => {
                fields!(out; name, mtu, vlan_filtering, promisc);
            }
            IntentInput::CreateVeth {
                name,
                peer,
                mtu,
                mac,
            } => {
                fields!(out; name, peer, mtu, mac);
            }
            IntentInput::DeleteLink { link } => {
                fields!(out; link);
            }
            IntentInput::SetLinkUp { link } => {
                fields!(out; link);
            }
            IntentInput::SetLinkDown { link } => {
                fields!(out; link);
            }
            IntentInput::SetMtu { link, mtu } => {
                fields!(out; link, mtu);
            }
            IntentInput::SetMac { link, mac } => {
                fields!(out; link, mac);
            }
            IntentInput::AttachPort {
                port,
                master,
                hairpin,
                isolated,
            } => {
                fields!(out; port, master, hairpin, isolated);
            }
            IntentInput::FlushPortVlans { port } => {
                fields!(out; port);
            }
            IntentInput::AddPortVlan {
                port,
                vid,
                pvid,
                untagged,
            } => {
                fields!(out; port, vid, pvid, untagged);
            }
            IntentInput::AddAddress {
                link,
                address,
                ensure,
            } => {
                fields!(out; link, address, ensure);
            }
            IntentInput::DeleteAddress { link, address } => {
                fields!(out; link, address);
            }
            IntentInput::AddRoute {
                side,
                dst,
                gw,
                dev,
                priority,
                table,
                scope,
            } => {
                fields!(out; side, dst, gw, dev, priority, table, scope);
            }
            IntentInput::SetSysctl { side, key, value } => {
                fields!(out; side, key, value);
            }
            IntentInput::Masquerade {
                source,
                key,
                iptables,
            } => {
                fields!(out; source, key, iptables);
            }
            IntentInput::Unmasquerade { key } => {
                fields!(out; key);
            }
            IntentInput::GcMasquerade { network } => {
                fields!(out; network);
            }
            IntentInput::WaitOperUp { link } => {
                fields!(out; link);
            }
            IntentInput::WaitAddressesSettled { link } => {
                fields!(out; link);
            }
            IntentInput::SpoofCheck {
                port,
                mac,
                container_id,
                ifname,
            } => {
                fields!(out; port, mac, container_id, ifname);
            }
            IntentInput::UnspoofCheck {
                container_id,
                ifname,
            } => {
                fields!(out; container_id, ifname);
            }
            IntentInput::EnsureHostVeth { name, peer, mtu } => {
                fields!(out; name, peer, mtu);
            }
        }
    }
}

// --- seeds

fn inv(container: NsInput, max_intents: u8) -> InvInput {
    InvInput {
        ifname: NameInput::Eth0,
        container,
        max_intents,
        network: NameInput::table("net"),
        container_id: NameInput::table("ctr"),
        grant: GrantInput::bridge(),
        ipam: vec![vec![
            IpamIpInput {
                address: v4([10, 22, 0, 5], 16),
                gateway: Some(AddrInput::V4([10, 22, 0, 1])),
            },
            IpamIpInput {
                address: v6([0xfd00, 0, 0, 0, 0, 0, 0, 5], 64),
                gateway: None,
            },
        ]],
    }
}

fn host(name: NameInput) -> LinkInput {
    LinkInput {
        side: SideInput::Host,
        name,
    }
}

fn container(name: NameInput) -> LinkInput {
    LinkInput {
        side: SideInput::Container,
        name,
    }
}

fn v4(a: [u8; 4], len: u8) -> NetInput {
    NetInput::V4(a, len)
}

fn v6(groups: [u16; 8], len: u8) -> NetInput {
    NetInput::V6(Ipv6Addr::from(groups).octets(), len)
}

fn same_key() -> KeyInput {
    KeyInput {
        network: InvField::Same,
        container_id: InvField::Same,
        ifname: InvField::Same,
    }
}

fn per_if(family: &str, ifname: NameInput, leaf: &str) -> SysctlKeyInput {
    let at = |table: &[&str], s: &str| {
        let i = table
            .iter()
            .position(|&t| t == s)
            .unwrap_or_else(|| panic!("{s:?} is not in its table"));
        u8::try_from(i).expect("tables have fewer than 256 entries")
    };
    SysctlKeyInput::PerIf {
        family: at(SYSCTL_FAMILY_TABLE, family),
        ifname,
        leaf: at(SYSCTL_LEAF_TABLE, leaf),
    }
}

const MAC: [u8; 6] = [0x0a, 0x58, 0x0a, 0x16, 0x00, 0x05];

/// What the bridge plugin plans for ADD, dual-stack.
fn bridge_add() -> Vec<IntentInput> {
    let veth = NameInput::Veth;
    vec![
        IntentInput::EnsureBridge {
            name: NameInput::Bridge,
            mtu: Some(1500),
            vlan_filtering: false,
            promisc: false,
        },
        IntentInput::SetLinkUp {
            link: host(NameInput::Bridge),
        },
        IntentInput::AddAddress {
            link: host(NameInput::Bridge),
            address: v4([10, 22, 0, 1], 16),
            ensure: true,
        },
        IntentInput::CreateVeth {
            name: NameInput::Ifname,
            peer: veth.clone(),
            mtu: Some(1500),
            mac: Some(MAC),
        },
        IntentInput::AttachPort {
            port: veth.clone(),
            master: NameInput::Bridge,
            hairpin: false,
            isolated: false,
        },
        IntentInput::SetLinkUp {
            link: host(veth.clone()),
        },
        IntentInput::SetSysctl {
            side: SideInput::Container,
            key: per_if("ipv4", NameInput::Ifname, "arp_notify"),
            value: 0,
        },
        IntentInput::SetSysctl {
            side: SideInput::Container,
            key: per_if("ipv6", NameInput::Ifname, "accept_dad"),
            value: 1,
        },
        IntentInput::AddAddress {
            link: container(NameInput::Ifname),
            address: v4([10, 22, 0, 5], 16),
            ensure: false,
        },
        IntentInput::AddAddress {
            link: container(NameInput::Ifname),
            address: v6([0xfd00, 0, 0, 0, 0, 0, 0, 5], 64),
            ensure: false,
        },
        IntentInput::SetLinkUp {
            link: container(NameInput::Ifname),
        },
        IntentInput::WaitAddressesSettled {
            link: container(NameInput::Ifname),
        },
        IntentInput::AddRoute {
            side: SideInput::Container,
            dst: v4([0, 0, 0, 0], 0),
            gw: Some(AddrInput::V4([10, 22, 0, 1])),
            dev: Some(NameInput::Ifname),
            priority: None,
            table: None,
            scope: None,
        },
        IntentInput::SetSysctl {
            side: SideInput::Host,
            key: SysctlKeyInput::Global(0),
            value: 0,
        },
        IntentInput::SetSysctl {
            side: SideInput::Host,
            key: per_if("ipv4", veth.clone(), "proxy_arp"),
            value: 0,
        },
        IntentInput::Masquerade {
            source: v4([10, 22, 0, 5], 16),
            key: same_key(),
            iptables: false,
        },
        IntentInput::SpoofCheck {
            port: veth.clone(),
            mac: MAC,
            container_id: InvField::Same,
            ifname: InvField::Same,
        },
        IntentInput::WaitOperUp { link: host(veth) },
    ]
}

/// Named descriptions the seed corpus is written from, valid plans and refused ones.
pub fn seeds() -> Vec<(&'static str, PlanInput)> {
    let plan = |inv: InvInput, intents: Vec<IntentInput>| PlanInput { inv, intents };
    let mut too_many = bridge_add();
    too_many.truncate(5);
    vec![
        ("empty", plan(inv(NsInput::Present, 0), vec![])),
        ("bridge-add", plan(inv(NsInput::Present, 64), bridge_add())),
        (
            "host-veth",
            plan(
                inv(NsInput::Present, 8),
                vec![
                    IntentInput::EnsureHostVeth {
                        name: NameInput::Veth,
                        peer: NameInput::chars("veth1"),
                        mtu: Some(1500),
                    },
                    IntentInput::SetLinkUp {
                        link: host(NameInput::Veth),
                    },
                ],
            ),
        ),
        (
            "bridge-add-vlan",
            plan(
                inv(NsInput::Present, 16),
                vec![
                    IntentInput::EnsureBridge {
                        name: NameInput::chars("cni1"),
                        mtu: None,
                        vlan_filtering: true,
                        promisc: true,
                    },
                    IntentInput::CreateVeth {
                        name: NameInput::Ifname,
                        peer: NameInput::Veth,
                        mtu: None,
                        mac: None,
                    },
                    IntentInput::AttachPort {
                        port: NameInput::Veth,
                        master: NameInput::chars("cni1"),
                        hairpin: true,
                        isolated: true,
                    },
                    IntentInput::FlushPortVlans {
                        port: NameInput::Veth,
                    },
                    IntentInput::AddPortVlan {
                        port: NameInput::Veth,
                        vid: 100,
                        pvid: true,
                        untagged: true,
                    },
                    IntentInput::SetMtu {
                        link: container(NameInput::Ifname),
                        mtu: 9000,
                    },
                    IntentInput::SetMac {
                        link: container(NameInput::Ifname),
                        mac: MAC,
                    },
                ],
            ),
        ),
        (
            "bridge-del",
            plan(
                inv(NsInput::Present, 16),
                vec![
                    IntentInput::DeleteAddress {
                        link: container(NameInput::Ifname),
                        address: v4([10, 22, 0, 5], 16),
                    },
                    IntentInput::DeleteLink {
                        link: container(NameInput::Ifname),
                    },
                    IntentInput::Unmasquerade { key: same_key() },
                    IntentInput::UnspoofCheck {
                        container_id: InvField::Same,
                        ifname: InvField::Same,
                    },
                ],
            ),
        ),
        (
            "bridge-del-netns-gone",
            plan(
                inv(NsInput::Gone, 16),
                vec![
                    IntentInput::DeleteLink {
                        link: container(NameInput::Ifname),
                    },
                    IntentInput::Unmasquerade { key: same_key() },
                ],
            ),
        ),
        (
            "loopback-add",
            plan(
                InvInput {
                    ifname: NameInput::Lo,
                    grant: GrantInput {
                        cidrs: vec![v4([127, 0, 0, 0], 8), v6([0, 0, 0, 0, 0, 0, 0, 1], 128)],
                        ..GrantInput::bridge()
                    },
                    ipam: vec![],
                    ..inv(NsInput::Present, 8)
                },
                vec![
                    IntentInput::AddAddress {
                        link: container(NameInput::Lo),
                        address: v4([127, 0, 0, 1], 8),
                        ensure: true,
                    },
                    IntentInput::AddAddress {
                        link: container(NameInput::Lo),
                        address: v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
                        ensure: true,
                    },
                    IntentInput::SetLinkUp {
                        link: container(NameInput::Lo),
                    },
                ],
            ),
        ),
        (
            "gc",
            plan(
                inv(NsInput::Absent, 4),
                vec![IntentInput::GcMasquerade {
                    network: InvField::Same,
                }],
            ),
        ),
        (
            "granted-uplink-and-host-route",
            plan(
                InvInput {
                    grant: GrantInput {
                        uplinks: vec![4],
                        cidrs: vec![v4([10, 99, 0, 0], 16)],
                        host_routes: true,
                        ..GrantInput::bridge()
                    },
                    ..inv(NsInput::Present, 8)
                },
                vec![
                    IntentInput::CreateVeth {
                        name: NameInput::Ifname,
                        peer: NameInput::Veth,
                        mtu: None,
                        mac: None,
                    },
                    IntentInput::AttachPort {
                        port: NameInput::Veth,
                        master: NameInput::table("eth1"),
                        hairpin: false,
                        isolated: false,
                    },
                    IntentInput::AddRoute {
                        side: SideInput::Host,
                        dst: v4([10, 99, 1, 0], 24),
                        gw: None,
                        dev: Some(NameInput::Veth),
                        priority: None,
                        table: None,
                        scope: None,
                    },
                    IntentInput::AddAddress {
                        link: container(NameInput::Ifname),
                        address: v4([10, 99, 1, 7], 24),
                        ensure: false,
                    },
                ],
            ),
        ),
        (
            "refused-kind-not-granted",
            plan(
                InvInput {
                    grant: GrantInput {
                        intents: Some(0b1000),
                        ..GrantInput::bridge()
                    },
                    ..inv(NsInput::Present, 8)
                },
                vec![
                    IntentInput::SetLinkUp {
                        link: container(NameInput::Ifname),
                    },
                    IntentInput::SetLinkDown {
                        link: container(NameInput::Ifname),
                    },
                ],
            ),
        ),
        (
            "refused-address-not-from-ipam",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::AddAddress {
                    link: container(NameInput::Ifname),
                    address: v4([192, 168, 1, 5], 24),
                    ensure: false,
                }],
            ),
        ),
        (
            "refused-host-route",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::AddRoute {
                    side: SideInput::Host,
                    dst: v4([10, 22, 0, 0], 16),
                    gw: None,
                    dev: Some(NameInput::Bridge),
                    priority: Some(100),
                    table: Some(254),
                    scope: Some(0),
                }],
            ),
        ),
        (
            "refused-foreign-host-link",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::SetLinkDown {
                    link: host(NameInput::Eth0),
                }],
            ),
        ),
        (
            "refused-bad-names",
            plan(
                inv(NsInput::Present, 8),
                vec![
                    IntentInput::EnsureBridge {
                        name: NameInput::table("a/b"),
                        mtu: None,
                        vlan_filtering: false,
                        promisc: false,
                    },
                    IntentInput::CreateVeth {
                        name: NameInput::Ifname,
                        peer: NameInput::table("sixteen-chars-xx"),
                        mtu: None,
                        mac: None,
                    },
                    IntentInput::SetLinkUp {
                        link: host(NameInput::chars("veth 0")),
                    },
                ],
            ),
        ),
        (
            "refused-sysctl-escape",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::SetSysctl {
                    side: SideInput::Container,
                    key: per_if(
                        "ipv4",
                        NameInput::Ifname,
                        "rp_filter/../../../kernel/core_pattern",
                    ),
                    value: 6,
                }],
            ),
        ),
        ("refused-too-many", plan(inv(NsInput::Present, 4), too_many)),
        (
            "refused-foreign-masquerade",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::Masquerade {
                    source: v6([0xfd00, 0, 0, 0, 0, 0, 0, 5], 128),
                    key: KeyInput {
                        network: InvField::Name(NameInput::chars("hello")),
                        ..same_key()
                    },
                    iptables: true,
                }],
            ),
        ),
        (
            "refused-no-container",
            plan(
                inv(NsInput::Absent, 8),
                vec![IntentInput::SetLinkUp {
                    link: container(NameInput::Ifname),
                }],
            ),
        ),
        (
            "refused-delete-lo",
            plan(
                inv(NsInput::Present, 8),
                vec![IntentInput::DeleteLink {
                    link: container(NameInput::Lo),
                }],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_the_inverse_of_decode() {
        for (name, seed) in seeds() {
            assert_eq!(PlanInput::decode(&seed.encode()), Some(seed), "{name}");
        }
        // Every variant of every enum, and the edges of the variant scaling.
        let mut all = bridge_add();
        for (_, seed) in seeds() {
            all.extend(seed.intents);
        }
        let covered: std::collections::BTreeSet<IntentKind> =
            all.iter().map(IntentInput::kind).collect();
        assert_eq!(
            covered.len(),
            IntentKind::ALL.len(),
            "seeds cover every intent kind"
        );
        // An intent's encoding starts with its kind's discriminant.
        for intent in &all {
            let mut out = Vec::new();
            intent.encode(&mut out);
            assert_eq!(out[0], intent.kind() as u8, "{intent:?}");
        }
        // A byte that is no kind's discriminant is no input.
        let unknown = [
            u8::try_from(IntentKind::ALL.len()).expect("few kinds"),
            0,
            0,
        ];
        assert!(IntentInput::arbitrary(&mut Unstructured::new(&unknown)).is_err());
    }

    #[test]
    fn grants_are_ones_a_policy_file_may_hold() {
        let text = serde_json::json!({"plugins": [{
            "match": {"name": "x"},
            "intents": IntentKind::ALL,
            "bridges": PATTERN_TABLE,
            "uplinks": PATTERN_TABLE,
            "sysctls": SYSCTL_ALLOW_LIST,
        }]});
        let policy = crate::policy::Policy::parse(&text.to_string()).expect("a valid policy");
        assert_eq!(policy.plugins[0].bridges.len(), PATTERN_TABLE.len());
        assert!(
            IntentKind::ALL.len() <= 32,
            "GrantInput::intents has a bit per kind"
        );
        assert!(
            SYSCTL_ALLOW_LIST.len() <= 16,
            "GrantInput::sysctls has a bit per sysctl"
        );
        let g = GrantInput {
            intents: Some(0b101),
            sysctls: Some(0b10),
            ..GrantInput::bridge()
        }
        .grant();
        assert_eq!(
            g.intents,
            vec![IntentKind::EnsureBridge, IntentKind::DeleteLink]
        );
        assert_eq!(g.sysctls, vec![SysctlPattern(SYSCTL_ALLOW_LIST[1].into())]);
    }

    #[test]
    fn seeds_build_the_plans_they_describe() {
        let all = seeds();
        let (inv, intents) = all[1].1.build();
        assert_eq!(inv.ifname, "eth0");
        assert_eq!(inv.network, "net");
        assert_eq!(
            intents[3],
            Intent::CreateVeth {
                name: "eth0".into(),
                peer: "veth0badc0de".into(),
                mtu: Some(1500),
                mac: Some(Mac(MAC)),
            }
        );
        for (name, seed) in seeds() {
            let (inv, intents) = seed.build();
            let verdict = crate::validate::validate_plan(&intents, &inv.borrow());
            assert_eq!(
                verdict.is_ok(),
                !name.starts_with("refused-"),
                "{name}: {verdict:?}"
            );
        }
    }
}
