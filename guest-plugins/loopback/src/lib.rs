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

use cni::{go_quote, CniError};

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
        let ips = result_addresses(&facts.addresses)
            .map_err(plugin_error)?
            .into_iter()
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

/// What ADD reports of `lo`'s addresses, as the reference does: the first IPv4
/// and the first IPv6 one, and an error for any address outside loopback.
fn result_addresses(addresses: &[String]) -> Result<Vec<String>, CniError> {
    let mut first_v4 = None;
    let mut first_v6 = None;
    for addr in addresses {
        if !is_loopback_cidr(addr) {
            return Err(CniError::internal(format!(
                "loopback interface found with non-loopback address {}",
                go_quote(addr)
            )));
        }
        let slot = if addr.contains(':') {
            &mut first_v6
        } else {
            &mut first_v4
        };
        slot.get_or_insert_with(|| addr.clone());
    }
    Ok([first_v4, first_v6].into_iter().flatten().collect())
}

/// The shared CNI error as the contract carries it.
fn plugin_error(e: CniError) -> PluginError {
    PluginError {
        code: e.code.as_u32(),
        msg: e.msg,
        details: e.details,
    }
}

/// A runtime failure: the reference reports these as 999 (untyped errors).
fn error(msg: &str) -> PluginError {
    plugin_error(CniError::internal(msg))
}

export!(Loopback);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_address_of_each_family() {
        let addrs = ["127.0.0.1/8", "::1/128", "127.0.0.2/8"].map(String::from);
        assert_eq!(
            result_addresses(&addrs).expect("loopback"),
            ["127.0.0.1/8", "::1/128"]
        );
        assert!(result_addresses(&[]).expect("none").is_empty());
    }

    #[test]
    fn a_foreign_address_is_the_reference_error() {
        let e = result_addresses(&["10.0.0.1/8".to_string()]).expect_err("foreign");
        assert_eq!(e.code.as_u32(), 999);
        assert_eq!(
            e.msg,
            "loopback interface found with non-loopback address \"10.0.0.1/8\""
        );
        assert!(is_loopback_cidr("::1/128") && !is_loopback_cidr("garbage"));
    }
}
