//! [`Netlink`] for the recording model: each verb answers as the kernel does
//! where callers care.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use nix::errno::Errno;

use super::netlink::{check_name_len, same_address};
use super::{Op, RecordingNetlink};
use crate::netlink::{
    validate_sysctl_path, BridgeVlanFlags, LinkFacts, NetError, Netlink, RouteFacts, RouteSpec,
};
use crate::netns::NetnsHandle;

impl Netlink for RecordingNetlink {
    fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        self.record(Op::Link { name: name.into() }, "link", name)?;
        check_name_len("link", name)?;
        Ok(self
            .index_of(name)
            .and_then(|i| self.links.get(&i))
            .map(|l| l.facts.clone()))
    }

    fn links(&mut self) -> Result<Vec<LinkFacts>, NetError> {
        self.record(Op::Links, "links", "")?;
        Ok(self.links.values().map(|l| l.facts.clone()).collect())
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError> {
        let op = Op::CreateBridge {
            name: name.into(),
            mtu,
            vlan_filtering,
        };
        self.record(op, "create_bridge", name)?;
        self.check_new_name("create_bridge", name)?;
        let index = self.insert(name, "bridge", mtu, None);
        if let Some(bridge) = self.links.get_mut(&index) {
            bridge.facts.vlan_filtering = Some(vlan_filtering);
        }
        Ok(())
    }

    fn create_veth(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: &str,
        peer_ns: &NetnsHandle,
    ) -> Result<(), NetError> {
        let op = Op::CreateVeth {
            name: name.into(),
            mtu,
            mac,
            peer_name: peer_name.into(),
            peer_ns: peer_ns.path().to_path_buf(),
        };
        self.record(op, "create_veth", name)?;
        self.check_new_name("create_veth", name)?;
        let local_peer = match &self.ns {
            Some(ns) => ns.same_as(peer_ns)?,
            None => false,
        };
        if local_peer {
            if name == peer_name {
                return Err(NetError::kernel("create_veth", peer_name, Errno::EEXIST));
            }
            self.check_new_name("create_veth", peer_name)?;
        }
        let remote = match (&self.peer_namespace, local_peer) {
            (Some(other), false) => {
                let other = other.clone();
                other.lock().check_new_name("create_veth", peer_name)?;
                Some(other)
            }
            _ => None,
        };
        let index = self.insert(name, "veth", mtu, mac);
        if let Some(other) = remote {
            // Each end reports the index the other has in its own namespace.
            let peer = other.lock().insert(peer_name, "veth", mtu, None);
            other.lock().set_peer_index(peer, index);
            self.set_peer_index(index, peer);
        }
        // Without a model of the other namespace, a remote peer's index is
        // unknown here.
        if local_peer {
            let peer = self.insert(peer_name, "veth", mtu, None);
            for (this, other) in [(index, peer), (peer, index)] {
                if let Some(link) = self.links.get_mut(&this) {
                    link.facts.peer_index = Some(other);
                }
            }
        }
        Ok(())
    }

    fn create_dummy(&mut self, name: &str) -> Result<(), NetError> {
        self.record(Op::CreateDummy { name: name.into() }, "create_dummy", name)?;
        self.check_new_name("create_dummy", name)?;
        self.insert(name, "dummy", None, None);
        Ok(())
    }

    fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        self.record(Op::DeleteLink { name: name.into() }, "delete_link", name)?;
        let index = self.get_mut("delete_link", name)?.facts.index;
        if index == 1 {
            // lo cannot be deleted.
            return Err(NetError::kernel("delete_link", name, Errno::EOPNOTSUPP));
        }
        self.remove(index);
        Ok(())
    }

    fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError> {
        self.record(
            Op::SetUp {
                name: name.into(),
                up,
            },
            "set_up",
            name,
        )?;
        let link = self.get_mut("set_up", name)?;
        link.facts.admin_up = up;
        link.facts.oper_up = up;
        Ok(())
    }

    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError> {
        self.record(
            Op::SetMtu {
                name: name.into(),
                mtu,
            },
            "set_mtu",
            name,
        )?;
        let link = self.get_mut("set_mtu", name)?;
        // Ethernet-like devices: ETH_MIN_MTU..=ETH_MAX_MTU.
        if link.facts.index != 1 && !(68..=65535).contains(&mtu) {
            return Err(NetError::kernel("set_mtu", name, Errno::EINVAL));
        }
        link.facts.mtu = mtu;
        Ok(())
    }

    fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        self.record(
            Op::SetMac {
                name: name.into(),
                mac,
            },
            "set_mac",
            name,
        )?;
        let link = self.get_mut("set_mac", name)?;
        // eth_validate_addr(): no multicast, no all-zero address.
        if mac[0] & 1 == 1 || mac == [0; 6] {
            return Err(NetError::kernel("set_mac", name, Errno::EADDRNOTAVAIL));
        }
        link.facts.mac = Some(mac);
        Ok(())
    }

    fn set_promisc(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetPromisc {
                name: name.into(),
                on,
            },
            "set_promisc",
            name,
        )?;
        self.get_mut("set_promisc", name)?.facts.promisc = on;
        Ok(())
    }

    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError> {
        let op = Op::SetMaster {
            name: name.into(),
            master: master.map(str::to_string),
        };
        self.record(op, "set_master", name)?;
        let master_index = match master {
            Some(m) => {
                let index = self
                    .index_of(m)
                    .ok_or_else(|| NetError::kernel("set_master", m, Errno::ENODEV))?;
                let is_bridge = self
                    .links
                    .get(&index)
                    .is_some_and(|l| l.facts.kind.as_deref() == Some("bridge"));
                if !is_bridge {
                    return Err(NetError::kernel("set_master", name, Errno::EOPNOTSUPP));
                }
                Some(index)
            }
            None => None,
        };
        let link = self.get_mut("set_master", name)?;
        if master_index == Some(link.facts.index) {
            return Err(NetError::kernel("set_master", name, Errno::ELOOP));
        }
        if link.facts.master != master_index {
            link.facts.master = master_index;
            link.vlans.clear();
            let port = master_index.map(|_| false);
            link.facts.hairpin = port;
            link.facts.isolated = port;
        }
        Ok(())
    }

    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), NetError> {
        self.record(
            Op::SetAlias {
                name: name.into(),
                alias: alias.into(),
            },
            "set_alias",
            name,
        )?;
        let link = self.get_mut("set_alias", name)?;
        link.facts.alias = (!alias.is_empty()).then(|| alias.to_string());
        Ok(())
    }

    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetHairpin {
                name: name.into(),
                on,
            },
            "set_hairpin",
            name,
        )?;
        self.bridge_port("set_hairpin", name)?.facts.hairpin = Some(on);
        Ok(())
    }

    fn set_isolated(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetIsolated {
                name: name.into(),
                on,
            },
            "set_isolated",
            name,
        )?;
        self.bridge_port("set_isolated", name)?.facts.isolated = Some(on);
        Ok(())
    }

    fn bridge_vlan_add(
        &mut self,
        port: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), NetError> {
        let op = Op::BridgeVlanAdd {
            port: port.into(),
            vid,
            pvid,
            untagged,
        };
        self.record(op, "bridge_vlan_add", port)?;
        let link = self.vlan_target("bridge_vlan_add", port, vid)?;
        // Re-adding updates the flags, and only one VLAN can be the PVID.
        if pvid {
            for flags in link.vlans.values_mut() {
                flags.pvid = false;
            }
        }
        link.vlans.insert(vid, BridgeVlanFlags { pvid, untagged });
        Ok(())
    }

    fn bridge_vlan_del(&mut self, port: &str, vid: u16) -> Result<(), NetError> {
        self.record(
            Op::BridgeVlanDel {
                port: port.into(),
                vid,
            },
            "bridge_vlan_del",
            port,
        )?;
        let link = self.vlan_target("bridge_vlan_del", port, vid)?;
        match link.vlans.remove(&vid) {
            Some(_) => Ok(()),
            None => Err(NetError::kernel("bridge_vlan_del", port, Errno::ENOENT)),
        }
    }

    fn bridge_vlans(&mut self, port: &str) -> Result<Vec<(u16, BridgeVlanFlags)>, NetError> {
        self.record(Op::BridgeVlans { port: port.into() }, "bridge_vlans", port)?;
        let link = self.get_mut("bridge_vlans", port)?;
        Ok(link
            .vlans
            .iter()
            .map(|(vid, flags)| (*vid, *flags))
            .collect())
    }

    fn move_to_netns(&mut self, name: &str, ns: &NetnsHandle) -> Result<(), NetError> {
        let op = Op::MoveToNetns {
            name: name.into(),
            ns: ns.path().to_path_buf(),
        };
        self.record(op, "move_to_netns", name)?;
        let index = self.get_mut("move_to_netns", name)?.facts.index;
        if let Some(bound) = &self.ns {
            if bound.same_as(ns)? {
                return Ok(());
            }
        }
        let kind = self.links.get(&index).and_then(|l| l.facts.kind.clone());
        // lo and bridges are NETIF_F_NETNS_LOCAL.
        if index == 1 || kind.as_deref() == Some("bridge") {
            return Err(NetError::kernel("move_to_netns", name, Errno::EINVAL));
        }
        // Unlike delete, a moved veth end leaves its peer here.
        if let Some(peer) = self.links.get(&index).and_then(|l| l.facts.peer_index) {
            if let Some(peer) = self.links.get_mut(&peer) {
                if peer.facts.peer_index == Some(index) {
                    peer.facts.peer_index = None;
                }
            }
        }
        if let Some(link) = self.links.get_mut(&index) {
            link.facts.peer_index = None;
        }
        self.remove(index);
        Ok(())
    }

    fn add_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.record(
            Op::AddAddress {
                name: name.into(),
                addr,
            },
            "add_address",
            name,
        )?;
        let target = format!("{addr} dev {name}");
        let link = self.get_mut("add_address", name)?;
        if link.facts.addresses.iter().any(|a| same_address(a, &addr)) {
            return Err(NetError::kernel("add_address", target, Errno::EEXIST));
        }
        link.facts.addresses.push(addr);
        Ok(())
    }

    fn del_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.record(
            Op::DelAddress {
                name: name.into(),
                addr,
            },
            "del_address",
            name,
        )?;
        let target = format!("{addr} dev {name}");
        let link = self.get_mut("del_address", name)?;
        let before = link.facts.addresses.len();
        link.facts.addresses.retain(|a| *a != addr);
        if link.facts.addresses.len() == before {
            return Err(NetError::kernel(
                "del_address",
                target,
                Errno::EADDRNOTAVAIL,
            ));
        }
        Ok(())
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.record(
            Op::AddRoute(route.clone()),
            "add_route",
            &route.dst.to_string(),
        )?;
        let facts = self.route_facts("add_route", route)?;
        if self.routes.iter().any(|r| Self::same_route(r, &facts)) {
            return Err(NetError::kernel(
                "add_route",
                route.dst.to_string(),
                Errno::EEXIST,
            ));
        }
        self.routes.push(facts);
        Ok(())
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.record(
            Op::DelRoute(route.clone()),
            "del_route",
            &route.dst.to_string(),
        )?;
        let want = self.route_facts("del_route", route)?;
        // Unset fields are wildcards, as for the kernel.
        let found = self.routes.iter().position(|r| {
            r.dst == want.dst
                && r.table == want.table
                && (route.gw.is_none() || r.gw == want.gw)
                && (want.oif.is_none() || r.oif == want.oif)
                && (route.priority.is_none() || r.priority == want.priority)
                && (route.scope.is_none() || Some(r.scope) == route.scope)
        });
        match found {
            Some(i) => {
                self.routes.remove(i);
                Ok(())
            }
            None => Err(NetError::kernel(
                "del_route",
                route.dst.to_string(),
                Errno::ESRCH,
            )),
        }
    }

    fn routes(&mut self) -> Result<Vec<RouteFacts>, NetError> {
        self.record(Op::Routes, "routes", "")?;
        let mut routes = self.routes.clone();
        routes.sort_by_key(|r| matches!(r.dst.addr(), IpAddr::V6(_)));
        Ok(routes)
    }

    fn set_sysctl(&mut self, path: &str, value: &str) -> Result<(), NetError> {
        let op = Op::SetSysctl {
            path: path.into(),
            value: value.into(),
        };
        self.record(op, "sysctl", path)?;
        validate_sysctl_path(path)?;
        self.sysctls.insert(path.to_string(), value.to_string());
        Ok(())
    }

    fn sysctl(&mut self, path: &str) -> Result<String, NetError> {
        self.record(Op::Sysctl { path: path.into() }, "sysctl", path)?;
        validate_sysctl_path(path)?;
        self.sysctls
            .get(path)
            .cloned()
            .ok_or_else(|| NetError::kernel("sysctl", path, Errno::ENOENT))
    }

    fn wait_addresses_settled(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.record(
            Op::WaitAddressesSettled {
                name: name.into(),
                timeout,
            },
            "wait_addresses_settled",
            name,
        )?;
        // The model runs no DAD: every address is usable once added.
        self.get_mut("wait_addresses_settled", name)?;
        Ok(())
    }

    fn wait_oper_up(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.record(
            Op::WaitOperUp {
                name: name.into(),
                timeout,
            },
            "wait_oper_up",
            name,
        )?;
        // Nothing changes while the fake waits, so it answers at once.
        if self.get_mut("wait_oper_up", name)?.facts.oper_up {
            Ok(())
        } else {
            Err(NetError::Timeout {
                what: format!("{name} to be operationally up"),
                waited: Duration::ZERO,
            })
        }
    }
}
