//! [`RecordingFirewall`]: the masquerade and anti-spoofing rules in memory,
//! behind the same traits as the nftables and iptables backends.

use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use plan::AttachmentKey;

use crate::masq::{MasqRule, Masquerade};
use crate::netlink::NetError;
use crate::spoofcheck::SpoofCheck;

/// One anti-spoofing rule set: the port, the MAC it lets through, and the
/// attachment it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoofRule {
    pub port: String,
    pub mac: [u8; 6],
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Default)]
struct Rules {
    masquerade: Vec<MasqRule>,
    spoof: Vec<SpoofRule>,
}

/// Firewall rules in memory. Clones share the same rules, so a test keeps one
/// clone to look at what the code under test did through another.
#[derive(Debug, Clone, Default)]
pub struct RecordingFirewall(Arc<Mutex<Rules>>);

impl RecordingFirewall {
    fn state(&self) -> MutexGuard<'_, Rules> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every masquerade rule, in the order they were added.
    pub fn masquerade_rules(&self) -> Vec<MasqRule> {
        self.state().masquerade.clone()
    }

    /// Every anti-spoofing rule set, in the order they were installed.
    pub fn spoof_rules(&self) -> Vec<SpoofRule> {
        self.state().spoof.clone()
    }
}

fn same_attachment(rule: &MasqRule, key: &AttachmentKey) -> bool {
    rule.network == key.network
        && rule.container_id == key.container_id
        && rule.ifname == key.ifname
}

impl Masquerade for RecordingFirewall {
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), NetError> {
        let mut rules = self.state();
        // As the real backends: the attachment's rules for this address are
        // replaced, its rules for other addresses stay.
        rules
            .masquerade
            .retain(|r| !(same_attachment(r, key) && r.source.addr() == source.addr()));
        rules.masquerade.push(MasqRule {
            network: key.network.clone(),
            container_id: key.container_id.clone(),
            ifname: key.ifname.clone(),
            source,
        });
        Ok(())
    }

    fn remove(&mut self, key: &AttachmentKey) -> Result<(), NetError> {
        self.state().masquerade.retain(|r| !same_attachment(r, key));
        Ok(())
    }

    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, NetError> {
        Ok(self
            .state()
            .masquerade
            .iter()
            .filter(|r| r.network == network)
            .cloned()
            .collect())
    }

    fn gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<Vec<MasqRule>, NetError> {
        let mut rules = self.state();
        let stale = |r: &MasqRule| {
            r.network == network
                && !valid
                    .iter()
                    .any(|(c, i)| *c == r.container_id && *i == r.ifname)
        };
        let removed = rules
            .masquerade
            .iter()
            .filter(|r| stale(r))
            .cloned()
            .collect();
        rules.masquerade.retain(|r| !stale(r));
        Ok(removed)
    }
}

impl SpoofCheck for RecordingFirewall {
    fn install(
        &mut self,
        port: &str,
        mac: [u8; 6],
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetError> {
        let mut rules = self.state();
        rules
            .spoof
            .retain(|r| !(r.container_id == container_id && r.ifname == ifname));
        rules.spoof.push(SpoofRule {
            port: port.to_string(),
            mac,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        });
        Ok(())
    }

    fn remove(&mut self, container_id: &str, ifname: &str) -> Result<(), NetError> {
        self.state()
            .spoof
            .retain(|r| !(r.container_id == container_id && r.ifname == ifname));
        Ok(())
    }
}
