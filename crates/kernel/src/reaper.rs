//! Closing an nftables socket after a transaction that deleted or updated
//! something makes the kernel wait for an RCU grace period (nf_tables'
//! `NETLINK_URELEASE` notifier flushes the pending transaction-destroy work;
//! 5-15 ms here), and a process's exit closes its sockets before the runtime's
//! `wait` returns. The answer is complete long before that: the rules are
//! committed, only memory reclaim is pending. So the last references to those
//! sockets go to a child that closes them after this process has exited, off
//! the runtime's critical path.
//!
//! Deleting a link waits the same way (`netdev_run_todo`). DEL therefore
//! retires the container's interface (down, renamed, its name free at once)
//! and hands the child a `NETLINK_ROUTE` socket in that namespace and a
//! prepared `RTM_DELLINK` for its index, which the child sends once this
//! process has exited.
//!
//! The child keeps nothing else: it closes every other descriptor at once
//! (stdout and stderr included, so the runtime sees end-of-file when this
//! process exits, and the IPAM lock, whose flock must not outlive us), waits
//! for this process to exit (end-of-file on a pipe), deletes the retired
//! links, and exits. Between fork and exit it makes only async-signal-safe
//! system calls on memory prepared before the fork.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;

use crate::netlink::RetiredLink;

/// Links DEL took out of service, to delete once this process has exited.
static RETIRED: Mutex<Vec<RetiredLink>> = Mutex::new(Vec::new());

/// Leave the deletion of a retired link to the reaper.
pub fn defer_link_delete(link: RetiredLink) {
    RETIRED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(link);
}

/// The `RTM_DELLINK` request for link `index` (asking for an acknowledgement,
/// so that the reaper's `recv` returns when the kernel is done).
fn dellink_request(index: u32) -> [u8; 32] {
    const RTM_DELLINK: u16 = 17;
    const FLAGS: u16 = 0x1 | 0x4; // NLM_F_REQUEST | NLM_F_ACK
    let mut msg = [0u8; 32];
    msg[0..4].copy_from_slice(&32u32.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_DELLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&FLAGS.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // struct ifinfomsg: family, pad, type (zero), then the index.
    msg[20..24].copy_from_slice(&index.to_ne_bytes());
    msg
}

/// Send each request on its socket and wait for the kernel's answer. Only
/// send(2) and recv(2) on memory prepared by the caller: safe in the child.
fn delete_links(requests: &[(RawFd, [u8; 32])]) {
    let mut answer = [0u8; 256];
    for (fd, msg) in requests {
        // SAFETY: plain system calls on a descriptor we own and on buffers
        // that live for the whole call.
        unsafe {
            if nix::libc::send(*fd, msg.as_ptr().cast(), msg.len(), 0) < 0 {
                continue;
            }
            nix::libc::recv(*fd, answer.as_mut_ptr().cast(), answer.len(), 0);
        }
    }
}

/// Hand what is left of the kernel's work to a child that does it once this
/// process has exited: closing the nftables sockets that have kernel work
/// pending, and deleting the links DEL retired. Call it just before the
/// sockets close. Without such work nothing happens; if the child cannot be
/// made, the links are deleted here and the sockets close here (the waits
/// then happen here, as they would anyway).
pub fn finish() {
    let mut keep = crate::sockets_with_pending_work();
    let retired = std::mem::take(
        &mut *RETIRED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if keep.is_empty() && retired.is_empty() {
        return;
    }
    let requests: Vec<(RawFd, [u8; 32])> = retired
        .iter()
        .map(|link| (link.socket.as_raw_fd(), dellink_request(link.index)))
        .collect();
    keep.extend(requests.iter().map(|(fd, _)| *fd));
    let Ok((exit_r, exit_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        delete_links(&requests);
        return;
    };
    keep.push(exit_r.as_raw_fd());
    let gaps = gaps_between(&keep);
    // SAFETY: the child runs only close_range(2)/close(2), read(2), send(2),
    // recv(2) and _exit(2), which are async-signal-safe, on memory prepared
    // before the fork; the parent goes on as usual.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            for &(first, last) in &gaps {
                close_range(first, last);
            }
            let mut byte = [0u8; 1];
            // End-of-file comes when the parent, the last holder of the write
            // end, has exited.
            loop {
                match nix::unistd::read(&exit_r, &mut byte) {
                    Ok(0) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
            delete_links(&requests);
            // Exiting closes the kept sockets: the kernel's wait happens here.
            // SAFETY: _exit(2) ends the child without running anything else.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(exit_r);
            // The write end stays open until this process exits.
            std::mem::forget(exit_w);
        }
        Err(e) => {
            tracing::debug!("cannot defer the kernel's remaining work: {e}");
            delete_links(&requests);
        }
    }
}

/// The inclusive descriptor ranges around the `keep` descriptors, up to the
/// largest descriptor number.
fn gaps_between(keep: &[RawFd]) -> Vec<(u32, u32)> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut gaps = Vec::with_capacity(keep.len() + 1);
    let mut next = 0u32;
    for fd in keep {
        if fd > next {
            gaps.push((next, fd - 1));
        }
        next = fd + 1;
    }
    gaps.push((next, u32::MAX));
    gaps
}

/// Close every descriptor in `first..=last` (close_range(2), Linux 5.9; a loop
/// over the descriptor limit before that).
fn close_range(first: u32, last: u32) {
    // SAFETY: a raw system call with integer arguments; the descriptors closed
    // are not used by this (child) process afterwards.
    let rc = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0u32) };
    if rc == 0 {
        return;
    }
    let limit = last.min(65_535);
    for fd in first..=limit {
        // SAFETY: as above, one descriptor at a time; EBADF is harmless.
        unsafe { nix::libc::close(fd as RawFd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dellink_request_is_an_acked_rtm_dellink_by_index() {
        let msg = dellink_request(0x0102_0304);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().expect("slice")), 32);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().expect("slice")), 17);
        assert_eq!(
            u16::from_ne_bytes(msg[6..8].try_into().expect("slice")),
            0x5
        );
        assert_eq!(msg[16..20], [0, 0, 0, 0], "family, pad, type");
        assert_eq!(
            u32::from_ne_bytes(msg[20..24].try_into().expect("slice")),
            0x0102_0304
        );
        assert_eq!(msg[24..32], [0; 8], "flags, change");
    }

    #[test]
    fn gaps_leave_exactly_the_kept_descriptors() {
        assert_eq!(gaps_between(&[]), vec![(0, u32::MAX)]);
        assert_eq!(
            gaps_between(&[7, 3, 4]),
            vec![(0, 2), (5, 6), (8, u32::MAX)]
        );
        assert_eq!(gaps_between(&[0]), vec![(1, u32::MAX)]);
    }
}
