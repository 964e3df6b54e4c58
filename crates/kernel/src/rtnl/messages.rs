//! Requests and answers: building link, address, route and VLAN messages,
//! and reading them back into the door's facts.

use super::*;

impl RtNetlink {
    pub(super) fn set_link(
        &self,
        op: &'static str,
        name: &str,
        msg: LinkMessage,
    ) -> Result<(), NetError> {
        self.exec(op, name, self.conn()?.handle.link().set(msg).execute())
    }

    pub(super) fn get_link_msg(
        &self,
        op: &'static str,
        name: &str,
    ) -> Result<Option<LinkMessage>, NetError> {
        let mut req = self.conn()?.handle.link().get().match_name(name).execute();
        match self.conn()?.rt.block_on(req.try_next()) {
            Ok(msg) => Ok(msg),
            Err(e) => match nl_error(op, name, e) {
                e if e.errno() == Some(Errno::ENODEV) => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The index of `name`, or the kernel's ENODEV as a [`NetError::Kernel`].
    pub(super) fn index_of(&self, op: &'static str, name: &str) -> Result<u32, NetError> {
        match self.get_link_msg(op, name)? {
            Some(msg) => Ok(msg.header.index),
            None => Err(NetError::kernel(op, name, Errno::ENODEV)),
        }
    }

    pub(super) fn addresses(&self) -> Result<Vec<(u32, IpNet)>, NetError> {
        let msgs: Vec<AddressMessage> = self
            .conn()?
            .rt
            .block_on(self.conn()?.handle.address().get().execute().try_collect())
            .map_err(|e| nl_error("get addresses", "", e))?;
        Ok(msgs.iter().filter_map(address_of).collect())
    }

    /// Every link of the namespace (one dump).
    pub(super) fn link_messages(&self) -> Result<Vec<LinkMessage>, NetError> {
        self.conn()?
            .rt
            .block_on(self.conn()?.handle.link().get().execute().try_collect())
            .map_err(|e| nl_error("links", "", e))
    }

    /// The addresses of link `index` alone (the kernel filters, see `open`;
    /// filtered here as well).
    pub(super) fn addresses_of(&self, index: u32) -> Result<Vec<IpNet>, NetError> {
        // The header's index is what the kernel filters on (the crate's
        // index filter only drops messages after they arrived).
        let mut req = self
            .conn()?
            .handle
            .address()
            .get()
            .set_link_index_filter(index);
        req.message_mut().header.index = index;
        let msgs: Vec<AddressMessage> = self
            .conn()?
            .rt
            .block_on(req.execute().try_collect())
            .map_err(|e| nl_error("get addresses", &index.to_string(), e))?;
        Ok(msgs
            .iter()
            .filter_map(address_of)
            .filter(|(i, _)| *i == index)
            .map(|(_, net)| net)
            .collect())
    }

    /// The IPv6 addresses of link `index` that are still tentative; fails
    /// with [`NetError::Conflict`] if DAD failed on any of them.
    pub(super) fn tentative_ipv6(
        &self,
        op: &'static str,
        name: &str,
        index: u32,
    ) -> Result<Vec<IpNet>, NetError> {
        let mut req = self.conn()?.handle.address().get();
        // An AF_INET6 dump goes to IPv6 alone; the index is filtered here,
        // since kernels without strict checking ignore it in the request.
        req.message_mut().header.family = AddressFamily::Inet6;
        req.message_mut().header.index = index;
        let msgs: Vec<AddressMessage> = self
            .conn()?
            .rt
            .block_on(req.set_link_index_filter(index).execute().try_collect())
            .map_err(|e| nl_error(op, name, e))?;
        let mut tentative = Vec::new();
        for msg in msgs.iter().filter(|m| m.header.index == index) {
            let Some((_, addr)) = address_of(msg) else {
                continue;
            };
            let flags = address_flags(msg);
            if flags.contains(AddressFlags::Dadfailed) {
                return Err(NetError::Conflict(format!(
                    "duplicate address detection failed for {addr} on {name}: \
                     another node on the link already uses it"
                )));
            }
            if flags.contains(AddressFlags::Tentative) {
                tentative.push(addr);
            }
        }
        Ok(tentative)
    }

    pub(super) fn bridge_port_msg(
        &self,
        op: &'static str,
        name: &str,
        attr: u16,
        on: bool,
    ) -> Result<(), NetError> {
        let index = self.index_of(op, name)?;
        // RTM_SETLINK with AF_BRIDGE goes to the bridge's ndo_bridge_setlink.
        // The kernel treats a non-nested IFLA_PROTINFO as the legacy
        // "port state" byte, so the nested flag (which netlink-packet-route
        // sets for ProtoInfoBridge) matters.
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(attr, vec![u8::from(on)])),
        ]));
        self.set_link(op, name, msg)
    }

    pub(super) fn vlan_msg(
        &self,
        op: &'static str,
        port: &str,
        vid: u16,
        flags: BridgeVlanInfoFlags,
    ) -> Result<LinkMessage, NetError> {
        if !(1..=4094).contains(&vid) {
            return Err(NetError::Invalid(format!(
                "VLAN id {vid} is not in 1..=4094"
            )));
        }
        let Some(facts) = self.get_link_msg(op, port)?.map(|m| link_facts(&m)) else {
            return Err(NetError::kernel(op, port, Errno::ENODEV));
        };
        let mut builder = LinkBridgeVlan::new(facts.index).vlan(vid, flags);
        // Without flags the kernel hands the request to the port's master;
        // the bridge device itself has none and must be addressed as "self".
        if facts.kind.as_deref() == Some("bridge") {
            builder = builder.bridge_self();
        }
        Ok(builder.build())
    }

    pub(super) fn route_msg(
        &self,
        op: &'static str,
        spec: &RouteSpec,
    ) -> Result<RouteMessage, NetError> {
        let invalid =
            |e: &dyn std::fmt::Display| NetError::Invalid(format!("{op} {}: {e}", spec.dst));
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(spec.dst.addr(), spec.dst.prefix_len())
            .map_err(|e| invalid(&e))?
            .table_id(spec.effective_table());
        if let Some(gw) = spec.gw {
            builder = builder.gateway(gw).map_err(|e| invalid(&e))?;
        }
        if let Some(oif) = &spec.oif_name {
            builder = builder.output_interface(self.index_of(op, oif)?);
        }
        if let Some(priority) = spec.priority {
            builder = builder.priority(priority);
        }
        Ok(builder.build())
    }

    pub(super) fn routes_of(&self, mut msg: RouteMessage) -> Result<Vec<RouteFacts>, NetError> {
        // Under strict checking these header fields are filters; the builder's
        // defaults (table main, proto static, type unicast) would hide routes.
        msg.header.table = 0;
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.kind = RouteType::Unspec;
        msg.header.scope = RouteScope::Universe;
        let msgs: Vec<RouteMessage> = self
            .conn()?
            .rt
            .block_on(self.conn()?.handle.route().get(msg).execute().try_collect())
            .map_err(|e| nl_error("get routes", "", e))?;
        Ok(msgs.iter().filter_map(route_facts).collect())
    }
}

pub(super) fn link_facts(msg: &LinkMessage) -> LinkFacts {
    let flags = msg.header.flags;
    let mut facts = LinkFacts::new(String::new(), msg.header.index);
    facts.admin_up = flags.contains(LinkFlags::Up);
    facts.promisc = flags.contains(LinkFlags::Promisc);
    let mut state = State::Unknown;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => facts.name = name.clone(),
            LinkAttribute::Mtu(mtu) => facts.mtu = *mtu,
            LinkAttribute::Address(addr) => facts.mac = <[u8; 6]>::try_from(addr.as_slice()).ok(),
            LinkAttribute::Controller(index) if *index != 0 => facts.master = Some(*index),
            LinkAttribute::Link(index) if *index != 0 => facts.peer_index = Some(*index),
            LinkAttribute::IfAlias(alias) => facts.alias = Some(alias.clone()),
            LinkAttribute::OperState(s) => state = *s,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => facts.kind = Some(kind.to_string()),
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            for opt in opts {
                                if let InfoBridge::VlanFiltering(on) = opt {
                                    facts.vlan_filtering = Some(*on);
                                }
                            }
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                            for opt in opts {
                                match opt {
                                    InfoBridgePort::HairpinMode(on) => facts.hairpin = Some(*on),
                                    InfoBridgePort::Isolated(on) => facts.isolated = Some(*on),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if facts.kind.as_deref() == Some("bridge") && facts.vlan_filtering.is_none() {
        // Kernels without CONFIG_BRIDGE_VLAN_FILTERING omit the attribute.
        facts.vlan_filtering = Some(false);
    }
    // Drivers without carrier management (lo, dummy) stay at UNKNOWN even
    // when running; IFF_LOWER_UP then tells whether they pass traffic.
    facts.oper_up = state == State::Up
        || (state == State::Unknown && facts.admin_up && flags.contains(LinkFlags::LowerUp));
    facts
}

pub(super) fn address_of(msg: &AddressMessage) -> Option<(u32, IpNet)> {
    // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the
    // peer's on point-to-point links; IPv6 only sends IFA_ADDRESS.
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let net = IpNet::new(ip, msg.header.prefix_len).ok()?;
    Some((msg.header.index, net))
}

/// The address flags: the 32-bit `IFA_FLAGS` when the kernel sends it
/// (since 3.14), else the header's 8 bits, which hold the DAD flags too.
pub(super) fn address_flags(msg: &AddressMessage) -> AddressFlags {
    msg.attributes
        .iter()
        .find_map(|attr| match attr {
            AddressAttribute::Flags(flags) => Some(*flags),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits())))
}

pub(super) fn route_addr(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

pub(super) fn route_facts(msg: &RouteMessage) -> Option<RouteFacts> {
    let header = &msg.header;
    // Local, broadcast and multicast entries of the local table are not
    // routes anyone configured.
    if header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = None;
    let mut facts = RouteFacts {
        dst: IpNet::V4(ipnet::Ipv4Net::default()),
        gw: None,
        oif: None,
        table: u32::from(header.table),
        priority: None,
        scope: u8::from(header.scope),
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(addr) => dst = route_addr(addr),
            RouteAttribute::Gateway(addr) => facts.gw = route_addr(addr),
            RouteAttribute::Via(RouteVia::Inet6(ip)) => facts.gw = Some(IpAddr::V6(*ip)),
            RouteAttribute::Via(RouteVia::Inet(ip)) => facts.gw = Some(IpAddr::V4(*ip)),
            RouteAttribute::Oif(index) => facts.oif = Some(*index),
            // RTA_TABLE carries ids above 255, which the u8 header cannot.
            RouteAttribute::Table(table) => facts.table = *table,
            RouteAttribute::Priority(priority) => facts.priority = Some(*priority),
            _ => {}
        }
    }
    let dst = match (dst, header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u8; 16]),
        (None, _) => return None,
    };
    facts.dst = IpNet::new(dst, header.destination_prefix_length).ok()?;
    Some(facts)
}
