use super::*;
use crate::fake::{RecordingFirewall, RecordingNetlink};
use nix::errno::Errno;
use plan::{AttachmentKey, LinkRef, Mac, MasqBackend, RouteIntent};
use std::sync::Arc;

const SYSCTLS: [&str; 3] = [
    "net/ipv6/conf/br0/accept_ra",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/lo/arp_notify",
];

/// Two fresh fake namespaces; `fail` makes the n-th call on one side fail.
fn kernel(firewall: &RecordingFirewall, fail: Option<(Side, usize)>) -> Kernel {
    let mut host = RecordingNetlink::new()
        .with_sysctl(SYSCTLS[0], "1")
        .with_sysctl(SYSCTLS[1], "0");
    let mut container = RecordingNetlink::new().with_sysctl(SYSCTLS[2], "0");
    match fail {
        Some((Side::Host, n)) => {
            host.fail_at(n, Errno::EIO);
        }
        Some((Side::Container, n)) => {
            container.fail_at(n, Errno::EIO);
        }
        None => {}
    }
    Kernel {
        host: Box::new(host),
        host_ns: NetnsHandle::current().expect("own netns"),
        container: Some(Box::new(container)),
        masq: MasqDoors::fake(Box::new(firewall.clone())),
        spoof: Some(Box::new(firewall.clone())),
        valid_attachments: None,
        ownership: Default::default(),
        waits_left: super::WAIT_BUDGET,
    }
}

/// What the two fake namespaces and the rules look like.
fn state(k: &mut Kernel, firewall: &RecordingFirewall) -> String {
    let mut out = String::new();
    for side in [Side::Host, Side::Container] {
        let nl = k.side(side).expect("side");
        out += &format!(
            "{:?}\n{:?}\n",
            nl.links().expect("links"),
            nl.routes().expect("routes")
        );
    }
    for (side, key) in [
        (Side::Host, SYSCTLS[0]),
        (Side::Host, SYSCTLS[1]),
        (Side::Container, SYSCTLS[2]),
    ] {
        out += &format!("{key}={:?}\n", k.side(side).expect("side").sysctl(key).ok());
    }
    out + &format!(
        "{:?}\n{:?}",
        firewall.masquerade_rules(),
        firewall.spoof_rules()
    )
}

/// A bridge-style ADD: every kind of undo the journal knows, except the veth
/// pair (whose two ends the fake keeps in separate models).
fn plan() -> Vec<Intent> {
    let key = AttachmentKey {
        network: "net".into(),
        container_id: "ctr".into(),
        ifname: "lo".into(),
    };
    vec![
        Intent::EnsureBridge {
            name: "br0".into(),
            mtu: Some(1400),
            vlan_filtering: false,
            promisc: true,
        },
        Intent::SetSysctl {
            side: Side::Host,
            key: SYSCTLS[0].into(),
            value: "0".into(),
        },
        Intent::SetSysctl {
            side: Side::Container,
            key: SYSCTLS[2].into(),
            value: "1".into(),
        },
        Intent::AddAddress {
            link: LinkRef::container("lo"),
            address: "10.7.0.5/24".parse().expect("cidr"),
            ensure: false,
        },
        Intent::SetLinkUp {
            link: LinkRef::container("lo"),
        },
        Intent::AddRoute(RouteIntent {
            side: Side::Container,
            dst: "0.0.0.0/0".parse().expect("cidr"),
            gw: Some("10.7.0.1".parse().expect("ip")),
            dev: Some("lo".into()),
            priority: None,
            table: None,
            scope: None,
        }),
        Intent::AddAddress {
            link: LinkRef::host("br0"),
            address: "10.7.0.1/24".parse().expect("cidr"),
            ensure: true,
        },
        Intent::SetSysctl {
            side: Side::Host,
            key: SYSCTLS[1].into(),
            value: "1".into(),
        },
        Intent::Masquerade {
            source: "10.7.0.5/24".parse().expect("cidr"),
            key,
            backend: MasqBackend::Nftables,
        },
        Intent::SpoofCheck {
            port: "br0".into(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            container_id: "ctr".into(),
            ifname: "lo".into(),
        },
    ]
}

#[test]
fn a_failure_at_every_step_returns_to_the_prior_state() {
    // Count the calls a successful run makes on each side.
    let masq = RecordingFirewall::default();
    let mut k = kernel(&masq, None);
    let before = state(&mut k, &masq);
    let mut journal = Journal::default();
    for intent in plan() {
        apply_one(&mut k, &intent, &mut journal).expect("clean run");
    }
    assert_ne!(state(&mut k, &masq), before, "the plan changes something");

    let mut injected = 0;
    for side in [Side::Host, Side::Container] {
        for n in 1..=40 {
            let masq = RecordingFirewall::default();
            let mut probe = kernel(&masq, None);
            let before = state(&mut probe, &masq);
            let k = Arc::new(Mutex::new(kernel(&masq, Some((side, n)))));
            let mut tx = Transaction::new(Arc::clone(&k));
            let outcome = tx.apply_all(&plan());
            if outcome.is_ok() {
                tx.commit();
                break;
            }
            injected += 1;
            drop(tx); // rolls back
            let mut guard = lock(&k);
            assert_eq!(
                state(&mut guard, &masq),
                before,
                "failure at call {n} on the {side} side left changes: {:?}",
                outcome.err()
            );
        }
    }
    assert!(
        injected >= 10,
        "only {injected} failure points were exercised"
    );
}
