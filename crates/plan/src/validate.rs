//! Every intent of a plan is checked before the first one is applied. A rejected
//! plan changes nothing, and the error names the intent, the rule and the value.
//!
//! Two layers of rules. Those that hold for every plugin, whatever it is granted:
//! the container side is only `CNI_IFNAME` (and `lo`) in the invocation's own
//! namespace; the host side is only links this plan creates (a bridge it ensures,
//! a veth peer), plus granted uplinks as a master; names are valid for the kernel;
//! masquerade and anti-spoofing rules belong to this network and attachment; at
//! most `max_intents` intents. And those of the plugin's [`Grant`]: which intent
//! kinds, which bridge names, which sysctls, which CIDRs besides what IPAM
//! returned for this container, whether it may masquerade or route on the host.

use std::collections::BTreeSet;
use std::fmt;

use addresses::Addresses;

use crate::policy::Grant;
use crate::{Intent, IntentKind, LinkRef, Side};
use cni::{CniError, CniResult, ErrorCode};

/// Linux's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// The invocation's container namespace, as far as validation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerNs {
    /// `CNI_NETNS` is open.
    Present,
    /// DEL for a namespace that is already gone: container-side intents are
    /// checked, then skipped when applying.
    Gone,
    /// The verb has no container (GC, STATUS): container-side intents are refused.
    Absent,
}

/// What the validator needs to know about the invocation.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The state of the invocation's container namespace.
    pub container: ContainerNs,
    /// Largest number of intents accepted.
    pub max_intents: usize,
    /// The network's `name`.
    pub network: &'a str,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// What the plugin is granted.
    pub grant: &'a Grant,
    /// What IPAM returned to this invocation.
    pub ipam: &'a [CniResult],
}

/// Why the validator refused a plan: this layer's error. Its CNI code is
/// decided once, in `From<Refusal> for CniError`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "refusal", rename_all = "kebab-case")]
pub enum Refusal {
    /// More intents than `limits.maxIntents`.
    TooManyIntents { count: usize, limit: usize },
    /// IPAM returned an address outside the address space open to the plugin.
    OutsideAddressSpace {
        /// The address (or gateway) IPAM returned.
        value: String,
        /// The address space in effect.
        space: Vec<String>,
    },
    /// An intent broke a rule.
    Rejected {
        /// Its position in the plan.
        index: usize,
        kind: IntentKind,
        /// The rule it broke.
        rule: &'static str,
        /// The value the rule refused.
        value: String,
        /// The whole intent, for the details.
        #[serde(skip)]
        intent: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyIntents { count, limit } => write!(
                f,
                "plan has {count} intents, more than the limit of {limit}"
            ),
            Refusal::OutsideAddressSpace { value, space } => write!(
                f,
                "IPAM returned {value}, outside the address space open to this plugin ({})",
                space.join(", ")
            ),
            Refusal::Rejected {
                index,
                kind,
                rule,
                value,
                ..
            } => write!(f, "intent #{index} ({kind}) rejected: {rule}: {value:?}"),
        }
    }
}

impl From<Refusal> for CniError {
    fn from(r: Refusal) -> CniError {
        let msg = r.to_string();
        match r {
            Refusal::TooManyIntents { .. } => CniError::new(ErrorCode::LimitExceeded, msg),
            Refusal::OutsideAddressSpace { .. } => CniError::new(ErrorCode::PolicyRejected, msg)
                .with_details(
                    "the administrator opens address space with addressSpace in the policy \
                     (default: the private ranges); nothing was applied",
                ),
            Refusal::Rejected { intent, .. } => CniError::new(ErrorCode::PolicyRejected, msg)
                .with_details(format!("intent: {intent}; nothing was applied")),
        }
    }
}

/// A rule that refused an intent.
fn reject(index: usize, intent: &Intent, rule: &'static str, value: &str) -> Refusal {
    Refusal::Rejected {
        index,
        kind: intent.kind(),
        rule,
        value: value.to_string(),
        intent: intent.to_string(),
    }
}

/// Whether `name` is a valid Linux interface name (the reference's
/// `ValidateInterfaceName`, shared with the protocol's check of `CNI_IFNAME`).
pub fn valid_ifname(name: &str) -> bool {
    cni::request::validate_interface_name(name).is_ok()
}

/// Host links the plan has created so far: a host link may be touched only
/// after the intent that creates it (found by attack: `delete-link X` before
/// `ensure-host-veth X` deleted any node link when ownership was gathered
/// from the whole plan first).
struct Owned<'p> {
    bridges: BTreeSet<&'p str>,
    veth_peers: BTreeSet<&'p str>,
}

impl<'p> Owned<'p> {
    /// Record the host links `intent` creates. Every kind says whether it
    /// creates one, so a new kind cannot create links the validator does not see.
    fn gather(&mut self, intent: &'p Intent) {
        match intent {
            Intent::EnsureBridge { name, .. } => {
                self.bridges.insert(name);
            }
            Intent::CreateVeth { peer, .. } => {
                self.veth_peers.insert(peer);
            }
            Intent::EnsureHostVeth { name, peer, .. } => {
                self.veth_peers.insert(name);
                self.veth_peers.insert(peer);
            }
            Intent::DeleteLink { .. }
            | Intent::SetLinkUp { .. }
            | Intent::SetLinkDown { .. }
            | Intent::SetMtu { .. }
            | Intent::SetMac { .. }
            | Intent::AttachPort { .. }
            | Intent::FlushPortVlans { .. }
            | Intent::AddPortVlan { .. }
            | Intent::AddAddress { .. }
            | Intent::DeleteAddress { .. }
            | Intent::AddRoute(_)
            | Intent::SetSysctl { .. }
            | Intent::Masquerade { .. }
            | Intent::Unmasquerade { .. }
            | Intent::GcMasquerade { .. }
            | Intent::WaitOperUp { .. }
            | Intent::WaitAddressesSettled { .. }
            | Intent::SpoofCheck { .. }
            | Intent::UnspoofCheck { .. } => {}
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.bridges.contains(name) || self.veth_peers.contains(name)
    }
}

/// Check a whole plan; the first violation is returned.
pub fn validate_plan(intents: &[Intent], inv: &Invocation<'_>) -> Result<(), Refusal> {
    match refusals(intents, inv, 1).into_iter().next() {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// Every violation of a plan, up to `most` (the first of each intent, in plan
/// order), for `wasm-cni plan`; empty when the plan is accepted.
pub fn refusals(intents: &[Intent], inv: &Invocation<'_>, most: usize) -> Vec<Refusal> {
    if intents.len() > inv.max_intents {
        return vec![Refusal::TooManyIntents {
            count: intents.len(),
            limit: inv.max_intents,
        }];
    }
    let mut owned = Owned {
        bridges: BTreeSet::new(),
        veth_peers: BTreeSet::new(),
    };
    let addrs = Addresses::new(inv);
    // Space the administrator did not open is refused whatever the plan does
    // with it (a tenant chooses IPAM's subnet).
    if let Some(value) = addrs.ipam_outside_space(inv.ipam) {
        return vec![Refusal::OutsideAddressSpace {
            value,
            space: addrs.space.iter().map(ToString::to_string).collect(),
        }];
    }
    let mut found = Vec::new();
    for (index, intent) in intents.iter().enumerate() {
        // What an intent creates is its own from that intent on.
        owned.gather(intent);
        if let Err(refusal) = check_intent(index, intent, inv, &owned, &addrs) {
            found.push(refusal);
            if found.len() >= most {
                break;
            }
        }
    }
    found
}

fn check_intent(
    index: usize,
    intent: &Intent,
    inv: &Invocation<'_>,
    owned: &Owned<'_>,
    addrs: &Addresses<'_>,
) -> Result<(), Refusal> {
    let refuse = |rule: &'static str, value: &str| Err(reject(index, intent, rule, value));
    if !inv.grant.allows_kind(intent.kind()) {
        return refuse(
            "intent kind is not granted to this plugin",
            intent.kind().name(),
        );
    }
    for link in intent.links() {
        // A master may be a granted uplink rather than a link of this plan; its
        // name is checked all the same (found by fuzzing: a granted `*` uplink
        // let any string through).
        let uplink = matches!(intent, Intent::AttachPort { master, .. } if *master == link.name)
            && inv.grant.uplinks.iter().any(|p| p.matches(&link.name));
        check_link(index, intent, &link, inv, owned, uplink)?;
    }
    // Each kind's own rule, after the rules every link name obeys. No kind is
    // left out: a new one does not compile until it states its rule here.
    match intent {
        Intent::EnsureBridge { name, .. } => {
            if !inv.grant.bridges.iter().any(|p| p.matches(name)) {
                return refuse("bridge name is not granted", name);
            }
        }
        Intent::CreateVeth { name, .. } => {
            if name != inv.ifname {
                return refuse("the container end of a veth must be CNI_IFNAME", name);
            }
        }
        Intent::AttachPort { port, .. } => {
            if !owned.veth_peers.contains(port.as_str()) {
                return refuse("only a veth peer this plan creates may be enslaved", port);
            }
        }
        Intent::DeleteLink { link } => {
            if link.side == Side::Container && link.name == "lo" {
                return refuse("lo cannot be deleted", &link.name);
            }
        }
        Intent::SetSysctl { side, key, .. } => {
            // `all` and `default` are not links but every link of the
            // namespace (and the template of new ones): the node's are the
            // admin's, whatever the plan calls a link.
            let interface_ok = |ifname: &str| {
                !matches!(ifname, "all" | "default")
                    && match side {
                        Side::Container => {
                            inv.container != ContainerNs::Absent
                                && (ifname == inv.ifname || ifname == "lo")
                        }
                        Side::Host => owned.contains(ifname),
                    }
            };
            if !inv.grant.allows_sysctl(key, interface_ok) {
                return refuse("sysctl is not granted for this namespace and link", key);
            }
        }
        Intent::AddAddress { link, address, .. } | Intent::DeleteAddress { link, address } => {
            // Loopback addresses on the container's own `lo` reach nothing
            // outside it; any other address must lie in the space.
            let own_loopback =
                link.side == Side::Container && link.name == "lo" && address.addr().is_loopback();
            if !own_loopback && !addrs.in_space(&address.trunc()) {
                return refuse("address is outside the address space", &address.to_string());
            }
            let ok = match link.side {
                Side::Container => addrs.container_address(address),
                Side::Host => addrs.host_address(address),
            };
            if !ok {
                return refuse(
                    "address is neither what IPAM returned nor inside a granted CIDR",
                    &address.to_string(),
                );
            }
        }
        Intent::AddRoute(r) => {
            if r.side == Side::Host && !(inv.grant.host_routes && addrs.granted_net(&r.dst)) {
                return refuse(
                    "routes in the host namespace are not granted",
                    &r.dst.to_string(),
                );
            }
            if r.side == Side::Host && !addrs.in_space(&r.dst) {
                return refuse(
                    "host route is outside the address space",
                    &r.dst.to_string(),
                );
            }
            if let Some(gw) = r.gw.filter(|gw| !addrs.ip_in_space(gw)) {
                return refuse("gateway is outside the address space", &gw.to_string());
            }
            if let Some(gw) = r.gw {
                if !addrs.gateway(&gw) {
                    return refuse(
                        "gateway is outside what IPAM returned and the granted CIDRs",
                        &gw.to_string(),
                    );
                }
            }
        }
        Intent::Masquerade { source, key, .. } => {
            if !inv.grant.masquerade {
                return refuse("masquerading is not granted", &source.to_string());
            }
            if !addrs.in_space(&source.trunc()) {
                return refuse(
                    "masquerade source is outside the address space",
                    &source.to_string(),
                );
            }
            if !addrs.container_address(source) {
                return refuse(
                    "only addresses IPAM returned (or granted CIDRs) may be masqueraded",
                    &source.to_string(),
                );
            }
            check_key(
                index,
                intent,
                inv,
                &key.network,
                &key.container_id,
                &key.ifname,
            )?;
        }
        Intent::Unmasquerade { key } => {
            check_key(
                index,
                intent,
                inv,
                &key.network,
                &key.container_id,
                &key.ifname,
            )?;
        }
        Intent::GcMasquerade { network } => {
            if network != inv.network {
                return refuse("GC may only touch this network's rules", network);
            }
        }
        Intent::SpoofCheck {
            container_id,
            ifname,
            ..
        }
        | Intent::UnspoofCheck {
            container_id,
            ifname,
        } => {
            check_key(index, intent, inv, inv.network, container_id, ifname)?;
        }
        // Links only: the rules every link name obeys (above) are the whole rule.
        Intent::EnsureHostVeth { .. }
        | Intent::SetLinkUp { .. }
        | Intent::SetLinkDown { .. }
        | Intent::SetMtu { .. }
        | Intent::SetMac { .. }
        | Intent::FlushPortVlans { .. }
        | Intent::AddPortVlan { .. }
        | Intent::WaitOperUp { .. }
        | Intent::WaitAddressesSettled { .. } => {}
    }
    Ok(())
}

fn check_key(
    index: usize,
    intent: &Intent,
    inv: &Invocation<'_>,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), Refusal> {
    if network != inv.network || container_id != inv.container_id || ifname != inv.ifname {
        return Err(reject(
            index,
            intent,
            "rules belong to this network and attachment only",
            &format!("{network}/{container_id}/{ifname}"),
        ));
    }
    Ok(())
}

fn check_link(
    index: usize,
    intent: &Intent,
    link: &LinkRef,
    inv: &Invocation<'_>,
    owned: &Owned<'_>,
    granted_uplink: bool,
) -> Result<(), Refusal> {
    if !valid_ifname(&link.name) {
        return Err(reject(
            index,
            intent,
            "not a valid interface name (1-15 bytes, no '/', ':' or whitespace)",
            &link.name,
        ));
    }
    match link.side {
        Side::Container => {
            if inv.container == ContainerNs::Absent {
                return Err(reject(
                    index,
                    intent,
                    "the request has no container namespace",
                    &link.name,
                ));
            }
            if link.name != inv.ifname && link.name != "lo" {
                return Err(reject(
                    index,
                    intent,
                    "only CNI_IFNAME and lo may be touched in the container",
                    &link.name,
                ));
            }
        }
        Side::Host => {
            if !owned.contains(&link.name) && !granted_uplink {
                return Err(reject(
                    index,
                    intent,
                    "host link is not created by this plan",
                    &link.name,
                ));
            }
        }
    }
    Ok(())
}

mod addresses;
#[cfg(test)]
mod tests;
