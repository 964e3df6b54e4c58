use super::*;
use crate::testutil::{ip, TempDir};

#[test]
fn owner_record_is_the_reference_byte_format() {
    assert_eq!(owner_record("dummy", "eth0"), "dummy\r\neth0");
    // The reference trims the ID (not the interface name).
    assert_eq!(owner_record("   dummy\n ", "eth0"), "dummy\r\neth0");
}

#[test]
fn reserve_creates_the_file_exclusively_with_the_record() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    assert!(store.reserve(ip("10.1.2.2"), "dummy\r\neth0").unwrap());
    assert_eq!(dir.read("10.1.2.2"), "dummy\r\neth0");
    // Taken: refused, content untouched.
    assert!(!store.reserve(ip("10.1.2.2"), "other\r\neth0").unwrap());
    assert_eq!(dir.read("10.1.2.2"), "dummy\r\neth0");
    assert!(store.reserve(ip("2001:db8:1::2"), "dummy\r\neth0").unwrap());
    assert_eq!(dir.read("2001:db8:1::2"), "dummy\r\neth0");
}

#[cfg(unix)]
#[test]
fn reservations_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    store.reserve(ip("10.1.2.2"), "c\r\ne").unwrap();
    let mode = std::fs::metadata(dir.path().join("10.1.2.2"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn reserve_in_a_missing_directory_fails_with_the_file_named() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path().join("missing"));
    let e = store.reserve(ip("10.1.2.2"), "c\r\ne").unwrap_err();
    assert_eq!(e.op, "open");
    assert_eq!(e.name, "10.1.2.2");
    assert!(e.to_string().starts_with("open 10.1.2.2: "), "{e}");
    assert!(!e.is_transient());
}

#[test]
fn last_reserved_is_replaced_atomically_and_holds_only_the_address() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    assert_eq!(store.last_reserved(0).unwrap(), None);
    store.set_last_reserved(0, ip("10.1.2.2")).unwrap();
    store.set_last_reserved(1, ip("2001:db8:1::2")).unwrap();
    assert_eq!(dir.read("last_reserved_ip.0"), "10.1.2.2");
    assert_eq!(dir.read("last_reserved_ip.1"), "2001:db8:1::2");
    store.set_last_reserved(0, ip("10.1.2.3")).unwrap();
    assert_eq!(dir.read("last_reserved_ip.0"), "10.1.2.3");
    assert_eq!(store.last_reserved(0).unwrap(), Some(ip("10.1.2.3")));
    assert_eq!(store.last_reserved(1).unwrap(), Some(ip("2001:db8:1::2")));
    // No temp file is left behind.
    assert_eq!(
        dir.names(),
        vec!["last_reserved_ip.0", "last_reserved_ip.1"]
    );
}

#[test]
fn last_reserved_tolerates_junk() {
    let dir = TempDir::new();
    let store = DiskStore::new(dir.path());
    dir.write("last_reserved_ip.0", "10.1.2.9\n");
    assert_eq!(store.last_reserved(0).unwrap(), Some(ip("10.1.2.9")));
    dir.write("last_reserved_ip.0", "");
    assert_eq!(store.last_reserved(0).unwrap(), None);
    dir.write("last_reserved_ip.0", "garbage");
    assert_eq!(store.last_reserved(0).unwrap(), None);
    dir.write("last_reserved_ip.0", "::ffff:10.1.2.9");
    assert_eq!(store.last_reserved(0).unwrap(), Some(ip("10.1.2.9")));
}

#[test]
fn entries_are_the_address_named_files_sorted() {
    let dir = TempDir::new();
    for name in [
        "lock",
        "last_reserved_ip.0",
        ".last_reserved_ip.0.tmp",
        "10.1.2.3",
        "10.1.2.10",
        "2001:db8::2",
        "::ffff:10.1.2.4",
        "notes.txt",
    ] {
        dir.write(name, "x");
    }
    std::fs::create_dir(dir.path().join("10.9.9.9")).unwrap();
    let store = DiskStore::new(dir.path());
    let entries = store.entries().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["10.1.2.10", "10.1.2.3", "2001:db8::2", "::ffff:10.1.2.4"]
    );
    assert_eq!(entries[3].ip, ip("10.1.2.4"));
    assert!(entries[0].is_canonical());
    assert!(!entries[3].is_canonical());
}

#[test]
fn entries_of_a_missing_directory_fail() {
    let dir = TempDir::new();
    let store = DiskStore::new(dir.path().join("missing"));
    let e = store.entries().unwrap_err();
    assert_eq!((e.op, e.name.as_str()), ("list", "/"));
}

#[test]
fn read_and_release() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    dir.write("10.1.2.3", "  c\r\ne \n");
    assert_eq!(
        store.read("10.1.2.3").unwrap().as_deref(),
        Some("  c\r\ne \n")
    );
    assert_eq!(store.read("10.1.2.4").unwrap(), None);
    store.release("10.1.2.3").unwrap();
    assert!(!dir.exists("10.1.2.3"));
    // Releasing what is gone is fine (DEL is idempotent).
    store.release("10.1.2.3").unwrap();
}

#[test]
fn reading_a_directory_is_an_error() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path().join("10.1.2.3")).unwrap();
    let store = DiskStore::new(dir.path());
    let e = store.read("10.1.2.3").unwrap_err();
    assert_eq!(e.op, "read");
}

#[test]
fn transient_errors_are_recognised() {
    for (kind, transient) in [
        (io::ErrorKind::Interrupted, true),
        (io::ErrorKind::WouldBlock, true),
        (io::ErrorKind::TimedOut, true),
        (io::ErrorKind::ResourceBusy, true),
        (io::ErrorKind::PermissionDenied, false),
        (io::ErrorKind::NotFound, false),
    ] {
        let e = StoreError::new("open", "x", io::Error::from(kind));
        assert_eq!(e.is_transient(), transient, "{kind:?}");
    }
}

#[test]
fn owner_link_names_are_dot_files_with_hash_and_set() {
    let a = owner_link_name("c1\r\neth0", 0);
    assert!(a.starts_with(".owner.") && a.ends_with(".0") && a.len() == ".owner.".len() + 16 + 2);
    assert_eq!(owner_link_set(&a), Some(0));
    assert_eq!(owner_link_set(&owner_link_name("c1\r\neth0", 12)), Some(12));
    assert_ne!(a, owner_link_name("c1\r\neth1", 0));
    assert_ne!(a, owner_link_name("c1\r\neth0", 1));
    assert!(
        crate::ip::parse_ip(&a).is_none(),
        "never taken for a reservation"
    );
    for other in [".owner.x.0", ".owner.0123456789abcdef", "lock", "10.1.2.2"] {
        assert_eq!(owner_link_set(other), None, "{other}");
    }
}

#[test]
fn owner_links_are_symbolic_links_to_the_reservation() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let link = owner_link_name("c\r\neth0", 0);
    assert_eq!(store.owner_link(&link).unwrap(), None);
    store.reserve(ip("10.1.2.2"), "c\r\neth0").unwrap();
    store.set_owner_link(&link, "10.1.2.2").unwrap();
    assert_eq!(
        store.owner_link(&link).unwrap().as_deref(),
        Some("10.1.2.2")
    );
    // Read through the link, the content is the owner record: the
    // reference's release-by-owner removes the link too.
    assert_eq!(dir.read(&link), "c\r\neth0");
    // Replaced, not refused; a foreign regular file of that name is no link.
    store.set_owner_link(&link, "10.1.2.3").unwrap();
    assert_eq!(
        store.owner_link(&link).unwrap().as_deref(),
        Some("10.1.2.3")
    );
    dir.write(".owner.0123456789abcdef.1", "junk");
    assert_eq!(store.owner_link(".owner.0123456789abcdef.1").unwrap(), None);
    let mut expected = vec![".owner.0123456789abcdef.1".to_string(), link.clone()];
    expected.sort();
    assert_eq!(store.owner_links().unwrap(), expected);
    assert!(store
        .entries()
        .unwrap()
        .iter()
        .all(|e| e.name == "10.1.2.2"));
    store.release(&link).unwrap();
    assert_eq!(store.owner_link(&link).unwrap(), None);
    assert!(
        dir.exists("10.1.2.2"),
        "removing the link leaves the reservation"
    );
}

#[test]
fn a_taken_address_costs_no_temporary_file() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    dir.write("10.1.2.2", "other\r\neth0");
    assert!(!store.reserve(ip("10.1.2.2"), "c\r\neth0").unwrap());
    assert_eq!(dir.names(), vec!["10.1.2.2"]);
}
