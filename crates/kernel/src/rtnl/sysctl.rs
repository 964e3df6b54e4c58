//! Sysctls of the bound namespace: files below `/proc/sys/net` opened on its
//! worker, IPv4 link settings over rtnetlink (`IFLA_INET_CONF`), `ip_forward`
//! over `RTM_GETNETCONF`.

use super::*;

impl RtNetlink {
    /// Reads (`value` none) or writes one sysctl under `/proc/sys/net` of this
    /// namespace, returning what was read.
    pub(super) fn sysctl_io(&self, path: &str, value: Option<String>) -> Result<String, NetError> {
        validate_sysctl_path(path)?;
        // Validation guarantees `net/<dir>/<rest>` or `net/<file>`.
        let rel = &path["net/".len()..];
        let (dir_name, rest) = match rel.split_once('/') {
            Some((dir, rest)) => (dir, rest),
            None => ("", rel),
        };
        // Every namespace's `net/ipv4`, `net/ipv6`, ... hang off one shared
        // dentry, so the kernel resolves those names by walking one cached
        // entry per namespace that ever looked them up, under a spinlock: on a
        // node with thousands of pods that walk costs more than everything
        // else a sysctl does. Each such directory is therefore looked up once
        // per invocation and side, and keys are opened below it. The lookups
        // resolve to the namespace of the thread doing them, so they happen
        // inside: directly for our own namespace, else on the worker.
        let dir = self.sysctl_dir(dir_name)?;
        let rest = rest.to_string();
        // The descriptor outlives the call: `self` owns it and waits here
        // while the worker runs the job.
        let result = self.in_netns(move || sysctl_file_io(dir, &rest, value))?;
        result.map_err(|e| match e.raw_os_error() {
            Some(code) => NetError::kernel("sysctl", path, Errno::from_raw(code)),
            None => NetError::io(format!("sysctl {path}"), e),
        })
    }

    /// The descriptor of `/proc/sys/net/<name>` (of `/proc/sys/net` for an
    /// empty name) in this namespace, opened on first use.
    pub(super) fn sysctl_dir(&self, name: &str) -> Result<RawFd, NetError> {
        let mut dirs = self
            .sysctl_dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, file)) = dirs.iter().find(|(n, _)| n == name) {
            return Ok(file.as_raw_fd());
        }
        let path = if name.is_empty() {
            "/proc/sys/net".to_string()
        } else {
            format!("/proc/sys/net/{name}")
        };
        let shown = path.clone();
        let opened = self.in_netns(move || {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(path)
        })?;
        let file = opened.map_err(|e| match e.raw_os_error() {
            Some(code) => NetError::kernel("sysctl", shown, Errno::from_raw(code)),
            None => NetError::io(format!("open {shown}"), e),
        })?;
        let fd = file.as_raw_fd();
        dirs.push((name.to_string(), file));
        Ok(fd)
    }

    /// One IPv4 setting of a link, read from its `IFLA_INET_CONF`.
    pub(super) fn ipv4_conf(
        &self,
        path: &str,
        ifname: &str,
        key: Ipv4LinkKey,
    ) -> Result<i32, NetError> {
        let msg = self
            .get_link_msg("sysctl", ifname)?
            .ok_or_else(|| NetError::kernel("sysctl", path, Errno::ENOENT))?;
        let conf = msg.attributes.iter().find_map(|attr| match attr {
            LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|spec| match spec {
                AfSpecUnspec::Inet(inet) => inet.iter().find_map(|nla| match nla {
                    AfSpecInet::DevConf(conf) => Some(*conf),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        });
        let conf = conf.ok_or_else(|| NetError::kernel("sysctl", path, Errno::ENOENT))?;
        Ok((key.read)(&conf))
    }

    /// Sets one IPv4 setting of a link through `IFLA_INET_CONF`, which the
    /// kernel stores exactly as a write to its sysctl file does.
    pub(super) fn set_ipv4_conf(
        &self,
        path: &str,
        ifname: &str,
        key: Ipv4LinkKey,
        value: u32,
    ) -> Result<(), NetError> {
        // One nested attribute `index = value`; the crate's request type
        // leaves zeros out, and a setting may well be set to zero.
        let mut inner = [0u8; 8];
        inner[0..2].copy_from_slice(&8u16.to_ne_bytes());
        inner[2..4].copy_from_slice(&key.index.to_ne_bytes());
        inner[4..8].copy_from_slice(&value.to_ne_bytes());
        let conf = DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, inner.to_vec());
        let mut msg = LinkUnspec::new_with_name(ifname).build();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::Other(conf),
            ])]));
        match self.set_link("sysctl", ifname, msg) {
            Err(e) if e.errno() == Some(Errno::ENODEV) => {
                Err(NetError::kernel("sysctl", path, Errno::ENOENT))
            }
            other => other,
        }
    }
}

/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC`/`AF_INET`, from `<linux/if_link.h>`.
pub(super) const IFLA_INET_CONF: u16 = 1;
/// `NLA_F_NESTED`.
pub(super) const NLA_F_NESTED: u16 = 0x8000;
/// An IPv4 link setting served over rtnetlink: its `IPV4_DEVCONF_*` index
/// (from `<linux/ip.h>`) and where a dump's `IFLA_INET_CONF` holds it.
#[derive(Clone, Copy)]
pub(super) struct Ipv4LinkKey {
    index: u16,
    read: fn(&InetDevConf) -> i32,
}

/// The settings whose sysctl handler does nothing but store the value.
pub(super) const IPV4_LINK_KEYS: [(&str, Ipv4LinkKey); 4] = [
    (
        "arp_announce",
        Ipv4LinkKey {
            index: 18,
            read: |c| c.arp_announce,
        },
    ),
    (
        "arp_ignore",
        Ipv4LinkKey {
            index: 19,
            read: |c| c.arp_ignore,
        },
    ),
    (
        "arp_accept",
        Ipv4LinkKey {
            index: 21,
            read: |c| c.arp_accept,
        },
    ),
    (
        "arp_notify",
        Ipv4LinkKey {
            index: 22,
            read: |c| c.arp_notify,
        },
    ),
];

/// For `net/ipv4/conf/<link>/<key>` with a key of [`IPV4_LINK_KEYS`], the link
/// and the key: those go over rtnetlink, which finds the link by name instead
/// of walking `/proc/sys/net/ipv4` (see `sysctl_io`).
pub(super) fn ipv4_link_conf(path: &str) -> Option<(&str, Ipv4LinkKey)> {
    let rest = path.strip_prefix("net/ipv4/conf/")?;
    let (ifname, key) = rest.split_once('/')?;
    if ifname == "all" || ifname == "default" || ifname.is_empty() {
        return None;
    }
    let (_, key) = IPV4_LINK_KEYS.iter().find(|(name, _)| *name == key)?;
    Some((ifname, *key))
}

/// A `NETLINK_ROUTE` socket in the calling thread's namespace, connected to
/// the kernel, for a deletion the reaper sends after this process exits.
pub(super) fn route_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: socket(2) has no memory arguments; a valid descriptor is owned
    // by nothing else.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is not owned elsewhere.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `net.ipv4.ip_forward` (which is `net.ipv4.conf.all.forwarding`) of the
/// calling thread's namespace, asked with `RTM_GETNETCONF` as `ip netconf`
/// does: no `/proc/sys/net/ipv4` lookup (see `sysctl_io`).
pub(super) fn ipv4_forwarding() -> std::io::Result<bool> {
    use netlink_sys::{constants::NETLINK_ROUTE, Socket, SocketAddr};
    const RTM_GETNETCONF: u16 = 82;
    const RTM_NEWNETCONF: u16 = 80;
    const NLMSG_ERROR: u16 = 2;
    const NETCONFA_IFINDEX: u16 = 1;
    const NETCONFA_FORWARDING: u16 = 2;
    const NETCONFA_IFINDEX_ALL: i32 = -1;
    const AF_INET: u8 = 2;
    const SEQ: u32 = 1;

    let socket = Socket::new(NETLINK_ROUTE)?;
    socket.connect(&SocketAddr::new(0, 0))?;
    // nlmsghdr, struct netconfmsg (one byte, aligned to four), one attribute.
    let mut req = Vec::with_capacity(28);
    req.extend_from_slice(&28u32.to_ne_bytes());
    req.extend_from_slice(&RTM_GETNETCONF.to_ne_bytes());
    req.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    req.extend_from_slice(&SEQ.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[AF_INET, 0, 0, 0]);
    req.extend_from_slice(&8u16.to_ne_bytes());
    req.extend_from_slice(&NETCONFA_IFINDEX.to_ne_bytes());
    req.extend_from_slice(&NETCONFA_IFINDEX_ALL.to_ne_bytes());
    socket.send(&req, 0)?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    let reply = buf.get(..n).unwrap_or_default();
    let bad = |what: &str| std::io::Error::other(format!("RTM_GETNETCONF: {what}"));
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?))
    };
    let i32_at = |at: usize| -> Option<i32> {
        Some(i32::from_ne_bytes(reply.get(at..at + 4)?.try_into().ok()?))
    };
    match u16_at(4) {
        Some(RTM_NEWNETCONF) => {}
        Some(NLMSG_ERROR) => {
            let errno = i32_at(16).ok_or_else(|| bad("short error"))?;
            return Err(std::io::Error::from_raw_os_error(-errno));
        }
        _ => return Err(bad("unexpected answer")),
    }
    let len = i32_at(0)
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0)
        .min(reply.len());
    let mut at = 20;
    while at + 4 <= len {
        let (Some(nla_len), Some(kind)) = (u16_at(at), u16_at(at + 2)) else {
            break;
        };
        let nla_len = usize::from(nla_len);
        if nla_len < 4 {
            break;
        }
        if kind == NETCONFA_FORWARDING {
            return i32_at(at + 4)
                .map(|v| v != 0)
                .ok_or_else(|| bad("short attribute"));
        }
        at += (nla_len + 3) & !3;
    }
    Err(bad("no NETCONFA_FORWARDING"))
}

/// Opens `rel` below the directory descriptor `dir` and reads it, or writes
/// `value` to it.
pub(super) fn sysctl_file_io(
    dir: RawFd,
    rel: &str,
    value: Option<String>,
) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    // SAFETY: `dir` is owned by the RtNetlink that waits for this call.
    let dir = unsafe { BorrowedFd::borrow_raw(dir) };
    let flags = if value.is_some() {
        OFlag::O_WRONLY
    } else {
        OFlag::O_RDONLY
    } | OFlag::O_CLOEXEC
        | OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::openat(dir, rel, flags, Mode::empty()).map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    match value {
        Some(value) => {
            file.write_all(value.as_bytes())?;
            Ok(String::new())
        }
        None => {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok(text)
        }
    }
}
