//! Allocation and the other reservation operations, over a [`Store`]: the
//! reference's `backend/allocator/allocator.go` plus the directory walks of
//! `backend/disk` (release, find), and GC and STATUS, which it lacks.
//!
//! Pure apart from the store: no logging (warnings go to a callback) and no
//! knowledge of WIT.
//!
//! Work done per request, compared with the reference: the reference walks
//! the whole directory and reads every file (the `lock` and
//! `last_reserved_ip.*` included) once per range set on ADD (its duplicate
//! check), DEL and CHECK, so a node's thousandth pod pays for the 999 before
//! it. Here each reservation gets an owner link (`.owner.<hash>.<set>`, see
//! [`crate::store`]): ADD's duplicate check reads the attachment's own links
//! only, and DEL and CHECK use them when every range set has one that points
//! at a reservation of the attachment, and walk the directory like the
//! reference otherwise (reservations made by the reference binary, by older
//! versions, or before a crash between reservation and link). ADD does not
//! list the directory: candidates are tried in the reference's round-robin
//! order and `O_EXCL` (here, a hard link) decides, as in the reference.
//!
//! What ADD's duplicate check does not see: a reservation of the same
//! attachment that has no link, i.e. one made by the reference binary (or
//! an older version) on the same directory. The check guards against a
//! runtime sending ADD twice without DEL; reading every reservation to
//! cover a second writer as well would make every ADD as slow as the
//! reference's.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use crate::config::{Range, RangeSet};
use crate::ip;
use crate::store::{owner_link_name, owner_link_set, owner_record, Entry, Store, StoreError};

mod release;

pub use release::{
    collect_garbage, find, first_exhausted, release, GcReport, ReleaseReport, ValidAttachment,
};

/// The attachment a request is about.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
}

/// How a reservation file's content relates to an [`Owner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    /// `<cid>\r\n<ifname>`.
    Full,
    /// A legacy file holding only `<cid>`.
    Legacy,
    /// Someone else's.
    None,
}

impl Owner<'_> {
    /// The content of this owner's reservation files.
    pub fn record(&self) -> String {
        owner_record(self.container_id, self.ifname)
    }

    fn classify(&self, content: &str) -> Match {
        // The reference compares trimmed content ("ignores whitespace in disk files").
        let content = content.trim();
        if content == self.record() {
            Match::Full
        } else if content == self.container_id.trim() {
            Match::Legacy
        } else {
            Match::None
        }
    }
}

/// One address handed out by [`allocate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Index of the range set it came from.
    pub range_set: usize,
    /// The address.
    pub address: IpAddr,
    /// The prefix length of its range's subnet.
    pub prefix: u8,
    /// Its range's gateway.
    pub gateway: IpAddr,
}

/// Why one range set could not be served.
#[derive(Debug)]
pub enum AllocError {
    /// A requested address is its range's gateway.
    RequestedIsGateway(IpAddr),
    /// A requested address is already reserved.
    RequestedUnavailable {
        /// The address.
        ip: IpAddr,
        /// The set, as `start-end,...`.
        set: String,
    },
    /// The owner already holds an address of this set.
    Duplicate {
        /// The address it holds.
        ip: IpAddr,
        /// The container ID as given.
        container_id: String,
    },
    /// Every address of the set is reserved.
    Exhausted {
        /// The set, as `start-end,...`.
        set: String,
    },
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::RequestedIsGateway(ip) => {
                write!(f, "requested ip {ip} is subnet's gateway")
            }
            AllocError::RequestedUnavailable { ip, set } => {
                write!(
                    f,
                    "requested IP address {ip} is not available in range set {set}"
                )
            }
            AllocError::Duplicate { ip, container_id } => write!(
                f,
                "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
            ),
            AllocError::Exhausted { set } => {
                write!(f, "no IP addresses available in range set: {set}")
            }
            AllocError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<StoreError> for AllocError {
    fn from(e: StoreError) -> AllocError {
        AllocError::Store(e)
    }
}

/// Why an ADD failed; nothing it reserved is left behind.
#[derive(Debug)]
pub enum AddError {
    /// Range set `index` could not be served.
    Range {
        /// The range set's index.
        index: usize,
        /// Why.
        source: AllocError,
    },
    /// Requested addresses that no range set contains (or that a set already
    /// served with another requested address).
    Unfulfilled(Vec<IpAddr>),
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::Range { index, source } => {
                write!(f, "failed to allocate for range {index}: {source}")
            }
            AddError::Unfulfilled(ips) => {
                f.write_str("failed to allocate all requested IPs:")?;
                for ip in ips {
                    write!(f, " {ip}")?;
                }
                Ok(())
            }
        }
    }
}

/// ADD: one address from each range set, in order. A set takes the first
/// still-pending `requested` address it contains, else the next free one
/// round-robin. All or nothing: on any failure every address reserved here
/// is released again.
pub fn allocate<S: Store>(
    store: &mut S,
    sets: &[RangeSet],
    requested: &[IpAddr],
    owner: Owner<'_>,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Allocation>, AddError> {
    let mut pending = requested.to_vec();
    let mut done: Vec<Allocation> = Vec::with_capacity(sets.len());
    let record = owner.record();
    for (index, set) in sets.iter().enumerate() {
        let wanted = pending
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|i| pending.remove(i));
        let got = match wanted {
            Some(ip) => reserve_requested(store, index, set, ip, owner),
            None => reserve_next(store, index, set, owner, warn),
        };
        // The link comes after the reservation: a crash in between leaves a
        // reservation without link, which DEL then finds by walking.
        let linked = got.and_then(|a| {
            done.push(a);
            store
                .set_owner_link(&owner_link_name(&record, index), &a.address.to_string())
                .map_err(AllocError::Store)
        });
        if let Err(source) = linked {
            roll_back(store, &done, &record, warn);
            return Err(AddError::Range { index, source });
        }
    }
    if !pending.is_empty() {
        roll_back(store, &done, &record, warn);
        return Err(AddError::Unfulfilled(pending));
    }
    Ok(done)
}

/// Releases exactly what this ADD reserved, links included. The reference
/// releases by owner instead, which would also drop an older reservation of
/// the same attachment that a requested address had skipped the duplicate
/// check for.
fn roll_back<S: Store>(
    store: &mut S,
    done: &[Allocation],
    record: &str,
    warn: &mut dyn FnMut(String),
) {
    for a in done {
        let link = owner_link_name(record, a.range_set);
        if store.owner_link(&link).ok().flatten() == Some(a.address.to_string()) {
            if let Err(e) = store.release(&link) {
                warn(format!("rolling back {link}: {e}"));
            }
        }
        if let Err(e) = store.release(&a.address.to_string()) {
            warn(format!("rolling back {}: {e}", a.address));
        }
    }
}

/// The address owner link `.owner.<hash>.<set>` of `owner` points at, if the
/// reservation there is the owner's (else the link is stale or a hash twin's).
fn linked_address<S: Store>(
    store: &S,
    owner: Owner<'_>,
    set: usize,
) -> Result<Option<IpAddr>, StoreError> {
    let Some(target) = store.owner_link(&owner_link_name(&owner.record(), set))? else {
        return Ok(None);
    };
    let Some(ip) = ip::parse_ip(&target) else {
        return Ok(None);
    };
    match store.read(&target)? {
        Some(content) if owner.classify(&content) == Match::Full => Ok(Some(ip)),
        _ => Ok(None),
    }
}

fn reserve_requested<S: Store>(
    store: &mut S,
    index: usize,
    set: &RangeSet,
    ip: IpAddr,
    owner: Owner<'_>,
) -> Result<Allocation, AllocError> {
    let range = set
        .range_for(ip)
        .ok_or_else(|| AllocError::RequestedUnavailable {
            ip,
            set: set.to_string(),
        })?;
    if ip == range.gateway {
        return Err(AllocError::RequestedIsGateway(ip));
    }
    if !store.reserve(ip, &owner.record())? {
        return Err(AllocError::RequestedUnavailable {
            ip,
            set: set.to_string(),
        });
    }
    // Like the reference, a requested address moves the round-robin cursor too.
    commit(store, index, range, ip)
}

fn reserve_next<S: Store>(
    store: &mut S,
    index: usize,
    set: &RangeSet,
    owner: Owner<'_>,
    warn: &mut dyn FnMut(String),
) -> Result<Allocation, AllocError> {
    // The spec forbids a second ADD for one attachment without a DEL; the
    // reference refuses it per range set (plugins#327). The attachment's own
    // link says whether it holds an address of this set (see the module
    // documentation for what that does not see). A link that cannot be read
    // fails the ADD, where the reference skips unreadable files.
    if let Some(ip) = linked_address(store, owner, index)?.filter(|ip| set.contains(*ip)) {
        return Err(AllocError::Duplicate {
            ip,
            container_id: owner.container_id.to_string(),
        });
    }

    // A stale cursor (ranges changed since) only costs round-robin this once.
    let last = match store.last_reserved(index) {
        Ok(last) => last.filter(|ip| set.contains(*ip)),
        Err(e) => {
            warn(format!("Error retrieving last reserved ip: {e}"));
            None
        }
    };
    let record = owner.record();
    let mut candidates = RangeIter::new(set, last);
    while let Some((ip, range)) = candidates.next_candidate() {
        if store.reserve(ip, &record)? {
            return commit(store, index, range, ip);
        }
    }
    Err(AllocError::Exhausted {
        set: set.to_string(),
    })
}

/// Records the round-robin cursor; if that fails, gives the address back so
/// that a failed ADD leaves nothing behind.
fn commit<S: Store>(
    store: &mut S,
    index: usize,
    range: &Range,
    ip: IpAddr,
) -> Result<Allocation, AllocError> {
    if let Err(e) = store.set_last_reserved(index, ip) {
        let _ = store.release(&ip.to_string());
        return Err(e.into());
    }
    Ok(Allocation {
        range_set: index,
        address: ip,
        prefix: range.prefix,
        gateway: range.gateway,
    })
}

/// The reference's `RangeIter`: every address of the set once, starting after
/// `last` (or at the first range's start), wrapping from a range's end to the
/// next range's start and from the last range to the first, skipping each
/// range's gateway.
struct RangeIter<'a> {
    set: &'a RangeSet,
    index: usize,
    cur: Option<u128>,
    start: Option<u128>,
}

impl<'a> RangeIter<'a> {
    fn new(set: &'a RangeSet, last: Option<IpAddr>) -> RangeIter<'a> {
        let found = last.and_then(|ip| {
            set.ranges
                .iter()
                .position(|r| r.contains(ip))
                .map(|i| (i, ip::to_u128(ip::canonical(ip))))
        });
        match found {
            // The first candidate is then `last + 1`; `last` itself comes last.
            Some((index, cur)) => RangeIter {
                set,
                index,
                cur: Some(cur),
                start: None,
            },
            None => RangeIter {
                set,
                index: 0,
                cur: None,
                start: None,
            },
        }
    }

    fn next_candidate(&mut self) -> Option<(IpAddr, &'a Range)> {
        loop {
            let mut range = self.set.ranges.get(self.index)?;
            let cur = match self.cur {
                None => {
                    let first = ip::to_u128(range.range_start);
                    self.start = Some(first);
                    first
                }
                Some(cur) => {
                    let next = if cur == ip::to_u128(range.range_end) {
                        self.index = (self.index + 1) % self.set.ranges.len();
                        range = self.set.ranges.get(self.index)?;
                        ip::to_u128(range.range_start)
                    } else {
                        cur + 1
                    };
                    match self.start {
                        None => self.start = Some(next),
                        // Back where the walk began: every address was offered.
                        Some(start) if start == next => return None,
                        Some(_) => {}
                    }
                    next
                }
            };
            self.cur = Some(cur);
            if range.gateway_u128() == Some(cur) {
                continue;
            }
            return Some((ip::from_u128(range.range_start, cur), range));
        }
    }
}

#[cfg(test)]
mod tests;
