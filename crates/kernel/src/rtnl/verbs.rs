//! The door's verbs ([`Netlink`]) over rtnetlink.

use super::*;

impl Netlink for RtNetlink {
    fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        let Some(msg) = self.get_link_msg("link", name)? else {
            return Ok(None);
        };
        let mut facts = link_facts(&msg);
        facts.addresses = self.addresses_of(facts.index)?;
        Ok(Some(facts))
    }

    fn link_brief(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        Ok(self.get_link_msg("link", name)?.map(|msg| link_facts(&msg)))
    }

    fn link_by_index(&mut self, index: u32) -> Result<Option<LinkFacts>, NetError> {
        let mut req = self
            .conn()?
            .handle
            .link()
            .get()
            .match_index(index)
            .execute();
        match self.conn()?.rt.block_on(req.try_next()) {
            Ok(msg) => Ok(msg.map(|m| link_facts(&m))),
            Err(e) => match nl_error("link by index", &index.to_string(), e) {
                e if e.errno() == Some(Errno::ENODEV) => Ok(None),
                e => Err(e),
            },
        }
    }

    fn links(&mut self) -> Result<Vec<LinkFacts>, NetError> {
        let msgs = self.link_messages()?;
        let addresses = self.addresses()?;
        Ok(msgs
            .iter()
            .map(|msg| {
                let mut facts = link_facts(msg);
                facts.addresses = addresses
                    .iter()
                    .filter(|(index, _)| *index == facts.index)
                    .map(|(_, net)| *net)
                    .collect();
                facts
            })
            .collect())
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError> {
        // Not LinkBridge::new, which also sets the bridge up: going up is a
        // separate, journaled step.
        let mut builder = LinkMessageBuilder::<LinkBridge>::new(name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        // Only sent when wanted: kernels without CONFIG_BRIDGE_VLAN_FILTERING
        // reject the attribute with EOPNOTSUPP even when it says "off".
        if vlan_filtering {
            builder = builder.vlan_filtering(true);
        }
        self.exec(
            "create_bridge",
            name,
            self.conn()?.handle.link().add(builder.build()).execute(),
        )
    }

    fn create_veth(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: &str,
        peer_ns: &NetnsHandle,
    ) -> Result<(), NetError> {
        // The fd number is resolved in the sending process while the request
        // is processed, which is this process: the socket belongs to it.
        let mut peer =
            LinkUnspec::new_with_name(peer_name).setns_by_fd(peer_ns.as_fd().as_raw_fd());
        let mut builder =
            LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth).name(name);
        if let Some(mtu) = mtu {
            // Like vishvananda/netlink: the peer gets the same MTU, otherwise
            // the kernel gives it the default 1500.
            peer = peer.mtu(mtu);
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = mac {
            builder = builder.address(mac.to_vec());
        }
        let msg = builder
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.exec(
            "create_veth",
            name,
            self.conn()?.handle.link().add(msg).execute(),
        )
    }

    fn create_dummy(&mut self, name: &str) -> Result<(), NetError> {
        let msg = rtnetlink::LinkDummy::new(name).build();
        self.exec(
            "create_dummy",
            name,
            self.conn()?.handle.link().add(msg).execute(),
        )
    }

    fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        // RTM_DELLINK with index 0 looks the device up by IFLA_IFNAME: one
        // round trip and no index race.
        let msg = LinkUnspec::new_with_name(name).build();
        self.exec(
            "delete_link",
            name,
            self.conn()?.handle.link().del_with_message(msg).execute(),
        )
    }

    fn retire_link(&mut self, name: &str) -> Result<Option<RetiredLink>, NetError> {
        const OP: &str = "retire_link";
        let index = self.index_of(OP, name)?;
        let retired = retired_name(index);
        // The socket first: without one, the link is deleted right here.
        let socket = match self.in_netns(route_socket)? {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!("no socket for a deferred deletion ({e}); deleting now");
                return self.delete_link(name).map(|()| None);
            }
        };
        // A veth is renamed only while down; by index, so that the rename
        // cannot hit another link of that name.
        self.set_link(OP, name, LinkUnspec::new_with_index(index).down().build())?;
        let rename = LinkUnspec::new_with_index(index).name(retired).build();
        self.set_link(OP, name, rename)?;
        Ok(Some(RetiredLink { socket, index }))
    }

    fn retired_links(&mut self) -> Result<Vec<String>, NetError> {
        let msgs = self.link_messages()?;
        Ok(msgs
            .iter()
            .map(|m| link_facts(m).name)
            .filter(|n| n.starts_with(RETIRED_PREFIX))
            .collect())
    }

    fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError> {
        // RTM_SETLINK with index 0 also resolves IFLA_IFNAME (no rename).
        let builder = LinkUnspec::new_with_name(name);
        let builder = if up { builder.up() } else { builder.down() };
        self.set_link("set_up", name, builder.build())
    }

    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError> {
        self.set_link(
            "set_mtu",
            name,
            LinkUnspec::new_with_name(name).mtu(mtu).build(),
        )
    }

    fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_name(name)
            .address(mac.to_vec())
            .build();
        self.set_link("set_mac", name, msg)
    }

    fn set_promisc(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_name(name).promiscuous(on).build();
        self.set_link("set_promisc", name, msg)
    }

    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError> {
        let builder = LinkUnspec::new_with_name(name);
        // The master must be resolved here: given an unknown index the kernel
        // first releases the current master and only then fails (EINVAL).
        let builder = match master {
            Some(master) => builder.controller(self.index_of("set_master", master)?),
            None => builder.nocontroller(),
        };
        self.set_link("set_master", name, builder.build())
    }

    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_name(name).alias(alias).build();
        self.set_link("set_alias", name, msg)
    }

    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.bridge_port_msg("set_hairpin", name, IFLA_BRPORT_MODE, on)
    }

    fn set_isolated(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.bridge_port_msg("set_isolated", name, IFLA_BRPORT_ISOLATED, on)
    }

    fn bridge_vlan_add(
        &mut self,
        port: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), NetError> {
        let mut flags = BridgeVlanInfoFlags::empty();
        flags.set(BridgeVlanInfoFlags::Pvid, pvid);
        flags.set(BridgeVlanInfoFlags::Untagged, untagged);
        let msg = self.vlan_msg("bridge_vlan_add", port, vid, flags)?;
        self.set_link("bridge_vlan_add", port, msg)
    }

    fn bridge_vlan_del(&mut self, port: &str, vid: u16) -> Result<(), NetError> {
        let msg = self.vlan_msg("bridge_vlan_del", port, vid, BridgeVlanInfoFlags::empty())?;
        self.exec(
            "bridge_vlan_del",
            port,
            self.conn()?.handle.link().del_with_message(msg).execute(),
        )
    }

    fn bridge_vlans(&mut self, port: &str) -> Result<Vec<(u16, BridgeVlanFlags)>, NetError> {
        let index = self.index_of("bridge_vlans", port)?;
        // An AF_BRIDGE dump lists every port (the index is not a filter);
        // RTEXT_FILTER_BRVLAN asks for one IFLA_BRIDGE_VLAN_INFO per VLAN.
        let req = self
            .conn()?
            .handle
            .link()
            .get()
            .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
            .execute();
        let msgs: Vec<LinkMessage> = self
            .conn()?
            .rt
            .block_on(req.try_collect())
            .map_err(|e| nl_error("bridge_vlans", port, e))?;
        let mut vlans = Vec::new();
        for msg in msgs.iter().filter(|m| m.header.index == index) {
            for attr in &msg.attributes {
                if let LinkAttribute::AfSpecBridge(specs) = attr {
                    for spec in specs {
                        if let AfSpecBridge::VlanInfo(info) = spec {
                            vlans.push((
                                info.vid,
                                BridgeVlanFlags {
                                    pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                                    untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                                },
                            ));
                        }
                    }
                }
            }
        }
        Ok(vlans)
    }

    fn move_to_netns(&mut self, name: &str, ns: &NetnsHandle) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_name(name)
            .setns_by_fd(ns.as_fd().as_raw_fd())
            .build();
        self.set_link("move_to_netns", name, msg)
    }

    fn add_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        let index = self.index_of("add_address", name)?;
        let req = self
            .conn()?
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .execute();
        self.exec("add_address", &format!("{addr} dev {name}"), req)
    }

    fn del_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        let index = self.index_of("del_address", name)?;
        let msg = match addr {
            IpNet::V4(net) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(net.addr(), net.prefix_len())
                .build(),
            IpNet::V6(net) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(net.addr(), net.prefix_len())
                .build(),
        };
        let req = self.conn()?.handle.address().del(msg).execute();
        self.exec("del_address", &format!("{addr} dev {name}"), req)
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        let mut msg = self.route_msg("add_route", route)?;
        msg.header.scope = RouteScope::from(route.effective_add_scope());
        // RTPROT_BOOT, as netlink's default and the reference plugins use: routes
        // look the same in `ip route` whichever plugin added them.
        msg.header.protocol = RouteProtocol::Boot;
        let req = self.conn()?.handle.route().add(msg).execute();
        self.exec("add_route", &route.dst.to_string(), req)
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        let mut msg = self.route_msg("del_route", route)?;
        // Zero/NOWHERE are wildcards for deletion, as in `ip route del`;
        // the builder's defaults (proto static, scope universe) would miss
        // routes added by the kernel or by other tools.
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.kind = RouteType::Unspec;
        msg.header.scope = route.scope.map_or(RouteScope::NoWhere, RouteScope::from);
        let req = self.conn()?.handle.route().del(msg).execute();
        self.exec("del_route", &route.dst.to_string(), req)
    }

    fn routes(&mut self) -> Result<Vec<RouteFacts>, NetError> {
        // Two dumps: an AF_UNSPEC dump would also walk multicast routing
        // and MPLS tables.
        let mut routes =
            self.routes_of(RouteMessageBuilder::<std::net::Ipv4Addr>::new().build())?;
        routes.extend(self.routes_of(RouteMessageBuilder::<std::net::Ipv6Addr>::new().build())?);
        Ok(routes)
    }

    fn set_sysctl(&mut self, path: &str, value: &str) -> Result<(), NetError> {
        if let Some((ifname, key)) = ipv4_link_conf(path) {
            let value: u32 = value.trim().parse().map_err(|_| {
                NetError::Invalid(format!("sysctl {path}: {value:?} is not a number"))
            })?;
            return self.set_ipv4_conf(path, ifname, key, value);
        }
        self.sysctl_io(path, Some(value.to_string())).map(drop)
    }

    fn sysctl(&mut self, path: &str) -> Result<String, NetError> {
        if let Some((ifname, key)) = ipv4_link_conf(path) {
            return self.ipv4_conf(path, ifname, key).map(|v| v.to_string());
        }
        if path == "net/ipv4/ip_forward" {
            // Asked on every gateway ADD, where it is almost always on already.
            match self.in_netns(ipv4_forwarding)? {
                Ok(on) => return Ok(u8::from(on).to_string()),
                Err(e) => tracing::debug!("RTM_GETNETCONF: {e}; reading /proc instead"),
            }
        }
        let raw = self.sysctl_io(path, None)?;
        Ok(raw.trim_end_matches('\n').to_string())
    }

    fn wait_addresses_settled(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        // The kernel announces the end of DAD only as an RTM_NEWADDR event on
        // a multicast group; polling a dump of one family needs no second
        // socket, and DAD itself takes a second or more, so the back-off
        // costs little latency. The link is looked up on every round so that
        // one deleted meanwhile is an error, not "no tentative addresses".
        const OP: &str = "wait_addresses_settled";
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let index = self.index_of(OP, name)?;
            let tentative = self.tentative_ipv6(OP, name, index)?;
            if tentative.is_empty() {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= timeout {
                let list: Vec<String> = tentative.iter().map(ToString::to_string).collect();
                // DAD does not start before the link has carrier.
                let down = match self.get_link_msg(OP, name)? {
                    Some(msg) if !link_facts(&msg).oper_up => {
                        " (the link is not operationally up, so DAD cannot run)"
                    }
                    _ => "",
                };
                return Err(NetError::Timeout {
                    what: format!(
                        "duplicate address detection on {name} to finish; still tentative: {}{down}",
                        list.join(", ")
                    ),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    fn wait_oper_up(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        // Polling one RTM_GETLINK is cheap and needs no second socket; the
        // back-off keeps latency low for the usual few-millisecond wait.
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.get_link_msg("wait_oper_up", name)? {
                Some(msg) if link_facts(&msg).oper_up => return Ok(()),
                Some(_) => {}
                None => return Err(NetError::kernel("wait_oper_up", name, Errno::ENODEV)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(NetError::Timeout {
                    what: format!("{name} to be operationally up"),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}
