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
//!   encoder in `apply::nft`. It never execs `nft` or `iptables`.
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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use ipnet::IpNet;
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use sha2::{Digest, Sha512};

use super::nft::{
    kernel_detail, BaseChain, Batch, DecodedExpr, Expr, NftError, NftRule, NftSocket, NFPROTO_INET,
    NFPROTO_IPV4, NFPROTO_IPV6, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_GOTO, NFT_META_NFPROTO,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_RETURN,
};
use plan::AttachmentKey;

/// A masquerade operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum MasqError {
    /// `ipMasqBackend` named neither `nftables` nor `iptables`. The message is
    /// the reference's.
    #[error("unknown ipmasq backend {0:?}")]
    UnknownBackend(String),
    /// The kernel refused an nftables request.
    #[error("nftables: cannot {op}: {errno}{}", kernel_detail(.message))]
    Kernel {
        /// What was being done, e.g. `add rule to masq_checks`.
        op: String,
        /// The kernel's answer.
        errno: Errno,
        /// The kernel's extended-ack message, when it sent one.
        message: Option<String>,
    },
    /// A system call around the conversation failed (socket, namespace,
    /// spawning a program).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered something this module does not understand, or
    /// did not answer in time.
    #[error("nftables netlink: {0}")]
    Protocol(String),
    /// `iptables` or `ip6tables` exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the message.
        command: String,
        /// The exit status as text (`exit status 4`, `signal 9`).
        status: String,
        /// What the program wrote to stderr, trimmed.
        stderr: String,
    },
}

impl MasqError {
    /// The errno behind this error, when the kernel or a system call gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            MasqError::Kernel { errno, .. } => Some(*errno),
            MasqError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    fn io(context: impl Into<String>, source: io::Error) -> Self {
        MasqError::Io {
            context: context.into(),
            source,
        }
    }
}

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
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), MasqError>;

    /// Removes every rule of `key`, found by name and comment, so it works
    /// when the container's interface or namespace is gone. Nothing to
    /// remove is success.
    fn remove(&mut self, key: &AttachmentKey) -> Result<(), MasqError>;

    /// The rules held for `network`.
    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, MasqError>;

    /// Removes the rules of `network` whose attachment is not in `valid`
    /// (pairs of container ID and interface name); returns what it removed.
    fn gc(&mut self, network: &str, valid: &[(String, String)])
        -> Result<Vec<MasqRule>, MasqError>;
}

/// Opens the backend named by `ipMasqBackend` in the calling thread's network
/// namespace: `"nftables"` (also for `""`) or `"iptables"`.
///
/// The reference defaults to iptables unless only nftables is available; we
/// default to nftables because it is one atomic transaction per operation
/// with no process spawned and no xtables lock (pain point #8).
pub fn masquerade_for(backend: &str) -> Result<Box<dyn Masquerade>, MasqError> {
    match backend {
        "" | "nftables" => Ok(Box::new(NftMasquerade::open()?)),
        "iptables" => Ok(Box::new(IptablesMasquerade::open()?)),
        other => Err(MasqError::UnknownBackend(other.to_string())),
    }
}

// ---------------------------------------------------------------------------
// Names and comments, exactly as the reference derives them.
// ---------------------------------------------------------------------------

/// The nftables table (family `inet`) that the reference uses.
pub const NFT_TABLE: &str = "cni_plugins_masquerade";
/// The regular chain holding one rule per attachment address.
pub const NFT_MASQ_CHAIN: &str = "masq_checks";
/// The base chain (nat, postrouting, priority srcnat).
pub const NFT_POSTROUTING_CHAIN: &str = "postrouting";

const NFT_TABLE_COMMENT: &str =
    "Masquerading for plugins from github.com/containernetworking/plugins";
const NFT_MASQ_CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// knftables `CommentLengthMax`, which is also what `nft` accepts.
const NFT_COMMENT_MAX: usize = 128;

/// Lowercase hex of sha512(`input`).
fn sha512_hex(input: &str) -> String {
    let mut out = String::with_capacity(128);
    for byte in Sha512::digest(input.as_bytes()) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The first 16 hex digits of sha512(`input`) (the reference's
/// `MustFormatHashWithPrefix(16, "", input)`).
fn h16(input: &str) -> String {
    let mut hex = sha512_hex(input);
    hex.truncate(16);
    hex
}

/// The comment prefix shared by every nftables rule of `network`.
fn nft_network_prefix(network: &str) -> String {
    format!("{}-", h16(network))
}

/// `<h16(network)>-<h16(ifname:containerID)>`: the comment prefix that the
/// reference matches to delete the rules of one attachment.
pub fn nft_instance_prefix(key: &AttachmentKey) -> String {
    format!(
        "{}-{}",
        h16(&key.network),
        h16(&format!("{}:{}", key.ifname, key.container_id))
    )
}

/// The comment of the nftables rules of `key`: the instance prefix, then the
/// names with `"` removed, cut to 128 bytes (the reference's
/// `commentForInstance`).
pub fn nft_rule_comment(key: &AttachmentKey) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_instance_prefix(key),
        strip(&key.network),
        strip(&key.ifname),
        strip(&key.container_id)
    );
    // Go cuts at byte 128 even inside a character; a String cannot, so with
    // non-ASCII names (which CNI forbids anyway) we cut a little earlier.
    let mut end = comment.len().min(NFT_COMMENT_MAX);
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    comment.truncate(end);
    comment
}

/// Reads `(ifname, containerID)` back from a rule comment of `network`.
fn parse_nft_comment(network: &str, comment: &str) -> Option<(String, String)> {
    let head = format!("{}-", h16(network));
    let rest = comment.strip_prefix(&head)?;
    // 16 hex digits of the interface hash, then the readable part.
    let rest = rest.get(16..)?;
    let rest = rest.strip_prefix(&format!(", net: {}, if: ", network.replace('"', "")))?;
    Some(match rest.split_once(", id: ") {
        Some((ifname, cid)) => (ifname.to_string(), cid.to_string()),
        None => (rest.to_string(), String::new()),
    })
}

/// The reference's iptables chain: `CNI-` and the first 24 hex digits of
/// sha512(network + containerID) (`utils.FormatChainName`). The interface
/// name is not part of it: all attachments of one container to one network
/// share the chain.
pub fn iptables_chain_name(network: &str, container_id: &str) -> String {
    let mut hex = sha512_hex(&format!("{network}{container_id}"));
    hex.truncate(24);
    format!("CNI-{hex}")
}

/// The reference's iptables comment, `name: "<network>" id: "<containerID>"`
/// with Go `%q` quoting (`utils.FormatComment`).
pub fn iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Go's `strconv.Quote`, close enough for names: CNI restricts network names
/// and container IDs to `[A-Za-z0-9_.-]`, for which it is exact.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x1_0000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads one Go-quoted string from the start of `s`; returns it and the rest.
fn go_unquote(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| {
                    let digits: String = chars.by_ref().take(n).map(|(_, d)| d).collect();
                    if digits.len() != n {
                        return None;
                    }
                    u32::from_str_radix(&digits, 16).ok()
                };
                out.push(match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    '\\' | '"' | '\'' => e,
                    'x' => char::from_u32(hex(&mut chars, 2)?)?,
                    'u' => char::from_u32(hex(&mut chars, 4)?)?,
                    'U' => char::from_u32(hex(&mut chars, 8)?)?,
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Reads `(network, containerID)` back from an iptables comment.
fn parse_iptables_comment(comment: &str) -> Option<(String, String)> {
    let (network, rest) = go_unquote(comment.strip_prefix("name: ")?)?;
    let (container_id, rest) = go_unquote(rest.strip_prefix(" id: ")?)?;
    rest.is_empty().then_some((network, container_id))
}

// ---------------------------------------------------------------------------
// nftables over netlink.
// ---------------------------------------------------------------------------

// linux/netfilter.h
const NF_INET_POST_ROUTING: u32 = 4;
/// `srcnat`, the priority name the reference uses for its base chain.
const NF_IP_PRI_NAT_SRC: i32 = 100;

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
    sock: NftSocket,
}

impl From<NftError> for MasqError {
    fn from(e: NftError) -> Self {
        match e {
            NftError::Kernel { op, errno, message } => MasqError::Kernel { op, errno, message },
            NftError::Io { context, source } => MasqError::Io { context, source },
            NftError::Protocol(detail) => MasqError::Protocol(detail),
        }
    }
}

impl NftMasquerade {
    /// Opens a netfilter netlink socket in the calling thread's network
    /// namespace; the socket stays bound to that namespace for its life.
    pub fn open() -> Result<Self, MasqError> {
        Ok(NftMasquerade {
            sock: NftSocket::open()?,
        })
    }

    /// The rules of `masq_checks`; none when the table does not exist.
    fn list_rules(&mut self) -> Result<Vec<NftRule>, MasqError> {
        Ok(self
            .sock
            .list_rules(NFPROTO_INET, NFT_TABLE, NFT_MASQ_CHAIN)?)
    }

    /// Lists the rules, lets `plan` fill a batch from them, and commits it
    /// (planned again if it lost a race to another writer).
    fn transact<R>(
        &mut self,
        mut plan: impl FnMut(&[NftRule], &mut Batch) -> R,
    ) -> Result<R, MasqError> {
        Ok(self.sock.transact(
            NFPROTO_INET,
            |sock| sock.list_rules(NFPROTO_INET, NFT_TABLE, NFT_MASQ_CHAIN),
            |rules, batch| plan(rules, batch),
        )?)
    }
}

impl Masquerade for NftMasquerade {
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), MasqError> {
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

    fn remove(&mut self, key: &AttachmentKey) -> Result<(), MasqError> {
        let prefix = nft_instance_prefix(key);
        self.transact(|rules, batch| {
            for rule in rules.iter().filter(|r| r.comment.starts_with(&prefix)) {
                delete_masq_rule(batch, rule.handle);
            }
        })
    }

    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, MasqError> {
        let rules = self.list_rules()?;
        Ok(rules
            .iter()
            .filter_map(|r| to_masq_rule(r, network))
            .collect())
    }

    fn gc(
        &mut self,
        network: &str,
        valid: &[(String, String)],
    ) -> Result<Vec<MasqRule>, MasqError> {
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
fn declare_layout(batch: &mut Batch) {
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
fn add_masq_rule(batch: &mut Batch, source: IpNet, comment: &str) {
    batch.add_rule(
        NFT_TABLE,
        NFT_MASQ_CHAIN,
        &masq_rule_exprs(source),
        Some(comment),
    );
}

fn delete_masq_rule(batch: &mut Batch, handle: u64) {
    batch.delete_rule(NFT_TABLE, NFT_MASQ_CHAIN, handle);
}

/// The base chain's rules: `ip daddr 224.0.0.0/4 return`,
/// `ip6 daddr ff00::/8 return`, `goto masq_checks`.
fn postrouting_exprs() -> Vec<Vec<Expr<'static>>> {
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
fn masq_rule_exprs(source: IpNet) -> Vec<Expr<'static>> {
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
fn match_family(addr: IpAddr) -> Vec<Expr<'static>> {
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

fn network_payload(offset: u32, len: u32) -> Expr<'static> {
    Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len,
    }
}

/// `<field> <op> <net>`, as `nft` linearizes a prefix: a byte-aligned prefix
/// loads only its bytes; any other loads the whole address and masks it.
fn match_prefix(offset: u32, net: IpNet, op: u32) -> Vec<Expr<'static>> {
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

fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Offsets of the source and destination addresses in the IPv4/IPv6 header.
fn saddr_offset(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        12
    } else {
        8
    }
}

fn daddr_offset(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        16
    } else {
        24
    }
}

/// The source address and subnet of a rule `ip|ip6 saddr A ip|ip6 daddr != N`
/// (optionally ending in `masquerade`), as `A/len(N)`; `None` for any other
/// shape.
fn rule_source(rule: &NftRule) -> Option<IpNet> {
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

fn to_masq_rule(rule: &NftRule, network: &str) -> Option<MasqRule> {
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

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(b));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

// ---------------------------------------------------------------------------
// iptables, by exec.
// ---------------------------------------------------------------------------

/// The masquerade backend over `iptables`/`ip6tables` (`ipMasqBackend:
/// "iptables"`), writing exactly the reference's rules in table `nat`:
///
/// ```text
/// -N CNI-<24 hex of sha512(network + containerID)>
/// -A CNI-x -d 10.88.0.2/16 -j ACCEPT -m comment --comment 'name: "net" id: "cid"'
/// -A CNI-x ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment ...   (ff00::/8 for IPv6)
/// -A POSTROUTING -s 10.88.0.2 -j CNI-x -m comment --comment ...
/// ```
///
/// It execs the tools with `--wait` (as go-iptables does for the reference);
/// this is the only place in wasm-cni that execs a firewall tool. Each
/// process joins the network namespace the backend was opened in, so the
/// backend works from any thread.
///
/// The chain is per (network, container), not per interface, as in the
/// reference: removing one attachment removes the rules of every interface
/// of that container on that network.
pub struct IptablesMasquerade {
    netns: File,
    /// Asks the kernel, without exec'ing anything, whether a `nat` table exists.
    probe: std::cell::RefCell<Option<NftSocket>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn multicast(self) -> &'static str {
        match self {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        }
    }
}

/// One `-A` line of `iptables -S`, split into arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SavedRule {
    chain: String,
    /// The rule specification after `-A <chain>`.
    spec: Vec<String>,
}

impl SavedRule {
    /// The value after `flag`, and whether a `!` came before the flag.
    fn option(&self, flag: &str) -> Option<(&str, bool)> {
        let at = self.spec.iter().position(|a| a == flag)?;
        let negated = at > 0 && self.spec[at - 1] == "!";
        Some((self.spec.get(at + 1)?.as_str(), negated))
    }

    fn target(&self) -> Option<&str> {
        self.option("-j").map(|(t, _)| t)
    }

    fn owner(&self) -> Option<(String, String)> {
        parse_iptables_comment(self.option("--comment")?.0)
    }
}

/// Lines of `iptables -S` for one table: which chains exist, and the rules.
#[derive(Debug, Default)]
struct SavedTable {
    chains: Vec<String>,
    rules: Vec<SavedRule>,
}

impl SavedTable {
    fn parse(text: &str) -> Self {
        let mut table = SavedTable::default();
        for line in text.lines() {
            let mut args = split_saved_line(line).into_iter();
            match (args.next().as_deref(), args.next()) {
                (Some("-N"), Some(chain)) => table.chains.push(chain),
                (Some("-A"), Some(chain)) => table.rules.push(SavedRule {
                    chain,
                    spec: args.collect(),
                }),
                _ => {}
            }
        }
        table
    }

    fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    /// The masquerade rules of `network`: POSTROUTING jumps carrying our
    /// comment into the chain named after that comment.
    fn masq_rules(&self, network: &str) -> Vec<MasqRule> {
        let mut out = Vec::new();
        for jump in self.rules.iter().filter(|r| r.chain == "POSTROUTING") {
            let (Some(target), Some((net, cid))) = (jump.target(), jump.owner()) else {
                continue;
            };
            if net != network || target != iptables_chain_name(&net, &cid) {
                continue;
            }
            let Some(addr) = jump
                .option("-s")
                .and_then(|(s, _)| s.split('/').next())
                .and_then(|s| s.parse::<IpAddr>().ok())
            else {
                continue;
            };
            // The subnet is only in the chain's ACCEPT rule.
            let subnet = self
                .rules
                .iter()
                .filter(|r| r.chain == target && r.target() == Some("ACCEPT"))
                .filter_map(|r| r.option("-d"))
                .filter(|(_, negated)| !negated)
                .filter_map(|(d, _)| d.parse::<IpNet>().ok())
                .find(|net| net.contains(&addr));
            let prefix = subnet.map_or(if addr.is_ipv4() { 32 } else { 128 }, |n| n.prefix_len());
            if let Ok(source) = IpNet::new(addr, prefix) {
                out.push(MasqRule {
                    network: net,
                    container_id: cid,
                    ifname: String::new(),
                    source,
                });
            }
        }
        out
    }

    /// Container IDs of `network` owning a chain here (by a jump or by a rule
    /// inside the chain, so half-made chains count too).
    fn owners(&self, network: &str) -> HashSet<String> {
        self.rules
            .iter()
            .filter_map(|r| {
                let (net, cid) = r.owner()?;
                let chain = iptables_chain_name(&net, &cid);
                let ours = r.chain == chain || r.target() == Some(chain.as_str());
                (ours && net == network).then_some(cid)
            })
            .collect()
    }
}

/// Splits a line of `iptables -S` into arguments; the tools quote a value
/// with `"` and escape `"`, `\` and `'` in it with `\` (`xtables_save_string`).
fn split_saved_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(first) = chars.next() else {
            return out;
        };
        let mut arg = String::new();
        if first == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => arg.extend(chars.next()),
                    c => arg.push(c),
                }
            }
        } else {
            arg.push(first);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        out.push(arg);
    }
}

impl IptablesMasquerade {
    /// Remembers the calling thread's network namespace; every command runs
    /// in it.
    pub fn open() -> Result<Self, MasqError> {
        let path = "/proc/thread-self/ns/net";
        let netns = File::open(path).map_err(|e| MasqError::io(format!("open {path}"), e))?;
        Ok(IptablesMasquerade {
            netns,
            probe: std::cell::RefCell::new(NftSocket::open().ok()),
        })
    }

    /// Whether this namespace certainly has no `nat` table for `family`, in
    /// either iptables backend: none among nf_tables' tables (iptables-nft)
    /// and none in `/proc/net/ip{,6}_tables_names` (legacy x_tables, listed
    /// once the table is in use). Then there is nothing to list and no
    /// `iptables` process is started (each costs milliseconds). Any doubt (a
    /// failed probe, a call from another namespace) answers false.
    fn certainly_no_nat_table(&self, family: Family) -> bool {
        let same_netns = (|| {
            let ours = nix::sys::stat::fstat(self.netns.as_fd()).ok()?;
            let here = nix::sys::stat::stat("/proc/thread-self/ns/net").ok()?;
            Some(ours.st_ino == here.st_ino && ours.st_dev == here.st_dev)
        })();
        if same_netns != Some(true) {
            return false;
        }
        let (nfproto, legacy) = match family {
            Family::V4 => (NFPROTO_IPV4, "/proc/thread-self/net/ip_tables_names"),
            Family::V6 => (NFPROTO_IPV6, "/proc/thread-self/net/ip6_tables_names"),
        };
        let legacy_nat = match std::fs::read_to_string(legacy) {
            Ok(names) => names.lines().any(|l| l.trim() == "nat"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(_) => return false,
        };
        if legacy_nat {
            return false;
        }
        let mut probe = self.probe.borrow_mut();
        let Some(sock) = probe.as_mut() else {
            return false;
        };
        match sock.list_tables(nfproto) {
            Ok(tables) => !tables.iter().any(|t| t == "nat"),
            Err(_) => false,
        }
    }

    /// Runs `<program> --wait -t nat <args>` in our namespace. `Ok(None)`
    /// when the program is not installed.
    fn run(&self, family: Family, args: &[&str]) -> Result<Option<Output>, MasqError> {
        let mut cmd = Command::new(family.program());
        cmd.args(["--wait", "-t", "nat"])
            .args(args)
            .env("LC_ALL", "C");
        let fd = self.netns.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setns(2), a plain system call that is async-signal-safe and
        // does not allocate. `fd` stays open in the child because `self.netns`
        // outlives this call, which waits for the child.
        unsafe {
            cmd.pre_exec(move || {
                let ns = BorrowedFd::borrow_raw(fd);
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
            });
        }
        match cmd.output() {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MasqError::io(format!("run {}", family.program()), e)),
        }
    }

    /// Like [`Self::run`], but a missing program or a failure is an error.
    fn run_ok(&self, family: Family, args: &[&str]) -> Result<String, MasqError> {
        let out = self
            .run(family, args)?
            .ok_or_else(|| not_installed(family))?;
        if !out.status.success() {
            return Err(command_error(family, args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `nat` table; `None` when the program is missing or the kernel has
    /// no such table for this family (a node without IPv6 NAT holds no IPv6
    /// masquerade rules).
    fn list(&self, family: Family) -> Result<Option<SavedTable>, MasqError> {
        if self.certainly_no_nat_table(family) {
            return Ok(None);
        }
        self.list_always(family)
    }

    /// [`Self::list`] without the probe: `iptables -S` also creates the table
    /// (iptables-nft) or loads it (legacy), which adding a rule needs.
    fn list_always(&self, family: Family) -> Result<Option<SavedTable>, MasqError> {
        let Some(out) = self.run(family, &["-S"])? else {
            return Ok(None);
        };
        if !out.status.success() {
            if String::from_utf8_lossy(&out.stderr).contains("does not exist") {
                return Ok(None);
            }
            return Err(command_error(family, &["-S"], &out));
        }
        Ok(Some(SavedTable::parse(&String::from_utf8_lossy(
            &out.stdout,
        ))))
    }

    /// go-iptables `AppendUnique`: `-C`, then `-A` if the check found nothing.
    fn append_unique(&self, family: Family, chain: &str, spec: &[&str]) -> Result<(), MasqError> {
        let mut check = vec!["-C", chain];
        check.extend_from_slice(spec);
        let out = self
            .run(family, &check)?
            .ok_or_else(|| not_installed(family))?;
        match out.status.code() {
            Some(0) => Ok(()),
            // 1 is "no such rule" (go-iptables reads it the same way).
            Some(1) => {
                let mut append = vec!["-A", chain];
                append.extend_from_slice(spec);
                self.run_ok(family, &append).map(drop)
            }
            _ => Err(command_error(family, &check, &out)),
        }
    }

    /// The reference's teardown without knowing the addresses: delete every
    /// POSTROUTING rule jumping to the chain, then flush and delete it.
    fn remove_chain(&self, network: &str, container_id: &str) -> Result<(), MasqError> {
        let chain = iptables_chain_name(network, container_id);
        let mut first_error = None;
        for family in [Family::V4, Family::V6] {
            let result = (|| {
                let Some(table) = self.list(family)? else {
                    return Ok(());
                };
                for jump in table
                    .rules
                    .iter()
                    .filter(|r| r.chain == "POSTROUTING" && r.target() == Some(chain.as_str()))
                {
                    let mut delete = vec!["-D", "POSTROUTING"];
                    delete.extend(jump.spec.iter().map(String::as_str));
                    self.run_ok(family, &delete)?;
                }
                if table.has_chain(&chain) {
                    self.run_ok(family, &["-F", &chain])?;
                    self.run_ok(family, &["-X", &chain])?;
                }
                Ok::<(), MasqError>(())
            })();
            // Try both families before reporting, like a DEL should.
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn not_installed(family: Family) -> MasqError {
    MasqError::io(
        format!("run {}", family.program()),
        io::Error::new(io::ErrorKind::NotFound, "program not found in PATH"),
    )
}

fn with_comment<'a>(spec: &[&'a str], comment: &'a str) -> Vec<&'a str> {
    let mut spec = spec.to_vec();
    spec.extend(["-m", "comment", "--comment", comment]);
    spec
}

fn command_error(family: Family, args: &[&str], out: &Output) -> MasqError {
    let status = match out.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    MasqError::Command {
        command: format!("{} --wait -t nat {}", family.program(), args.join(" ")),
        status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

impl Masquerade for IptablesMasquerade {
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), MasqError> {
        let family = Family::of(source.addr());
        let chain = iptables_chain_name(&key.network, &key.container_id);
        let comment = iptables_comment(&key.network, &key.container_id);
        let table = self
            .list_always(family)?
            .ok_or_else(|| not_installed(family))?;
        if !table.has_chain(&chain) {
            self.run_ok(family, &["-N", &chain])?;
        }
        // The reference's order and arguments (`ipn.String()` keeps the host
        // bits; the kernel stores the subnet).
        let dest = source.to_string();
        let addr = source.addr().to_string();
        let accept = with_comment(&["-d", &dest, "-j", "ACCEPT"], &comment);
        self.append_unique(family, &chain, &accept)?;
        let masq = with_comment(
            &["!", "-d", family.multicast(), "-j", "MASQUERADE"],
            &comment,
        );
        self.append_unique(family, &chain, &masq)?;
        let jump = with_comment(&["-s", &addr, "-j", &chain], &comment);
        self.append_unique(family, "POSTROUTING", &jump)
    }

    fn remove(&mut self, key: &AttachmentKey) -> Result<(), MasqError> {
        self.remove_chain(&key.network, &key.container_id)
    }

    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, MasqError> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Some(table) = self.list(family)? {
                out.extend(table.masq_rules(network));
            }
        }
        Ok(out)
    }

    /// The interface names in `valid` are ignored: chains are per container.
    fn gc(
        &mut self,
        network: &str,
        valid: &[(String, String)],
    ) -> Result<Vec<MasqRule>, MasqError> {
        let keep: HashSet<&str> = valid.iter().map(|(cid, _)| cid.as_str()).collect();
        let mut stale = HashSet::new();
        let mut removed = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Some(table) = self.list(family)? {
                let gone: HashSet<String> = table
                    .owners(network)
                    .into_iter()
                    .filter(|cid| !keep.contains(cid.as_str()))
                    .collect();
                removed.extend(
                    table
                        .masq_rules(network)
                        .into_iter()
                        .filter(|r| gone.contains(&r.container_id)),
                );
                stale.extend(gone);
            }
        }
        for cid in &stale {
            self.remove_chain(network, cid)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;
    use std::process::Stdio;

    use serde_json::{json, Value};

    use crate::nft::{
        nest, put_attr, put_str, udata_comment, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS,
        NFTA_RULE_HANDLE, NFTA_RULE_TABLE, NFTA_RULE_USERDATA,
    };

    fn key(network: &str, container_id: &str, ifname: &str) -> AttachmentKey {
        AttachmentKey {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test CIDR")
    }

    /// The first `n` hex digits of sha512, computed independently of the
    /// module's helpers.
    fn sha512_prefix(input: &str, n: usize) -> String {
        let hex: String = Sha512::digest(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex[..n].to_string()
    }

    // --- derivations (values checked with `printf %s '...' | sha512sum`) ---

    #[test]
    fn hashes_match_sha512sum() {
        assert_eq!(sha512_prefix("mynet", 16), "d23676b4f2d9fe04");
        assert_eq!(sha512_prefix("eth0:ctr1", 16), "7883a6f9ce71eedb");
        assert_eq!(sha512_prefix("mynetctr1", 24), "5145007e2a8415ce07579739");
        assert_eq!(h16("mynet"), "d23676b4f2d9fe04");
        assert_eq!(h16("my\"net"), "b591271a779eb12b");
        assert_eq!(sha512_hex("eth0:ctr1").len(), 128);
    }

    #[test]
    fn nft_comment_is_the_reference_one() {
        let k = key("mynet", "ctr1", "eth0");
        assert_eq!(nft_instance_prefix(&k), "d23676b4f2d9fe04-7883a6f9ce71eedb");
        assert_eq!(
            nft_rule_comment(&k),
            "d23676b4f2d9fe04-7883a6f9ce71eedb, net: mynet, if: eth0, id: ctr1"
        );
        assert_eq!(nft_network_prefix("mynet"), "d23676b4f2d9fe04-");
    }

    #[test]
    fn nft_comment_strips_quotes_and_is_cut_at_128_bytes() {
        // The hash keeps the quote; the readable part loses it.
        let k = key("my\"net", "ctr1", "eth0");
        assert_eq!(
            nft_rule_comment(&k),
            "b591271a779eb12b-7883a6f9ce71eedb, net: mynet, if: eth0, id: ctr1"
        );

        let cid = "0123456789abcdef".repeat(4);
        let k = key("mynetwork-with-a-long-name", &cid, "eth0");
        let comment = nft_rule_comment(&k);
        assert_eq!(comment.len(), 128);
        let full = format!(
            "a275b858cd7084ab-848025970da6a998, net: mynetwork-with-a-long-name, if: eth0, id: {cid}"
        );
        assert_eq!(comment, full[..128]);
        // Still found by its instance prefix, and read back (cut short).
        assert!(comment.starts_with(&nft_instance_prefix(&k)));
        let (ifname, id) = parse_nft_comment(&k.network, &comment).expect("parse");
        assert_eq!(ifname, "eth0");
        assert!(cid.starts_with(&id) && id.len() < cid.len());
    }

    #[test]
    fn nft_comment_parses_back() {
        let k = key("mynet", "ctr1", "eth0");
        let comment = nft_rule_comment(&k);
        assert_eq!(
            parse_nft_comment("mynet", &comment),
            Some(("eth0".to_string(), "ctr1".to_string()))
        );
        assert_eq!(parse_nft_comment("othernet", &comment), None);
        assert_eq!(parse_nft_comment("mynet", "unrelated comment"), None);
    }

    #[test]
    fn iptables_names_are_the_reference_ones() {
        assert_eq!(
            iptables_chain_name("mynet", "ctr1"),
            "CNI-5145007e2a8415ce07579739"
        );
        assert_eq!(iptables_chain_name("mynet", "ctr1").len(), 28);
        assert_eq!(
            iptables_comment("mynet", "ctr1"),
            r#"name: "mynet" id: "ctr1""#
        );
        assert_eq!(
            parse_iptables_comment(r#"name: "mynet" id: "ctr1""#),
            Some(("mynet".to_string(), "ctr1".to_string()))
        );
        assert_eq!(
            parse_iptables_comment(r#"name: "mynet" id: "ctr1" x"#),
            None
        );
        assert_eq!(parse_iptables_comment("dnat name: \"a\" id: \"b\""), None);
    }

    #[test]
    fn go_quoting_round_trips() {
        assert_eq!(go_quote("a\"b\\c\n\x01\x7f"), r#""a\"b\\c\n\x01\x7f""#);
        assert_eq!(go_quote("\u{85}é"), "\"\\u0085é\"");
        for s in [
            "plain-name_1.x",
            "with \"quotes\"",
            "tab\tand\\",
            "\u{85}\u{2028}é",
            "",
        ] {
            let quoted = go_quote(s);
            let (back, rest) = go_unquote(&quoted).expect("unquote");
            assert_eq!(back, s);
            assert!(rest.is_empty());
        }
        assert_eq!(go_unquote("\"unterminated"), None);
        assert_eq!(go_unquote("\"bad \\q escape\""), None);
    }

    #[test]
    fn saved_lines_split_like_xtables_quotes_them() {
        let line = r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j CNI-5145007e2a8415ce07579739"#;
        assert_eq!(
            split_saved_line(line),
            [
                "-A",
                "POSTROUTING",
                "-s",
                "10.88.0.2/32",
                "-m",
                "comment",
                "--comment",
                r#"name: "mynet" id: "ctr1""#,
                "-j",
                "CNI-5145007e2a8415ce07579739",
            ]
        );
        assert_eq!(split_saved_line("  -N   X  "), ["-N", "X"]);
        assert_eq!(split_saved_line(r#"a "b\\c""#), ["a", r"b\c"]);
    }

    #[test]
    fn saved_table_finds_rules_and_owners() {
        let c = iptables_chain_name("mynet", "ctr1");
        let text = format!(
            r#"-P POSTROUTING ACCEPT
-N {c}
-N CNI-orphan
-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j {c}
-A POSTROUTING -s 10.88.0.9/32 -m comment --comment "name: \"mynet\" id: \"forged\"" -j {c}
-A {c} -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j ACCEPT
-A {c} ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j MASQUERADE
-A CNI-{h} -d 10.1.0.0/16 -m comment --comment "name: \"mynet\" id: \"half\"" -j ACCEPT
"#,
            h = &iptables_chain_name("mynet", "half")[4..]
        );
        let table = SavedTable::parse(&text);
        assert!(table.has_chain(&c));
        assert_eq!(
            table.masq_rules("mynet"),
            [MasqRule {
                network: "mynet".into(),
                container_id: "ctr1".into(),
                ifname: String::new(),
                source: net("10.88.0.2/16"),
            }]
        );
        assert!(table.masq_rules("othernet").is_empty());
        let owners = table.owners("mynet");
        assert_eq!(
            owners,
            HashSet::from(["ctr1".to_string(), "half".to_string()])
        );
    }

    #[test]
    fn prefixes_are_linearized_like_nft_does() {
        // Expected values from `nft --debug=netlink` (nftables 1.0.6).
        assert_eq!(
            match_prefix(16, net("10.1.0.0/20"), NFT_CMP_NEQ),
            [
                network_payload(16, 4),
                Expr::Bitwise(vec![0xff, 0xff, 0xf0, 0]),
                Expr::Cmp(NFT_CMP_NEQ, vec![10, 1, 0, 0]),
            ]
        );
        assert_eq!(
            match_prefix(16, net("10.88.0.0/16"), NFT_CMP_NEQ),
            [network_payload(16, 2), Expr::Cmp(NFT_CMP_NEQ, vec![10, 88]),]
        );
        assert_eq!(
            match_prefix(24, net("fd00::/61"), NFT_CMP_NEQ)[..2],
            [
                network_payload(24, 16),
                Expr::Bitwise(addr_bytes("ffff:ffff:ffff:fff8::".parse().expect("mask"))),
            ]
        );
        let base = postrouting_exprs();
        assert_eq!(
            base[0],
            [
                Expr::Meta(NFT_META_NFPROTO),
                Expr::Cmp(NFT_CMP_EQ, vec![NFPROTO_IPV4]),
                network_payload(16, 4),
                Expr::Bitwise(vec![0xf0, 0, 0, 0]),
                Expr::Cmp(NFT_CMP_EQ, vec![0xe0, 0, 0, 0]),
                Expr::Verdict(NFT_RETURN, None),
            ]
        );
        assert_eq!(
            base[1],
            [
                Expr::Meta(NFT_META_NFPROTO),
                Expr::Cmp(NFT_CMP_EQ, vec![NFPROTO_IPV6]),
                network_payload(24, 1),
                Expr::Cmp(NFT_CMP_EQ, vec![0xff]),
                Expr::Verdict(NFT_RETURN, None),
            ]
        );
        assert_eq!(base[2], [Expr::Verdict(NFT_GOTO, Some(NFT_MASQ_CHAIN))]);
    }

    /// Encodes a masquerade rule as the kernel would dump it, and reads it back.
    #[test]
    fn masq_rules_round_trip_through_the_wire_format() {
        for source in [
            "10.88.0.2/16",
            "10.1.2.3/20",
            "10.1.2.3/32",
            "192.168.1.4/0",
            "fd00::5/64",
            "fd00::5/61",
            "fd00::5/128",
        ] {
            let source = net(source);
            let mut msg = vec![NFPROTO_INET, 0, 0, 0];
            put_str(&mut msg, NFTA_RULE_TABLE, NFT_TABLE);
            put_str(&mut msg, NFTA_RULE_CHAIN, NFT_MASQ_CHAIN);
            put_attr(&mut msg, NFTA_RULE_HANDLE, &42u64.to_be_bytes());
            nest(&mut msg, NFTA_RULE_EXPRESSIONS, |b| {
                for expr in masq_rule_exprs(source) {
                    expr.encode(b);
                }
            });
            put_attr(&mut msg, NFTA_RULE_USERDATA, &udata_comment("c"));
            let rule = NftRule::parse(&msg).expect("parse");
            assert_eq!(rule.handle, 42);
            assert_eq!(rule.comment, "c");
            assert_eq!(rule.table, NFT_TABLE);
            assert_eq!(rule_source(&rule), Some(source), "{source}");
        }
    }

    #[test]
    fn rules_of_another_shape_have_no_source() {
        let rule = NftRule {
            table: NFT_TABLE.into(),
            chain: NFT_MASQ_CHAIN.into(),
            handle: 1,
            comment: String::new(),
            exprs: vec![DecodedExpr::Other("counter".into())],
        };
        assert_eq!(rule_source(&rule), None);
        let jump = NftRule {
            exprs: vec![DecodedExpr::Verdict(NFT_GOTO, Some(NFT_MASQ_CHAIN.into()))],
            ..rule
        };
        assert_eq!(rule_source(&jump), None);
    }

    #[test]
    fn kernel_errors_keep_errno_and_message() {
        let err = MasqError::from(NftError::Kernel {
            op: "create base chain postrouting".into(),
            errno: Errno::EEXIST,
            message: Some("Chain type mismatch".into()),
        });
        assert_eq!(err.errno(), Some(Errno::EEXIST));
        assert_eq!(
            err.to_string(),
            "nftables: cannot create base chain postrouting: EEXIST: File exists (Chain type mismatch)"
        );
    }

    #[test]
    fn unknown_backend_is_refused_by_name() {
        match masquerade_for("ebtables") {
            Err(e) => assert_eq!(e.to_string(), r#"unknown ipmasq backend "ebtables""#),
            Ok(_) => panic!("ebtables accepted"),
        }
    }

    // --- in throwaway network namespaces ---

    /// A network namespace made for one test. Nothing is mounted: it goes
    /// away when this handle (and any socket opened inside) is dropped, also
    /// when the test panics.
    struct TestNetns {
        file: File,
    }

    impl TestNetns {
        /// `None` (after printing SKIP) when namespaces cannot be created;
        /// a failure instead when `WASM_CNI_REQUIRE_PRIVILEGED=1`.
        fn new(test: &str) -> Option<Self> {
            if !nix::unistd::Uid::effective().is_root() {
                skip(test, "needs root to create network namespaces");
                return None;
            }
            let made = std::thread::spawn(|| {
                // This thread exits right after, so it never switches back.
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                File::open("/proc/thread-self/ns/net")
            })
            .join()
            .expect("netns thread");
            match made {
                Ok(file) => Some(TestNetns { file }),
                Err(e) => {
                    skip(test, &format!("cannot create a network namespace: {e}"));
                    None
                }
            }
        }

        /// Runs `f` on a fresh thread inside the namespace.
        fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
            std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    setns(&self.file, CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                });
                match worker.join() {
                    Ok(v) => v,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            })
        }

        /// A path other processes can open (`CNI_NETNS`).
        fn path(&self) -> String {
            format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
        }
    }

    fn skip(test: &str, why: &str) {
        if std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
            panic!("{test} cannot run: {why}");
        }
        eprintln!("SKIP {test}: {why}");
    }

    fn installed(test: &str, program: &str) -> bool {
        let found = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            skip(test, &format!("{program} is not installed"));
        }
        found
    }

    /// Runs a tool (in the calling thread's namespace) and returns stdout.
    fn tool(program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft_ruleset() -> Value {
        serde_json::from_str(&tool("nft", &["-j", "list", "ruleset"])).expect("nft json")
    }

    /// The objects of `nft -j` output of one kind (`table`, `chain`, `rule`),
    /// without their handles (which differ between runs).
    fn objects(ruleset: &Value, kind: &str) -> Vec<Value> {
        ruleset["nftables"]
            .as_array()
            .expect("nftables array")
            .iter()
            .filter_map(|o| o.get(kind).cloned())
            .map(|mut o| {
                if let Some(map) = o.as_object_mut() {
                    map.remove("handle");
                }
                o
            })
            .collect()
    }

    fn rules_of(ruleset: &Value, chain: &str) -> Vec<Value> {
        objects(ruleset, "rule")
            .into_iter()
            .filter(|r| r["chain"] == chain)
            .collect()
    }

    /// How `nft -j` shows the reference's rule for `source`.
    fn expected_masq_rule(source: IpNet, comment: &str) -> Value {
        let proto = if source.addr().is_ipv4() { "ip" } else { "ip6" };
        let max = if source.addr().is_ipv4() { 32 } else { 128 };
        let subnet = source.trunc();
        let right = if subnet.prefix_len() == max {
            json!(subnet.addr().to_string())
        } else {
            json!({"prefix": {"addr": subnet.addr().to_string(), "len": subnet.prefix_len()}})
        };
        json!({
            "family": "inet",
            "table": NFT_TABLE,
            "chain": NFT_MASQ_CHAIN,
            "comment": comment,
            "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}},
                           "right": source.addr().to_string()}},
                {"match": {"op": "!=", "left": {"payload": {"protocol": proto, "field": "daddr"}},
                           "right": right}},
                {"masquerade": null},
            ],
        })
    }

    fn assert_reference_layout(ruleset: &Value) {
        assert_eq!(
            objects(ruleset, "table"),
            [json!({"family": "inet", "name": NFT_TABLE})]
        );
        assert_eq!(
            objects(ruleset, "chain"),
            [
                json!({"family": "inet", "table": NFT_TABLE, "name": "masq_checks"}),
                json!({"family": "inet", "table": NFT_TABLE, "name": "postrouting",
                       "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}),
            ]
        );
        let base: Vec<Value> = rules_of(ruleset, "postrouting")
            .into_iter()
            .map(|r| r["expr"].clone())
            .collect();
        assert_eq!(
            base,
            [
                json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                  "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}},
                       {"return": null}]),
                json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                                  "right": {"prefix": {"addr": "ff00::", "len": 8}}}},
                       {"return": null}]),
                json!([{"goto": {"target": "masq_checks"}}]),
            ]
        );
    }

    fn sorted(mut rules: Vec<MasqRule>) -> Vec<MasqRule> {
        rules.sort_by(|a, b| {
            (&a.container_id, &a.ifname, a.source).cmp(&(&b.container_id, &b.ifname, b.source))
        });
        rules
    }

    fn masq_rule(k: &AttachmentKey, source: &str) -> MasqRule {
        MasqRule {
            network: k.network.clone(),
            container_id: k.container_id.clone(),
            ifname: k.ifname.clone(),
            source: net(source),
        }
    }

    #[test]
    fn nft_add_remove_gc_in_a_namespace() {
        const TEST: &str = "nft_add_remove_gc_in_a_namespace";
        let Some(ns) = TestNetns::new(TEST) else {
            return;
        };
        if !installed(TEST, "nft") {
            return;
        }
        ns.run(|| {
            let mut nft = NftMasquerade::open().expect("open");
            let k1 = key("mynet", "ctr1", "eth0");
            let k2 = key("mynet", "ctr2", "eth0");
            let other = key("othernet", "ctr1", "eth0");

            // Nothing there yet: listing and removing are fine.
            assert!(nft.rules("mynet").expect("rules").is_empty());
            nft.remove(&k1).expect("remove before anything exists");
            assert!(objects(&nft_ruleset(), "table").is_empty());

            let added = [
                (&k1, "10.88.0.2/16"),
                (&k1, "fd00:88::2/64"),
                (&k2, "10.88.0.3/16"),
                (&other, "10.99.0.2/24"),
            ];
            for (k, source) in added {
                nft.add(k, net(source)).expect("add");
            }
            let ruleset = nft_ruleset();
            assert_reference_layout(&ruleset);
            let expected: Vec<Value> = added
                .iter()
                .map(|(k, s)| expected_masq_rule(net(s), &nft_rule_comment(k)))
                .collect();
            assert_eq!(rules_of(&ruleset, "masq_checks"), expected);
            // The reference finds its rules by this prefix.
            let comment = rules_of(&ruleset, "masq_checks")[0]["comment"].clone();
            let reference_prefix = format!(
                "{}-{}",
                sha512_prefix("mynet", 16),
                sha512_prefix("eth0:ctr1", 16)
            );
            assert!(comment
                .as_str()
                .is_some_and(|c| c.starts_with(&reference_prefix)));
            // And `nft list` renders the comment and the rule as text.
            let text = tool("nft", &["list", "chain", "inet", NFT_TABLE, "masq_checks"]);
            assert!(
                text.contains(&format!(
                    "ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade comment \"{}\"",
                    nft_rule_comment(&other)
                )),
                "{text}"
            );

            // Adding again changes nothing (cni#925).
            for (k, source) in added {
                nft.add(k, net(source)).expect("add again");
            }
            let again = nft_ruleset();
            assert_reference_layout(&again);
            assert_eq!(rules_of(&again, "masq_checks"), expected);

            assert_eq!(
                sorted(nft.rules("mynet").expect("rules")),
                [
                    masq_rule(&k1, "10.88.0.2/16"),
                    masq_rule(&k1, "fd00:88::2/64"),
                    masq_rule(&k2, "10.88.0.3/16"),
                ]
            );

            // A new subnet for the same address replaces the old rule.
            nft.add(&k1, net("10.88.0.2/24")).expect("add new subnet");
            assert_eq!(
                sorted(nft.rules("mynet").expect("rules")),
                [
                    masq_rule(&k1, "10.88.0.2/24"),
                    masq_rule(&k1, "fd00:88::2/64"),
                    masq_rule(&k2, "10.88.0.3/16"),
                ]
            );

            // Removal by key alone takes both addresses of k1.
            nft.remove(&k1).expect("remove");
            nft.remove(&k1).expect("remove again");
            assert_eq!(
                nft.rules("mynet").expect("rules"),
                [masq_rule(&k2, "10.88.0.3/16")]
            );
            assert_eq!(
                nft.rules("othernet").expect("rules"),
                [masq_rule(&other, "10.99.0.2/24")]
            );

            // GC keeps valid attachments, and never looks at other networks.
            let removed = nft
                .gc("mynet", &[("ctr2".into(), "eth1".into())])
                .expect("gc");
            assert_eq!(removed, [masq_rule(&k2, "10.88.0.3/16")]);
            assert!(nft.gc("mynet", &[]).expect("gc again").is_empty());
            assert!(nft
                .gc("othernet", &[("ctr1".into(), "eth0".into())])
                .expect("gc other")
                .is_empty());
            let left = nft_ruleset();
            assert_reference_layout(&left);
            assert_eq!(
                rules_of(&left, "masq_checks"),
                [expected_masq_rule(
                    net("10.99.0.2/24"),
                    &nft_rule_comment(&other)
                )]
            );
        });
    }

    #[test]
    fn nft_add_collapses_duplicates() {
        const TEST: &str = "nft_add_collapses_duplicates";
        let Some(ns) = TestNetns::new(TEST) else {
            return;
        };
        if !installed(TEST, "nft") {
            return;
        }
        ns.run(|| {
            let mut nft = NftMasquerade::open().expect("open");
            let k = key("mynet", "ctr1", "eth0");
            let comment = nft_rule_comment(&k);
            nft.add(&k, net("10.88.0.2/16")).expect("add");
            // A duplicate, as left behind by cni#925-style double installs.
            let dup = format!(
                "add rule inet {NFT_TABLE} masq_checks ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment \"{comment}\""
            );
            tool("nft", &[&dup]);
            tool("nft", &[&dup]);
            assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 3);
            nft.add(&k, net("10.88.0.2/16")).expect("add");
            assert_eq!(
                rules_of(&nft_ruleset(), "masq_checks"),
                [expected_masq_rule(net("10.88.0.2/16"), &comment)]
            );
        });
    }

    /// What knftables sends for the reference's `setupIPMasqNFTables`
    /// (plugins `pkg/ip/ipmasq_nftables_linux.go`) for one address.
    fn reference_transaction(k: &AttachmentKey, source: IpNet) -> String {
        // Literals copied from the Go code, not from this module.
        let t = "cni_plugins_masquerade";
        let ip = if source.addr().is_ipv4() { "ip" } else { "ip6" };
        format!(
            "add table inet {t} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}\n\
             add chain inet {t} masq_checks {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}\n\
             add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat ; }}\n\
             flush chain inet {t} postrouting\n\
             add rule inet {t} postrouting ip daddr == 224.0.0.0/4  return\n\
             add rule inet {t} postrouting ip6 daddr == ff00::/8  return\n\
             add rule inet {t} postrouting goto masq_checks\n\
             add rule inet {t} masq_checks {ip} saddr == {a} {ip} daddr != {subnet} masquerade comment \"{c}\"\n",
            a = source.addr(),
            subnet = source.trunc(),
            c = nft_rule_comment(k),
        )
    }

    fn nft_file(script: &str) {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        assert!(
            child.wait().expect("nft").success(),
            "nft -f failed:\n{script}"
        );
    }

    /// Our rules and the reference's are the same objects, and either side's
    /// ADD leaves the layout single, so a node can switch plugins.
    #[test]
    fn nft_layout_is_the_reference_layout() {
        const TEST: &str = "nft_layout_is_the_reference_layout";
        let Some(ns) = TestNetns::new(TEST) else {
            return;
        };
        if !installed(TEST, "nft") {
            return;
        }
        ns.run(|| {
            let k1 = key("mynet", "ctr1", "eth0");
            let k2 = key("mynet", "ctr2", "eth0");
            let v4 = net("10.88.0.2/16");
            let v6 = net("fd00:88::2/64");

            nft_file(&reference_transaction(&k1, v4));
            nft_file(&reference_transaction(&k1, v6));
            let reference = nft_ruleset();
            // Table and chain comments are not in nftables 1.0.6's JSON; the
            // text output shows them.
            let reference_text = tool("nft", &["list", "ruleset"]);
            tool("nft", &["flush", "ruleset"]);

            let mut nft = NftMasquerade::open().expect("open");
            nft.add(&k1, v4).expect("add v4");
            nft.add(&k1, v6).expect("add v6");
            let ours = nft_ruleset();
            for kind in ["table", "chain", "rule"] {
                assert_eq!(objects(&ours, kind), objects(&reference, kind), "{kind}");
            }
            assert_eq!(tool("nft", &["list", "ruleset"]), reference_text);

            // The reference's ADD after ours: still one layout, both rules.
            nft_file(&reference_transaction(&k2, net("10.88.0.3/16")));
            assert_reference_layout(&nft_ruleset());
            assert_eq!(
                sorted(nft.rules("mynet").expect("rules")),
                [
                    masq_rule(&k1, "10.88.0.2/16"),
                    masq_rule(&k1, "fd00:88::2/64"),
                    masq_rule(&k2, "10.88.0.3/16"),
                ]
            );
            // Ours after the reference's: the same.
            nft.add(&k2, net("10.88.0.3/16")).expect("add k2");
            assert_reference_layout(&nft_ruleset());
            assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 3);

            // The reference's teardown: delete the masq_checks rules whose
            // comment starts with the instance hash. It takes ours.
            let prefix = format!(
                "{}-{}",
                sha512_prefix("mynet", 16),
                sha512_prefix("eth0:ctr1", 16)
            );
            let ruleset = nft_ruleset();
            for rule in ruleset["nftables"].as_array().expect("array") {
                let Some(rule) = rule.get("rule") else {
                    continue;
                };
                if rule["chain"] == "masq_checks"
                    && rule["comment"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(&prefix))
                {
                    let handle = rule["handle"].to_string();
                    tool(
                        "nft",
                        &[
                            "delete",
                            "rule",
                            "inet",
                            NFT_TABLE,
                            "masq_checks",
                            "handle",
                            &handle,
                        ],
                    );
                }
            }
            assert_eq!(
                nft.rules("mynet").expect("rules"),
                [masq_rule(&k2, "10.88.0.3/16")]
            );
            // And ours takes a rule the reference made.
            nft.remove(&k2).expect("remove k2");
            assert!(nft.rules("mynet").expect("rules").is_empty());
        });
    }

    /// `-N` and `-A` lines of the nat table, sorted (iptables-nft lists
    /// chains in its own order).
    fn nat_rules(program: &str) -> Vec<String> {
        let mut lines: Vec<String> = tool(program, &["-t", "nat", "-S"])
            .lines()
            .filter(|l| !l.starts_with("-P "))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    fn sorted_lines<const N: usize>(lines: [String; N]) -> Vec<String> {
        let mut lines = lines.to_vec();
        lines.sort();
        lines
    }

    /// The lines `iptables -t nat -S` shows for the reference's rules.
    fn reference_iptables_lines(k: &AttachmentKey, source: IpNet) -> [String; 3] {
        let chain = iptables_chain_name(&k.network, &k.container_id);
        let comment = format!(
            r#"--comment "name: \"{}\" id: \"{}\"""#,
            k.network, k.container_id
        );
        let (host, multicast) = if source.addr().is_ipv4() {
            (32, "224.0.0.0/4")
        } else {
            (128, "ff00::/8")
        };
        [
            format!(
                "-A POSTROUTING -s {}/{host} -m comment {comment} -j {chain}",
                source.addr()
            ),
            format!(
                "-A {chain} -d {} -m comment {comment} -j ACCEPT",
                source.trunc()
            ),
            format!("-A {chain} ! -d {multicast} -m comment {comment} -j MASQUERADE"),
        ]
    }

    #[test]
    fn iptables_add_remove_gc_in_a_namespace() {
        const TEST: &str = "iptables_add_remove_gc_in_a_namespace";
        let Some(ns) = TestNetns::new(TEST) else {
            return;
        };
        if !installed(TEST, "iptables") || !installed(TEST, "ip6tables") {
            return;
        }
        ns.run(|| {
            let mut ipt = IptablesMasquerade::open().expect("open");
            let k1 = key("mynet", "ctr1", "eth0");
            let k2 = key("mynet", "ctr2", "eth0");
            let other = key("othernet", "ctr1", "eth0");
            let c1 = iptables_chain_name("mynet", "ctr1");
            let c2 = iptables_chain_name("mynet", "ctr2");
            let c3 = iptables_chain_name("othernet", "ctr1");

            assert!(ipt.rules("mynet").expect("rules").is_empty());
            ipt.remove(&k1).expect("remove before anything exists");

            for _ in 0..2 {
                ipt.add(&k1, net("10.88.0.2/16")).expect("add");
                ipt.add(&k1, net("fd00:88::2/64")).expect("add v6");
                ipt.add(&k2, net("10.88.0.3/16")).expect("add k2");
                ipt.add(&other, net("10.99.0.2/24")).expect("add other");
            }
            // Exactly the reference's rules, once each.
            let [j1, a1, m1] = reference_iptables_lines(&k1, net("10.88.0.2/16"));
            let [j2, a2, m2] = reference_iptables_lines(&k2, net("10.88.0.3/16"));
            let [j3, a3, m3] = reference_iptables_lines(&other, net("10.99.0.2/24"));
            assert_eq!(
                nat_rules("iptables"),
                sorted_lines([
                    format!("-N {c1}"),
                    format!("-N {c2}"),
                    format!("-N {c3}"),
                    j1,
                    j2.clone(),
                    j3.clone(),
                    a1,
                    m1,
                    a2.clone(),
                    m2.clone(),
                    a3.clone(),
                    m3.clone(),
                ])
            );
            let [j6, a6, m6] = reference_iptables_lines(&k1, net("fd00:88::2/64"));
            assert_eq!(
                nat_rules("ip6tables"),
                sorted_lines([format!("-N {c1}"), j6, a6, m6])
            );

            let no_ifname = |k: &AttachmentKey, s: &str| MasqRule {
                ifname: String::new(),
                ..masq_rule(k, s)
            };
            assert_eq!(
                sorted(ipt.rules("mynet").expect("rules")),
                [
                    no_ifname(&k1, "10.88.0.2/16"),
                    no_ifname(&k1, "fd00:88::2/64"),
                    no_ifname(&k2, "10.88.0.3/16"),
                ]
            );

            // Removal needs no address and takes both families.
            ipt.remove(&k1).expect("remove");
            ipt.remove(&k1).expect("remove again");
            assert_eq!(
                nat_rules("iptables"),
                sorted_lines([
                    format!("-N {c2}"),
                    format!("-N {c3}"),
                    j2,
                    j3.clone(),
                    a2,
                    m2,
                    a3.clone(),
                    m3.clone(),
                ])
            );
            assert!(nat_rules("ip6tables").is_empty());

            // A half-made chain (no POSTROUTING jump yet) is collected too.
            let half = iptables_chain_name("mynet", "half");
            tool("iptables", &["-t", "nat", "-N", &half]);
            tool(
                "iptables",
                &[
                    "-t",
                    "nat",
                    "-A",
                    &half,
                    "-d",
                    "10.88.0.9/16",
                    "-j",
                    "ACCEPT",
                    "-m",
                    "comment",
                    "--comment",
                    r#"name: "mynet" id: "half""#,
                ],
            );
            let removed = ipt
                .gc("mynet", &[("ctr9".into(), "eth0".into())])
                .expect("gc");
            assert_eq!(removed, [no_ifname(&k2, "10.88.0.3/16")]);
            assert!(ipt
                .gc("othernet", &[("ctr1".into(), "eth7".into())])
                .expect("gc other")
                .is_empty());
            assert_eq!(
                nat_rules("iptables"),
                sorted_lines([format!("-N {c3}"), j3, a3, m3])
            );
        });
    }

    /// A backend acts on the namespace it was opened in, from any thread.
    #[test]
    fn backends_stay_in_the_namespace_they_were_opened_in() {
        const TEST: &str = "backends_stay_in_the_namespace_they_were_opened_in";
        let (Some(a), Some(b)) = (TestNetns::new(TEST), TestNetns::new(TEST)) else {
            return;
        };
        if !installed(TEST, "nft") || !installed(TEST, "iptables") {
            return;
        }
        let (mut nft, mut ipt) = a.run(|| {
            (
                NftMasquerade::open().expect("open nft"),
                IptablesMasquerade::open().expect("open iptables"),
            )
        });
        let k = key("mynet", "ctr1", "eth0");
        b.run(|| {
            nft.add(&k, net("10.88.0.2/16")).expect("nft add");
            ipt.add(&k, net("10.88.0.2/16")).expect("iptables add");
            assert!(objects(&nft_ruleset(), "table").is_empty());
            assert!(nat_rules("iptables").is_empty());
        });
        a.run(|| {
            assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 1);
            assert_eq!(nat_rules("iptables").len(), 4);
        });
    }

    /// The Go reference bridge (Debian's 1.1.1 has only the iptables
    /// backend) and ours write the same iptables rules, and ours removes the
    /// reference's without knowing the address. Everything, the "host" side
    /// included, runs in namespaces made here.
    #[test]
    fn iptables_interop_with_the_reference_bridge() {
        const TEST: &str = "iptables_interop_with_the_reference_bridge";
        let bridge = "/usr/lib/cni/bridge";
        if !std::path::Path::new(bridge).exists() {
            skip(TEST, "the Go reference bridge is not installed");
            return;
        }
        let (Some(host), Some(container)) = (TestNetns::new(TEST), TestNetns::new(TEST)) else {
            return;
        };
        if !installed(TEST, "iptables") {
            return;
        }
        let data = tempfile::tempdir().expect("tempdir");
        let config = json!({
            "cniVersion": "1.0.0",
            "name": "interop",
            "type": "bridge",
            "bridge": "wcnimasq0",
            "isGateway": true,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.77.0.0/24",
                "dataDir": data.path(),
            },
        })
        .to_string();
        let cni = |command: &str, container_id: &str| {
            let mut child = Command::new(bridge)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", container_id)
                .env("CNI_NETNS", container.path())
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/usr/lib/cni")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bridge");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(config.as_bytes())
                .expect("write config");
            let out = child.wait_with_output().expect("bridge");
            assert!(
                out.status.success(),
                "bridge {command}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        host.run(|| {
            let mut ipt = IptablesMasquerade::open().expect("open");
            let k = key("interop", "ctr-ref", "eth0");
            // host-local hands out .2 first.
            let source = net("10.77.0.2/24");

            // Ours first, then the reference's ADD finds identical rules.
            ipt.add(&k, source).expect("add");
            let ours = nat_rules("iptables");
            let result: Value = serde_json::from_str(&cni("ADD", "ctr-ref")).expect("result");
            assert_eq!(result["ips"][0]["address"], "10.77.0.2/24");
            assert_eq!(nat_rules("iptables"), ours);
            ipt.add(&k, source).expect("add again");
            assert_eq!(nat_rules("iptables"), ours);
            assert_eq!(
                ipt.rules("interop").expect("rules"),
                [MasqRule {
                    ifname: String::new(),
                    ..masq_rule(&k, "10.77.0.2/24")
                }]
            );

            // Ours removes them by key, without the address.
            ipt.remove(&k).expect("remove");
            assert!(nat_rules("iptables").is_empty());

            // The reference's DEL removes rules that ours made. (Not after
            // ours removed them: while the interface exists, the reference's
            // DEL fails whenever its chain is already gone, whoever removed
            // it, because its go-iptables does not read iptables-nft's exit
            // status 2, "Chain ... does not exist", as "not there".)
            ipt.add(&k, source)
                .expect("add for the reference to delete");
            cni("DEL", "ctr-ref");
            assert!(nat_rules("iptables").is_empty());

            // The reference's own ADD, listed and removed by ours.
            let result: Value = serde_json::from_str(&cni("ADD", "ctr-2")).expect("result");
            let address = result["ips"][0]["address"].as_str().expect("address");
            assert_eq!(
                ipt.rules("interop").expect("rules"),
                [MasqRule {
                    ifname: String::new(),
                    ..masq_rule(&key("interop", "ctr-2", "eth0"), address)
                }]
            );
            ipt.remove(&key("interop", "ctr-2", "eth0"))
                .expect("remove");
            assert!(nat_rules("iptables").is_empty());
        });
    }

    /// A batch is all or nothing, and losing a race to another writer that
    /// deleted the same rule is retried with a fresh listing.
    #[test]
    fn nft_batches_are_atomic_and_lost_races_are_retried() {
        const TEST: &str = "nft_batches_are_atomic_and_lost_races_are_retried";
        let Some(ns) = TestNetns::new(TEST) else {
            return;
        };
        if !installed(TEST, "nft") {
            return;
        }
        ns.run(|| {
            let mut nft = NftMasquerade::open().expect("open");
            let k1 = key("mynet", "ctr1", "eth0");
            let k2 = key("mynet", "ctr2", "eth0");
            nft.add(&k1, net("10.88.0.2/16")).expect("add");
            let handle = nft.list_rules().expect("list")[0].handle;

            // A stale handle fails the batch; the rule added with it is gone.
            tool(
                "nft",
                &[
                    "delete",
                    "rule",
                    "inet",
                    NFT_TABLE,
                    "masq_checks",
                    "handle",
                    &handle.to_string(),
                ],
            );
            let mut batch = nft.sock.batch(NFPROTO_INET);
            add_masq_rule(&mut batch, net("10.88.0.3/16"), &nft_rule_comment(&k2));
            delete_masq_rule(&mut batch, handle);
            let err = MasqError::from(nft.sock.commit(batch).expect_err("stale handle"));
            assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
            assert!(rules_of(&nft_ruleset(), "masq_checks").is_empty());

            // Another writer deletes the rule between our listing and our
            // commit: the transaction is planned again and succeeds.
            nft.add(&k1, net("10.88.0.2/16")).expect("add");
            let mut attempts = 0;
            nft.transact(|rules, batch| {
                attempts += 1;
                for rule in rules {
                    if attempts == 1 {
                        let handle = rule.handle.to_string();
                        tool(
                            "nft",
                            &[
                                "delete",
                                "rule",
                                "inet",
                                NFT_TABLE,
                                "masq_checks",
                                "handle",
                                &handle,
                            ],
                        );
                    }
                    delete_masq_rule(batch, rule.handle);
                }
            })
            .expect("transact");
            assert_eq!(attempts, 2);
            assert!(nft.rules("mynet").expect("rules").is_empty());
        });
    }
}
