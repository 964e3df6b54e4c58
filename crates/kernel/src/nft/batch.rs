//! Building batches: tables, chains, rules and the expressions our rules use.

use super::*;

pub(crate) const fn nft_type(msg: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg as u16
}

/// The hook of a base chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub(crate) kind: &'static str,
    /// `NF_INET_*` / `NF_BR_*` hook number.
    pub(crate) hook: u32,
    pub(crate) priority: i32,
    /// The verdict for packets no rule decided; `None` leaves it alone.
    pub(crate) policy: Option<u32>,
}

/// One nf_tables transaction on objects of one family being built:
/// batch-begin, messages, batch-end.
pub(crate) struct Batch {
    pub(crate) family: u8,
    pub(crate) buf: Vec<u8>,
    /// Sequence number and description of each message, for errors.
    pub(crate) ops: Vec<(u32, String)>,
    pub(crate) begin_seq: u32,
    pub(crate) seq: u32,
    /// Whether the batch deletes or extends an object found earlier, so that a
    /// concurrent writer removing it first makes the commit fail with ENOENT.
    pub(crate) deletes: bool,
    /// Whether committing it leaves the kernel work to do after an RCU grace
    /// period (deleted objects, chain updates), which a close then waits for.
    pub(crate) leaves_work: bool,
}

impl Batch {
    pub(crate) fn new(family: u8, last_seq: u32) -> Self {
        let mut batch = Batch {
            family,
            buf: Vec::with_capacity(2048),
            ops: Vec::new(),
            begin_seq: last_seq.wrapping_add(1),
            seq: last_seq.wrapping_add(1),
            deletes: false,
            leaves_work: false,
        };
        batch.control(NFNL_MSG_BATCH_BEGIN);
        batch
    }

    /// A batch-begin or batch-end marker, addressed to the nftables subsystem.
    pub(crate) fn control(&mut self, kind: u16) {
        let start = begin_message(&mut self.buf, kind, NLM_F_REQUEST, self.seq, NFPROTO_UNSPEC);
        // nfgenmsg.res_id names the subsystem, big-endian.
        self.buf[start + NLMSG_HDRLEN + 2..start + NLMSG_HDRLEN + 4]
            .copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        end_message(&mut self.buf, start);
        self.seq = self.seq.wrapping_add(1);
    }

    pub(crate) fn message(
        &mut self,
        msg: u8,
        flags: u16,
        op: String,
        attrs: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = begin_message(
            &mut self.buf,
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            self.family,
        );
        attrs(&mut self.buf);
        end_message(&mut self.buf, start);
        self.ops.push((self.seq, op));
        self.seq = self.seq.wrapping_add(1);
    }

    /// Creates the table unless it exists (then nothing changes).
    pub(crate) fn add_table(&mut self, name: &str, comment: Option<&str>) {
        self.message(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            format!("create table {name}"),
            |b| {
                put_str(b, NFTA_TABLE_NAME, name);
                if let Some(comment) = comment {
                    put_attr(b, NFTA_TABLE_USERDATA, &udata_comment(comment));
                }
            },
        );
    }

    /// Creates the chain unless it exists. For an existing base chain the
    /// kernel checks that the hook is the same (EEXIST or EOPNOTSUPP if
    /// not) and applies the policy.
    pub(crate) fn add_chain(
        &mut self,
        table: &str,
        name: &str,
        base: Option<BaseChain>,
        comment: Option<&str>,
    ) {
        // Declaring an existing chain is an update, reclaimed later.
        self.leaves_work = true;
        let what = if base.is_some() {
            "base chain"
        } else {
            "chain"
        };
        self.message(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("create {what} {name}"),
            |b| {
                put_str(b, NFTA_CHAIN_TABLE, table);
                put_str(b, NFTA_CHAIN_NAME, name);
                if let Some(base) = base {
                    nest(b, NFTA_CHAIN_HOOK, |b| {
                        put_be32(b, NFTA_HOOK_HOOKNUM, base.hook);
                        put_be32(b, NFTA_HOOK_PRIORITY, base.priority as u32);
                    });
                    if let Some(policy) = base.policy {
                        put_be32(b, NFTA_CHAIN_POLICY, policy);
                    }
                    put_str(b, NFTA_CHAIN_TYPE, base.kind);
                }
                if let Some(comment) = comment {
                    put_attr(b, NFTA_CHAIN_USERDATA, &udata_comment(comment));
                }
            },
        );
    }

    /// Deletes every rule of a chain (which must exist, or be created
    /// earlier in this batch).
    pub(crate) fn flush_chain(&mut self, table: &str, chain: &str) {
        self.leaves_work = true;
        // DELRULE with a chain and no handle flushes the chain.
        self.message(NFT_MSG_DELRULE, 0, format!("flush chain {chain}"), |b| {
            put_str(b, NFTA_RULE_TABLE, table);
            put_str(b, NFTA_RULE_CHAIN, chain);
        });
    }

    /// Deletes a chain and its rules; EBUSY if a rule elsewhere still jumps
    /// to it.
    pub(crate) fn delete_chain(&mut self, table: &str, name: &str) {
        self.deletes = true;
        self.leaves_work = true;
        self.message(NFT_MSG_DELCHAIN, 0, format!("delete chain {name}"), |b| {
            put_str(b, NFTA_CHAIN_TABLE, table);
            put_str(b, NFTA_CHAIN_NAME, name);
        });
    }

    /// Marks the batch as relying on objects found earlier (a rule added to a
    /// chain the batch does not declare): ENOENT on commit means "plan again".
    pub(crate) fn relies_on_read(&mut self) {
        self.deletes = true;
    }

    /// Appends a rule to a chain.
    pub(crate) fn add_rule(
        &mut self,
        table: &str,
        chain: &str,
        exprs: &[Expr<'_>],
        comment: Option<&str>,
    ) {
        self.message(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("add rule to {chain}"),
            |b| {
                put_str(b, NFTA_RULE_TABLE, table);
                put_str(b, NFTA_RULE_CHAIN, chain);
                nest(b, NFTA_RULE_EXPRESSIONS, |b| {
                    for expr in exprs {
                        expr.encode(b);
                    }
                });
                if let Some(comment) = comment {
                    put_attr(b, NFTA_RULE_USERDATA, &udata_comment(comment));
                }
            },
        );
    }

    /// Deletes one rule by its handle.
    pub(crate) fn delete_rule(&mut self, table: &str, chain: &str, handle: u64) {
        self.deletes = true;
        self.leaves_work = true;
        self.message(
            NFT_MSG_DELRULE,
            0,
            format!("delete rule handle {handle} from {chain}"),
            |b| {
                put_str(b, NFTA_RULE_TABLE, table);
                put_str(b, NFTA_RULE_CHAIN, chain);
                put_attr(b, NFTA_RULE_HANDLE, &handle.to_be_bytes());
            },
        );
    }

    /// The bytes to send, the operations, the begin sequence number and the
    /// last sequence number used.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>, u32, u32) {
        self.control(NFNL_MSG_BATCH_END);
        (self.buf, self.ops, self.begin_seq, self.seq)
    }
}

/// The nf_tables expressions this crate writes, in the form `nft` itself
/// generates for the equivalent rule text (so `nft list` renders them back
/// as that text). Every load goes to register 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr<'a> {
    /// `meta load <key> => reg 1`
    Meta(u32),
    /// `cmp <op> reg 1 <data>`
    Cmp(u32, Vec<u8>),
    /// `payload load <len>b @ <base> header + <offset> => reg 1`
    Payload { base: u32, offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & <mask>) ^ 0`
    Bitwise(Vec<u8>),
    /// `immediate reg 0 <verdict> [-> chain]`
    Verdict(i32, Option<&'a str>),
    /// `masq`
    Masquerade,
}

impl Expr<'_> {
    pub(crate) fn encode(&self, b: &mut Vec<u8>) {
        let name = match self {
            Expr::Meta(_) => "meta",
            Expr::Cmp(..) => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise(_) => "bitwise",
            Expr::Verdict(..) => "immediate",
            Expr::Masquerade => "masq",
        };
        nest(b, NFTA_LIST_ELEM, |b| {
            put_str(b, NFTA_EXPR_NAME, name);
            if *self == Expr::Masquerade {
                return; // no attributes: no port range, no flags
            }
            nest(b, NFTA_EXPR_DATA, |b| match self {
                Expr::Meta(key) => {
                    put_be32(b, NFTA_META_KEY, *key);
                    put_be32(b, NFTA_META_DREG, NFT_REG_1);
                }
                Expr::Cmp(op, data) => {
                    put_be32(b, NFTA_CMP_SREG, NFT_REG_1);
                    put_be32(b, NFTA_CMP_OP, *op);
                    nest(b, NFTA_CMP_DATA, |b| put_attr(b, NFTA_DATA_VALUE, data));
                }
                Expr::Payload { base, offset, len } => {
                    put_be32(b, NFTA_PAYLOAD_DREG, NFT_REG_1);
                    put_be32(b, NFTA_PAYLOAD_BASE, *base);
                    put_be32(b, NFTA_PAYLOAD_OFFSET, *offset);
                    put_be32(b, NFTA_PAYLOAD_LEN, *len);
                }
                Expr::Bitwise(mask) => {
                    put_be32(b, NFTA_BITWISE_SREG, NFT_REG_1);
                    put_be32(b, NFTA_BITWISE_DREG, NFT_REG_1);
                    put_be32(b, NFTA_BITWISE_LEN, mask.len() as u32);
                    nest(b, NFTA_BITWISE_MASK, |b| put_attr(b, NFTA_DATA_VALUE, mask));
                    let zeros = vec![0; mask.len()];
                    nest(b, NFTA_BITWISE_XOR, |b| {
                        put_attr(b, NFTA_DATA_VALUE, &zeros)
                    });
                }
                Expr::Verdict(code, chain) => {
                    put_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                    nest(b, NFTA_IMMEDIATE_DATA, |b| {
                        nest(b, NFTA_DATA_VERDICT, |b| {
                            put_be32(b, NFTA_VERDICT_CODE, *code as u32);
                            if let Some(chain) = chain {
                                put_str(b, NFTA_VERDICT_CHAIN, chain);
                            }
                        });
                    });
                }
                Expr::Masquerade => {}
            });
        });
    }
}

/// A libnftnl user-data block holding one comment (`nft` shows it as
/// `comment "..."`): type, length, NUL-terminated text. Callers keep the
/// comment within [`NFT_COMMENT_MAX_BYTES`].
pub(crate) fn udata_comment(comment: &str) -> Vec<u8> {
    debug_assert!(comment.len() <= NFT_COMMENT_MAX_BYTES, "{comment}");
    let mut out = Vec::with_capacity(comment.len() + 3);
    out.push(NFTNL_UDATA_COMMENT);
    out.push((comment.len() + 1) as u8);
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    out
}

pub(crate) fn udata_comment_parse(mut data: &[u8]) -> Option<String> {
    while data.len() >= 2 {
        let (kind, len) = (data[0], usize::from(data[1]));
        let value = data.get(2..2 + len)?;
        if kind == NFTNL_UDATA_COMMENT {
            return Some(cstr(value));
        }
        data = &data[2 + len..];
    }
    None
}
