//! What the kernel shows, as the guest's observations: a link, the routes of a
//! namespace, the masquerade rules of a network.

use plan::{AttachmentKey, MasqRuleFacts, ObservedLink, ObservedRoute, Side};

use super::Kernel;

impl Kernel {
    /// Facts about one link, with its master resolved to a name.
    pub fn observe_link(&mut self, side: Side, name: &str) -> Option<ObservedLink> {
        let nl = self.side(side).ok()?;
        let facts = nl.link(name).ok()??;
        let master = match facts.master {
            Some(index) => nl.link_by_index(index).ok().flatten().map(|l| l.name),
            None => None,
        };
        Some(ObservedLink {
            side,
            name: facts.name,
            index: facts.index,
            kind: facts.kind,
            mac: facts.mac.map(plan::Mac),
            mtu: facts.mtu,
            admin_up: facts.admin_up,
            oper_up: facts.oper_up,
            promisc: facts.promisc,
            master,
            peer_index: facts.peer_index,
            addresses: facts.addresses,
        })
    }

    /// The masquerade rules of one network, in every backend.
    pub fn masquerade_rules(&mut self, network: &str) -> Vec<MasqRuleFacts> {
        let mut out = Vec::new();
        for door in self.masq.all() {
            for r in door.rules(network).unwrap_or_default() {
                out.push(MasqRuleFacts {
                    source: r.source,
                    key: AttachmentKey {
                        network: r.network,
                        container_id: r.container_id,
                        ifname: r.ifname,
                    },
                });
            }
        }
        out
    }

    /// The main-table unicast routes of one namespace, with device names.
    pub fn observe_routes(&mut self, side: Side) -> Vec<ObservedRoute> {
        let Ok(nl) = self.side(side) else {
            return Vec::new();
        };
        let routes: Vec<_> = nl
            .routes()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.table == crate::netlink::RT_TABLE_MAIN)
            .collect();
        // Names of the few devices the routes use, one lookup each: a dump of
        // every link would cost one entry per pod on a node's namespace.
        let mut names: Vec<(u32, Option<String>)> = Vec::new();
        for oif in routes.iter().filter_map(|r| r.oif) {
            if !names.iter().any(|(i, _)| *i == oif) {
                let name = nl.link_by_index(oif).ok().flatten().map(|l| l.name);
                names.push((oif, name));
            }
        }
        routes
            .into_iter()
            .map(|r| ObservedRoute {
                dst: r.dst,
                gw: r.gw,
                dev: r
                    .oif
                    .and_then(|i| names.iter().find(|(n, _)| *n == i))
                    .and_then(|(_, name)| name.clone()),
                priority: r.priority,
            })
            .collect()
    }
}
