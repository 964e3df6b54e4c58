//! Giving addresses back: DEL's release by owner, CHECK's lookup, GC against
//! the valid attachments, and STATUS's exhaustion check.

use super::*;

/// What DEL did.
#[derive(Debug, Default)]
pub struct ReleaseReport {
    /// The files removed.
    pub released: Vec<Entry>,
    /// Files that could not be read or removed; the walk went on past them.
    pub errors: Vec<StoreError>,
}

/// DEL: removes every reservation of `owner` (`<cid>\r\n<ifname>`), or, when
/// there is none, every legacy reservation holding only `<cid>`. Nothing to
/// remove is success. Best-effort: it keeps going past errors.
///
/// When each of the `sets` range sets has an owner link to a reservation of
/// `owner`, exactly those are released, with no walk. Otherwise the directory
/// is walked: the reference repeats its walk once per range set; from the
/// second set on its legacy fallback fires even after full matches were
/// removed, so with two or more sets it also drops legacy files of the
/// container's other interfaces. One walk with the fallback applied once
/// avoids that. The owner's links go in both cases.
pub fn release<S: Store>(
    store: &mut S,
    owner: Owner<'_>,
    sets: usize,
) -> Result<ReleaseReport, StoreError> {
    let mut report = ReleaseReport::default();
    let record = owner.record();
    let mut linked = Vec::with_capacity(sets);
    for set in 0..sets {
        match linked_address(store, owner, set) {
            Ok(Some(ip)) => linked.push(ip),
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }
    let walk = sets == 0 || linked.len() < sets || !report.errors.is_empty();
    let targets = if walk {
        report.errors.clear();
        walk_release_targets(store, owner, &mut report)?
    } else {
        linked
            .into_iter()
            .map(|ip| Entry {
                name: ip.to_string(),
                ip,
            })
            .collect()
    };
    for entry in targets {
        match store.release(&entry.name) {
            Ok(()) => report.released.push(entry),
            Err(e) => report.errors.push(e),
        }
    }
    for set in 0..sets {
        let link = owner_link_name(&record, set);
        let removed = match store.owner_link(&link) {
            Ok(Some(_)) => store.release(&link),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            report.errors.push(e);
        }
    }
    Ok(report)
}

/// The reservations DEL releases when it has to walk: every full match, or,
/// when there is none, every legacy one.
pub(super) fn walk_release_targets<S: Store>(
    store: &S,
    owner: Owner<'_>,
    report: &mut ReleaseReport,
) -> Result<Vec<Entry>, StoreError> {
    let mut full = Vec::new();
    let mut legacy = Vec::new();
    for entry in store.entries()? {
        match store.read(&entry.name) {
            Ok(Some(content)) => match owner.classify(&content) {
                Match::Full => full.push(entry),
                Match::Legacy => legacy.push(entry),
                Match::None => {}
            },
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }
    Ok(if full.is_empty() { legacy } else { full })
}

/// CHECK: whether `owner` holds any reservation (full or legacy), whatever
/// the address: one of its owner links among the first `sets` points at one,
/// or else the walk finds one. A read error counts only when nothing matched.
pub fn find<S: Store>(store: &S, owner: Owner<'_>, sets: usize) -> Result<bool, StoreError> {
    for set in 0..sets {
        if let Ok(Some(_)) = linked_address(store, owner, set) {
            return Ok(true);
        }
    }
    let mut legacy = false;
    let mut first_error = None;
    for entry in store.entries()? {
        match store.read(&entry.name) {
            Ok(Some(content)) => match owner.classify(&content) {
                Match::Full => return Ok(true),
                Match::Legacy => legacy = true,
                Match::None => {}
            },
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if !legacy => Err(e),
        _ => Ok(legacy),
    }
}

/// A still-valid attachment, as GC names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAttachment {
    /// The container ID.
    pub container_id: String,
    /// The interface name.
    pub ifname: String,
}

/// What GC did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// The files removed, with the content they held.
    pub released: Vec<(Entry, String)>,
    /// Files that could not be read or removed; the walk went on past them.
    pub errors: Vec<StoreError>,
}

/// GC: removes every reservation whose owner is not in `valid`. A legacy file
/// (`<cid>` only) stays if any attachment of that container is valid; an
/// empty or unreadable-as-owner file belongs to no one and goes. An empty
/// `valid` therefore releases everything. Only files named by an address are
/// considered (never `lock`, `last_reserved_ip.*`, or foreign files).
pub fn collect_garbage<S: Store>(
    store: &mut S,
    valid: &[ValidAttachment],
) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    for entry in store.entries()? {
        let content = match store.read(&entry.name) {
            Ok(Some(content)) => content,
            Ok(None) => continue,
            // Unknown owner: keep it rather than risk releasing a live address.
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        let trimmed = content.trim();
        let keep = match trimmed.split_once(crate::store::LINE_BREAK) {
            Some((cid, ifname)) => valid
                .iter()
                .any(|a| a.container_id.trim() == cid && a.ifname == ifname),
            None => !trimmed.is_empty() && valid.iter().any(|a| a.container_id.trim() == trimmed),
        };
        if keep {
            continue;
        }
        match store.release(&entry.name) {
            Ok(()) => report.released.push((entry, trimmed.to_string())),
            Err(e) => report.errors.push(e),
        }
    }
    // Owner links whose reservation is gone (just released, or released by
    // another writer) or belongs to someone else go too.
    for name in store.owner_links()? {
        let Some(set) = owner_link_set(&name) else {
            continue;
        };
        let current = match store.owner_link(&name) {
            Ok(Some(target)) => match store.read(&target) {
                Ok(Some(content)) => {
                    ip::parse_ip(&target).is_some() && owner_link_name(content.trim(), set) == name
                }
                Ok(None) => false,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        if !current {
            if let Err(e) = store.release(&name) {
                report.errors.push(e);
            }
        }
    }
    Ok(report)
}

/// STATUS: the first range set (with its index) in which every address (each
/// range's gateway excepted) is reserved, if any.
pub fn first_exhausted<'s, S: Store>(
    store: &S,
    sets: &'s [RangeSet],
) -> Result<Option<(usize, &'s RangeSet)>, StoreError> {
    // Only canonically named files block an address (they are what O_EXCL hits).
    let taken: BTreeSet<IpAddr> = store
        .entries()?
        .into_iter()
        .filter(Entry::is_canonical)
        .map(|e| e.ip)
        .collect();
    for (index, set) in sets.iter().enumerate() {
        let mut capacity: u128 = 0;
        for r in &set.ranges {
            let (start, end) = (ip::to_u128(r.range_start), ip::to_u128(r.range_end));
            // Saturates only for a whole IPv6 space, which is never "full" anyway.
            let mut size = (end - start).saturating_add(1);
            if r.gateway_u128().is_some_and(|gw| gw >= start && gw <= end) {
                size -= 1;
            }
            capacity = capacity.saturating_add(size);
        }
        let used = taken
            .iter()
            .filter(|ip| {
                set.range_for(**ip)
                    .is_some_and(|r| r.gateway_u128() != Some(ip::to_u128(**ip)))
            })
            .count() as u128;
        if used >= capacity {
            return Ok(Some((index, set)));
        }
    }
    Ok(None)
}
