//! Where the addresses of a plan may come from and lie: what IPAM returned to
//! this invocation, the grant's CIDRs, and the address space bounding both.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Invocation;
use cni::CniResult;

/// Where addresses may come from: what IPAM returned, and the grant's CIDRs;
/// and the address space all of them must lie in.
pub(super) struct Addresses<'a> {
    ipam_ips: Vec<IpNet>,
    ipam_subnets: Vec<IpNet>,
    granted: &'a [IpNet],
    pub(super) space: &'a [IpNet],
}

impl<'a> Addresses<'a> {
    pub(super) fn new(inv: &'a Invocation<'a>) -> Self {
        let ipam_ips: Vec<IpNet> = inv
            .ipam
            .iter()
            .flat_map(|r| r.ips.iter().map(|i| i.address))
            .collect();
        let ipam_subnets = ipam_ips.iter().map(IpNet::trunc).collect();
        Addresses {
            ipam_ips,
            ipam_subnets,
            granted: &inv.grant.cidrs,
            space: inv.grant.address_space(),
        }
    }

    /// Whether the whole of `net` lies in the address space.
    pub(super) fn in_space(&self, net: &IpNet) -> bool {
        self.space
            .iter()
            .any(|s| s.contains(&net.network()) && net.prefix_len() >= s.prefix_len())
    }

    pub(super) fn ip_in_space(&self, ip: &IpAddr) -> bool {
        self.space.iter().any(|s| s.contains(ip))
    }

    /// The first address or gateway IPAM returned outside the space.
    pub(super) fn ipam_outside_space(&self, ipam: &[CniResult]) -> Option<String> {
        ipam.iter().flat_map(|r| &r.ips).find_map(|ip| {
            if !self.in_space(&ip.address.trunc()) {
                Some(ip.address.to_string())
            } else {
                ip.gateway
                    .filter(|gw| !self.ip_in_space(gw))
                    .map(|gw| format!("gateway {gw}"))
            }
        })
    }

    pub(super) fn granted_net(&self, net: &IpNet) -> bool {
        self.granted
            .iter()
            .any(|g| g.contains(&net.network()) && net.prefix_len() >= g.prefix_len())
    }

    pub(super) fn granted_ip(&self, ip: &IpAddr) -> bool {
        self.granted.iter().any(|g| g.contains(ip))
    }

    /// A container address: exactly one IPAM returned, or inside a granted CIDR.
    pub(super) fn container_address(&self, a: &IpNet) -> bool {
        self.ipam_ips.contains(a) || self.granted_net(a)
    }

    /// A host address (a gateway on a bridge): inside a subnet IPAM returned (with
    /// that subnet's prefix), or inside a granted CIDR.
    pub(super) fn host_address(&self, a: &IpNet) -> bool {
        self.ipam_subnets
            .iter()
            .any(|s| s.contains(&a.addr()) && s.prefix_len() == a.prefix_len())
            || self.granted_net(a)
    }

    /// A next hop: inside a subnet IPAM returned, or a granted CIDR.
    pub(super) fn gateway(&self, ip: &IpAddr) -> bool {
        self.ipam_subnets.iter().any(|s| s.contains(ip)) || self.granted_ip(ip)
    }
}
