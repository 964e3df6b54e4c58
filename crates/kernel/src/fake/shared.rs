//! [`SharedNetlink`]: one recording model behind a lock, so that a test keeps a
//! handle on a namespace it gave away as a door, and a veth created in one
//! model can put its peer in another.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;

use super::RecordingNetlink;
use crate::netlink::{
    BridgeVlanFlags, LinkFacts, NetError, Netlink, RetiredLink, RouteFacts, RouteSpec,
};
use crate::netns::NetnsHandle;

/// A [`RecordingNetlink`] shared between the code under test and the test.
#[derive(Debug, Clone, Default)]
pub struct SharedNetlink(Arc<Mutex<RecordingNetlink>>);

impl SharedNetlink {
    /// Share `model`.
    pub fn new(model: RecordingNetlink) -> Self {
        SharedNetlink(Arc::new(Mutex::new(model)))
    }

    /// The model, to look at or to change.
    pub fn lock(&self) -> MutexGuard<'_, RecordingNetlink> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Netlink for SharedNetlink {
    fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        self.lock().link(name)
    }

    fn link_brief(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        self.lock().link_brief(name)
    }

    fn link_by_index(&mut self, index: u32) -> Result<Option<LinkFacts>, NetError> {
        self.lock().link_by_index(index)
    }

    fn links(&mut self) -> Result<Vec<LinkFacts>, NetError> {
        self.lock().links()
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError> {
        self.lock().create_bridge(name, mtu, vlan_filtering)
    }

    fn create_veth(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: &str,
        peer_ns: &NetnsHandle,
    ) -> Result<(), NetError> {
        self.lock().create_veth(name, mtu, mac, peer_name, peer_ns)
    }

    fn create_dummy(&mut self, name: &str) -> Result<(), NetError> {
        self.lock().create_dummy(name)
    }

    fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        self.lock().delete_link(name)
    }

    fn retire_link(&mut self, name: &str) -> Result<Option<RetiredLink>, NetError> {
        self.lock().retire_link(name)
    }

    fn retired_links(&mut self) -> Result<Vec<String>, NetError> {
        self.lock().retired_links()
    }

    fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError> {
        self.lock().set_up(name, up)
    }

    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError> {
        self.lock().set_mtu(name, mtu)
    }

    fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        self.lock().set_mac(name, mac)
    }

    fn set_promisc(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.lock().set_promisc(name, on)
    }

    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError> {
        self.lock().set_master(name, master)
    }

    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), NetError> {
        self.lock().set_alias(name, alias)
    }

    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.lock().set_hairpin(name, on)
    }

    fn set_isolated(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.lock().set_isolated(name, on)
    }

    fn bridge_vlan_add(
        &mut self,
        port: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), NetError> {
        self.lock().bridge_vlan_add(port, vid, pvid, untagged)
    }

    fn bridge_vlan_del(&mut self, port: &str, vid: u16) -> Result<(), NetError> {
        self.lock().bridge_vlan_del(port, vid)
    }

    fn bridge_vlans(&mut self, port: &str) -> Result<Vec<(u16, BridgeVlanFlags)>, NetError> {
        self.lock().bridge_vlans(port)
    }

    fn move_to_netns(&mut self, name: &str, ns: &NetnsHandle) -> Result<(), NetError> {
        self.lock().move_to_netns(name, ns)
    }

    fn add_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.lock().add_address(name, addr)
    }

    fn del_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.lock().del_address(name, addr)
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.lock().add_route(route)
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.lock().del_route(route)
    }

    fn routes(&mut self) -> Result<Vec<RouteFacts>, NetError> {
        self.lock().routes()
    }

    fn set_sysctl(&mut self, path: &str, value: &str) -> Result<(), NetError> {
        self.lock().set_sysctl(path, value)
    }

    fn sysctl(&mut self, path: &str) -> Result<String, NetError> {
        self.lock().sysctl(path)
    }

    fn wait_addresses_settled(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.lock().wait_addresses_settled(name, timeout)
    }

    fn wait_oper_up(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.lock().wait_oper_up(name, timeout)
    }
}
