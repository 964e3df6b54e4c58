//! The nftables backend, in-process over `NETLINK_NETFILTER`.

use crate::netlink::NetError;
use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::naming::*;
use super::{MasqRule, Masquerade};
use crate::nft::{
    BaseChain, Batch, DecodedExpr, Expr, NftRule, NftSocket, NFPROTO_INET, NFPROTO_IPV4,
    NFPROTO_IPV6, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_GOTO, NFT_META_NFPROTO, NFT_PAYLOAD_NETWORK_HEADER,
    NFT_RETURN,
};
use plan::AttachmentKey;

// linux/netfilter.h
pub(super) const NF_INET_POST_ROUTING: u32 = 4;
/// `srcnat`, the priority name the reference uses for its base chain.
pub(super) const NF_IP_PRI_NAT_SRC: i32 = 100;

/// The masquerade backend over nftables, programmed in-process through a
/// `NETLINK_NETFILTER` socket (the encoder in `apply::nft`).
///
/// Layout (the reference's, so both plugins share it):
///
/// ```text
/// table inet cni_plugins_masquerade {
///     chain masq_checks {
///         ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment "<h16>-<h16>, net: ..., if: ..., id: ..."
///     }
///     chain postrouting {
///         type nat hook postrouting priority srcnat; policy accept;
///         ip daddr 224.0.0.0/4 return
///         ip6 daddr ff00::/8 return
///         goto masq_checks
///     }
/// }
/// ```
///
/// Every [`Masquerade::add`] declares the table and chains and rewrites the
/// base chain (flush + three rules) in the same transaction as the rule, as
/// the reference does, so the layout is never duplicated and heals if edited.
pub struct NftMasquerade {
    pub(super) sock: NftSocket,
}

impl NftMasquerade {
    /// Opens a netfilter netlink socket in the calling thread's network
    /// namespace; the socket stays bound to that namespace for its life.
    pub fn open() -> Result<Self, NetError> {
        Ok(NftMasquerade {
            sock: NftSocket::open()?,
        })
    }

    /// The rules of `masq_checks`; none when the table does not exist.
    pub(super) fn list_rules(&mut self) -> Result<Vec<NftRule>, NetError> {
        self.sock
            .list_rules(NFPROTO_INET, NFT_TABLE, NFT_MASQ_CHAIN)
    }

    /// Lists the rules, lets `plan` fill a batch from them, and commits it
    /// (planned again if it lost a race to another writer).
    pub(super) fn transact<R>(
        &mut self,
        mut plan: impl FnMut(&[NftRule], &mut Batch) -> R,
    ) -> Result<R, NetError> {
        self.sock.transact(
            NFPROTO_INET,
            |sock| sock.list_rules(NFPROTO_INET, NFT_TABLE, NFT_MASQ_CHAIN),
            |rules, batch| plan(rules, batch),
        )
    }
}

impl Masquerade for NftMasquerade {
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), NetError> {
        let comment = nft_rule_comment(key);
        let prefix = nft_instance_prefix(key);
        // A transaction that deletes or even re-declares an existing chain (the
        // kernel records a chain "update") leaves work for after an RCU grace
        // period, and closing this socket then waits for it (5-15 ms here). So
        // once the layout stands (the base chain holds its three rules, the last
        // a goto to masq_checks), only the rule is added; otherwise the whole
        // layout is declared and the base chain rewritten, as the reference does.
        self.sock.transact(
            NFPROTO_INET,
            |sock| {
                let base = sock.list_rules(NFPROTO_INET, NFT_TABLE, NFT_POSTROUTING_CHAIN)?;
                let masq = sock.list_rules(NFPROTO_INET, NFT_TABLE, NFT_MASQ_CHAIN)?;
                Ok((base.len() == postrouting_exprs().len(), masq))
            },
            |(layout_ready, rules), batch| {
                if *layout_ready {
                    batch.relies_on_read();
                } else {
                    declare_layout(batch);
                }
                let mut kept = false;
                for rule in rules.iter().filter(|r| r.comment.starts_with(&prefix)) {
                    match rule_source(rule) {
                        // The rule we want: keep the first, drop duplicates.
                        Some(s) if s == source && rule.comment == comment && !kept => kept = true,
                        // Same address: a duplicate or an outdated subnet.
                        Some(s) if s.addr() == source.addr() => {
                            delete_masq_rule(batch, rule.handle)
                        }
                        // Another address of this attachment, or a shape we do not
                        // recognise: not ours to judge here (remove() takes all).
                        _ => {}
                    }
                }
                if !kept {
                    add_masq_rule(batch, source, &comment);
                }
            },
        )?;
        Ok(())
    }

    fn remove(&mut self, key: &AttachmentKey) -> Result<(), NetError> {
        let prefix = nft_instance_prefix(key);
        self.transact(|rules, batch| {
            for rule in rules.iter().filter(|r| r.comment.starts_with(&prefix)) {
                delete_masq_rule(batch, rule.handle);
            }
        })
    }

    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, NetError> {
        let rules = self.list_rules()?;
        Ok(rules
            .iter()
            .filter_map(|r| to_masq_rule(r, network))
            .collect())
    }

    fn gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<Vec<MasqRule>, NetError> {
        let prefix = nft_network_prefix(network);
        // Compare whole comments, like the reference's GC.
        let keep: HashSet<String> = valid
            .iter()
            .map(|(container_id, ifname)| {
                nft_rule_comment(&AttachmentKey {
                    network: network.to_string(),
                    container_id: container_id.clone(),
                    ifname: ifname.clone(),
                })
            })
            .collect();
        self.transact(|rules, batch| {
            let mut removed = Vec::new();
            for rule in rules.iter().filter(|r| r.comment.starts_with(&prefix)) {
                if keep.contains(&rule.comment) {
                    continue;
                }
                delete_masq_rule(batch, rule.handle);
                removed.extend(to_masq_rule(rule, network));
            }
            removed
        })
    }
}

/// Declares the table and both chains (no-ops when they exist), then
/// rewrites the base chain, as the reference does on every ADD.
pub(super) fn declare_layout(batch: &mut Batch) {
    batch.add_table(NFT_TABLE, Some(NFT_TABLE_COMMENT));
    batch.add_chain(
        NFT_TABLE,
        NFT_MASQ_CHAIN,
        None,
        Some(NFT_MASQ_CHAIN_COMMENT),
    );
    batch.add_chain(
        NFT_TABLE,
        NFT_POSTROUTING_CHAIN,
        Some(BaseChain {
            kind: "nat",
            hook: NF_INET_POST_ROUTING,
            priority: NF_IP_PRI_NAT_SRC,
            policy: None,
        }),
        None,
    );
    batch.flush_chain(NFT_TABLE, NFT_POSTROUTING_CHAIN);
    for exprs in postrouting_exprs() {
        batch.add_rule(NFT_TABLE, NFT_POSTROUTING_CHAIN, &exprs, None);
    }
}

/// `ip saddr <addr> ip daddr != <subnet> masquerade comment "<comment>"`.
pub(super) fn add_masq_rule(batch: &mut Batch, source: IpNet, comment: &str) {
    batch.add_rule(
        NFT_TABLE,
        NFT_MASQ_CHAIN,
        &masq_rule_exprs(source),
        Some(comment),
    );
}

pub(super) fn delete_masq_rule(batch: &mut Batch, handle: u64) {
    batch.delete_rule(NFT_TABLE, NFT_MASQ_CHAIN, handle);
}

/// The base chain's rules: `ip daddr 224.0.0.0/4 return`,
/// `ip6 daddr ff00::/8 return`, `goto masq_checks`.
pub(super) fn postrouting_exprs() -> Vec<Vec<Expr<'static>>> {
    let multicast_v4 = IpNet::new(IpAddr::from([224, 0, 0, 0]), 4);
    let multicast_v6 = IpNet::new(IpAddr::from([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8);
    let mut rules: Vec<_> = [multicast_v4, multicast_v6]
        .into_iter()
        .flatten()
        .map(|net| {
            let mut exprs = match_family(net.addr());
            exprs.extend(match_prefix(daddr_offset(net.addr()), net, NFT_CMP_EQ));
            exprs.push(Expr::Verdict(NFT_RETURN, None));
            exprs
        })
        .collect();
    rules.push(vec![Expr::Verdict(NFT_GOTO, Some(NFT_MASQ_CHAIN))]);
    rules
}

/// `ip saddr <addr> ip daddr != <subnet> masquerade`.
pub(super) fn masq_rule_exprs(source: IpNet) -> Vec<Expr<'static>> {
    let addr = source.addr();
    let mut exprs = match_family(addr);
    exprs.push(network_payload(
        saddr_offset(addr),
        addr_bytes(addr).len() as u32,
    ));
    exprs.push(Expr::Cmp(NFT_CMP_EQ, addr_bytes(addr)));
    exprs.extend(match_prefix(
        daddr_offset(addr),
        source.trunc(),
        NFT_CMP_NEQ,
    ));
    exprs.push(Expr::Masquerade);
    exprs
}

/// `meta nfproto ipv4|ipv6`, which `nft` adds to every `ip`/`ip6` match in an
/// inet table.
pub(super) fn match_family(addr: IpAddr) -> Vec<Expr<'static>> {
    let proto = if addr.is_ipv4() {
        NFPROTO_IPV4
    } else {
        NFPROTO_IPV6
    };
    vec![
        Expr::Meta(NFT_META_NFPROTO),
        Expr::Cmp(NFT_CMP_EQ, vec![proto]),
    ]
}

pub(super) fn network_payload(offset: u32, len: u32) -> Expr<'static> {
    Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len,
    }
}

/// `<field> <op> <net>`, as `nft` linearizes a prefix: a byte-aligned prefix
/// loads only its bytes; any other loads the whole address and masks it.
pub(super) fn match_prefix(offset: u32, net: IpNet, op: u32) -> Vec<Expr<'static>> {
    let bytes = addr_bytes(net.network());
    let prefix = usize::from(net.prefix_len());
    if prefix > 0 && prefix % 8 == 0 {
        let len = prefix / 8;
        return vec![
            network_payload(offset, len as u32),
            Expr::Cmp(op, bytes[..len].to_vec()),
        ];
    }
    let mask = addr_bytes(net.netmask());
    vec![
        network_payload(offset, bytes.len() as u32),
        Expr::Bitwise(mask),
        Expr::Cmp(op, bytes),
    ]
}

pub(super) fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Offsets of the source and destination addresses in the IPv4/IPv6 header.
pub(super) fn saddr_offset(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        12
    } else {
        8
    }
}

pub(super) fn daddr_offset(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        16
    } else {
        24
    }
}

/// The source address and subnet of a rule `ip|ip6 saddr A ip|ip6 daddr != N`
/// (optionally ending in `masquerade`), as `A/len(N)`; `None` for any other
/// shape.
pub(super) fn rule_source(rule: &NftRule) -> Option<IpNet> {
    let mut v6 = None;
    let mut meta = false;
    let mut load: Option<(u32, u32)> = None;
    let mut mask: Option<&[u8]> = None;
    let (mut saddr, mut prefix) = (None, None);
    for expr in &rule.exprs {
        match expr {
            DecodedExpr::Meta(key) => {
                meta = *key == NFT_META_NFPROTO;
                load = None;
            }
            DecodedExpr::Payload { base, offset, len } => {
                meta = false;
                load = (*base == NFT_PAYLOAD_NETWORK_HEADER).then_some((*offset, *len));
                mask = None;
            }
            DecodedExpr::Bitwise(m) => mask = Some(m),
            DecodedExpr::Cmp(op, data) => {
                if meta {
                    v6 = match data.as_slice() {
                        [NFPROTO_IPV4] => Some(false),
                        [NFPROTO_IPV6] => Some(true),
                        _ => return None,
                    };
                    meta = false;
                    continue;
                }
                let (offset, _) = load?;
                let is_v6 = v6?;
                let width = if is_v6 { 16 } else { 4 };
                let (s_off, d_off) = if is_v6 { (8, 24) } else { (12, 16) };
                if offset == s_off && *op == NFT_CMP_EQ && data.len() == width && mask.is_none() {
                    saddr = Some(ip_from(data)?);
                } else if offset == d_off && *op == NFT_CMP_NEQ {
                    prefix = Some(match mask {
                        Some(m) => m.iter().map(|b| b.count_ones()).sum::<u32>(),
                        None => 8 * data.len() as u32,
                    });
                } else {
                    return None;
                }
            }
            DecodedExpr::Other(name) if name == "masq" => {}
            DecodedExpr::Verdict(..) | DecodedExpr::Other(_) => return None,
        }
    }
    IpNet::new(saddr?, u8::try_from(prefix?).ok()?).ok()
}

pub(super) fn to_masq_rule(rule: &NftRule, network: &str) -> Option<MasqRule> {
    let (ifname, container_id) = parse_nft_comment(network, &rule.comment)?;
    let Some(source) = rule_source(rule) else {
        tracing::warn!(
            handle = rule.handle,
            comment = %rule.comment,
            "masquerade rule of an unexpected shape; not listed"
        );
        return None;
    };
    Some(MasqRule {
        network: network.to_string(),
        container_id,
        ifname,
        source,
    })
}

pub(super) fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(b));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}
