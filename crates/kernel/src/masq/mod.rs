//! The masquerade door: the `ipMasq` rules of the bridge plugin, in nftables
//! (default) or iptables (opt-in, `ipMasqBackend: "iptables"`).
//!
//! Both backends write exactly what the Go reference bridge writes (plugins
//! `pkg/ip/ipmasq_nftables_linux.go` and `ipmasq_iptables_linux.go`), so a node
//! can switch between the reference plugin and ours while containers run, and
//! either one can delete the other's rules.
//!
//! - [`NftMasquerade`] programs nftables in-process over a `NETLINK_NETFILTER`
//!   socket, one batch transaction per operation, through the hand-built
//!   encoder in `crate::nft`. It never execs `nft` or `iptables`.
//! - [`IptablesMasquerade`] execs `iptables`/`ip6tables --wait`, like the
//!   reference (go-iptables execs too). Only this opt-in backend execs.
//!
//! Rules are found again by name and comment, never by address, so that
//! removal works when the container interface or namespace is already gone
//! (CNI DEL with an empty `CNI_NETNS` made the reference leak rules,
//! plugins#810), and adding twice never duplicates a rule (cni#925).
//!
//! Both backends act on the network namespace that was current for the
//! calling thread when they were opened, whichever thread uses them later.
//!
//! One file per concern: [`naming`] (the reference's table, chain and comment
//! names, and reading them back), [`nftables`] and [`iptables`] (the two
//! backends).

pub mod iptables;
pub mod naming;
pub mod nftables;

use ipnet::IpNet;

use crate::netlink::NetError;
use plan::AttachmentKey;

pub use iptables::IptablesMasquerade;
pub use naming::{
    iptables_chain_name, iptables_comment, nft_instance_prefix, nft_rule_comment, NFT_MASQ_CHAIN,
    NFT_POSTROUTING_CHAIN, NFT_TABLE,
};
pub use nftables::NftMasquerade;

/// One masquerade rule as found in the kernel, identified by its comment.
///
/// The fields come from the rule's comment, which the reference truncates to
/// 128 bytes and strips of `"`: for very long names `container_id` (or even
/// `ifname`) may be cut short. `network` is always the one asked for. The
/// iptables backend does not record interfaces (neither does the reference),
/// so its rules have an empty `ifname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqRule {
    /// The CNI network name.
    pub network: String,
    /// The container ID.
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
    /// The container address with the prefix length of its subnet, as it was
    /// given to [`Masquerade::add`] (e.g. `10.88.0.2/16`).
    pub source: IpNet,
}

/// Installs and removes the masquerade rules of attachments in one network
/// namespace (the one current when the implementation was opened).
pub trait Masquerade: Send {
    /// Masquerades traffic from `source.addr()` to anything outside
    /// `source.trunc()`, except multicast, for the attachment `key`.
    ///
    /// Idempotent: an identical rule is kept, not duplicated; other rules of
    /// the same attachment for the same address (duplicates, or another
    /// subnet) are replaced in the same transaction. Rules of the attachment
    /// for other addresses stay: an attachment with several addresses (dual
    /// stack) calls this once per address.
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), NetError>;

    /// Removes every rule of `key`, found by name and comment, so it works
    /// when the container's interface or namespace is gone. Nothing to
    /// remove is success.
    fn remove(&mut self, key: &AttachmentKey) -> Result<(), NetError>;

    /// The rules held for `network`.
    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, NetError>;

    /// Removes the rules of `network` whose attachment is not in `valid`
    /// (pairs of container ID and interface name); returns what it removed.
    fn gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<Vec<MasqRule>, NetError>;
}

/// Opens the backend named by `ipMasqBackend` in the calling thread's network
/// namespace: `"nftables"` (also for `""`) or `"iptables"`.
///
/// The reference defaults to iptables unless only nftables is available; we
/// default to nftables because it is one atomic transaction per operation
/// with no process spawned and no xtables lock (pain point #8).
pub fn masquerade_for(backend: &str) -> Result<Box<dyn Masquerade>, NetError> {
    match backend {
        "" | "nftables" => Ok(Box::new(NftMasquerade::open()?)),
        "iptables" => Ok(Box::new(IptablesMasquerade::open()?)),
        other => Err(NetError::UnknownMasqBackend(other.to_string())),
    }
}

#[cfg(test)]
mod tests;
