//! Closing an nftables socket after a transaction that deleted or updated
//! something makes the kernel wait for an RCU grace period (nf_tables'
//! `NETLINK_URELEASE` notifier flushes the pending transaction-destroy work;
//! 5-15 ms here), and a process's exit closes its sockets before the runtime's
//! `wait` returns. The answer is complete long before that: the rules are
//! committed, only memory reclaim is pending. So the last references to those
//! sockets go to a child that closes them after this process has exited, off
//! the runtime's critical path.
//!
//! The child keeps nothing else: it closes every other descriptor at once
//! (stdout and stderr included, so the runtime sees end-of-file when this
//! process exits, and the IPAM lock, whose flock must not outlive us), waits
//! for this process to exit (end-of-file on a pipe), and exits. Between fork
//! and exit it makes only async-signal-safe system calls on memory prepared
//! before the fork.

use std::os::fd::{AsRawFd, RawFd};

/// Hand the nftables sockets that have kernel work pending to a child that
/// closes them once this process has exited. Call it just before closing them.
/// Without such sockets, or if the child cannot be made, nothing happens (the
/// closes then wait here, as they would anyway).
pub fn defer_netfilter_close() {
    let mut keep = crate::apply::sockets_with_pending_work();
    if keep.is_empty() {
        return;
    }
    let Ok((exit_r, exit_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return;
    };
    keep.push(exit_r.as_raw_fd());
    let gaps = gaps_between(&keep);
    // SAFETY: the child runs only close_range(2)/close(2), read(2) and
    // _exit(2), which are async-signal-safe, on memory prepared before the
    // fork; the parent goes on as usual.
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
            // Exiting closes the kept sockets: the kernel's wait happens here.
            // SAFETY: _exit(2) ends the child without running anything else.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(exit_r);
            // The write end stays open until this process exits.
            std::mem::forget(exit_w);
        }
        Err(e) => tracing::debug!("cannot defer the nftables sockets' close: {e}"),
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
    fn gaps_leave_exactly_the_kept_descriptors() {
        assert_eq!(gaps_between(&[]), vec![(0, u32::MAX)]);
        assert_eq!(
            gaps_between(&[7, 3, 4]),
            vec![(0, 2), (5, 6), (8, u32::MAX)]
        );
        assert_eq!(gaps_between(&[0]), vec![(1, u32::MAX)]);
    }
}
