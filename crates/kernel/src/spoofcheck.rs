//! MAC anti-spoofing for bridge ports (`macspoofchk`): frames entering from a
//! container's port must carry the container's MAC.
//!
//! [`NftSpoofCheck`] writes the Go reference's layout (plugins
//! `pkg/link/spoofcheck.go`) in-process over nf_tables netlink, with the
//! encoder in `apply::nft`, so that either plugin removes what the other
//! installed:
//!
//! ```text
//! table bridge nat {
//!     chain PREROUTING {
//!         type filter hook prerouting priority -300; policy accept;
//!         iifname "veth1a2b3c4d" jump cni-br-iface-<cid>-<ifname> comment "macspoofchk-<cid>-<ifname>"
//!     }
//!     chain cni-br-iface-<cid>-<ifname> {
//!         jump cni-br-iface-<cid>-<ifname>-mac comment "macspoofchk-<cid>-<ifname>"
//!     }
//!     chain cni-br-iface-<cid>-<ifname>-mac {
//!         ether saddr 02:42:ac:11:00:02 return comment "macspoofchk-<cid>-<ifname>"
//!         drop comment "macspoofchk-<cid>-<ifname>"
//!     }
//! }
//! ```
//!
//! The reference takes two transactions to install (declare, then flush and
//! fill) and appends a second `PREROUTING` rule when installed twice; here
//! each operation is one batch, and install replaces whatever rules of the
//! attachment it finds, so it is idempotent. Like the reference, removal
//! finds the `PREROUTING` rule by its comment, so it needs neither the port
//! nor the MAC and works after the port is gone. The table and base chain
//! are shared and stay.

use nix::errno::Errno;

use super::netlink::NetError;
use super::nft::{
    BaseChain, Batch, DecodedExpr, Expr, NftRule, NftSocket, NFPROTO_BRIDGE, NFT_CMP_EQ,
    NFT_COMMENT_MAX_BYTES, NFT_JUMP, NFT_META_IIFNAME, NFT_NAME_MAX, NFT_PAYLOAD_LL_HEADER,
    NFT_RETURN, NF_ACCEPT, NF_DROP,
};

/// Installs and removes the anti-spoofing rules of one attachment.
pub trait SpoofCheck: Send {
    /// Drop frames entering from `port` whose source MAC is not `mac`.
    fn install(
        &mut self,
        port: &str,
        mac: [u8; 6],
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetError>;
    /// Remove the rules of (`container_id`, `ifname`); absent rules are fine.
    fn remove(&mut self, container_id: &str, ifname: &str) -> Result<(), NetError>;
}

/// The anti-spoofing backend of the current network namespace.
pub fn open_spoof_check() -> Result<Box<dyn SpoofCheck>, NetError> {
    Ok(Box::new(NftSpoofCheck::open()?))
}

/// The nftables table (family `bridge`) the reference uses.
pub const SPOOF_TABLE: &str = "nat";
/// The shared base chain that dispatches on the input port.
pub const SPOOF_BASE_CHAIN: &str = "PREROUTING";
/// `NF_BR_PRE_ROUTING`, from `linux/netfilter_bridge.h`.
const NF_BR_PRE_ROUTING: u32 = 0;
/// The reference's priority (`NF_BR_PRI_NAT_DST_BRIDGED`, "dstnat" in the
/// bridge family): before the bridge's own nat and filter hooks.
const SPOOF_PRIORITY: i32 = -300;
/// `IFNAMSIZ`: `iifname` compares this many bytes, NUL-padded.
const IFNAMSIZ: usize = 16;

const BASE_CHAIN: BaseChain = BaseChain {
    kind: "filter",
    hook: NF_BR_PRE_ROUTING,
    priority: SPOOF_PRIORITY,
    policy: Some(NF_ACCEPT),
};

/// The reference's `uniqueID`: `<containerID>-<ifname>`.
fn ref_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

/// `cni-br-iface-<containerID>-<ifname>`: the attachment's chain, jumped to
/// from `PREROUTING`.
pub fn spoof_iface_chain(container_id: &str, ifname: &str) -> String {
    format!("cni-br-iface-{}", ref_id(container_id, ifname))
}

/// `cni-br-iface-<containerID>-<ifname>-mac`: the chain that holds the MAC
/// check and the drop.
pub fn spoof_mac_chain(container_id: &str, ifname: &str) -> String {
    format!("{}-mac", spoof_iface_chain(container_id, ifname))
}

/// `macspoofchk-<containerID>-<ifname>`: the comment of every rule of the
/// attachment, by which the reference finds its `PREROUTING` rule.
pub fn spoof_rule_comment(container_id: &str, ifname: &str) -> String {
    format!("macspoofchk-{}", ref_id(container_id, ifname))
}

/// The names of one attachment's objects, checked against kernel limits.
struct AttachmentNames {
    id: String,
    iface_chain: String,
    mac_chain: String,
    comment: String,
}

impl AttachmentNames {
    fn new(container_id: &str, ifname: &str) -> Result<Self, NetError> {
        let id = ref_id(container_id, ifname);
        if container_id.is_empty() || ifname.is_empty() {
            return Err(NetError::Invalid(format!(
                "macspoofchk needs a container ID and an interface name, got {id:?}"
            )));
        }
        if id.contains('\0') {
            return Err(NetError::Invalid(format!(
                "macspoofchk: {id:?} contains a NUL byte"
            )));
        }
        let names = AttachmentNames {
            iface_chain: spoof_iface_chain(container_id, ifname),
            mac_chain: spoof_mac_chain(container_id, ifname),
            comment: spoof_rule_comment(container_id, ifname),
            id,
        };
        // The mac chain is the longest name; the kernel refuses longer ones
        // (ERANGE), and the reference has no shorter form to fall back on.
        if names.mac_chain.len() > NFT_NAME_MAX {
            return Err(NetError::Invalid(format!(
                "macspoofchk: chain name {:?} is {} bytes, nftables allows {NFT_NAME_MAX}; \
                 container ID and interface name together may have at most {} bytes",
                names.mac_chain,
                names.mac_chain.len(),
                NFT_NAME_MAX - (names.mac_chain.len() - names.id.len()) - 1,
            )));
        }
        debug_assert!(names.comment.len() <= NFT_COMMENT_MAX_BYTES);
        Ok(names)
    }

    /// Whether a `PREROUTING` rule belongs to this attachment: it carries
    /// our comment, or it leads into our chains (which could not be deleted
    /// while it does).
    fn owns(&self, rule: &NftRule) -> bool {
        rule.comment == self.comment
            || rule
                .target_chain()
                .is_some_and(|c| c == self.iface_chain || c == self.mac_chain)
    }
}

/// `port` as `iifname` compares it: the name NUL-padded to `IFNAMSIZ`.
fn iifname_key(port: &str) -> Result<Vec<u8>, NetError> {
    if port.is_empty() || port.len() >= IFNAMSIZ || port.contains('\0') {
        return Err(NetError::Invalid(format!(
            "macspoofchk: {port:?} is not an interface name (1 to {} bytes, no NUL)",
            IFNAMSIZ - 1
        )));
    }
    let mut key = port.as_bytes().to_vec();
    key.resize(IFNAMSIZ, 0);
    Ok(key)
}

/// `iifname "<port>" jump <iface chain>`, as `nft` encodes it.
fn dispatch_rule<'a>(port_key: &[u8], iface_chain: &'a str) -> Vec<Expr<'a>> {
    vec![
        Expr::Meta(NFT_META_IIFNAME),
        Expr::Cmp(NFT_CMP_EQ, port_key.to_vec()),
        Expr::Verdict(NFT_JUMP, Some(iface_chain)),
    ]
}

/// How the kernel dumps [`dispatch_rule`].
fn dispatch_rule_dumped(port_key: &[u8], iface_chain: &str) -> Vec<DecodedExpr> {
    vec![
        DecodedExpr::Meta(NFT_META_IIFNAME),
        DecodedExpr::Cmp(NFT_CMP_EQ, port_key.to_vec()),
        DecodedExpr::Verdict(NFT_JUMP, Some(iface_chain.to_string())),
    ]
}

/// `ether saddr <mac> return`: the Ethernet source address is 6 bytes at
/// offset 6 of the link-layer header.
fn mac_rule(mac: [u8; 6]) -> Vec<Expr<'static>> {
    vec![
        Expr::Payload {
            base: NFT_PAYLOAD_LL_HEADER,
            offset: 6,
            len: 6,
        },
        Expr::Cmp(NFT_CMP_EQ, mac.to_vec()),
        Expr::Verdict(NFT_RETURN, None),
    ]
}

/// Fills `batch` with the installation of one attachment, given the
/// current `PREROUTING` rules.
fn plan_install(
    batch: &mut Batch,
    names: &AttachmentNames,
    port_key: &[u8],
    mac: [u8; 6],
    prerouting: &[NftRule],
) {
    let comment = Some(names.comment.as_str());
    // No-ops for what exists; the base chain's hook must match if it does.
    batch.add_table(SPOOF_TABLE, None);
    batch.add_chain(SPOOF_TABLE, SPOOF_BASE_CHAIN, Some(BASE_CHAIN), None);
    batch.add_chain(SPOOF_TABLE, &names.iface_chain, None, None);
    batch.add_chain(SPOOF_TABLE, &names.mac_chain, None, None);
    // Keep one dispatch rule that is exactly ours; drop the others (another
    // port, or the reference's duplicates from installing twice).
    let wanted = dispatch_rule_dumped(port_key, &names.iface_chain);
    let mut kept = false;
    for rule in prerouting.iter().filter(|r| names.owns(r)) {
        if !kept && rule.comment == names.comment && rule.exprs == wanted {
            kept = true;
        } else {
            batch.delete_rule(SPOOF_TABLE, SPOOF_BASE_CHAIN, rule.handle);
        }
    }
    batch.flush_chain(SPOOF_TABLE, &names.iface_chain);
    batch.flush_chain(SPOOF_TABLE, &names.mac_chain);
    if !kept {
        batch.add_rule(
            SPOOF_TABLE,
            SPOOF_BASE_CHAIN,
            &dispatch_rule(port_key, &names.iface_chain),
            comment,
        );
    }
    batch.add_rule(
        SPOOF_TABLE,
        &names.iface_chain,
        &[Expr::Verdict(NFT_JUMP, Some(&names.mac_chain))],
        comment,
    );
    batch.add_rule(SPOOF_TABLE, &names.mac_chain, &mac_rule(mac), comment);
    batch.add_rule(
        SPOOF_TABLE,
        &names.mac_chain,
        &[Expr::Verdict(NF_DROP, None)],
        comment,
    );
}

/// Fills `batch` with the removal of one attachment, given the current
/// `PREROUTING` rules and the chains of the table.
fn plan_remove(
    batch: &mut Batch,
    names: &AttachmentNames,
    prerouting: &[NftRule],
    chains: &[String],
) {
    for rule in prerouting.iter().filter(|r| names.owns(r)) {
        batch.delete_rule(SPOOF_TABLE, SPOOF_BASE_CHAIN, rule.handle);
    }
    let ours: Vec<&str> = [&names.iface_chain, &names.mac_chain]
        .into_iter()
        .filter(|c| chains.contains(c))
        .map(String::as_str)
        .collect();
    // Emptied first: older kernels refuse to delete a chain that still has
    // rules (EBUSY), and the iface chain's jump holds the mac chain.
    for chain in &ours {
        batch.flush_chain(SPOOF_TABLE, chain);
    }
    for chain in &ours {
        batch.delete_chain(SPOOF_TABLE, chain);
    }
}

/// [`SpoofCheck`] over nftables, programmed in-process through a
/// `NETLINK_NETFILTER` socket bound to the namespace it was opened in.
pub struct NftSpoofCheck {
    sock: NftSocket,
}

impl NftSpoofCheck {
    /// Opens a netfilter netlink socket in the calling thread's network
    /// namespace; it stays bound to that namespace, whichever thread uses it.
    pub fn open() -> Result<Self, NetError> {
        match NftSocket::open() {
            Ok(sock) => Ok(NftSpoofCheck { sock }),
            Err(e) if e.errno() == Some(Errno::EPROTONOSUPPORT) => Err(NetError::Unsupported(
                format!("macspoofchk needs nftables, which this kernel lacks ({e})"),
            )),
            Err(e) => Err(spoof_error("macspoofchk open", "", e)),
        }
    }
}

impl SpoofCheck for NftSpoofCheck {
    fn install(
        &mut self,
        port: &str,
        mac: [u8; 6],
        container_id: &str,
        ifname: &str,
    ) -> Result<(), NetError> {
        let names = AttachmentNames::new(container_id, ifname)?;
        let port_key = iifname_key(port)?;
        // Whether a refused base chain means "no bridge family" or "someone
        // else's PREROUTING" depends on whether the chain was there.
        let mut base_existed = false;
        let done = self.sock.transact(
            NFPROTO_BRIDGE,
            |sock| {
                base_existed = sock
                    .list_chains(NFPROTO_BRIDGE, SPOOF_TABLE)?
                    .iter()
                    .any(|c| c == SPOOF_BASE_CHAIN);
                sock.list_rules(NFPROTO_BRIDGE, SPOOF_TABLE, SPOOF_BASE_CHAIN)
            },
            |rules, batch| plan_install(batch, &names, &port_key, mac, rules),
        );
        done.map_err(|e| install_error(&names.id, base_existed, e))
    }

    fn remove(&mut self, container_id: &str, ifname: &str) -> Result<(), NetError> {
        let names = AttachmentNames::new(container_id, ifname)?;
        self.sock
            .transact(
                NFPROTO_BRIDGE,
                |sock| {
                    Ok((
                        sock.list_rules(NFPROTO_BRIDGE, SPOOF_TABLE, SPOOF_BASE_CHAIN)?,
                        sock.list_chains(NFPROTO_BRIDGE, SPOOF_TABLE)?,
                    ))
                },
                |(rules, chains), batch| plan_remove(batch, &names, rules, chains),
            )
            .map_err(|e| spoof_error("macspoofchk remove", &names.id, e))
    }
}

/// Turns a failed installation into a [`NetError`]. The kernel refuses to
/// declare the base chain in two cases that callers must tell apart: a kernel
/// without nftables' bridge family (no `filter` type for the family: ENOENT;
/// hook not offered: EOPNOTSUPP) is [`NetError::Unsupported`]; a
/// `PREROUTING` that already exists with another type, hook or priority
/// (EEXIST, or EOPNOTSUPP on recent kernels) is [`NetError::Conflict`].
fn install_error(attachment: &str, base_existed: bool, e: NetError) -> NetError {
    const OP: &str = "macspoofchk install";
    if let NetError::Nftables {
        op: what,
        errno,
        message,
    } = &e
    {
        if *what == format!("create base chain {SPOOF_BASE_CHAIN}") {
            let refusal = format!(
                "cannot {what}: {errno}{}",
                super::nft::kernel_detail(message)
            );
            match (base_existed, errno) {
                (true, Errno::EEXIST | Errno::EOPNOTSUPP) => {
                    return NetError::Conflict(format!(
                        "{OP} {attachment}: bridge {SPOOF_TABLE} {SPOOF_BASE_CHAIN} exists but is \
                         not \"type filter hook prerouting priority {SPOOF_PRIORITY}\": {refusal}"
                    ));
                }
                (false, Errno::ENOENT | Errno::EOPNOTSUPP | Errno::EAFNOSUPPORT) => {
                    return NetError::Unsupported(format!(
                        "macspoofchk needs nftables' bridge family (CONFIG_NF_TABLES_BRIDGE), \
                         which this kernel lacks: {refusal}"
                    ));
                }
                _ => {}
            }
        }
    }
    spoof_error(OP, attachment, e)
}

/// Turns an nftables failure into a [`NetError`], keeping the errno.
fn spoof_error(op: &'static str, attachment: &str, e: NetError) -> NetError {
    match e {
        NetError::Nftables {
            op: what,
            errno,
            message,
        } => NetError::Kernel {
            op,
            target: format!(
                "{attachment}: cannot {what}{}",
                super::nft::kernel_detail(&message)
            ),
            errno,
        },
        NetError::NftProtocol(detail) => NetError::Protocol {
            op,
            target: attachment.to_string(),
            detail,
        },
        // Every other error (I/O around the socket) is already what it is.
        other => other,
    }
}

#[cfg(test)]
mod tests;
