//! Firewall rules: masquerading (`ipMasq`) in nftables or iptables, and
//! anti-spoofing (`macspoofchk`), each with how it is taken back. The doors
//! open on first use: most invocations need none.

use ipnet::IpNet;
use plan::{AttachmentKey, Mac, MasqBackend};

use super::{Journal, Kernel};
use crate::masq::{masquerade_for, Masquerade};
use crate::netlink::NetError;
use crate::spoofcheck::{open_spoof_check, SpoofCheck};

/// How to take one rule change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Unmasquerade(AttachmentKey, MasqBackend),
    Unspoof(String, String),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Unspoof(container_id, ifname) => k.spoof_door()?.remove(container_id, ifname),
        Undo::Unmasquerade(key, backend) => k.masq.door(*backend)?.remove(key).map_err(firewall),
    }
}

/// The two masquerade backends, each opened when first needed (most invocations
/// need neither).
#[derive(Default)]
pub struct MasqDoors {
    nft: Option<Box<dyn Masquerade>>,
    iptables: Option<Box<dyn Masquerade>>,
    /// Replaces the real backends (tests of ordering and rollback).
    fake: Option<Box<dyn Masquerade>>,
}

impl MasqDoors {
    /// Use `fake` for every backend.
    pub fn fake(fake: Box<dyn Masquerade>) -> Self {
        MasqDoors {
            fake: Some(fake),
            ..Default::default()
        }
    }

    fn door(&mut self, backend: MasqBackend) -> Result<&mut (dyn Masquerade + 'static), NetError> {
        if let Some(fake) = self.fake.as_deref_mut() {
            return Ok(fake);
        }
        let (slot, name) = match backend {
            MasqBackend::Nftables => (&mut self.nft, "nftables"),
            MasqBackend::Iptables => (&mut self.iptables, "iptables"),
        };
        if slot.is_none() {
            *slot = Some(masquerade_for(name).map_err(firewall)?);
        }
        slot.as_deref_mut()
            .ok_or_else(|| NetError::Unsupported(format!("{name} masquerade backend unavailable")))
    }

    /// Every backend in which rules may exist: nftables always; iptables only when
    /// the tools are installed (a node without them cannot hold such rules).
    pub(super) fn all(&mut self) -> Vec<&mut (dyn Masquerade + 'static)> {
        if let Some(fake) = self.fake.as_deref_mut() {
            return vec![fake];
        }
        if self.nft.is_none() {
            self.nft = masquerade_for("nftables").ok();
        }
        if self.iptables.is_none() && iptables_installed() {
            self.iptables = masquerade_for("iptables").ok();
        }
        let mut doors: Vec<&mut (dyn Masquerade + 'static)> = Vec::new();
        if let Some(n) = self.nft.as_deref_mut() {
            doors.push(n);
        }
        if let Some(i) = self.iptables.as_deref_mut() {
            doors.push(i);
        }
        doors
    }
}

fn iptables_installed() -> bool {
    ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}

fn firewall(e: NetError) -> NetError {
    NetError::Firewall(Box::new(e))
}

impl Kernel {
    fn spoof_door(&mut self) -> Result<&mut (dyn SpoofCheck + 'static), NetError> {
        if self.spoof.is_none() {
            self.spoof = Some(open_spoof_check()?);
        }
        self.spoof
            .as_deref_mut()
            .ok_or_else(|| NetError::Unsupported("anti-spoofing unavailable".into()))
    }
}

pub(super) fn masquerade(
    k: &mut Kernel,
    journal: &mut Journal,
    source: IpNet,
    key: &AttachmentKey,
    backend: MasqBackend,
) -> Result<(), NetError> {
    k.masq.door(backend)?.add(key, source).map_err(firewall)?;
    journal.push(Undo::Unmasquerade(key.clone(), backend));
    Ok(())
}

/// Remove one attachment's rules from every backend (either may hold them).
pub(super) fn unmasquerade(k: &mut Kernel, key: &AttachmentKey) -> Result<(), NetError> {
    let mut failures = Vec::new();
    for door in k.masq.all() {
        if let Err(e) = door.remove(key) {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(firewall(NetError::Several(failures)))
    }
}

/// Remove the rules of a network's attachments that are not in the runtime's
/// list of valid ones.
pub(super) fn gc_masquerade(k: &mut Kernel, network: &str) -> Result<(), NetError> {
    // Without a list there is nothing to compare against: keep everything.
    let Some(valid) = k.valid_attachments.clone() else {
        return Ok(());
    };
    let mut failures = Vec::new();
    for door in k.masq.all() {
        if let Err(e) = door.gc(network, &valid) {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(firewall(NetError::Several(failures)))
    }
}

pub(super) fn spoof_check(
    k: &mut Kernel,
    journal: &mut Journal,
    port: &str,
    mac: Mac,
    container_id: &str,
    ifname: &str,
) -> Result<(), NetError> {
    k.spoof_door()?.install(port, mac.0, container_id, ifname)?;
    journal.push(Undo::Unspoof(container_id.to_string(), ifname.to_string()));
    Ok(())
}

pub(super) fn unspoof_check(
    k: &mut Kernel,
    container_id: &str,
    ifname: &str,
) -> Result<(), NetError> {
    k.spoof_door()?.remove(container_id, ifname)
}
