//! nf_tables over a `NETLINK_NETFILTER` socket (`netlink-sys`): one socket
//! bound to the namespace it was opened in, batch transactions, and rule and
//! chain dumps. Messages and attributes are framed with `netlink-packet-core`'s
//! buffers (the rust-netlink crates rtnetlink is built on); the nf_tables
//! vocabulary (tables, chains, rules, the expressions our rules use) is ours.
//!
//! Shared by the masquerade backend ([`super::masq`]) and the anti-spoofing
//! rules ([`super::spoofcheck`]). No well-kept crate covers nf_tables
//! messages: `rustables` is GPL-3.0-or-later (this project is Apache-2.0),
//! needs bindgen and libclang at build time, and opens a new socket in the
//! calling thread's namespace for every batch, so it cannot keep a socket
//! bound to the namespace it was opened in; `nf_tables` (0.1) and `nlink` are
//! young single-maintainer crates; `nftnl` binds the C libnftnl.
//!
//! [`socket`] talks to the kernel, [`batch`] encodes what we write, [`rule`]
//! decodes what we read, [`wire`] frames both.

mod batch;
mod rule;
mod socket;
mod wire;

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use netlink_sys::{constants::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::errno::Errno;

use crate::netlink::NetError;

pub(crate) use batch::*;
pub(crate) use rule::*;
pub use socket::sockets_with_pending_work;
pub(crate) use socket::*;
pub(crate) use wire::*;

// linux/netlink.h
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
/// On an `NLMSG_ERROR`: the original message's payload was left out.
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
/// On an `NLMSG_ERROR`: extended-ack attributes follow.
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;

// linux/netfilter/nfnetlink.h, linux/netfilter.h
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(crate) const NFPROTO_UNSPEC: u8 = 0;
pub(crate) const NFPROTO_INET: u8 = 1;
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_BRIDGE: u8 = 7;
pub(crate) const NFPROTO_IPV6: u8 = 10;
/// `NF_DROP`, as a verdict code.
pub(crate) const NF_DROP: i32 = 0;
/// `NF_ACCEPT`, as a verdict code and a base chain policy.
pub(crate) const NF_ACCEPT: u32 = 1;

// linux/netfilter/nf_tables.h
pub(crate) const NFT_MSG_NEWTABLE: u8 = 0;
pub(crate) const NFT_MSG_GETTABLE: u8 = 1;
pub(crate) const NFT_MSG_NEWCHAIN: u8 = 3;
pub(crate) const NFT_MSG_GETCHAIN: u8 = 4;
pub(crate) const NFT_MSG_DELCHAIN: u8 = 5;
pub(crate) const NFT_MSG_NEWRULE: u8 = 6;
pub(crate) const NFT_MSG_GETRULE: u8 = 7;
pub(crate) const NFT_MSG_DELRULE: u8 = 8;
pub(crate) const NFTA_TABLE_NAME: u16 = 1;
pub(crate) const NFTA_TABLE_USERDATA: u16 = 6;
pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
pub(crate) const NFTA_CHAIN_HOOK: u16 = 4;
pub(crate) const NFTA_CHAIN_POLICY: u16 = 5;
pub(crate) const NFTA_CHAIN_TYPE: u16 = 7;
pub(crate) const NFTA_CHAIN_USERDATA: u16 = 12;
pub(crate) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(crate) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_HANDLE: u16 = 3;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(crate) const NFTA_RULE_USERDATA: u16 = 7;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
pub(crate) const NFTA_VERDICT_CODE: u16 = 1;
pub(crate) const NFTA_VERDICT_CHAIN: u16 = 2;
pub(crate) const NFTA_META_DREG: u16 = 1;
pub(crate) const NFTA_META_KEY: u16 = 2;
pub(crate) const NFTA_CMP_SREG: u16 = 1;
pub(crate) const NFTA_CMP_OP: u16 = 2;
pub(crate) const NFTA_CMP_DATA: u16 = 3;
pub(crate) const NFTA_PAYLOAD_DREG: u16 = 1;
pub(crate) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(crate) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(crate) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(crate) const NFTA_BITWISE_SREG: u16 = 1;
pub(crate) const NFTA_BITWISE_DREG: u16 = 2;
pub(crate) const NFTA_BITWISE_LEN: u16 = 3;
pub(crate) const NFTA_BITWISE_MASK: u16 = 4;
pub(crate) const NFTA_BITWISE_XOR: u16 = 5;
pub(crate) const NFTA_IMMEDIATE_DREG: u16 = 1;
pub(crate) const NFTA_IMMEDIATE_DATA: u16 = 2;
pub(crate) const NFT_REG_VERDICT: u32 = 0;
pub(crate) const NFT_REG_1: u32 = 1;
pub(crate) const NFT_META_IIFNAME: u32 = 6;
pub(crate) const NFT_META_NFPROTO: u32 = 15;
pub(crate) const NFT_CMP_EQ: u32 = 0;
pub(crate) const NFT_CMP_NEQ: u32 = 1;
pub(crate) const NFT_PAYLOAD_LL_HEADER: u32 = 0;
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NFT_GOTO: i32 = -4;
pub(crate) const NFT_RETURN: i32 = -5;
/// `NFT_NAME_MAXLEN` (256, since Linux 4.16) less the NUL: the longest table,
/// chain, set or object name.
pub(crate) const NFT_NAME_MAX: usize = 255;
/// `NFT_USERDATA_MAXLEN`: user data (here, a comment block) per object.
pub(crate) const NFT_USERDATA_MAX: usize = 256;
/// The longest comment [`udata_comment`] can carry: the kernel's user-data
/// limit less the type, length and NUL bytes.
pub(crate) const NFT_COMMENT_MAX_BYTES: usize = NFT_USERDATA_MAX - 3;
// libnftnl udata types (the same value, 0, for tables, chains and rules).
pub(crate) const NFTNL_UDATA_COMMENT: u8 = 0;

/// How long to wait for the kernel's answer before giving up; it normally
/// answers at once, this only keeps a CNI call from hanging on a bug.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Transactions that delete by handle or name are retried when a concurrent
/// writer (another plugin instance) removed one of those objects first.
pub(crate) const COMMIT_ATTEMPTS: usize = 3;
/// Dumps interrupted by a concurrent ruleset change are restarted.
pub(crate) const DUMP_ATTEMPTS: usize = 5;
pub(crate) const RECV_BUFFER: usize = 64 * 1024;

pub(crate) fn kernel_detail(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

pub(crate) fn kernel_error(op: impl Into<String>, code: i32, message: Option<String>) -> NetError {
    NetError::Nftables {
        op: op.into(),
        errno: Errno::from_raw(code.saturating_neg()),
        message,
    }
}

#[cfg(test)]
mod tests;
