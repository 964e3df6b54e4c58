//! The whole pipeline (parse, policy, the bundled bridge and host-local
//! components, validation, apply with rollback, the guest's result, render) run
//! against the recording fakes: no root, no namespaces. What only the kernel can
//! tell is tested in `tests/` instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kernel::applier::{Kernel, MasqDoors};
use kernel::fake::{RecordingFirewall, RecordingNetlink, SharedNetlink};
use kernel::netlink::Netlink;
use kernel::netns::NetnsHandle;
use nix::errno::Errno;
use runtime::PluginRuntime;
use serde_json::{json, Value};

use super::*;

/// The recording fakes as an invocation's kernel: the host's model, the
/// container's (its veth peers land in the host's), and the firewall rules.
struct FakeKernel {
    host: SharedNetlink,
    container: SharedNetlink,
    firewall: RecordingFirewall,
}

impl FakeKernel {
    fn new() -> Self {
        let host = SharedNetlink::new(RecordingNetlink::new());
        let container =
            SharedNetlink::new(RecordingNetlink::new().with_peer_namespace(host.clone()));
        FakeKernel {
            host,
            container,
            firewall: RecordingFirewall::default(),
        }
    }

    fn link(&self, model: &SharedNetlink, name: &str) -> Option<kernel::netlink::LinkFacts> {
        model.lock().link(name).expect("fake link lookup")
    }
}

// Shared with the test, which looks at the models the invocation changed.
impl KernelAccess for Arc<FakeKernel> {
    fn open(&self, _: &Request, netns: Option<&Path>) -> Result<OpenedKernel, KernelFailure> {
        let container = netns.map(|_| Box::new(self.container.clone()) as Box<dyn Netlink>);
        Ok(OpenedKernel {
            has_container: container.is_some(),
            kernel: Kernel {
                host: Box::new(self.host.clone()),
                host_ns: NetnsHandle::current().expect("own netns"),
                container,
                masq: MasqDoors::fake(Box::new(self.firewall.clone())),
                spoof: Some(Box::new(self.firewall.clone())),
                valid_attachments: None,
                ownership: Default::default(),
                waits_left: kernel::applier::WAIT_BUDGET,
            },
        })
    }

    fn finish(&self) {}
}

/// Shares one engine and one cache of compiled components between tests.
fn runtime() -> (Arc<PluginRuntime>, PathBuf) {
    static SHARED: OnceLock<(Arc<PluginRuntime>, tempfile::TempDir)> = OnceLock::new();
    let (runtime, cache) = SHARED.get_or_init(|| {
        (
            Arc::new(PluginRuntime::new().expect("engine")),
            tempfile::tempdir().expect("cache dir"),
        )
    });
    (Arc::clone(runtime), cache.path().to_path_buf())
}

const CLOCK: fn() -> SystemTime = || UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);

/// One node: the fakes, settings pointing into a scratch directory, and the
/// bundled components.
struct Node {
    world: World,
    fake: Arc<FakeKernel>,
    settings: Settings,
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("scratch dir");
        let (runtime, cache_dir) = runtime();
        let fake = Arc::new(FakeKernel::new());
        let settings = Settings {
            plugin_dir: dir.path().join("plugins"),
            cache_dir,
            ipam_data_dirs: vec![dir.path().to_path_buf()],
            policy_file: dir.path().join("no-policy.json"),
            audit_log: Some(dir.path().join("audit.log")),
            ..Settings::default()
        };
        Node {
            world: World {
                kernel: Box::new(Arc::clone(&fake)),
                runtime: Some(runtime),
                clock: CLOCK,
            },
            fake,
            settings,
            dir,
        }
    }

    fn config(&self, version: CniVersion, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version.as_str(),
            "name": "fakenet",
            "type": "bridge",
            "bridge": "cni-fake0",
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.99.0.0/24",
                "dataDir": self.dir.path().join("ipam"),
            },
        });
        if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
            conf.extend(extra.clone());
        }
        conf
    }

    fn invoke(&self, command: &str, config: &Value) -> Outcome {
        let env: BTreeMap<String, String> = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "ctr-fake"),
            // Never opened: the fake kernel stands for it.
            ("CNI_NETNS", "/run/netns/fake"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        run_in(
            &self.world,
            None,
            &env,
            config.to_string().as_bytes(),
            &self.settings,
        )
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    /// host-local's reservation files for the network.
    fn reservations(&self) -> Vec<String> {
        let dir = self.dir.path().join("ipam").join("fakenet");
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

fn stdout(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Stdout(out) => serde_json::from_str(&out).expect("the result is JSON"),
        other => panic!("expected a result, got {other:?}"),
    }
}

fn silent(outcome: Outcome) {
    assert!(matches!(outcome, Outcome::Silent), "{outcome:?}");
}

fn addresses(fake: &FakeKernel, model: &SharedNetlink, name: &str) -> Vec<String> {
    fake.link(model, name)
        .map(|l| l.addresses.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn bridge_and_host_local_add_check_del_in_every_version() {
    for version in CniVersion::ALL {
        let node = Node::new();
        let fake = &node.fake;
        let conf = node.config(version, json!({}));

        let result = stdout(node.invoke("ADD", &conf));
        assert_eq!(result["cniVersion"], version.as_str(), "{version}");
        let ip = if version < CniVersion::V030 {
            &result["ip4"]["ip"]
        } else {
            &result["ips"][0]["address"]
        };
        assert_eq!(ip, "10.99.0.2/24", "{version}: {result}");

        // What the kernel would show: the bridge with the gateway, the
        // container's interface with its address, the host end on the bridge.
        let bridge = fake.link(&fake.host, "cni-fake0").expect("bridge");
        assert_eq!(bridge.kind.as_deref(), Some("bridge"));
        assert_eq!(addresses(fake, &fake.host, "cni-fake0"), ["10.99.0.1/24"]);
        let eth0 = fake.link(&fake.container, "eth0").expect("eth0");
        assert!(eth0.admin_up, "{version}");
        assert_eq!(addresses(fake, &fake.container, "eth0"), ["10.99.0.2/24"]);
        let peer = fake
            .host
            .lock()
            .links()
            .expect("links")
            .into_iter()
            .find(|l| l.kind.as_deref() == Some("veth"))
            .expect("the host end of the veth");
        assert_eq!(peer.master, Some(bridge.index), "{version}");
        assert_eq!(node.reservations(), ["10.99.0.2"], "{version}");

        let audit = node.audit();
        assert_eq!(audit.len(), 1, "{version}");
        assert_eq!(audit[0]["outcome"], "applied");
        assert_eq!(audit[0]["time"], 1_700_000_000.123);
        assert_eq!(audit[0]["plugin"], "bridge");

        if version >= CniVersion::V040 {
            let mut check = conf.clone();
            check["prevResult"] = result.clone();
            silent(node.invoke("CHECK", &check));
        }

        let mut del = conf.clone();
        if version >= CniVersion::V040 {
            del["prevResult"] = result;
        }
        silent(node.invoke("DEL", &del));
        assert!(fake.link(&fake.container, "eth0").is_none(), "{version}");
        assert!(node.reservations().is_empty(), "{version}: IPAM released");
        // DEL twice is fine.
        silent(node.invoke("DEL", &del));
    }
}

/// What a model shows: links (with addresses, masters, MACs) and routes.
fn snapshot(model: &SharedNetlink) -> String {
    let mut model = model.lock();
    format!(
        "{:?}\n{:?}",
        model.links().expect("links"),
        model.routes().expect("routes")
    )
}

#[test]
fn an_add_that_fails_at_any_step_is_undone_and_releases_its_address() {
    let conf = |node: &Node| node.config(CniVersion::V100, json!({}));
    // How many calls each namespace sees in an ADD that works.
    let calls = {
        let node = Node::new();
        stdout(node.invoke("ADD", &conf(&node)));
        let host = node.fake.host.lock().ops().len();
        let container = node.fake.container.lock().ops().len();
        [("host", host), ("container", container)]
    };
    for (side, count) in calls {
        let mut apply_failures = 0;
        for n in 1..=count {
            let node = Node::new();
            let fake = &node.fake;
            let model = if side == "host" {
                &fake.host
            } else {
                &fake.container
            };
            let before = (snapshot(&fake.host), snapshot(&fake.container));
            model.lock().fail_at(n, Errno::EIO);
            let e = match node.invoke("ADD", &conf(&node)) {
                // A lookup whose failure the plan tolerates.
                Outcome::Stdout(_) => continue,
                Outcome::Error(e, _) => e,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                (snapshot(&fake.host), snapshot(&fake.container)),
                before,
                "{side} call #{n} failed ({}): the namespaces are as they were",
                e.msg
            );
            assert!(node.reservations().is_empty(), "{side} #{n}: IPAM released");
            if e.code == ErrorCode::ApplyFailed {
                apply_failures += 1;
                assert!(e.msg.contains("EIO"), "{}", e.msg);
                assert_eq!(node.audit()[0]["outcome"], "failed", "{side} #{n}");
            }
        }
        assert!(apply_failures > 0, "no {side} failure was while applying");
    }
}

#[test]
fn masquerade_and_spoof_rules_follow_the_attachment() {
    let node = Node::new();
    let fake = &node.fake;
    let conf = node.config(
        CniVersion::V110,
        json!({"ipMasq": true, "macspoofchk": true}),
    );
    let result = stdout(node.invoke("ADD", &conf));
    let masq = fake.firewall.masquerade_rules();
    assert_eq!(masq.len(), 1, "{masq:?}");
    assert_eq!(masq[0].source.to_string(), "10.99.0.2/24");
    assert_eq!(
        (masq[0].network.as_str(), masq[0].container_id.as_str()),
        ("fakenet", "ctr-fake")
    );
    let spoof = fake.firewall.spoof_rules();
    assert_eq!(spoof.len(), 1, "{spoof:?}");
    assert_eq!(
        result["interfaces"][2]["mac"],
        cni_mac(spoof[0].mac),
        "the rule lets the container's MAC through: {result}"
    );

    let mut del = conf.clone();
    del["prevResult"] = result;
    silent(node.invoke("DEL", &del));
    assert!(fake.firewall.masquerade_rules().is_empty());
    assert!(fake.firewall.spoof_rules().is_empty());
}

fn cni_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
