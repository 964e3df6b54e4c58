use std::io::ErrorKind;

use super::*;
use crate::config;
use crate::store::mem::MemStore;
use crate::store::DiskStore;
use crate::testutil::{ip, TempDir};

fn sets(ranges: &str) -> Vec<RangeSet> {
    let cfg = format!(r#"{{"cniVersion":"1.0.0","name":"n","ipam":{{"ranges":{ranges}}}}}"#);
    match config::load(&cfg, &[]) {
        Ok(c) => c.range_sets,
        Err(e) => panic!("{ranges}: {e}"),
    }
}

fn owner<'a>(cid: &'a str, ifname: &'a str) -> Owner<'a> {
    Owner {
        container_id: cid,
        ifname,
    }
}

const C1: Owner<'static> = Owner {
    container_id: "c1",
    ifname: "eth0",
};

const C2: Owner<'static> = Owner {
    container_id: "c2",
    ifname: "eth0",
};

fn alloc<S: Store>(
    store: &mut S,
    sets: &[RangeSet],
    requested: &[&str],
    who: Owner<'_>,
) -> Result<Vec<String>, AddError> {
    let requested: Vec<IpAddr> = requested.iter().map(|s| ip(s)).collect();
    let mut warnings = Vec::new();
    let got = allocate(store, sets, &requested, who, &mut |w| warnings.push(w))?;
    assert!(warnings.is_empty(), "{warnings:?}");
    Ok(got
        .iter()
        .map(|a| format!("{}/{} gw {}", a.address, a.prefix, a.gateway))
        .collect())
}

/// Allocates once per owner `c0`, `c1`, ... and returns the addresses.
fn sequence<S: Store>(store: &mut S, sets: &[RangeSet], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let cid = format!("c{i}");
            let got = alloc(store, sets, &[], owner(&cid, "eth0")).unwrap();
            got[0].split('/').next().unwrap_or_default().to_string()
        })
        .collect()
}

fn err_msg(r: Result<Vec<String>, AddError>) -> String {
    r.unwrap_err().to_string()
}

// --- round robin -----------------------------------------------------------------

#[test]
fn first_allocation_skips_the_gateway_and_records_the_cursor() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8:1::/64"}]]"#);
    assert_eq!(
        alloc(&mut store, &s, &[], owner("dummy", "eth0")).unwrap(),
        vec![
            "10.1.2.2/24 gw 10.1.2.1",
            "2001:db8:1::2/64 gw 2001:db8:1::1"
        ]
    );
    assert_eq!(dir.read("10.1.2.2"), "dummy\r\neth0");
    assert_eq!(dir.read("2001:db8:1::2"), "dummy\r\neth0");
    assert_eq!(dir.read("last_reserved_ip.0"), "10.1.2.2");
    assert_eq!(dir.read("last_reserved_ip.1"), "2001:db8:1::2");
}

#[test]
fn allocation_is_round_robin_and_does_not_reuse_a_released_address_at_once() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(sequence(&mut store, &s, 2), vec!["10.1.2.2", "10.1.2.3"]);
    release(&mut store, owner("c0", "eth0"), 1).unwrap();
    // c0's .2 is free again, but the cursor moves on.
    let next = alloc(&mut store, &s, &[], owner("c9", "eth0")).unwrap();
    assert_eq!(next, vec!["10.1.2.4/24 gw 10.1.2.1"]);
}

#[test]
fn allocation_resumes_after_the_recorded_cursor() {
    let mut store = MemStore::default();
    store.put("last_reserved_ip.0", "10.1.2.10");
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.11"]);
    assert_eq!(store.files["last_reserved_ip.0"], "10.1.2.11");
}

#[test]
fn a_cursor_outside_the_set_restarts_at_the_first_range() {
    let mut store = MemStore::default();
    store.put("last_reserved_ip.0", "10.9.9.9");
    let s = sets(r#"[[{"subnet":"10.1.2.0/24","rangeStart":"10.1.2.100"}]]"#);
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.100"]);
}

#[test]
fn an_unreadable_cursor_is_a_warning_only() {
    let mut store = MemStore {
        fail_last_reserved: Some(ErrorKind::PermissionDenied),
        ..MemStore::default()
    };
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let mut warnings = Vec::new();
    let got = allocate(&mut store, &s, &[], C1, &mut |w| warnings.push(w)).unwrap();
    assert_eq!(got[0].address, ip("10.1.2.2"));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("Error retrieving last reserved ip: "));
}

#[test]
fn the_walk_wraps_from_the_end_to_the_start_skipping_the_gateway() {
    let mut store = MemStore::default();
    store.put("last_reserved_ip.0", "10.1.2.254");
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    // .1 is the gateway.
    assert_eq!(sequence(&mut store, &s, 2), vec!["10.1.2.2", "10.1.2.3"]);
}

#[test]
fn the_walk_crosses_ranges_of_a_set_in_order_and_wraps() {
    let mut store = MemStore::default();
    let s = sets(
        r#"[[{"subnet":"10.1.2.0/29","rangeStart":"10.1.2.5"},
             {"subnet":"10.1.3.0/30"},
             {"subnet":"10.1.4.0/29","rangeEnd":"10.1.4.3","gateway":"10.1.4.2"}]]"#,
    );
    assert_eq!(
        sequence(&mut store, &s, 5),
        vec!["10.1.2.5", "10.1.2.6", "10.1.3.2", "10.1.4.1", "10.1.4.3"]
    );
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], owner("c5", "eth0"))),
        "failed to allocate for range 0: no IP addresses available in range set: \
         10.1.2.5-10.1.2.6,10.1.3.1-10.1.3.2,10.1.4.1-10.1.4.3"
    );
    release(&mut store, owner("c0", "eth0"), 1).unwrap();
    // From the last range's end back to the first range's start.
    assert_eq!(
        alloc(&mut store, &s, &[], owner("c6", "eth0")).unwrap(),
        vec!["10.1.2.5/29 gw 10.1.2.1"]
    );
}

#[test]
fn a_gateway_inside_the_range_is_skipped() {
    let mut store = MemStore::default();
    let s = sets(
        r#"[[{"subnet":"10.1.2.0/24","rangeStart":"10.1.2.4","rangeEnd":"10.1.2.6","gateway":"10.1.2.5"}]]"#,
    );
    assert_eq!(sequence(&mut store, &s, 2), vec!["10.1.2.4", "10.1.2.6"]);
    assert!(err_msg(alloc(&mut store, &s, &[], owner("c9", "eth0")))
        .contains("no IP addresses available"));
}

#[test]
fn exhaustion_is_reported_and_the_walk_ends() {
    let mut store = MemStore::default();
    // A /30 has .1 (the gateway) and .2.
    let s = sets(r#"[[{"subnet":"10.1.2.0/30"}]]"#);
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.2"]);
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], C1)),
        "failed to allocate for range 0: no IP addresses available in range set: 10.1.2.1-10.1.2.2"
    );
    // A range made only of its gateway has nothing to give, from any cursor.
    let s = sets(r#"[[{"subnet":"10.1.3.0/24","rangeStart":"10.1.3.1","rangeEnd":"10.1.3.1"}]]"#);
    let mut store = MemStore::default();
    assert!(err_msg(alloc(&mut store, &s, &[], C1)).contains("10.1.3.1-10.1.3.1"));
    store.put("last_reserved_ip.0", "10.1.3.1");
    assert!(err_msg(alloc(&mut store, &s, &[], C1)).contains("10.1.3.1-10.1.3.1"));
}

#[test]
fn taken_addresses_are_passed_over_by_exclusive_creation() {
    let mut store = MemStore::default();
    for i in 2..=9 {
        store.put(&format!("10.1.2.{i}"), &format!("other{i}\r\neth0"));
    }
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.10"]);
    // Nothing was read: the create of each candidate decided.
    assert_eq!(store.reserve_calls, 9);
    assert_eq!(store.reads.get(), 0);
}

#[test]
fn a_non_canonical_name_does_not_block_the_address() {
    // The reference opens `10.1.2.2`, so a file `::ffff:10.1.2.2` does not block it.
    let mut store = MemStore::default();
    store.put("::ffff:10.1.2.2", "other\r\neth0");
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.2"]);
}

#[test]
fn ipv6_allocation() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"2001:db8:1::/64"}]]"#);
    assert_eq!(
        sequence(&mut store, &s, 2),
        vec!["2001:db8:1::2", "2001:db8:1::3"]
    );
    store.put("last_reserved_ip.0", "2001:db8:1::ffff:ffff:ffff:ffff");
    assert_eq!(
        alloc(&mut store, &s, &[], owner("c9", "eth0")).unwrap(),
        vec!["2001:db8:1::4/64 gw 2001:db8:1::1"]
    );
    let s = sets(r#"[[{"subnet":"2001:db8:2::/120","rangeStart":"2001:db8:2::ff"}]]"#);
    assert_eq!(
        alloc(&mut store, &s, &[], C1).unwrap(),
        vec!["2001:db8:2::ff/120 gw 2001:db8:2::1"]
    );
}

// --- requested addresses ------------------------------------------------------------

#[test]
fn a_requested_address_is_reserved_and_moves_the_cursor() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(
        alloc(&mut store, &s, &["10.1.2.88"], C1).unwrap(),
        vec!["10.1.2.88/24 gw 10.1.2.1"]
    );
    assert_eq!(dir.read("10.1.2.88"), "c1\r\neth0");
    assert_eq!(dir.read("last_reserved_ip.0"), "10.1.2.88");
    assert_eq!(sequence(&mut store, &s, 1), vec!["10.1.2.89"]);
}

#[test]
fn requested_addresses_across_sets_and_families() {
    let mut store = MemStore::default();
    let s = sets(
        r#"[[{"subnet":"172.16.1.0/24"},{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8:1::/48"}],[{"subnet":"10.1.3.0/24"}]]"#,
    );
    assert_eq!(
        alloc(&mut store, &s, &["2001:db8:1::999", "10.1.2.88"], C1).unwrap(),
        vec![
            "10.1.2.88/24 gw 10.1.2.1",
            "2001:db8:1::999/48 gw 2001:db8:1::1",
            "10.1.3.2/24 gw 10.1.3.1"
        ]
    );
}

#[test]
fn requesting_the_gateway_is_refused() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(
        err_msg(alloc(&mut store, &s, &["10.1.2.1"], C1)),
        "failed to allocate for range 0: requested ip 10.1.2.1 is subnet's gateway"
    );
    assert!(store.files.is_empty());
}

#[test]
fn requesting_a_taken_address_is_refused() {
    let mut store = MemStore::default();
    store.put("10.1.2.5", "other\r\neth0");
    let s =
        sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24","rangeEnd":"10.1.3.50"}]]"#);
    assert_eq!(
        err_msg(alloc(&mut store, &s, &["10.1.3.7", "10.1.2.5"], C1)),
        "failed to allocate for range 0: requested IP address 10.1.2.5 is not available in range set 10.1.2.1-10.1.2.254"
    );
    // Nothing of this ADD is left behind.
    assert_eq!(store.files.keys().collect::<Vec<_>>(), vec!["10.1.2.5"]);
    assert_eq!(store.files["10.1.2.5"], "other\r\neth0");
}

#[test]
fn unfulfilled_requests_fail_and_release_everything() {
    let mut store = MemStore::default();
    let s =
        sets(r#"[[{"subnet":"10.1.2.0/24","rangeEnd":"10.1.2.50"}],[{"subnet":"10.1.3.0/24"}]]"#);
    // Outside every range (inside the subnet but after rangeEnd), and a second
    // address for a set that already took one.
    assert_eq!(
        err_msg(alloc(
            &mut store,
            &s,
            &["10.1.2.88", "10.1.3.7", "10.1.3.8"],
            C1
        )),
        "failed to allocate all requested IPs: 10.1.2.88 10.1.3.8"
    );
    let reservations: Vec<_> = store
        .files
        .keys()
        .filter(|k| !k.starts_with("last"))
        .collect();
    assert!(reservations.is_empty(), "{reservations:?}");
}

#[test]
fn a_requested_address_skips_the_duplicate_check_like_the_reference() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    alloc(&mut store, &s, &[], C1).unwrap();
    assert_eq!(
        alloc(&mut store, &s, &["10.1.2.9"], C1).unwrap(),
        vec!["10.1.2.9/24 gw 10.1.2.1"]
    );
}

#[test]
fn rollback_releases_only_what_this_add_reserved() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/30"}]]"#);
    // c1 already holds 10.1.2.2; a requested-address ADD for it then fails in set 1.
    store.put("10.1.2.2", "c1\r\neth0");
    store.put("10.1.3.2", "other\r\neth0");
    assert!(err_msg(alloc(&mut store, &s, &["10.1.2.9"], C1))
        .starts_with("failed to allocate for range 1"));
    assert!(store.files.contains_key("10.1.2.2"));
    assert!(!store.files.contains_key("10.1.2.9"));
}

// --- duplicates -------------------------------------------------------------------

#[test]
fn a_second_add_for_the_same_attachment_is_refused() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    alloc(&mut store, &s, &[], C1).unwrap();
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], C1)),
        "failed to allocate for range 0: 10.1.2.2 has been allocated to c1, duplicate allocation is not allowed"
    );
    // Another interface of the same container is a different attachment.
    assert_eq!(
        alloc(&mut store, &s, &[], owner("c1", "net1")).unwrap(),
        vec!["10.1.2.3/24 gw 10.1.2.1"]
    );
}

#[test]
fn the_duplicate_check_sees_only_linked_reservations() {
    // Reservations another writer made (no owner link) are not read by ADD; a
    // documented difference from the reference, which reads every file.
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let mut store = MemStore::default();
    store.put("10.1.2.7", "c1");
    store.put("10.1.2.8", "  c1\r\neth0\n");
    assert_eq!(
        alloc(&mut store, &s, &[], C1).unwrap(),
        vec!["10.1.2.2/24 gw 10.1.2.1"]
    );
    assert_eq!(store.reads.get(), 0);
    // A stale link (its reservation released by another writer, the address
    // then taken by someone else) is not a duplicate either.
    let link = owner_link_name(&C1.record(), 0);
    store.files.remove("10.1.2.2");
    store.put("10.1.2.2", "c9\r\neth0");
    assert_eq!(
        alloc(&mut store, &s, &[], C1).unwrap(),
        vec!["10.1.2.3/24 gw 10.1.2.1"]
    );
    assert_eq!(store.links.get(&link).map(String::as_str), Some("10.1.2.3"));
}

#[test]
fn the_duplicate_check_reads_only_the_attachments_own_links() {
    let mut store = MemStore::default();
    store.put("10.1.2.5", "other\r\neth0");
    store.put("lock", "");
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}]]"#);
    assert_eq!(
        alloc(&mut store, &s, &[], C1).unwrap(),
        vec!["10.1.2.2/24 gw 10.1.2.1", "10.1.3.2/24 gw 10.1.3.1"]
    );
    assert_eq!(store.reads.get(), 0);
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], C1)),
        "failed to allocate for range 0: 10.1.2.2 has been allocated to c1, duplicate allocation is not allowed"
    );
    // One read: the reservation c1's link for set 0 points at.
    assert_eq!(store.reads.get(), 1);
    // Links for the second set are checked per set, after the first set's
    // allocation was rolled back.
    store.links.remove(&owner_link_name(&C1.record(), 0));
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], C1)),
        "failed to allocate for range 1: 10.1.3.2 has been allocated to c1, duplicate allocation is not allowed"
    );
    assert_eq!(
        store
            .files
            .keys()
            .filter(|k| k.starts_with("10.1.2."))
            .count(),
        2,
        "10.1.2.5 and c1's 10.1.2.2; the rolled-back 10.1.2.3 is gone"
    );
}

#[test]
fn no_add_lists_the_directory() {
    let mut store = MemStore {
        fail_entries: Some(ErrorKind::PermissionDenied),
        ..MemStore::default()
    };
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    assert_eq!(
        alloc(&mut store, &s, &["10.1.2.9"], C1).unwrap(),
        vec!["10.1.2.9/24 gw 10.1.2.1"]
    );
    assert_eq!(
        alloc(&mut store, &s, &[], owner("c2", "eth0")).unwrap(),
        vec!["10.1.2.10/24 gw 10.1.2.1"]
    );
}

// --- all or nothing -----------------------------------------------------------------

#[test]
fn a_failing_set_releases_the_sets_before_it() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let s = sets(
        r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8::/64"}],[{"subnet":"10.1.3.0/30"}]]"#,
    );
    dir.write("10.1.3.2", "other\r\neth0");
    assert_eq!(
        err_msg(alloc(&mut store, &s, &[], C1)),
        "failed to allocate for range 2: no IP addresses available in range set: 10.1.3.1-10.1.3.2"
    );
    assert_eq!(
        dir.names(),
        vec!["10.1.3.2", "last_reserved_ip.0", "last_reserved_ip.1"]
    );
}

#[test]
fn a_failed_cursor_write_gives_the_address_back() {
    let mut store = MemStore {
        fail_set_last: Some(ErrorKind::PermissionDenied),
        ..MemStore::default()
    };
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let e = alloc(&mut store, &s, &[], C1).unwrap_err();
    assert!(matches!(
        &e,
        AddError::Range {
            index: 0,
            source: AllocError::Store(_)
        }
    ));
    assert_eq!(
        e.to_string(),
        "failed to allocate for range 0: rename last_reserved_ip.0: permission denied"
    );
    assert!(store.files.is_empty());
}

#[test]
fn a_store_error_on_reserve_is_returned() {
    let mut store = MemStore {
        fail_reserve: Some(ErrorKind::Interrupted),
        ..MemStore::default()
    };
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let e = alloc(&mut store, &s, &[], C1).unwrap_err();
    let AddError::Range {
        source: AllocError::Store(se),
        ..
    } = &e
    else {
        panic!("{e}");
    };
    assert!(se.is_transient());
}

// --- release (DEL) ------------------------------------------------------------------

fn files(store: &MemStore) -> Vec<&str> {
    store.files.keys().map(String::as_str).collect()
}

#[test]
fn release_removes_every_full_match_and_nothing_else() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.put("2001:db8::2", " c1\r\neth0\n");
    store.put("10.1.2.3", "c1\r\nnet1");
    store.put("10.1.2.4", "c2\r\neth0");
    store.put("last_reserved_ip.0", "10.1.2.4");
    store.put("lock", "");
    let report = release(&mut store, C1, 1).unwrap();
    assert!(report.errors.is_empty());
    let released: Vec<&str> = report.released.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(released, vec!["10.1.2.2", "2001:db8::2"]);
    assert_eq!(
        files(&store),
        vec!["10.1.2.3", "10.1.2.4", "last_reserved_ip.0", "lock"]
    );
}

#[test]
fn release_falls_back_to_legacy_files_only_without_full_matches() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1");
    store.put("10.1.2.3", "c1\r\neth0");
    release(&mut store, C1, 1).unwrap();
    // The legacy file may belong to another interface of c1: kept.
    assert_eq!(files(&store), vec!["10.1.2.2"]);
    release(&mut store, C1, 1).unwrap();
    assert!(store.files.is_empty());
}

#[test]
fn release_of_an_unknown_owner_is_success() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c2\r\neth0");
    let report = release(&mut store, C1, 1).unwrap();
    assert!(report.released.is_empty() && report.errors.is_empty());
    assert_eq!(files(&store), vec!["10.1.2.2"]);
}

#[test]
fn release_uses_the_owner_links_when_every_set_has_one() {
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}]]"#);
    let mut store = MemStore::default();
    alloc(&mut store, &s, &[], C1).unwrap();
    alloc(&mut store, &s, &[], C2).unwrap();
    // No walk: listing would fail.
    store.fail_entries = Some(ErrorKind::PermissionDenied);
    let report = release(&mut store, C1, 2).unwrap();
    let released: Vec<&str> = report.released.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(released, ["10.1.2.2", "10.1.3.2"]);
    assert!(report.errors.is_empty());
    assert_eq!(store.links.len(), 2, "only c2's links are left");
    assert!(store.files.contains_key("10.1.2.3") && store.files.contains_key("10.1.3.3"));
}

#[test]
fn release_walks_when_a_set_has_no_link() {
    // A crash between a reservation and its link, or a reservation made by
    // the reference binary: the walk finds it.
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}]]"#);
    let mut store = MemStore::default();
    alloc(&mut store, &s, &[], C1).unwrap();
    store.links.remove(&owner_link_name(&C1.record(), 1));
    let report = release(&mut store, C1, 2).unwrap();
    let released: Vec<&str> = report.released.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(released, ["10.1.2.2", "10.1.3.2"]);
    assert!(store.links.is_empty());
    // A link pointing at someone else's reservation (a stale one) is not
    // trusted either, and goes.
    alloc(&mut store, &s, &[], C1).unwrap();
    let link0 = owner_link_name(&C1.record(), 0);
    store.links.insert(link0, "10.1.2.9".into());
    store.put("10.1.2.9", "c9\r\neth0");
    let report = release(&mut store, C1, 2).unwrap();
    let released: Vec<&str> = report.released.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(released, ["10.1.2.3", "10.1.3.3"]);
    assert!(store.links.is_empty());
    assert!(store.files.contains_key("10.1.2.9"));
}

#[test]
fn release_keeps_going_past_errors() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.fail_release = Some(ErrorKind::PermissionDenied);
    let report = release(&mut store, C1, 1).unwrap();
    assert_eq!(report.errors.len(), 1);
    store.fail_release = None;
    store.fail_read = Some(ErrorKind::Interrupted);
    let report = release(&mut store, C1, 1).unwrap();
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].is_transient());
}

// --- find (CHECK) -------------------------------------------------------------------

#[test]
fn find_uses_a_link_then_walks() {
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let mut store = MemStore::default();
    alloc(&mut store, &s, &[], C1).unwrap();
    store.fail_entries = Some(ErrorKind::PermissionDenied);
    assert!(find(&store, C1, 1).unwrap());
    assert!(find(&store, C2, 1).is_err(), "no link: walks");
}

#[test]
fn find_matches_full_or_legacy_records() {
    let mut store = MemStore::default();
    assert!(!find(&store, C1, 1).unwrap());
    store.put("10.1.2.2", "c1\r\nnet1");
    assert!(!find(&store, C1, 1).unwrap());
    store.put("10.1.2.3", "c1");
    assert!(find(&store, C1, 1).unwrap());
    store.put("10.1.2.4", "c1\r\neth0");
    assert!(find(&store, C1, 1).unwrap());
}

#[test]
fn find_reports_a_read_error_only_when_nothing_matched() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.fail_read = Some(ErrorKind::PermissionDenied);
    assert_eq!(find(&store, C1, 1).unwrap_err().op, "read");
    store.fail_entries = Some(ErrorKind::NotFound);
    assert_eq!(find(&store, C1, 1).unwrap_err().op, "list");
}

// --- GC -----------------------------------------------------------------------------

fn valid(list: &[(&str, &str)]) -> Vec<ValidAttachment> {
    list.iter()
        .map(|(c, i)| ValidAttachment {
            container_id: c.to_string(),
            ifname: i.to_string(),
        })
        .collect()
}

#[test]
fn gc_releases_what_is_not_valid() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.put("10.1.2.3", "c1\r\nnet1");
    store.put("10.1.2.4", "c2\r\neth0\n");
    store.put("10.1.2.5", "c3");
    store.put("10.1.2.6", "c4");
    store.put("10.1.2.7", "");
    store.put("lock", "");
    store.put("last_reserved_ip.0", "10.1.2.7");
    store.put("junk", "c9\r\neth0");
    let report = collect_garbage(
        &mut store,
        &valid(&[("c1", "eth0"), ("c2", "eth0"), ("c3", "eth5")]),
    )
    .unwrap();
    assert!(report.errors.is_empty());
    let released: Vec<(&str, &str)> = report
        .released
        .iter()
        .map(|(e, o)| (e.name.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        released,
        vec![
            ("10.1.2.3", "c1\r\nnet1"),
            ("10.1.2.6", "c4"),
            ("10.1.2.7", "")
        ]
    );
    // A legacy file stays while any attachment of its container is valid.
    assert_eq!(
        files(&store),
        vec![
            "10.1.2.2",
            "10.1.2.4",
            "10.1.2.5",
            "junk",
            "last_reserved_ip.0",
            "lock"
        ]
    );
}

#[test]
fn gc_removes_owner_links_whose_reservation_is_gone_or_foreign() {
    let s = sets(r#"[[{"subnet":"10.1.2.0/24"}]]"#);
    let mut store = MemStore::default();
    alloc(&mut store, &s, &[], C1).unwrap();
    alloc(&mut store, &s, &[], C2).unwrap();
    // A link whose reservation another writer released and gave to c9.
    let c3 = owner("c3", "eth0");
    store
        .links
        .insert(owner_link_name(&c3.record(), 0), "10.1.2.9".into());
    store.put("10.1.2.9", "c9\r\neth0");
    let report = collect_garbage(&mut store, &valid(&[("c2", "eth0"), ("c9", "eth0")])).unwrap();
    assert!(report.errors.is_empty());
    let links: Vec<&String> = store.links.keys().collect();
    assert_eq!(links, [&owner_link_name(&C2.record(), 0)]);
    assert_eq!(
        files(&store),
        vec!["10.1.2.3", "10.1.2.9", "last_reserved_ip.0"]
    );
}

#[test]
fn gc_with_an_empty_list_releases_every_reservation() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.put("2001:db8::2", "c2");
    store.put("lock", "");
    store.put("last_reserved_ip.1", "2001:db8::2");
    let report = collect_garbage(&mut store, &[]).unwrap();
    assert_eq!(report.released.len(), 2);
    assert_eq!(files(&store), vec!["last_reserved_ip.1", "lock"]);
}

#[test]
fn gc_keeps_files_it_cannot_read_and_goes_on() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c1\r\neth0");
    store.fail_read = Some(ErrorKind::PermissionDenied);
    let report = collect_garbage(&mut store, &[]).unwrap();
    assert_eq!(report.errors.len(), 1);
    assert_eq!(files(&store), vec!["10.1.2.2"]);
    store.fail_read = None;
    store.fail_release = Some(ErrorKind::PermissionDenied);
    let report = collect_garbage(&mut store, &[]).unwrap();
    assert_eq!((report.released.len(), report.errors.len()), (0, 1));
}

// --- STATUS -------------------------------------------------------------------------

#[test]
fn first_exhausted_finds_a_full_set() {
    let mut store = MemStore::default();
    let s =
        sets(r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/29","rangeStart":"10.1.3.4"}]]"#);
    assert_eq!(first_exhausted(&store, &s).unwrap().map(|(i, _)| i), None);
    // Set 1 is .4-.6 (gateway .1 outside): three addresses.
    for last in 4..=5 {
        store.put(&format!("10.1.3.{last}"), "x\r\ny");
    }
    // A foreign or non-canonical name does not count.
    store.put("::ffff:10.1.3.6", "x\r\ny");
    assert_eq!(first_exhausted(&store, &s).unwrap().map(|(i, _)| i), None);
    store.put("10.1.3.6", "x\r\ny");
    assert_eq!(
        first_exhausted(&store, &s).unwrap().map(|(i, _)| i),
        Some(1)
    );
}

#[test]
fn first_exhausted_does_not_count_the_gateway() {
    let mut store = MemStore::default();
    let s = sets(r#"[[{"subnet":"10.1.2.0/30"}]]"#);
    store.put("10.1.2.1", "stray");
    assert_eq!(first_exhausted(&store, &s).unwrap().map(|(i, _)| i), None);
    store.put("10.1.2.2", "x\r\ny");
    assert_eq!(
        first_exhausted(&store, &s).unwrap().map(|(i, _)| i),
        Some(0)
    );
    // Agrees with the allocator.
    assert!(err_msg(alloc(&mut store, &s, &[], C1)).contains("no IP addresses available"));
}

#[test]
fn first_exhausted_handles_huge_and_empty_sets() {
    let store = MemStore::default();
    let s = sets(r#"[[{"subnet":"::/1","rangeStart":"::"}]]"#);
    assert_eq!(first_exhausted(&store, &s).unwrap().map(|(i, _)| i), None);
    let s = sets(r#"[[{"subnet":"10.1.3.0/24","rangeStart":"10.1.3.1","rangeEnd":"10.1.3.1"}]]"#);
    assert_eq!(
        first_exhausted(&store, &s).unwrap().map(|(i, _)| i),
        Some(0)
    );
}
