//! [`NetError`]: the one error type of the kernel door.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

/// The one error type of the kernel door, for rtnetlink, nf_tables and the
/// iptables tools alike. Kernel refusals keep their errno as data so that
/// callers can decide idempotence (`EEXIST` on add, `ENODEV`/`ENOENT`/
/// `ESRCH`/`EADDRNOTAVAIL` on delete) without parsing strings.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a request.
    #[error("{op} {target}: {errno}")]
    Kernel {
        /// The verb that failed, e.g. "create_bridge".
        op: &'static str,
        /// What it acted on, e.g. an interface name.
        target: String,
        /// The errno the kernel answered.
        errno: Errno,
    },
    /// Something looked up by name does not exist (outside the kernel's own
    /// answers, which are [`NetError::Kernel`]).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The netns path does not exist.
    #[error("network namespace {} does not exist", .0.display())]
    NetnsMissing(PathBuf),
    /// The path exists but is not a network namespace (e.g. a bind-mount
    /// target left behind after its namespace was unmounted).
    #[error("{} is not a network namespace", .0.display())]
    NotANetns(PathBuf),
    /// Local I/O that is not a kernel answer to a netlink request.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The operation is not implemented by this backend.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The kernel refused an nf_tables request.
    #[error("nftables: cannot {op}: {errno}{}", crate::nft::kernel_detail(.message))]
    Nftables {
        /// What was being done, e.g. `add rule to masq_checks`.
        op: String,
        /// The kernel's answer.
        errno: Errno,
        /// The kernel's extended-ack message, when it sent one.
        message: Option<String>,
    },
    /// The nf_tables conversation failed: an answer this module does not
    /// understand, or none in time.
    #[error("nftables netlink: {0}")]
    NftProtocol(String),
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
    /// `ipMasqBackend` named neither `nftables` nor `iptables`. The message is
    /// the reference's.
    #[error("unknown ipmasq backend {0:?}")]
    UnknownMasqBackend(String),
    /// A firewall rule step (masquerade) failed. The cause is kept whole, but a
    /// firewall failure never counts as "already done" for idempotence.
    #[error("firewall: {0}")]
    Firewall(Box<NetError>),
    /// Several steps failed (one per backend, say); in order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<NetError>),
    /// What is there conflicts with what was asked for (e.g. a link of that
    /// name exists but is of another kind); not retryable.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A link exists that this network did not create and the administrator
    /// did not let it adopt.
    #[error("{link:?} exists and is not this network's: {}", owner_text(.owner))]
    NotOwned {
        /// The link.
        link: String,
        /// Its ownership record (alias), when it has one.
        owner: Option<String>,
    },
    /// An address for a host link overlaps a route of the node's own (another
    /// link's subnet, or one of its addresses).
    #[error("{address} on {link} overlaps the node's route {existing}{}", .via.as_ref().map(|v| format!(" on {v}")).unwrap_or_default())]
    Overlaps {
        /// The address asked for.
        address: ipnet::IpNet,
        /// The link it was for.
        link: String,
        /// The node's route it overlaps.
        existing: ipnet::IpNet,
        /// That route's link, when known.
        via: Option<String>,
    },
    /// An argument was rejected before reaching the kernel.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A wait ran out of time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The netlink conversation itself failed (closed socket, unexpected
    /// reply), as opposed to the kernel answering with an errno.
    #[error("netlink failure in {op} {target}: {detail}")]
    Protocol {
        /// The verb that failed.
        op: &'static str,
        /// What it acted on.
        target: String,
        /// Description from the netlink library.
        detail: String,
    },
}

fn owner_text(owner: &Option<String>) -> String {
    match owner {
        Some(record) => format!("it is recorded as {record:?}"),
        None => "it has no wasm-cni record (a node link: the administrator adopts it with \
                 the grant's `adopt`)"
            .to_string(),
    }
}

impl NetError {
    /// Builds a [`NetError::Kernel`].
    pub fn kernel(op: &'static str, target: impl Into<String>, errno: Errno) -> Self {
        Self::Kernel {
            op,
            target: target.into(),
            errno,
        }
    }

    /// Builds a [`NetError::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A refusal of the node's rules (ownership, overlap), not a failure: its
    /// CNI code is the policy's.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::NotOwned { .. } | Self::Overlaps { .. })
    }

    /// The kernel errno, if this is a kernel answer.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Kernel { errno, .. } | Self::Nftables { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// The object is absent: `ENOENT`, `ENODEV` (links), `ESRCH` (routes),
    /// `EADDRNOTAVAIL` (addresses), or [`NetError::NotFound`]. A missing
    /// namespace is reported separately by [`NetError::is_netns_gone`].
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotFound { .. } => true,
            _ => matches!(
                self.errno(),
                Some(Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL)
            ),
        }
    }

    /// The namespace is gone: the path is missing or no longer a netns.
    /// A CNI DEL treats both as "nothing left to clean up".
    pub fn is_netns_gone(&self) -> bool {
        matches!(self, Self::NetnsMissing(_) | Self::NotANetns(_))
    }

    /// The backend or the running kernel lacks the feature (`EOPNOTSUPP`,
    /// or [`NetError::Unsupported`]); e.g. a kernel built without
    /// `CONFIG_DUMMY` or `CONFIG_BRIDGE_VLAN_FILTERING`.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Unsupported(_)) || self.errno() == Some(Errno::EOPNOTSUPP)
    }
}
