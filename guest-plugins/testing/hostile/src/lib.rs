//! A main plugin that attacks the host. The network config's `attack` key picks
//! the attack; every one must end in a clear CNI error with its own code, within
//! bounded time, with nothing changed on the node.

wit_bindgen::generate!({
    world: "cni-plugin",
    path: "../../../wit",
});

use exports::wasm_cni::plugin::plugin::Guest;
use wasm_cni::plugin::host;
use wasm_cni::plugin::types::{
    AddressSpec, AttachmentKey, BridgeSpec, CniDns, CniInterface, CniIp, CniResult, CniRoute,
    Command, HostVethSpec, Intent, LinkFacts, LinkRef, LogLevel, MacSpec, MasqBackend,
    MasqueradeSpec, Netns, NetworkPlan, PluginError, PortSpec, Request, RouteSpec, SysctlSpec,
    VethSpec,
};

struct Hostile;

fn attack(req: &Request) -> String {
    serde_json::from_str::<serde_json::Value>(&req.config)
        .ok()
        .and_then(|v| v.get("attack").and_then(|a| a.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn fail(msg: String) -> PluginError {
    PluginError {
        code: 7,
        msg,
        details: String::new(),
    }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    recurse(n + 1).wrapping_add(std::hint::black_box(n))
}

fn up(ns: Netns, name: &str) -> Intent {
    Intent::SetLinkUp(LinkRef {
        ns,
        name: name.to_string(),
    })
}

impl Guest for Hostile {
    fn plan(req: Request) -> Result<NetworkPlan, PluginError> {
        let intents = match attack(&req).as_str() {
            "spin" => loop {
                std::hint::black_box(0u64);
            },
            // Blocked in the host on a timer, where epoch interruption cannot
            // reach it: the host bounds every clock subscription by the time left.
            "sleep" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "recurse" => {
                recurse(0);
                vec![]
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile guest panicked on purpose"),
            "trap" => std::process::abort(),
            "output" => {
                let line = "x".repeat(1023);
                for _ in 0..100_000 {
                    println!("{line}");
                }
                vec![]
            }
            "huge-log" => {
                host::log(LogLevel::Info, &"y".repeat(8 << 20));
                vec![]
            }
            "intents" => vec![up(Netns::Container, "lo"); 100_000],
            "many-intents" => vec![up(Netns::Container, "lo"); 300],
            // Ask IPAM for an address, release it, and use it all the same.
            "ipam-release-use" => {
                let got = host::ipam(Command::Add)?.ok_or_else(|| fail("no IPAM result".into()))?;
                host::ipam(Command::Del)?;
                let address = got
                    .ips
                    .first()
                    .map(|ip| ip.address.clone())
                    .unwrap_or_default();
                vec![
                    Intent::CreateVeth(VethSpec {
                        name: req.ifname.clone(),
                        peer: "wcnirel0".to_string(),
                        mtu: None,
                        mac: None,
                    }),
                    Intent::AddAddress(AddressSpec {
                        link: LinkRef {
                            ns: Netns::Container,
                            name: req.ifname.clone(),
                        },
                        address,
                        ensure: false,
                    }),
                ]
            }
            // Waits on a link that never comes up, as many as a plan holds:
            // 5 s each once, 21 minutes in DEL.
            "many-waits" => vec![
                Intent::WaitOperUp(LinkRef {
                    ns: Netns::Container,
                    name: "lo".to_string(),
                });
                250
            ],
            // A log line as long as a host call may carry, as often as the
            // deadline allows.
            "log-flood" => {
                let line = "x".repeat(512 << 10);
                loop {
                    host::log(LogLevel::Info, &line);
                }
            }
            "bad-intent" => vec![Intent::AddAddress(AddressSpec {
                link: LinkRef {
                    ns: Netns::Container,
                    name: req.ifname.clone(),
                },
                address: "not-an-ip".to_string(),
                ensure: false,
            })],
            "host-link" => vec![Intent::SetLinkDown(LinkRef {
                ns: Netns::Host,
                name: "lo".to_string(),
            })],
            "long-name" => vec![Intent::CreateVeth(VethSpec {
                name: req.ifname.clone(),
                peer: "veth-name-way-too-long".to_string(),
                mtu: None,
                mac: None,
            })],
            "slash-name" => vec![up(Netns::Container, "../eth0")],
            "other-ifname" => vec![up(Netns::Container, "eth1")],
            "host-code" => {
                return Err(PluginError {
                    code: 101,
                    msg: "pretending the host trapped".to_string(),
                    details: String::new(),
                })
            }
            "fs" => {
                return Err(fail(match std::fs::read_to_string("/etc/passwd") {
                    Ok(_) => "fs: read /etc/passwd".to_string(),
                    Err(e) => format!("fs denied: {e}"),
                }))
            }
            // Look at what is not its own: a node link, the node's routes,
            // another network's masquerade rules, another container's link.
            "peek" => {
                return Err(fail(format!(
                    "saw: node link {}, node routes {}, other network's rules {}, other link {}",
                    host::link(Netns::Host, "uplink0").is_some(),
                    host::routes(Netns::Host).len(),
                    host::masquerade_rules("victimnet").len(),
                    host::link(Netns::Container, "eth9").is_some(),
                )))
            }
            "env" => {
                return Err(fail(format!(
                    "env vars visible: {}",
                    std::env::vars().count()
                )))
            }
            "socket" => {
                return Err(fail(match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => "socket: connected".to_string(),
                    Err(e) => format!("socket denied: {e}"),
                }))
            }
            "outside-grant" => vec![Intent::AddAddress(AddressSpec {
                link: LinkRef {
                    ns: Netns::Container,
                    name: req.ifname.clone(),
                },
                address: "192.168.1.5/24".to_string(),
                ensure: false,
            })],
            "host-default-route" => vec![Intent::AddRoute(RouteSpec {
                ns: Netns::Host,
                dst: "0.0.0.0/0".to_string(),
                gw: Some("10.123.0.1".to_string()),
                dev: None,
                priority: None,
                table: None,
                scope: None,
            })],
            "masq-foreign" => vec![Intent::Masquerade(MasqueradeSpec {
                source: "10.55.0.0/16".to_string(),
                network: "hostile-net".to_string(),
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
                backend: MasqBackend::Nftables,
            })],
            "masq-other-attachment" => vec![Intent::Unmasquerade(AttachmentKey {
                network: "hostile-net".to_string(),
                container_id: "someone-else".to_string(),
                ifname: req.ifname.clone(),
            })],
            "enslave-uplink" => vec![
                Intent::CreateVeth(VethSpec {
                    name: req.ifname.clone(),
                    peer: "vethhostile0".to_string(),
                    mtu: None,
                    mac: None,
                }),
                Intent::AttachPort(PortSpec {
                    port: "vethhostile0".to_string(),
                    master: "uplink0".to_string(),
                    hairpin: false,
                    isolated: false,
                }),
            ],
            "rename-host-link" => vec![Intent::SetMac(MacSpec {
                link: LinkRef {
                    ns: Netns::Host,
                    name: "uplink0".to_string(),
                },
                mac: "02:00:00:00:00:01".to_string(),
            })],
            "delete-host-link" => vec![Intent::DeleteLink(LinkRef {
                ns: Netns::Host,
                name: "uplink0".to_string(),
            })],
            // Delete a node link first, then "create" it: ownership once came
            // from the whole plan, whatever the order.
            "delete-then-claim" => vec![
                Intent::DeleteLink(LinkRef {
                    ns: Netns::Host,
                    name: "uplink0".to_string(),
                }),
                Intent::EnsureHostVeth(HostVethSpec {
                    name: "uplink0".to_string(),
                    peer: "wcniclaim0".to_string(),
                    mtu: None,
                }),
            ],
            // Claim a veth that exists (another attachment's) and enslave it.
            "claim-veth" => vec![
                Intent::EnsureBridge(BridgeSpec {
                    name: "wcniclaim0".to_string(),
                    mtu: None,
                    vlan_filtering: false,
                    promisc: false,
                }),
                Intent::EnsureHostVeth(HostVethSpec {
                    name: "uplink0".to_string(),
                    peer: "wcniclaimp".to_string(),
                    mtu: None,
                }),
                Intent::AttachPort(PortSpec {
                    port: "uplink0".to_string(),
                    master: "wcniclaim0".to_string(),
                    hairpin: false,
                    isolated: false,
                }),
            ],
            "readdress-host-link" => vec![Intent::AddAddress(AddressSpec {
                link: LinkRef {
                    ns: Netns::Host,
                    name: "uplink0".to_string(),
                },
                address: "10.123.0.9/24".to_string(),
                ensure: false,
            })],
            "foreign-bridge" => vec![Intent::EnsureBridge(BridgeSpec {
                name: "docker0".to_string(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            })],
            // A bridge named like the namespace-wide sysctl directories, then
            // a per-link sysctl of "that link".
            "sysctl-all" | "sysctl-default" => {
                let name = attack(&req)["sysctl-".len()..].to_string();
                vec![
                    Intent::EnsureBridge(BridgeSpec {
                        name: name.clone(),
                        mtu: None,
                        vlan_filtering: false,
                        promisc: false,
                    }),
                    Intent::SetSysctl(SysctlSpec {
                        ns: Netns::Host,
                        key: format!("net/ipv4/conf/{name}/proxy_arp"),
                        value: "1".to_string(),
                    }),
                    Intent::SetSysctl(SysctlSpec {
                        ns: Netns::Host,
                        key: format!("net/ipv6/conf/{name}/disable_ipv6"),
                        value: "1".to_string(),
                    }),
                ]
            }
            "sysctl-escape" => vec![Intent::SetSysctl(SysctlSpec {
                ns: Netns::Host,
                key: "net/ipv4/conf/all/../../../../kernel/core_pattern".to_string(),
                value: "|/bin/sh".to_string(),
            })],
            "peer-clash" => vec![
                Intent::CreateVeth(VethSpec {
                    name: req.ifname.clone(),
                    peer: "uplink0".to_string(),
                    mtu: None,
                    mac: None,
                }),
                Intent::SetLinkUp(LinkRef {
                    ns: Netns::Container,
                    name: req.ifname.clone(),
                }),
            ],
            "forged-handle" => {
                // A handle the host never gave out.
                // SAFETY: deliberately unsound: this guest attacks the host.
                let forged = unsafe { wasi::io::streams::OutputStream::from_handle(0x0bad_cafe) };
                let _ = forged.blocking_write_and_flush(b"boom");
                vec![]
            }
            "exhaust-handles" => {
                let mut held = Vec::new();
                loop {
                    held.push(wasi::cli::stdout::get_stdout());
                    std::hint::black_box(&held);
                }
            }
            // Remove its bridge's address (the node routes through it), then
            // fail: the rollback must bring back the routes too.
            "force-then-fail" => vec![
                Intent::EnsureBridge(BridgeSpec {
                    name: "wcnifrc0".to_string(),
                    mtu: None,
                    vlan_filtering: false,
                    promisc: false,
                }),
                Intent::DeleteAddress(AddressSpec {
                    link: LinkRef {
                        ns: Netns::Host,
                        name: "wcnifrc0".to_string(),
                    },
                    address: "10.123.0.1/24".to_string(),
                    ensure: false,
                }),
                Intent::AddAddress(AddressSpec {
                    link: LinkRef {
                        ns: Netns::Container,
                        name: req.ifname.clone(),
                    },
                    address: "10.123.0.5/24".to_string(),
                    ensure: false,
                }),
            ],
            "host-ip" => vec![Intent::EnsureBridge(BridgeSpec {
                name: "wcnihip0".to_string(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            })],
            "bad-prefix" => {
                let name = host::fresh_link_name("../../x");
                vec![up(Netns::Container, &name)]
            }
            _ => vec![up(Netns::Container, "lo")],
        };
        Ok(NetworkPlan { intents })
    }

    fn finish(req: Request, _applied: Vec<LinkFacts>) -> Result<Option<CniResult>, PluginError> {
        match (attack(&req).as_str(), req.command) {
            ("no-result", Command::Add) => Ok(None),
            ("finish-panic", _) => panic!("hostile guest panicked after apply"),
            ("lying-result", Command::Add) => Ok(Some(CniResult {
                interfaces: vec![CniInterface {
                    name: "eth0".to_string(),
                    mac: None,
                    mtu: None,
                    sandbox: req.netns_path.clone(),
                    socket_path: None,
                    pci_id: None,
                }],
                ips: vec![CniIp {
                    address: "10.123.0.77/24".to_string(),
                    gateway: None,
                    interface: Some(0),
                }],
                routes: vec![],
                dns: None,
            })),
            // A route the plan never added, to steer the runtime.
            ("lying-route", Command::Add) => Ok(Some(CniResult {
                interfaces: vec![],
                ips: vec![],
                routes: vec![CniRoute {
                    dst: "0.0.0.0/0".to_string(),
                    gw: Some("10.123.0.66".to_string()),
                    mtu: None,
                    advmss: None,
                    priority: None,
                    table: None,
                    scope: None,
                }],
                dns: None,
            })),
            // A name server nobody configured.
            ("lying-dns", Command::Add) => Ok(Some(CniResult {
                interfaces: vec![],
                ips: vec![],
                routes: vec![],
                dns: Some(CniDns {
                    nameservers: vec!["10.123.0.53".to_string()],
                    domain: None,
                    search: vec![],
                    options: vec![],
                }),
            })),
            // An address attributed to a host interface it is not on.
            ("host-ip", Command::Add) => Ok(Some(CniResult {
                interfaces: vec![CniInterface {
                    name: "wcnihip0".to_string(),
                    mac: None,
                    mtu: None,
                    sandbox: None,
                    socket_path: None,
                    pci_id: None,
                }],
                ips: vec![CniIp {
                    address: "10.123.0.9/24".to_string(),
                    gateway: None,
                    interface: Some(0),
                }],
                routes: vec![],
                dns: None,
            })),
            (_, Command::Add) => Ok(Some(CniResult {
                interfaces: vec![],
                ips: vec![],
                routes: vec![],
                dns: None,
            })),
            _ => Ok(None),
        }
    }
}

export!(Hostile);
