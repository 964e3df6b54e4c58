//! Conversions between the generated WIT types and the host's domain types. Every
//! string a guest sends is parsed here; a value that does not parse breaks the
//! contract and is reported with the offending value.

use std::net::IpAddr;

use ipnet::IpNet;

use super::bindings as wit;
use super::{GuestCommand, GuestRequest};
use cni::{CniResult, Dns, Interface, IpConfig, Route};
use plan::{
    AttachmentKey, Intent, LinkRef, Mac, MasqBackend, MasqRuleFacts, ObservedLink, ObservedRoute,
    RouteIntent, Side,
};

pub(crate) fn side_from_wit(ns: wit::Netns) -> Side {
    match ns {
        wit::Netns::Host => Side::Host,
        wit::Netns::Container => Side::Container,
    }
}

fn side_to_wit(side: Side) -> wit::Netns {
    match side {
        Side::Host => wit::Netns::Host,
        Side::Container => wit::Netns::Container,
    }
}

fn link_from_wit(l: wit::LinkRef) -> LinkRef {
    LinkRef {
        side: side_from_wit(l.ns),
        name: l.name,
    }
}

fn cidr(what: &str, s: &str) -> Result<IpNet, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not an address in CIDR notation"))
}

fn ip(what: &str, s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not an IP address"))
}

fn mac(s: &str) -> Result<Mac, String> {
    s.parse()
}

pub(crate) fn intent_from_wit(i: wit::Intent) -> Result<Intent, String> {
    Ok(match i {
        wit::Intent::EnsureBridge(b) => Intent::EnsureBridge {
            name: b.name,
            mtu: b.mtu,
            vlan_filtering: b.vlan_filtering,
            promisc: b.promisc,
        },
        wit::Intent::CreateVeth(v) => Intent::CreateVeth {
            name: v.name,
            peer: v.peer,
            mtu: v.mtu,
            mac: v.mac.as_deref().map(mac).transpose()?,
        },
        wit::Intent::EnsureHostVeth(v) => Intent::EnsureHostVeth {
            name: v.name,
            peer: v.peer,
            mtu: v.mtu,
        },
        wit::Intent::DeleteLink(l) => Intent::DeleteLink {
            link: link_from_wit(l),
        },
        wit::Intent::SetLinkUp(l) => Intent::SetLinkUp {
            link: link_from_wit(l),
        },
        wit::Intent::SetLinkDown(l) => Intent::SetLinkDown {
            link: link_from_wit(l),
        },
        wit::Intent::SetMtu(m) => Intent::SetMtu {
            link: link_from_wit(m.link),
            mtu: m.mtu,
        },
        wit::Intent::SetMac(m) => Intent::SetMac {
            link: link_from_wit(m.link),
            mac: mac(&m.mac)?,
        },
        wit::Intent::AttachPort(p) => Intent::AttachPort {
            port: p.port,
            master: p.master,
            hairpin: p.hairpin,
            isolated: p.isolated,
        },
        wit::Intent::FlushPortVlans(port) => Intent::FlushPortVlans { port },
        wit::Intent::AddPortVlan(v) => Intent::AddPortVlan {
            port: v.port,
            vid: v.vid,
            pvid: v.pvid,
            untagged: v.untagged,
        },
        wit::Intent::AddAddress(a) => Intent::AddAddress {
            link: link_from_wit(a.link),
            address: cidr("address", &a.address)?,
            ensure: a.ensure,
        },
        wit::Intent::DeleteAddress(a) => Intent::DeleteAddress {
            link: link_from_wit(a.link),
            address: cidr("address", &a.address)?,
        },
        wit::Intent::AddRoute(r) => Intent::AddRoute(RouteIntent {
            side: side_from_wit(r.ns),
            dst: cidr("route destination", &r.dst)?,
            gw: r.gw.as_deref().map(|g| ip("gateway", g)).transpose()?,
            dev: r.dev,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
        }),
        wit::Intent::SetSysctl(s) => Intent::SetSysctl {
            side: side_from_wit(s.ns),
            key: s.key,
            value: s.value,
        },
        wit::Intent::Masquerade(m) => Intent::Masquerade {
            source: cidr("masquerade source", &m.source)?,
            key: AttachmentKey {
                network: m.network,
                container_id: m.container_id,
                ifname: m.ifname,
            },
            backend: match m.backend {
                wit::MasqBackend::Nftables => MasqBackend::Nftables,
                wit::MasqBackend::Iptables => MasqBackend::Iptables,
            },
        },
        wit::Intent::Unmasquerade(k) => Intent::Unmasquerade {
            key: AttachmentKey {
                network: k.network,
                container_id: k.container_id,
                ifname: k.ifname,
            },
        },
        wit::Intent::GcMasquerade(network) => Intent::GcMasquerade { network },
        wit::Intent::WaitAddressesSettled(l) => Intent::WaitAddressesSettled {
            link: link_from_wit(l),
        },
        wit::Intent::SpoofCheck(s) => Intent::SpoofCheck {
            port: s.port,
            mac: mac(&s.mac)?,
            container_id: s.container_id,
            ifname: s.ifname,
        },
        wit::Intent::UnspoofCheck(k) => Intent::UnspoofCheck {
            container_id: k.container_id,
            ifname: k.ifname,
        },
        wit::Intent::WaitOperUp(l) => Intent::WaitOperUp {
            link: link_from_wit(l),
        },
    })
}

pub(crate) fn link_to_wit(l: &ObservedLink) -> wit::LinkFacts {
    wit::LinkFacts {
        ns: side_to_wit(l.side),
        name: l.name.clone(),
        index: l.index,
        kind: l.kind.clone(),
        mac: l.mac.map(|m| m.to_string()),
        mtu: l.mtu,
        admin_up: l.admin_up,
        oper_up: l.oper_up,
        promisc: l.promisc,
        master: l.master.clone(),
        peer_index: l.peer_index,
        addresses: l.addresses.iter().map(|a| a.to_string()).collect(),
    }
}

pub(crate) fn masq_rule_to_wit(r: &MasqRuleFacts) -> wit::MasqueradeRule {
    wit::MasqueradeRule {
        source: r.source.to_string(),
        network: r.key.network.clone(),
        container_id: r.key.container_id.clone(),
        ifname: r.key.ifname.clone(),
    }
}

pub(crate) fn route_to_wit(r: &ObservedRoute) -> wit::RouteFacts {
    wit::RouteFacts {
        dst: r.dst.to_string(),
        gw: r.gw.map(|g| g.to_string()),
        dev: r.dev.clone(),
        priority: r.priority,
    }
}

fn command_to_wit(c: GuestCommand) -> wit::Command {
    match c {
        GuestCommand::Add => wit::Command::Add,
        GuestCommand::Del => wit::Command::Del,
        GuestCommand::Check => wit::Command::Check,
        GuestCommand::Gc => wit::Command::Gc,
        GuestCommand::Status => wit::Command::Status,
    }
}

pub(crate) fn request_to_wit(r: &GuestRequest) -> wit::Request {
    wit::Request {
        command: command_to_wit(r.command),
        container_id: r.container_id.clone(),
        netns_path: r.netns_path.clone(),
        ifname: r.ifname.clone(),
        cni_args: r.cni_args.clone(),
        config: r.config.clone(),
        prev_result: r.prev_result.as_ref().map(result_to_wit),
        valid_attachments: r.valid_attachments.as_ref().map(|list| {
            list.iter()
                .map(|(container_id, ifname)| wit::Attachment {
                    container_id: container_id.clone(),
                    ifname: ifname.clone(),
                })
                .collect()
        }),
    }
}

pub(crate) fn result_to_wit(r: &CniResult) -> wit::CniResult {
    wit::CniResult {
        interfaces: r
            .interfaces
            .iter()
            .map(|i| wit::CniInterface {
                name: i.name.clone(),
                mac: i.mac.clone(),
                mtu: i.mtu,
                sandbox: i.sandbox.clone(),
                socket_path: i.socket_path.clone(),
                pci_id: i.pci_id.clone(),
            })
            .collect(),
        ips: r
            .ips
            .iter()
            .map(|i| wit::CniIp {
                address: i.address.to_string(),
                gateway: i.gateway.map(|g| g.to_string()),
                interface: i.interface,
            })
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|rt| wit::CniRoute {
                dst: rt.dst.to_string(),
                gw: rt.gw.map(|g| g.to_string()),
                mtu: rt.mtu,
                advmss: rt.advmss,
                priority: rt.priority,
                table: rt.table,
                scope: rt.scope.map(u32::from),
            })
            .collect(),
        dns: if r.dns.is_empty() {
            None
        } else {
            Some(wit::CniDns {
                nameservers: r.dns.nameservers.clone(),
                domain: r.dns.domain.clone(),
                search: r.dns.search.clone(),
                options: r.dns.options.clone(),
            })
        },
    }
}

pub(crate) fn result_from_wit(r: wit::CniResult) -> Result<CniResult, String> {
    let ips = r
        .ips
        .into_iter()
        .map(|i| {
            Ok(IpConfig {
                address: cidr("ips[].address", &i.address)?,
                gateway: i
                    .gateway
                    .as_deref()
                    .map(|g| ip("ips[].gateway", g))
                    .transpose()?,
                interface: i.interface,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let routes = r
        .routes
        .into_iter()
        .map(|rt| {
            Ok(Route {
                dst: cidr("routes[].dst", &rt.dst)?,
                gw: rt.gw.as_deref().map(|g| ip("routes[].gw", g)).transpose()?,
                mtu: rt.mtu,
                advmss: rt.advmss,
                priority: rt.priority,
                table: rt.table,
                scope: rt
                    .scope
                    .map(|s| {
                        u8::try_from(s).map_err(|_| format!("routes[].scope {s} is not 0-255"))
                    })
                    .transpose()?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let interfaces: Vec<Interface> = r
        .interfaces
        .into_iter()
        .map(|i| Interface {
            name: i.name,
            mac: i.mac,
            mtu: i.mtu,
            sandbox: i.sandbox,
            socket_path: i.socket_path,
            pci_id: i.pci_id,
        })
        .collect();
    for ip in &ips {
        if let Some(idx) = ip.interface {
            if usize::try_from(idx).map_or(true, |i| i >= interfaces.len()) {
                return Err(format!(
                    "ips[] entry {} points at interface {idx}, but there are only {}",
                    ip.address,
                    interfaces.len()
                ));
            }
        }
    }
    let dns = r
        .dns
        .map(|d| Dns {
            nameservers: d.nameservers,
            domain: d.domain,
            search: d.search,
            options: d.options,
        })
        .unwrap_or_default();
    Ok(CniResult {
        interfaces,
        ips,
        routes,
        dns,
    })
}
