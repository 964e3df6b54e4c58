use std::cell::RefCell;
use std::io::ErrorKind;

use super::*;
use crate::store::mem::MemStore;
use crate::store::DiskStore;
use crate::testutil::TempDir;

#[derive(Default)]
struct FakeHost {
    logs: RefCell<Vec<(LogLevel, String)>>,
    resolv: Option<Result<Dns, String>>,
    resolv_asked: RefCell<Vec<String>>,
}

impl HostServices for FakeHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn read_resolv_conf(&self, path: &str) -> Result<Dns, String> {
        self.resolv_asked.borrow_mut().push(path.to_string());
        self.resolv
            .clone()
            .unwrap_or_else(|| Err(format!("open {path}: no such file or directory")))
    }
}

const CONF: &str = r#"{
    "cniVersion": "1.1.0",
    "name": "mynet",
    "type": "ipvlan",
    "master": "foo0",
    "ipam": {
        "type": "host-local",
        "dataDir": "/var/lib/cni/networks",
        "resolvConf": "/etc/test-resolv.conf",
        "ranges": [
            [{"subnet": "10.1.2.0/24"}, {"subnet": "10.2.2.0/24"}],
            [{"subnet": "2001:db8:1::0/64"}]
        ],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "::/0"},
            {"dst": "192.168.0.0/16", "gw": "1.1.1.1"},
            {"dst": "2001:db8:2::0/64", "gw": "2001:db8:3::1"}
        ]
    }
}"#;

const SMALL: &str =
    r#"{"cniVersion":"1.1.0","name":"small","ipam":{"type":"host-local","subnet":"10.1.2.0/30"}}"#;

fn call<'a>(verb: Verb, cid: &'a str, ifname: &'a str, config: &'a str) -> Call<'a> {
    Call {
        verb,
        container_id: cid,
        ifname,
        cni_args: &[],
        config,
        valid_attachments: None,
    }
}

fn resolver() -> FakeHost {
    FakeHost {
        resolv: Some(Ok(Dns {
            nameservers: vec!["192.0.2.3".into()],
            ..Dns::default()
        })),
        ..FakeHost::default()
    }
}

fn route(dst: &str, gw: Option<&str>) -> Route {
    Route {
        dst: dst.into(),
        gw: gw.map(Into::into),
        mtu: None,
        advmss: None,
        priority: None,
        table: None,
        scope: None,
    }
}

#[test]
fn add_then_del_matches_the_reference_test() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let host = resolver();
    let result = serve(&call(Verb::Add, "dummy", "eth0", CONF), &mut store, &host)
        .unwrap()
        .unwrap();
    assert_eq!(
        result,
        IpamResult {
            ips: vec![
                IpConfig {
                    address: "10.1.2.2/24".into(),
                    gateway: "10.1.2.1".into()
                },
                IpConfig {
                    address: "2001:db8:1::2/64".into(),
                    gateway: "2001:db8:1::1".into()
                },
            ],
            routes: vec![
                route("0.0.0.0/0", None),
                route("::/0", None),
                route("192.168.0.0/16", Some("1.1.1.1")),
                route("2001:db8:2::/64", Some("2001:db8:3::1")),
            ],
            dns: Some(Dns {
                nameservers: vec!["192.0.2.3".into()],
                ..Dns::default()
            }),
        }
    );
    assert_eq!(*host.resolv_asked.borrow(), vec!["/etc/test-resolv.conf"]);
    assert_eq!(dir.read("10.1.2.2"), "dummy\r\neth0");
    assert_eq!(dir.read("2001:db8:1::2"), "dummy\r\neth0");
    assert_eq!(dir.read("last_reserved_ip.0"), "10.1.2.2");
    assert_eq!(dir.read("last_reserved_ip.1"), "2001:db8:1::2");
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(l, m)| *l == LogLevel::Info
            && m == "reserved 10.1.2.2 for dummy/eth0 from range set 0"));

    assert_eq!(
        serve(&call(Verb::Check, "dummy", "eth0", CONF), &mut store, &host),
        Ok(None)
    );
    assert_eq!(
        serve(&call(Verb::Del, "dummy", "eth0", CONF), &mut store, &host),
        Ok(None)
    );
    assert_eq!(
        dir.names(),
        vec!["last_reserved_ip.0", "last_reserved_ip.1"]
    );
    // DEL again: nothing to do, still success.
    assert_eq!(
        serve(&call(Verb::Del, "dummy", "eth0", CONF), &mut store, &host),
        Ok(None)
    );
}

#[test]
fn add_twice_for_one_attachment_fails_and_different_interfaces_work() {
    let mut store = MemStore::default();
    let host = FakeHost::default();
    let add = |store: &mut MemStore, ifname: &str| {
        serve(&call(Verb::Add, "dummy", ifname, SMALL), store, &host)
    };
    let first = add(&mut store, "eth0").unwrap().unwrap();
    assert_eq!(first.ips[0].address, "10.1.2.2/30");
    assert_eq!(first.dns, None);
    assert!(first.routes.is_empty());
    let e = add(&mut store, "eth0").unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.msg,
        "failed to allocate for range 0: 10.1.2.2 has been allocated to dummy, duplicate allocation is not allowed"
    );
    assert!(e.details.contains("DEL it before adding it again"));
    // The /30 is now full for anyone else.
    let e = add(&mut store, "net1").unwrap_err();
    assert_eq!(
        e.msg,
        "failed to allocate for range 0: no IP addresses available in range set: 10.1.2.1-10.1.2.2"
    );
}

#[test]
fn whitespace_around_the_container_id_is_ignored() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let host = FakeHost::default();
    serve(
        &call(Verb::Add, "   dummy\n ", "eth0", SMALL),
        &mut store,
        &host,
    )
    .unwrap();
    assert_eq!(dir.read("10.1.2.2"), "dummy\r\neth0");
    serve(
        &call(Verb::Del, "   dummy\n ", "eth0", SMALL),
        &mut store,
        &host,
    )
    .unwrap();
    assert!(!dir.exists("10.1.2.2"));
}

#[test]
fn add_with_a_bad_resolv_conf_changes_nothing() {
    let mut store = MemStore::default();
    let host = FakeHost::default();
    let e = serve(&call(Verb::Add, "dummy", "eth0", CONF), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.msg,
        "open /etc/test-resolv.conf: no such file or directory"
    );
    assert_eq!(
        e.details,
        r#"reading ipam.resolvConf "/etc/test-resolv.conf""#
    );
    assert!(store.files.is_empty());
}

#[test]
fn an_empty_resolv_conf_gives_no_dns() {
    let mut store = MemStore::default();
    let host = FakeHost {
        resolv: Some(Ok(Dns::default())),
        ..FakeHost::default()
    };
    let r = serve(&call(Verb::Add, "dummy", "eth0", CONF), &mut store, &host)
        .unwrap()
        .unwrap();
    assert_eq!(r.dns, None);
    assert!(Dns {
        domain: Some(String::new()),
        ..Dns::default()
    }
    .is_empty());
}

#[test]
fn requested_ips_from_every_source() {
    let mut store = MemStore::default();
    let host = FakeHost::default();
    let config = r#"{"cniVersion":"1.0.0","name":"n",
        "args":{"cni":{"ips":["10.1.3.77"]}},
        "runtimeConfig":{"ips":["2001:db8::9/64"]},
        "ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}],[{"subnet":"2001:db8::/64"}]]}}"#;
    let args = vec![
        ("IgnoreUnknown".to_string(), "1".to_string()),
        ("IP".to_string(), "10.1.2.88/24".to_string()),
        ("FOO".to_string(), "bar".to_string()),
    ];
    let c = Call {
        cni_args: &args,
        ..call(Verb::Add, "dummy", "eth0", config)
    };
    let r = serve(&c, &mut store, &host).unwrap().unwrap();
    let addrs: Vec<&str> = r.ips.iter().map(|i| i.address.as_str()).collect();
    assert_eq!(
        addrs,
        vec!["10.1.2.88/24", "10.1.3.77/24", "2001:db8::9/64"]
    );
}

#[test]
fn unfulfilled_requests_fail_with_the_reference_message() {
    let mut store = MemStore::default();
    let host = FakeHost::default();
    let config = r#"{"cniVersion":"1.0.0","name":"n","args":{"cni":{"ips":["10.1.2.88","10.1.2.77"]}},
        "ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}]]}}"#;
    let e = serve(&call(Verb::Add, "dummy", "eth0", config), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(e.msg, "failed to allocate all requested IPs: 10.1.2.77");
    assert!(store
        .files
        .keys()
        .all(|k| k.starts_with("last_reserved_ip.")));
}

#[test]
fn config_and_args_errors_reach_every_verb() {
    let host = FakeHost::default();
    let broken = r#"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local"}}"#;
    for verb in [Verb::Add, Verb::Del, Verb::Check, Verb::Gc, Verb::Status] {
        let mut store = MemStore::default();
        let e = serve(&call(verb, "c", "eth0", broken), &mut store, &host).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (ErrorCode::InvalidNetworkConfig, "no IP ranges specified"),
            "{verb:?}"
        );
    }
    let args = vec![("FOO".to_string(), "1".to_string())];
    let c = Call {
        cni_args: &args,
        ..call(Verb::Del, "c", "eth0", SMALL)
    };
    let e = serve(&c, &mut MemStore::default(), &host).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            ErrorCode::InvalidEnvironment,
            r#"ARGS: unknown args ["FOO=1"]"#
        )
    );
}

#[test]
fn transient_store_errors_ask_for_a_retry() {
    let host = FakeHost::default();
    let mut store = MemStore {
        fail_reserve: Some(ErrorKind::ResourceBusy),
        ..MemStore::default()
    };
    let e = serve(&call(Verb::Add, "c", "eth0", SMALL), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::TryAgainLater);
    let mut store = MemStore {
        fail_reserve: Some(ErrorKind::PermissionDenied),
        ..MemStore::default()
    };
    let e = serve(&call(Verb::Add, "c", "eth0", SMALL), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(e
        .msg
        .starts_with("failed to allocate for range 0: open 10.1.2.2: "));
}

#[test]
fn del_reports_errors_after_trying_everything() {
    let host = FakeHost::default();
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c\r\neth0");
    store.put("10.1.2.3", "c\r\neth0");
    store.fail_release = Some(ErrorKind::PermissionDenied);
    let e = serve(&call(Verb::Del, "c", "eth0", SMALL), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.msg,
        "remove 10.1.2.2: permission denied; remove 10.1.2.3: permission denied"
    );
    store.fail_release = Some(ErrorKind::Interrupted);
    let e = serve(&call(Verb::Del, "c", "eth0", SMALL), &mut store, &host).unwrap_err();
    assert_eq!(e.code, ErrorCode::TryAgainLater);
}

#[test]
fn del_releases_legacy_files() {
    let dir = TempDir::new();
    dir.write("10.1.2.2", "dummy");
    dir.write("lock", "");
    let mut store = DiskStore::new(dir.path());
    serve(
        &call(Verb::Del, "dummy", "eth0", SMALL),
        &mut store,
        &FakeHost::default(),
    )
    .unwrap();
    assert_eq!(dir.names(), vec!["lock"]);
}

#[test]
fn check_fails_without_a_reservation() {
    let host = FakeHost::default();
    let mut store = MemStore::default();
    let e = serve(
        &call(Verb::Check, "dummy", "eth0", SMALL),
        &mut store,
        &host,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.msg,
        "host-local: Failed to find address added by container dummy"
    );
    // Any address will do, even outside today's ranges; and legacy files count.
    store.put("10.9.9.9", "dummy");
    assert_eq!(
        serve(
            &call(Verb::Check, "dummy", "eth0", SMALL),
            &mut store,
            &host
        ),
        Ok(None)
    );
}

#[test]
fn gc_without_a_list_does_nothing() {
    let host = FakeHost::default();
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c\r\neth0");
    let c = call(Verb::Gc, "", "", SMALL);
    assert_eq!(serve(&c, &mut store, &host), Ok(None));
    assert!(store.files.contains_key("10.1.2.2"));
}

#[test]
fn gc_releases_stale_reservations_on_disk() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path());
    let host = FakeHost::default();
    for (cid, ifname) in [("a", "eth0"), ("b", "eth0"), ("c", "eth0")] {
        serve(&call(Verb::Add, cid, ifname, CONF), &mut store, &resolver()).unwrap();
    }
    dir.write("lock", "");
    dir.write("10.2.2.9", "legacy-b");
    dir.write("notes", "a\r\neth0");
    let valid = vec![
        ValidAttachment {
            container_id: "b".into(),
            ifname: "eth0".into(),
        },
        ValidAttachment {
            container_id: "legacy-b".into(),
            ifname: "net1".into(),
        },
    ];
    let c = Call {
        valid_attachments: Some(&valid),
        ..call(Verb::Gc, "", "", CONF)
    };
    assert_eq!(serve(&c, &mut store, &host), Ok(None));
    // b keeps its owner links; those of a and c went with their addresses.
    let b = crate::store::owner_record("b", "eth0");
    let (b0, b1) = (
        crate::store::owner_link_name(&b, 0),
        crate::store::owner_link_name(&b, 1),
    );
    assert_eq!(
        std::fs::read_link(dir.path().join(&b0)).unwrap().to_str(),
        Some("10.1.2.3")
    );
    assert_eq!(
        dir.names(),
        vec![
            b0.as_str(),
            b1.as_str(),
            "10.1.2.3",
            "10.2.2.9",
            "2001:db8:1::3",
            "last_reserved_ip.0",
            "last_reserved_ip.1",
            "lock",
            "notes"
        ]
    );
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(l, m)| *l == LogLevel::Info && m == r#"GC released 10.1.2.2 of "a\r\neth0""#));

    // An empty list releases every reservation, and nothing else.
    let c = Call {
        valid_attachments: Some(&[]),
        ..call(Verb::Gc, "", "", CONF)
    };
    assert_eq!(serve(&c, &mut store, &host), Ok(None));
    assert_eq!(
        dir.names(),
        vec!["last_reserved_ip.0", "last_reserved_ip.1", "lock", "notes"]
    );
}

#[test]
fn gc_reports_errors_after_trying_everything() {
    let mut store = MemStore::default();
    store.put("10.1.2.2", "c\r\neth0");
    store.fail_release = Some(ErrorKind::PermissionDenied);
    let c = Call {
        valid_attachments: Some(&[]),
        ..call(Verb::Gc, "", "", SMALL)
    };
    let e = serve(&c, &mut store, &FakeHost::default()).unwrap_err();
    assert_eq!(e.msg, "remove 10.1.2.2: permission denied");
}

#[test]
fn status_reports_a_full_range_set_with_code_50() {
    let mut store = MemStore::default();
    let host = FakeHost::default();
    let status = |store: &mut MemStore| serve(&call(Verb::Status, "", "", SMALL), store, &host);
    assert_eq!(status(&mut store), Ok(None));
    serve(&call(Verb::Add, "c", "eth0", SMALL), &mut store, &host).unwrap();
    let e = status(&mut store).unwrap_err();
    assert_eq!(e.code, ErrorCode::PluginNotAvailable);
    assert_eq!(
        e.msg,
        "no IP addresses available in range set: 10.1.2.1-10.1.2.2"
    );
    assert!(e.details.starts_with("range set 0 is fully reserved"));
    serve(&call(Verb::Del, "c", "eth0", SMALL), &mut store, &host).unwrap();
    assert_eq!(status(&mut store), Ok(None));
}

#[test]
fn status_reports_an_unusable_store_with_code_51() {
    let dir = TempDir::new();
    let mut store = DiskStore::new(dir.path().join("gone"));
    let e = serve(
        &call(Verb::Status, "", "", SMALL),
        &mut store,
        &FakeHost::default(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitedConnectivity);
    assert!(
        e.msg
            .starts_with("host-local: the IP reservation store is unusable: list /: "),
        "{}",
        e.msg
    );
}
