//! The CNI `loopback` plugin as a component: the reference's behaviour, planned
//! here and applied by the host.
//!
//! - ADD sets `lo` up in the container and returns `lo` with its first IPv4 and
//!   first IPv6 address, or passes `prevResult` through unchanged.
//! - DEL sets `lo` down; an empty or vanished netns is success.
//! - CHECK fails when `lo` is down.
//!
//! Like the reference, it always works on `lo`, whatever `CNI_IFNAME` says, and it
//! never reads `CNI_ARGS`.

wit_bindgen::generate!({
    world: "cni-plugin",
    path: "../../wit",
});

use exports::wasm_cni::plugin::plugin::Guest;
use wasm_cni::plugin::host;
use wasm_cni::plugin::types::{
    CniInterface, CniIp, CniResult, Command, Intent, LinkFacts, LinkRef, Netns, NetworkPlan,
    PluginError, Request,
};

const LO: &str = "lo";

struct Loopback;

fn lo() -> LinkRef {
    LinkRef {
        ns: Netns::Container,
        name: LO.to_string(),
    }
}

impl Guest for Loopback {
    fn plan(req: Request) -> Result<NetworkPlan, PluginError> {
        let intents = match req.command {
            Command::Add => vec![Intent::SetLinkUp(lo())],
            // An empty CNI_NETNS means the container is gone: nothing to do.
            Command::Del if req.netns_path.is_none() => vec![],
            Command::Del => vec![Intent::SetLinkDown(lo())],
            Command::Check => {
                match host::link(Netns::Container, LO) {
                    Some(facts) if facts.admin_up => {}
                    Some(_) => return Err(error("loopback interface is down")),
                    None => return Err(error("loopback interface not found")),
                }
                vec![]
            }
            Command::Gc | Command::Status => vec![],
        };
        Ok(NetworkPlan { intents })
    }

    fn finish(req: Request, applied: Vec<LinkFacts>) -> Result<Option<CniResult>, PluginError> {
        if req.command != Command::Add {
            return Ok(None);
        }
        if let Some(prev) = req.prev_result {
            return Ok(Some(prev));
        }
        let facts = applied
            .iter()
            .find(|l| l.ns == Netns::Container && l.name == LO)
            .ok_or_else(|| error("loopback interface not found after setting it up"))?;
        let mut first_v4 = None;
        let mut first_v6 = None;
        for addr in &facts.addresses {
            if !is_loopback_cidr(addr) {
                return Err(error(&format!(
                    "loopback interface found with non-loopback address {addr:?}"
                )));
            }
            let slot = if addr.contains(':') {
                &mut first_v6
            } else {
                &mut first_v4
            };
            slot.get_or_insert_with(|| addr.clone());
        }
        let ips = [first_v4, first_v6]
            .into_iter()
            .flatten()
            .map(|address| CniIp {
                address,
                gateway: None,
                interface: Some(0),
            })
            .collect();
        Ok(Some(CniResult {
            interfaces: vec![CniInterface {
                name: LO.to_string(),
                mac: Some("00:00:00:00:00:00".to_string()),
                mtu: None,
                sandbox: req.netns_path,
                socket_path: None,
                pci_id: None,
            }],
            ips,
            routes: vec![],
            dns: None,
        }))
    }
}

/// 127.0.0.0/8 or ::1, in CIDR notation.
fn is_loopback_cidr(cidr: &str) -> bool {
    let ip = cidr.split('/').next().unwrap_or(cidr);
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn error(msg: &str) -> PluginError {
    PluginError {
        code: 999,
        msg: msg.to_string(),
        details: String::new(),
    }
}

export!(Loopback);
