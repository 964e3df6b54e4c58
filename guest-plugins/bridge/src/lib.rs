//! The CNI `bridge` plugin as a component: the reference's behaviour (every config
//! key, the same ADD sequence and result shape), planned here and applied by the
//! host, with the reference's known leaks fixed (masquerade rules are removed by
//! attachment, GC is real, CHECK works in L2 mode).

wit_bindgen::generate!({
    world: "cni-plugin",
    path: "../../wit",
});

pub mod config;
pub mod plan;

use std::sync::Mutex;

use cni::CniError;

use exports::wasm_cni::plugin::plugin::Guest;
use wasm_cni::plugin::host;
use wasm_cni::plugin::types::{
    CniResult, Command, Intent, LinkFacts, Netns, NetworkPlan, PluginError, Request,
};

/// The result skeleton computed by `plan`, completed by `finish` (the host calls
/// both on one instance).
static PENDING: Mutex<Option<CniResult>> = Mutex::new(None);

struct Bridge;

/// The shared CNI error as the contract carries it.
fn plugin_error(e: CniError) -> PluginError {
    PluginError {
        code: e.code.as_u32(),
        msg: e.msg,
        details: e.details,
    }
}

/// A runtime failure: the reference reports these as 999 (untyped errors).
fn failure(msg: String) -> PluginError {
    plugin_error(CniError::internal(msg))
}

impl Guest for Bridge {
    fn plan(req: Request) -> Result<NetworkPlan, PluginError> {
        let conf = config::parse(&req.config, &req.cni_args).map_err(plugin_error)?;
        let intents = match req.command {
            Command::Add => add(&conf, &req)?,
            Command::Del => {
                if conf.ipam_type.is_some() {
                    host::ipam(Command::Del)?;
                }
                plan::del(
                    &conf,
                    &req.ifname,
                    &req.container_id,
                    req.netns_path.is_some(),
                )
            }
            Command::Check => {
                check(&conf, &req)?;
                vec![]
            }
            Command::Gc => {
                if conf.ipam_type.is_some() {
                    host::ipam(Command::Gc)?;
                }
                if conf.ip_masq {
                    vec![Intent::GcMasquerade(conf.network.clone())]
                } else {
                    vec![]
                }
            }
            Command::Status => {
                if conf.ipam_type.is_some() {
                    host::ipam(Command::Status)?;
                }
                vec![]
            }
        };
        Ok(NetworkPlan { intents })
    }

    fn finish(req: Request, applied: Vec<LinkFacts>) -> Result<Option<CniResult>, PluginError> {
        if req.command != Command::Add {
            return Ok(None);
        }
        let pending = PENDING
            .lock()
            .map_err(|_| failure("internal state poisoned".into()))?
            .take()
            .ok_or_else(|| failure("finish called before plan".into()))?;
        Ok(Some(plan::finish_result(pending, &applied)))
    }
}

fn add(conf: &config::BridgeConf, req: &Request) -> Result<Vec<Intent>, PluginError> {
    let bridge = host::link(Netns::Host, &conf.bridge);
    let ipam = match conf.ipam_type {
        Some(_) => host::ipam(Command::Add)?,
        None => None,
    };
    let host_veth = host::fresh_link_name("veth");
    let (vlan_gateway, vlan_gateway_peer) = if conf.vlan != 0 && conf.is_gateway {
        (
            host::link(Netns::Host, &plan::vlan_gateway_name(conf)),
            host::fresh_link_name("veth"),
        )
    } else {
        (None, String::new())
    };
    let inputs = plan::AddInputs {
        ifname: &req.ifname,
        container_id: &req.container_id,
        netns_path: req.netns_path.as_deref(),
        host_veth: &host_veth,
        ipam: ipam.as_ref(),
        bridge: bridge.as_ref(),
        container_mac: match (&conf.mac, conf.macspoofchk) {
            (Some(mac), _) => Some(mac.clone()),
            (None, true) => Some(plan::derived_mac(
                &conf.network,
                &req.container_id,
                &req.ifname,
            )),
            (None, false) => None,
        },
        vlan_gateway: vlan_gateway.as_ref(),
        vlan_gateway_peer: &vlan_gateway_peer,
    };
    let planned = plan::add(conf, &inputs).map_err(failure)?;
    *PENDING
        .lock()
        .map_err(|_| failure("internal state poisoned".into()))? = Some(planned.result);
    Ok(planned.intents)
}

fn check(conf: &config::BridgeConf, req: &Request) -> Result<(), PluginError> {
    if conf.ipam_type.is_some() {
        host::ipam(Command::Check)?;
    }
    let prev = req
        .prev_result
        .as_ref()
        .ok_or_else(|| failure("Required prevResult missing".into()))?;
    let bridge = host::link(Netns::Host, &conf.bridge);
    let container = host::link(Netns::Container, &req.ifname);
    let host_links: Vec<LinkFacts> = prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_none() && i.name != conf.bridge)
        .filter_map(|i| host::link(Netns::Host, &i.name))
        .collect();
    let routes = host::routes(Netns::Container);
    let masquerade = if conf.ip_masq {
        host::masquerade_rules(&conf.network)
    } else {
        vec![]
    };
    let seen = plan::Observed {
        bridge: bridge.as_ref(),
        container: container.as_ref(),
        host_links: &host_links,
        container_routes: &routes,
        masquerade: &masquerade,
    };
    plan::check(
        conf,
        prev,
        &req.ifname,
        &req.container_id,
        req.netns_path.as_deref(),
        &seen,
    )
    .map_err(failure)
}

export!(Bridge);
