//! The `NETLINK_NETFILTER` socket: bound to the namespace it was opened in,
//! batch transactions with their acks, dumps.

use super::*;

/// A `NETLINK_NETFILTER` socket bound to the network namespace that was
/// current for the thread that opened it, for its whole life.
///
/// Open sockets are registered, so that [`sockets_with_pending_work`] can name
/// them to the `reaper` when their close would wait for the kernel.
pub(crate) struct NftSocket {
    pub(crate) socket: Socket,
    pub(crate) seq: u32,
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
    pub(crate) fn open() -> Result<Self, NetError> {
        let mut socket = Socket::new(NETLINK_NETFILTER)
            .map_err(|e| NetError::io("open NETLINK_NETFILTER socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| NetError::io("bind netlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NetError::io("connect netlink socket", e))?;
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
    pub(crate) fn batch(&self, family: u8) -> Batch {
        Batch::new(family, self.seq)
    }

    /// The rules of `table`/`chain` in `family`; none when the table or
    /// chain does not exist.
    pub(crate) fn list_rules(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
    ) -> Result<Vec<NftRule>, NetError> {
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
    pub(crate) fn list_tables(&mut self, family: u8) -> Result<Vec<String>, NetError> {
        self.dump(
            (NFT_MSG_GETTABLE, NFT_MSG_NEWTABLE),
            family,
            "list the tables",
            |_| {},
            |payload| {
                let attrs = payload.get(4..).ok_or_else(|| {
                    NetError::NftProtocol("table message without nfgenmsg".into())
                })?;
                Ok(attributes(attrs)?
                    .into_iter()
                    .find(|(kind, _)| *kind == NFTA_TABLE_NAME)
                    .map(|(_, value)| cstr(value).to_string()))
            },
        )
    }

    /// The names of the chains of `table` in `family`; none when the table
    /// does not exist.
    pub(crate) fn list_chains(&mut self, family: u8, table: &str) -> Result<Vec<String>, NetError> {
        // Chain dumps are not filtered by table in the kernel; every table
        // of the family answers, and the others are dropped here.
        self.dump(
            (NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN),
            family,
            &format!("list the chains of {table}"),
            |_| {},
            |payload| {
                let attrs = payload.get(4..).ok_or_else(|| {
                    NetError::NftProtocol("chain message without nfgenmsg".into())
                })?;
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
    pub(crate) fn dump<T>(
        &mut self,
        (get, reply): (u8, u8),
        family: u8,
        what: &str,
        fill: impl Fn(&mut Vec<u8>),
        mut parse: impl FnMut(&[u8]) -> Result<Option<T>, NetError>,
    ) -> Result<Vec<T>, NetError> {
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
        Err(NetError::NftProtocol(format!(
            "{what}: dump interrupted {DUMP_ATTEMPTS} times by concurrent changes"
        )))
    }

    /// Reads the current state with `read`, lets `plan` fill a batch from
    /// it, and commits the batch. A batch that deletes or extends objects
    /// found by `read` is planned again when a concurrent writer removed one
    /// of them first (ENOENT).
    pub(crate) fn transact<S, R>(
        &mut self,
        family: u8,
        mut read: impl FnMut(&mut Self) -> Result<S, NetError>,
        mut plan: impl FnMut(&S, &mut Batch) -> R,
    ) -> Result<R, NetError> {
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
    pub(crate) fn commit(&mut self, batch: Batch) -> Result<(), NetError> {
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

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(crate) fn send(&self, bytes: &[u8]) -> Result<(), NetError> {
        let sent = self
            .socket
            .send(bytes, 0)
            .map_err(|e| NetError::io("send to nftables", e))?;
        if sent != bytes.len() {
            return Err(NetError::NftProtocol(format!(
                "short send: {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Reads one datagram into `buf` (replacing its contents).
    pub(crate) fn recv(&self, buf: &mut Vec<u8>) -> Result<(), NetError> {
        buf.clear();
        buf.reserve(RECV_BUFFER);
        let n = loop {
            match self.socket.recv(buf, nix::libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NetError::NftProtocol(format!(
                        "no answer from the kernel within {REPLY_TIMEOUT:?}"
                    )))
                }
                Err(e) => return Err(NetError::io("receive from nftables", e)),
            }
        };
        if n > buf.len() {
            return Err(NetError::NftProtocol(format!(
                "reply of {n} bytes does not fit the {}-byte buffer",
                buf.len()
            )));
        }
        Ok(())
    }
}

pub(crate) fn set_recv_timeout(socket: &Socket, timeout: Duration) -> Result<(), NetError> {
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
        return Err(NetError::io(
            "set SO_RCVTIMEO on netlink socket",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
