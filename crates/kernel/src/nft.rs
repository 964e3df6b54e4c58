//! nf_tables over a `NETLINK_NETFILTER` socket, encoded by hand on top of
//! `netlink-sys`: the framing, one socket bound to the namespace it was
//! opened in, batch transactions, and rule and chain dumps.
//!
//! Shared by the masquerade backend ([`super::masq`]) and the anti-spoofing
//! rules ([`super::spoofcheck`]). Why not `rustables`: it is
//! GPL-3.0-or-later (this project is Apache-2.0), needs bindgen and libclang
//! at build time, and opens a new socket in the calling thread's namespace
//! for every batch, so it cannot keep a socket bound to the namespace it was
//! opened in. Only the expressions our rules use are encoded.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use netlink_sys::{constants::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::errno::Errno;

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
/// On an `NLMSG_ERROR`: the original message's payload was left out.
const NLM_F_CAPPED: u16 = 0x100;
/// On an `NLMSG_ERROR`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/netfilter/nfnetlink.h, linux/netfilter.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFPROTO_UNSPEC: u8 = 0;
pub(super) const NFPROTO_INET: u8 = 1;
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_BRIDGE: u8 = 7;
pub(super) const NFPROTO_IPV6: u8 = 10;
/// `NF_DROP`, as a verdict code.
pub(super) const NF_DROP: i32 = 0;
/// `NF_ACCEPT`, as a verdict code and a base chain policy.
pub(super) const NF_ACCEPT: u32 = 1;

// linux/netfilter/nf_tables.h
const NFT_MSG_NEWTABLE: u8 = 0;
const NFT_MSG_GETTABLE: u8 = 1;
const NFT_MSG_NEWCHAIN: u8 = 3;
const NFT_MSG_GETCHAIN: u8 = 4;
const NFT_MSG_DELCHAIN: u8 = 5;
const NFT_MSG_NEWRULE: u8 = 6;
const NFT_MSG_GETRULE: u8 = 7;
const NFT_MSG_DELRULE: u8 = 8;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_USERDATA: u16 = 12;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
pub(super) const NFT_META_IIFNAME: u32 = 6;
pub(super) const NFT_META_NFPROTO: u32 = 15;
pub(super) const NFT_CMP_EQ: u32 = 0;
pub(super) const NFT_CMP_NEQ: u32 = 1;
pub(super) const NFT_PAYLOAD_LL_HEADER: u32 = 0;
pub(super) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(super) const NFT_JUMP: i32 = -3;
pub(super) const NFT_GOTO: i32 = -4;
pub(super) const NFT_RETURN: i32 = -5;
/// `NFT_NAME_MAXLEN` (256, since Linux 4.16) less the NUL: the longest table,
/// chain, set or object name.
pub(super) const NFT_NAME_MAX: usize = 255;
/// `NFT_USERDATA_MAXLEN`: user data (here, a comment block) per object.
const NFT_USERDATA_MAX: usize = 256;
/// The longest comment [`udata_comment`] can carry: the kernel's user-data
/// limit less the type, length and NUL bytes.
pub(super) const NFT_COMMENT_MAX_BYTES: usize = NFT_USERDATA_MAX - 3;
// libnftnl udata types (the same value, 0, for tables, chains and rules).
const NFTNL_UDATA_COMMENT: u8 = 0;

/// How long to wait for the kernel's answer before giving up; it normally
/// answers at once, this only keeps a CNI call from hanging on a bug.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Transactions that delete by handle or name are retried when a concurrent
/// writer (another plugin instance) removed one of those objects first.
const COMMIT_ATTEMPTS: usize = 3;
/// Dumps interrupted by a concurrent ruleset change are restarted.
const DUMP_ATTEMPTS: usize = 5;
const RECV_BUFFER: usize = 64 * 1024;

/// A failed nf_tables conversation. Callers turn it into their own error
/// type, keeping the errno.
#[derive(Debug, thiserror::Error)]
pub(super) enum NftError {
    /// The kernel refused a request.
    #[error("nftables: cannot {op}: {errno}{}", kernel_detail(.message))]
    Kernel {
        /// What was being done, e.g. `add rule to masq_checks`.
        op: String,
        /// The kernel's answer.
        errno: Errno,
        /// The kernel's extended-ack message, when it sent one.
        message: Option<String>,
    },
    /// A system call around the conversation failed.
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
}

/// ` (<extended ack message>)`, or nothing.
pub(super) fn kernel_detail(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

impl NftError {
    /// The errno behind this error, when the kernel or a system call gave one.
    pub(super) fn errno(&self) -> Option<Errno> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            NftError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            NftError::Protocol(_) => None,
        }
    }

    fn io(context: impl Into<String>, source: io::Error) -> Self {
        NftError::Io {
            context: context.into(),
            source,
        }
    }
}

fn kernel_error(op: impl Into<String>, code: i32, message: Option<String>) -> NftError {
    NftError::Kernel {
        op: op.into(),
        errno: Errno::from_raw(code.saturating_neg()),
        message,
    }
}

/// A `NETLINK_NETFILTER` socket bound to the network namespace that was
/// current for the thread that opened it, for its whole life.
///
/// Open sockets are registered, so that [`sockets_with_pending_work`] can name
/// them to the `reaper` when their close would wait for the kernel.
pub(super) struct NftSocket {
    socket: Socket,
    seq: u32,
}

/// Descriptors of the open [`NftSocket`]s.
static SOCKETS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
/// Whether this process committed a batch that left the kernel deferred work.
static PENDING_WORK: AtomicBool = AtomicBool::new(false);

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<RawFd>> {
    SOCKETS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The open nftables sockets whose close would wait for the kernel's deferred
/// work (an RCU grace period): all of them once this process has committed a
/// batch that leaves some (the wait is on the kernel's global queue, whichever
/// socket closes first); none otherwise.
pub fn sockets_with_pending_work() -> Vec<RawFd> {
    if PENDING_WORK.load(Ordering::SeqCst) {
        lock_registry().clone()
    } else {
        Vec::new()
    }
}

impl Drop for NftSocket {
    fn drop(&mut self) {
        let fd = self.socket.as_raw_fd();
        lock_registry().retain(|f| *f != fd);
    }
}

impl NftSocket {
    /// Opens a netfilter netlink socket in the calling thread's network
    /// namespace.
    pub(super) fn open() -> Result<Self, NftError> {
        let mut socket = Socket::new(NETLINK_NETFILTER)
            .map_err(|e| NftError::io("open NETLINK_NETFILTER socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| NftError::io("bind netlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NftError::io("connect netlink socket", e))?;
        // Both only make errors smaller and clearer; kernels before 4.12 lack
        // them and work without.
        if let Err(e) = socket.set_ext_ack(true) {
            tracing::debug!("NETLINK_EXT_ACK unavailable: {e}");
        }
        if let Err(e) = socket.set_cap_ack(true) {
            tracing::debug!("NETLINK_CAP_ACK unavailable: {e}");
        }
        set_recv_timeout(&socket, REPLY_TIMEOUT)?;
        lock_registry().push(socket.as_raw_fd());
        // Replies come only to this socket; sequence numbers tell the current
        // request's replies from leftovers of an abandoned one.
        Ok(NftSocket { socket, seq: 0 })
    }

    /// An empty transaction on objects of `family`.
    pub(super) fn batch(&self, family: u8) -> Batch {
        Batch::new(family, self.seq)
    }

    /// The rules of `table`/`chain` in `family`; none when the table or
    /// chain does not exist.
    pub(super) fn list_rules(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
    ) -> Result<Vec<NftRule>, NftError> {
        self.dump(
            (NFT_MSG_GETRULE, NFT_MSG_NEWRULE),
            family,
            &format!("list the rules of {chain}"),
            |msg| {
                put_str(msg, NFTA_RULE_TABLE, table);
                put_str(msg, NFTA_RULE_CHAIN, chain);
            },
            |payload| {
                let rule = NftRule::parse(payload)?;
                Ok((rule.table == table && rule.chain == chain).then_some(rule))
            },
        )
    }

    /// The names of the tables of `family`.
    pub(super) fn list_tables(&mut self, family: u8) -> Result<Vec<String>, NftError> {
        self.dump(
            (NFT_MSG_GETTABLE, NFT_MSG_NEWTABLE),
            family,
            "list the tables",
            |_| {},
            |payload| {
                let attrs = payload
                    .get(4..)
                    .ok_or_else(|| NftError::Protocol("table message without nfgenmsg".into()))?;
                Ok(attributes(attrs)?
                    .into_iter()
                    .find(|(kind, _)| *kind == NFTA_TABLE_NAME)
                    .map(|(_, value)| cstr(value).to_string()))
            },
        )
    }

    /// The names of the chains of `table` in `family`; none when the table
    /// does not exist.
    pub(super) fn list_chains(&mut self, family: u8, table: &str) -> Result<Vec<String>, NftError> {
        // Chain dumps are not filtered by table in the kernel; every table
        // of the family answers, and the others are dropped here.
        self.dump(
            (NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN),
            family,
            &format!("list the chains of {table}"),
            |_| {},
            |payload| {
                let attrs = payload
                    .get(4..)
                    .ok_or_else(|| NftError::Protocol("chain message without nfgenmsg".into()))?;
                let (mut in_table, mut name) = (false, None);
                for (kind, value) in attributes(attrs)? {
                    match kind {
                        NFTA_CHAIN_TABLE => in_table = cstr(value) == table,
                        NFTA_CHAIN_NAME => name = Some(cstr(value)),
                        _ => {}
                    }
                }
                Ok(name.filter(|_| in_table))
            },
        )
    }

    /// Runs one dump request (`get`, answered with `reply` messages) and
    /// parses each object it returns with `parse` (`None` skips it). ENOENT
    /// (no such table or chain) is an empty dump.
    fn dump<T>(
        &mut self,
        (get, reply): (u8, u8),
        family: u8,
        what: &str,
        fill: impl Fn(&mut Vec<u8>),
        mut parse: impl FnMut(&[u8]) -> Result<Option<T>, NftError>,
    ) -> Result<Vec<T>, NftError> {
        let reply = nft_type(reply);
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let mut msg = Vec::new();
            let start = begin_message(
                &mut msg,
                nft_type(get),
                NLM_F_REQUEST | NLM_F_DUMP,
                seq,
                family,
            );
            fill(&mut msg);
            end_message(&mut msg, start);
            self.send(&msg)?;

            let mut found = Vec::new();
            let mut interrupted = false;
            let mut buf = Vec::with_capacity(RECV_BUFFER);
            'dump: loop {
                self.recv(&mut buf)?;
                for m in messages(&buf)? {
                    if m.seq != seq {
                        continue;
                    }
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match m.kind {
                        NLMSG_DONE => {
                            let code = read_i32(m.payload).unwrap_or(0);
                            if code < 0 {
                                return Err(kernel_error(what, code, None));
                            }
                            break 'dump;
                        }
                        NLMSG_ERROR => {
                            let ack = parse_ack(&m)?;
                            if ack.code == -(Errno::ENOENT as i32) {
                                return Ok(Vec::new());
                            }
                            return Err(kernel_error(what, ack.code, ack.message));
                        }
                        k if k == reply => found.extend(parse(m.payload)?),
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(found);
            }
            tracing::debug!("nftables dump interrupted by a concurrent change; retrying");
        }
        Err(NftError::Protocol(format!(
            "{what}: dump interrupted {DUMP_ATTEMPTS} times by concurrent changes"
        )))
    }

    /// Reads the current state with `read`, lets `plan` fill a batch from
    /// it, and commits the batch. A batch that deletes or extends objects
    /// found by `read` is planned again when a concurrent writer removed one
    /// of them first (ENOENT).
    pub(super) fn transact<S, R>(
        &mut self,
        family: u8,
        mut read: impl FnMut(&mut Self) -> Result<S, NftError>,
        mut plan: impl FnMut(&S, &mut Batch) -> R,
    ) -> Result<R, NftError> {
        let mut attempt = 1;
        loop {
            let state = read(self)?;
            let mut batch = self.batch(family);
            let out = plan(&state, &mut batch);
            let deletes = batch.deletes;
            match self.commit(batch) {
                Ok(()) => return Ok(out),
                Err(e)
                    if deletes && attempt < COMMIT_ATTEMPTS && e.errno() == Some(Errno::ENOENT) =>
                {
                    tracing::debug!("nftables transaction lost a race ({e}); retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a batch and waits for the kernel's verdict on it: all or nothing.
    /// An empty batch is not sent.
    pub(super) fn commit(&mut self, batch: Batch) -> Result<(), NftError> {
        let leaves_work = batch.leaves_work;
        let (bytes, ops, begin_seq, next_seq) = batch.finish();
        self.seq = next_seq;
        if ops.is_empty() {
            return Ok(());
        }
        if leaves_work {
            // Set before sending: even a rejected batch may have queued work.
            PENDING_WORK.store(true, Ordering::SeqCst);
        }
        self.send(&bytes)?;
        let mut pending: HashSet<u32> = ops.iter().map(|(seq, _)| *seq).collect();
        let mut buf = Vec::with_capacity(RECV_BUFFER);
        // The kernel queues one answer per message (an ack, since each has
        // NLM_F_ACK, or an error) and delivers them after the commit or abort;
        // a failed commit is reported on the batch-begin message first. Any
        // error means the whole batch was rolled back.
        while !pending.is_empty() {
            self.recv(&mut buf)?;
            for m in messages(&buf)? {
                if m.kind != NLMSG_ERROR {
                    continue;
                }
                let ack = parse_ack(&m)?;
                if m.seq == begin_seq && ack.code != 0 {
                    return Err(kernel_error(
                        "commit the transaction",
                        ack.code,
                        ack.message,
                    ));
                }
                if pending.remove(&m.seq) && ack.code != 0 {
                    let op = ops
                        .iter()
                        .find(|(seq, _)| *seq == m.seq)
                        .map(|(_, op)| op.clone())
                        .unwrap_or_default();
                    return Err(kernel_error(op, ack.code, ack.message));
                }
            }
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        let sent = self
            .socket
            .send(bytes, 0)
            .map_err(|e| NftError::io("send to nftables", e))?;
        if sent != bytes.len() {
            return Err(NftError::Protocol(format!(
                "short send: {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Reads one datagram into `buf` (replacing its contents).
    fn recv(&self, buf: &mut Vec<u8>) -> Result<(), NftError> {
        buf.clear();
        buf.reserve(RECV_BUFFER);
        let n = loop {
            match self.socket.recv(buf, nix::libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NftError::Protocol(format!(
                        "no answer from the kernel within {REPLY_TIMEOUT:?}"
                    )))
                }
                Err(e) => return Err(NftError::io("receive from nftables", e)),
            }
        };
        if n > buf.len() {
            return Err(NftError::Protocol(format!(
                "reply of {n} bytes does not fit the {}-byte buffer",
                buf.len()
            )));
        }
        Ok(())
    }
}

fn set_recv_timeout(socket: &Socket, timeout: Duration) -> Result<(), NftError> {
    let tv = nix::libc::timeval {
        tv_sec: timeout.as_secs() as nix::libc::time_t,
        tv_usec: timeout.subsec_micros() as nix::libc::suseconds_t,
    };
    // SAFETY: the descriptor is open for the duration of the call (borrowed
    // from `socket`), and `tv` is a valid timeval whose size is passed along.
    let rc = unsafe {
        nix::libc::setsockopt(
            socket.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            std::mem::size_of::<nix::libc::timeval>() as nix::libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NftError::io(
            "set SO_RCVTIMEO on netlink socket",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

const fn nft_type(msg: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg as u16
}

/// The hook of a base chain.
#[derive(Debug, Clone, Copy)]
pub(super) struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub(super) kind: &'static str,
    /// `NF_INET_*` / `NF_BR_*` hook number.
    pub(super) hook: u32,
    pub(super) priority: i32,
    /// The verdict for packets no rule decided; `None` leaves it alone.
    pub(super) policy: Option<u32>,
}

/// One nf_tables transaction on objects of one family being built:
/// batch-begin, messages, batch-end.
pub(super) struct Batch {
    family: u8,
    buf: Vec<u8>,
    /// Sequence number and description of each message, for errors.
    ops: Vec<(u32, String)>,
    begin_seq: u32,
    seq: u32,
    /// Whether the batch deletes or extends an object found earlier, so that a
    /// concurrent writer removing it first makes the commit fail with ENOENT.
    deletes: bool,
    /// Whether committing it leaves the kernel work to do after an RCU grace
    /// period (deleted objects, chain updates), which a close then waits for.
    leaves_work: bool,
}

impl Batch {
    fn new(family: u8, last_seq: u32) -> Self {
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
    fn control(&mut self, kind: u16) {
        let start = begin_message(&mut self.buf, kind, NLM_F_REQUEST, self.seq, NFPROTO_UNSPEC);
        // nfgenmsg.res_id names the subsystem, big-endian.
        self.buf[start + NLMSG_HDRLEN + 2..start + NLMSG_HDRLEN + 4]
            .copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        end_message(&mut self.buf, start);
        self.seq = self.seq.wrapping_add(1);
    }

    fn message(&mut self, msg: u8, flags: u16, op: String, attrs: impl FnOnce(&mut Vec<u8>)) {
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
    pub(super) fn add_table(&mut self, name: &str, comment: Option<&str>) {
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
    pub(super) fn add_chain(
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
    pub(super) fn flush_chain(&mut self, table: &str, chain: &str) {
        self.leaves_work = true;
        // DELRULE with a chain and no handle flushes the chain.
        self.message(NFT_MSG_DELRULE, 0, format!("flush chain {chain}"), |b| {
            put_str(b, NFTA_RULE_TABLE, table);
            put_str(b, NFTA_RULE_CHAIN, chain);
        });
    }

    /// Deletes a chain and its rules; EBUSY if a rule elsewhere still jumps
    /// to it.
    pub(super) fn delete_chain(&mut self, table: &str, name: &str) {
        self.deletes = true;
        self.leaves_work = true;
        self.message(NFT_MSG_DELCHAIN, 0, format!("delete chain {name}"), |b| {
            put_str(b, NFTA_CHAIN_TABLE, table);
            put_str(b, NFTA_CHAIN_NAME, name);
        });
    }

    /// Marks the batch as relying on objects found earlier (a rule added to a
    /// chain the batch does not declare): ENOENT on commit means "plan again".
    pub(super) fn relies_on_read(&mut self) {
        self.deletes = true;
    }

    /// Appends a rule to a chain.
    pub(super) fn add_rule(
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
    pub(super) fn delete_rule(&mut self, table: &str, chain: &str, handle: u64) {
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
    fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>, u32, u32) {
        self.control(NFNL_MSG_BATCH_END);
        (self.buf, self.ops, self.begin_seq, self.seq)
    }
}

/// The nf_tables expressions this crate writes, in the form `nft` itself
/// generates for the equivalent rule text (so `nft list` renders them back
/// as that text). Every load goes to register 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr<'a> {
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
    pub(super) fn encode(&self, b: &mut Vec<u8>) {
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
pub(super) fn udata_comment(comment: &str) -> Vec<u8> {
    debug_assert!(comment.len() <= NFT_COMMENT_MAX_BYTES, "{comment}");
    let mut out = Vec::with_capacity(comment.len() + 3);
    out.push(NFTNL_UDATA_COMMENT);
    out.push((comment.len() + 1) as u8);
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    out
}

pub(super) fn udata_comment_parse(mut data: &[u8]) -> Option<String> {
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

/// A rule as dumped by the kernel.
#[derive(Debug, Clone)]
pub(super) struct NftRule {
    pub(super) table: String,
    pub(super) chain: String,
    pub(super) handle: u64,
    /// The comment, empty when there is none.
    pub(super) comment: String,
    pub(super) exprs: Vec<DecodedExpr>,
}

/// Enough of a dumped expression to recognise the rules this crate writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DecodedExpr {
    Meta(u32),
    Cmp(u32, Vec<u8>),
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Bitwise(Vec<u8>),
    /// A verdict (`immediate` to the verdict register) and its target chain.
    Verdict(i32, Option<String>),
    Other(String),
}

impl NftRule {
    /// Parses a NEWRULE message payload (nfgenmsg and attributes).
    pub(super) fn parse(payload: &[u8]) -> Result<Self, NftError> {
        let attrs = payload
            .get(4..)
            .ok_or_else(|| NftError::Protocol("rule message without nfgenmsg".into()))?;
        let mut rule = NftRule {
            table: String::new(),
            chain: String::new(),
            handle: 0,
            comment: String::new(),
            exprs: Vec::new(),
        };
        for (kind, value) in attributes(attrs)? {
            match kind {
                NFTA_RULE_TABLE => rule.table = cstr(value),
                NFTA_RULE_CHAIN => rule.chain = cstr(value),
                NFTA_RULE_HANDLE => {
                    let bytes: [u8; 8] = value
                        .try_into()
                        .map_err(|_| NftError::Protocol("rule handle is not 8 bytes".into()))?;
                    rule.handle = u64::from_be_bytes(bytes);
                }
                NFTA_RULE_USERDATA => rule.comment = udata_comment_parse(value).unwrap_or_default(),
                NFTA_RULE_EXPRESSIONS => {
                    for (_, elem) in attributes(value)? {
                        rule.exprs.push(decode_expr(elem)?);
                    }
                }
                _ => {}
            }
        }
        Ok(rule)
    }

    /// The chain this rule jumps or goes to, if it ends in such a verdict.
    pub(super) fn target_chain(&self) -> Option<&str> {
        self.exprs.iter().rev().find_map(|e| match e {
            DecodedExpr::Verdict(NFT_JUMP | NFT_GOTO, Some(chain)) => Some(chain.as_str()),
            _ => None,
        })
    }
}

fn decode_expr(elem: &[u8]) -> Result<DecodedExpr, NftError> {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for (kind, value) in attributes(elem)? {
        match kind {
            NFTA_EXPR_NAME => name = cstr(value),
            NFTA_EXPR_DATA => data = value,
            _ => {}
        }
    }
    let attrs = attributes(data)?;
    let be32 = |kind: u16| {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| <[u8; 4]>::try_from(*v).ok())
            .map(u32::from_be_bytes)
    };
    let nested = |kind: u16, inner: u16| -> Result<Option<&[u8]>, NftError> {
        let Some((_, outer)) = attrs.iter().find(|(k, _)| *k == kind) else {
            return Ok(None);
        };
        Ok(attributes(outer)?
            .into_iter()
            .find(|(k, _)| *k == inner)
            .map(|(_, v)| v))
    };
    let value = |kind: u16| -> Result<Vec<u8>, NftError> {
        Ok(nested(kind, NFTA_DATA_VALUE)?
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    };
    Ok(match name.as_str() {
        "meta" => DecodedExpr::Meta(be32(NFTA_META_KEY).unwrap_or(u32::MAX)),
        "cmp" => DecodedExpr::Cmp(be32(NFTA_CMP_OP).unwrap_or(u32::MAX), value(NFTA_CMP_DATA)?),
        "payload" => DecodedExpr::Payload {
            base: be32(NFTA_PAYLOAD_BASE).unwrap_or(u32::MAX),
            offset: be32(NFTA_PAYLOAD_OFFSET).unwrap_or(u32::MAX),
            len: be32(NFTA_PAYLOAD_LEN).unwrap_or(0),
        },
        "bitwise" => DecodedExpr::Bitwise(value(NFTA_BITWISE_MASK)?),
        "immediate" if be32(NFTA_IMMEDIATE_DREG) == Some(NFT_REG_VERDICT) => {
            match nested(NFTA_IMMEDIATE_DATA, NFTA_DATA_VERDICT)? {
                Some(verdict) => {
                    let (mut code, mut chain) = (None, None);
                    for (kind, v) in attributes(verdict)? {
                        match kind {
                            NFTA_VERDICT_CODE => {
                                code = <[u8; 4]>::try_from(v).ok().map(i32::from_be_bytes)
                            }
                            NFTA_VERDICT_CHAIN => chain = Some(cstr(v)),
                            _ => {}
                        }
                    }
                    match code {
                        Some(code) => DecodedExpr::Verdict(code, chain),
                        None => DecodedExpr::Other(name),
                    }
                }
                None => DecodedExpr::Other(name),
            }
        }
        _ => DecodedExpr::Other(name),
    })
}

// --- netlink framing --------------------------------------------------------

/// Appends an nlmsghdr and an nfgenmsg; returns where the message starts.
fn begin_message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end_message
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    buf.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id
    start
}

fn end_message(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(super) fn put_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    // Every attribute here is far below 64 KiB (names, addresses, comments).
    buf.extend_from_slice(&((NLA_HDRLEN + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

/// Strings go NUL-terminated, as the kernel's NLA_STRING policy expects from
/// libnftnl.
pub(super) fn put_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    let mut data = Vec::with_capacity(s.len() + 1);
    data.extend_from_slice(s.as_bytes());
    data.push(0);
    put_attr(buf, kind, &data);
}

/// nf_tables integers are big-endian on the wire.
fn put_be32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    put_attr(buf, kind, &value.to_be_bytes());
}

pub(super) fn nest(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    fill(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

fn attributes(mut data: &[u8]) -> Result<Vec<(u16, &[u8])>, NftError> {
    let mut out = Vec::new();
    while data.len() >= NLA_HDRLEN {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > data.len() {
            return Err(NftError::Protocol(format!(
                "attribute {kind} of length {len} overruns its message"
            )));
        }
        out.push((kind, &data[NLA_HDRLEN..len]));
        data = &data[align4(len).min(data.len())..];
    }
    Ok(out)
}

fn cstr(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

fn read_i32(data: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

struct Message<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

fn messages(mut data: &[u8]) -> Result<Vec<Message<'_>>, NftError> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let word =
            |at: usize| u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(NftError::Protocol(format!(
                "message of length {len} in a {}-byte datagram",
                data.len()
            )));
        }
        out.push(Message {
            kind: u16::from_ne_bytes([data[4], data[5]]),
            flags: u16::from_ne_bytes([data[6], data[7]]),
            seq: word(8),
            payload: &data[NLMSG_HDRLEN..len],
        });
        data = &data[align4(len).min(data.len())..];
    }
    Ok(out)
}

/// An `NLMSG_ERROR`: 0 is an ack, otherwise a negative errno.
struct Ack {
    code: i32,
    message: Option<String>,
}

fn parse_ack(m: &Message<'_>) -> Result<Ack, NftError> {
    let code =
        read_i32(m.payload).ok_or_else(|| NftError::Protocol("truncated NLMSG_ERROR".into()))?;
    let mut message = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // After the errno comes the original header, plus its payload unless
        // the kernel capped it, then the extended-ack attributes.
        let original = if m.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            read_i32(m.payload.get(4..).unwrap_or_default()).unwrap_or(0) as usize
        };
        if let Some(tlvs) = m.payload.get(4 + align4(original)..) {
            message = attributes(tlvs)?
                .into_iter()
                .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
                .map(|(_, v)| cstr(v));
        }
    }
    Ok(Ack { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udata_comment_has_libnftnl_layout() {
        // `nft --debug=netlink` shows `userdata = { \x00\x06hello\x00 }`.
        assert_eq!(udata_comment("hello"), b"\x00\x06hello\x00");
        assert_eq!(
            udata_comment_parse(b"\x05\x01x\x00\x06hello\x00").as_deref(),
            Some("hello")
        );
        let longest = "c".repeat(NFT_COMMENT_MAX_BYTES);
        assert_eq!(udata_comment(&longest).len(), NFT_USERDATA_MAX);
        assert_eq!(
            udata_comment_parse(&udata_comment(&longest)).as_deref(),
            Some(longest.as_str())
        );
    }

    #[test]
    fn acks_carry_the_extended_message() {
        // An NLMSG_ERROR with a capped original header and NLMSGERR_ATTR_MSG.
        let mut payload = (-(Errno::EEXIST as i32)).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; NLMSG_HDRLEN]);
        put_str(&mut payload, NLMSGERR_ATTR_MSG, "Chain type mismatch");
        let m = Message {
            kind: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 7,
            payload: &payload,
        };
        let ack = parse_ack(&m).expect("ack");
        let err = kernel_error("create base chain postrouting", ack.code, ack.message);
        assert_eq!(err.errno(), Some(Errno::EEXIST));
        assert_eq!(
            err.to_string(),
            "nftables: cannot create base chain postrouting: EEXIST: File exists (Chain type mismatch)"
        );
    }

    /// Every expression this crate writes reads back as what it wrote.
    #[test]
    fn rules_round_trip_through_the_wire_format() {
        let exprs = [
            Expr::Meta(NFT_META_IIFNAME),
            Expr::Cmp(NFT_CMP_EQ, b"veth0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
            Expr::Payload {
                base: NFT_PAYLOAD_LL_HEADER,
                offset: 6,
                len: 6,
            },
            Expr::Bitwise(vec![0xff, 0xf0]),
            Expr::Verdict(NFT_JUMP, Some("cni-br-iface-x")),
            Expr::Verdict(NFT_RETURN, None),
            Expr::Masquerade,
        ];
        let mut msg = vec![NFPROTO_BRIDGE, 0, 0, 0];
        put_str(&mut msg, NFTA_RULE_TABLE, "nat");
        put_str(&mut msg, NFTA_RULE_CHAIN, "PREROUTING");
        put_attr(&mut msg, NFTA_RULE_HANDLE, &7u64.to_be_bytes());
        nest(&mut msg, NFTA_RULE_EXPRESSIONS, |b| {
            for expr in &exprs {
                expr.encode(b);
            }
        });
        put_attr(
            &mut msg,
            NFTA_RULE_USERDATA,
            &udata_comment("macspoofchk-x"),
        );
        let rule = NftRule::parse(&msg).expect("parse");
        assert_eq!(
            (rule.table.as_str(), rule.chain.as_str(), rule.handle),
            ("nat", "PREROUTING", 7)
        );
        assert_eq!(rule.comment, "macspoofchk-x");
        assert_eq!(
            rule.exprs,
            [
                DecodedExpr::Meta(NFT_META_IIFNAME),
                DecodedExpr::Cmp(NFT_CMP_EQ, b"veth0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
                DecodedExpr::Payload {
                    base: NFT_PAYLOAD_LL_HEADER,
                    offset: 6,
                    len: 6
                },
                DecodedExpr::Bitwise(vec![0xff, 0xf0]),
                DecodedExpr::Verdict(NFT_JUMP, Some("cni-br-iface-x".into())),
                DecodedExpr::Verdict(NFT_RETURN, None),
                DecodedExpr::Other("masq".into()),
            ]
        );
        // The last jump or goto names the target.
        assert_eq!(rule.target_chain(), Some("cni-br-iface-x"));
    }

    #[test]
    fn batches_frame_every_message_and_count_sequence_numbers() {
        let mut batch = Batch::new(NFPROTO_BRIDGE, 41);
        batch.add_table("nat", None);
        batch.flush_chain("nat", "c");
        assert!(!batch.deletes);
        batch.delete_chain("nat", "c");
        assert!(batch.deletes);
        let (bytes, ops, begin, next) = batch.finish();
        let msgs = messages(&bytes).expect("frames");
        // begin, three messages, end; consecutive sequence numbers from 42.
        assert_eq!(msgs.len(), 5);
        assert_eq!(
            msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [42, 43, 44, 45, 46]
        );
        assert_eq!((begin, next), (42, 47));
        assert_eq!(
            ops.iter()
                .map(|(s, op)| (*s, op.as_str()))
                .collect::<Vec<_>>(),
            [
                (43, "create table nat"),
                (44, "flush chain c"),
                (45, "delete chain c")
            ]
        );
        assert_eq!(msgs[0].kind, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs[4].kind, NFNL_MSG_BATCH_END);
        // The family travels in every nfgenmsg but the markers'.
        assert!(msgs[1..4].iter().all(|m| m.payload[0] == NFPROTO_BRIDGE));
        assert_eq!(msgs[3].kind, nft_type(NFT_MSG_DELCHAIN));
    }
}
