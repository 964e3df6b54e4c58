//! The CNI `host-local` IPAM plugin as a wasm-cni component.
//!
//! It keeps the reference's on-disk format in the network's directory, which
//! the host preopens as `/` while holding the flock on its `lock` file, so the
//! Go binary and this component can take turns on one node. Beyond the
//! reference it implements GC (release reservations of attachments that are no
//! longer valid) and STATUS (code 50 when a range set is full, 51 when the
//! store is unusable).
//!
//! This file is WIT glue only: it converts between the generated types and
//! [`verbs`], which holds the logic and is tested natively.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod allocator;
pub mod config;
pub mod ip;
pub mod store;
pub mod verbs;

#[cfg(test)]
mod testutil;

mod bindings {
    wit_bindgen::generate!({
        world: "ipam-plugin",
        path: "../../wit",
    });

    use super::HostLocal;
    export!(HostLocal);
}

use bindings::exports::wasm_cni::plugin::ipam::Guest;
use bindings::wasm_cni::plugin::ipam_host;
use bindings::wasm_cni::plugin::types::{
    CniDns, CniIp, CniResult, CniRoute, Command, LogLevel, PluginError, Request,
};

use allocator::ValidAttachment;
use store::DiskStore;
use verbs::{Call, Dns, HostServices, Verb};

/// The component's export.
struct HostLocal;

/// The host's side of [`HostServices`], through the `ipam-host` imports.
struct WitHost;

impl HostServices for WitHost {
    fn log(&self, level: verbs::LogLevel, message: &str) {
        let level = match level {
            verbs::LogLevel::Debug => LogLevel::Debug,
            verbs::LogLevel::Info => LogLevel::Info,
            verbs::LogLevel::Warn => LogLevel::Warn,
        };
        ipam_host::log(level, message);
    }

    fn read_resolv_conf(&self, path: &str) -> Result<Dns, String> {
        ipam_host::read_resolv_conf(path).map(|d| Dns {
            nameservers: d.nameservers,
            domain: d.domain,
            search: d.search,
            options: d.options,
        })
    }
}

impl Guest for HostLocal {
    fn run(req: Request) -> Result<Option<CniResult>, PluginError> {
        let verb = match req.command {
            Command::Add => Verb::Add,
            Command::Del => Verb::Del,
            Command::Check => Verb::Check,
            Command::Gc => Verb::Gc,
            Command::Status => Verb::Status,
        };
        let valid: Option<Vec<ValidAttachment>> = req.valid_attachments.map(|list| {
            list.into_iter()
                .map(|a| ValidAttachment {
                    container_id: a.container_id,
                    ifname: a.ifname,
                })
                .collect()
        });
        let call = Call {
            verb,
            container_id: &req.container_id,
            ifname: &req.ifname,
            cni_args: &req.cni_args,
            config: &req.config,
            valid_attachments: valid.as_deref(),
        };
        // The host grants the network's directory as the preopen `/`.
        let mut store = DiskStore::new("/");
        match verbs::serve(&call, &mut store, &WitHost) {
            Ok(result) => Ok(result.map(to_cni_result)),
            Err(e) => Err(PluginError {
                code: e.code.as_u32(),
                msg: e.msg,
                details: e.details,
            }),
        }
    }
}

fn to_cni_result(r: verbs::IpamResult) -> CniResult {
    CniResult {
        interfaces: Vec::new(),
        ips: r
            .ips
            .into_iter()
            .map(|ip| CniIp {
                address: ip.address,
                gateway: Some(ip.gateway),
                interface: None,
            })
            .collect(),
        routes: r
            .routes
            .into_iter()
            .map(|rt| CniRoute {
                dst: rt.dst,
                gw: rt.gw,
                mtu: rt.mtu,
                advmss: rt.advmss,
                priority: rt.priority,
                table: rt.table,
                scope: rt.scope,
            })
            .collect(),
        dns: r.dns.map(|d| CniDns {
            nameservers: d.nameservers,
            domain: d.domain,
            search: d.search,
            options: d.options,
        }),
    }
}
