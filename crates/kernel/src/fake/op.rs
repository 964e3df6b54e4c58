//! The calls [`RecordingNetlink`](super::RecordingNetlink) records.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::netlink::RouteSpec;

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The variants mirror the `Netlink` verbs one to one.
pub enum Op {
    Link {
        name: String,
    },
    Links,
    CreateBridge {
        name: String,
        mtu: Option<u32>,
        vlan_filtering: bool,
    },
    CreateVeth {
        name: String,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: String,
        peer_ns: PathBuf,
    },
    CreateDummy {
        name: String,
    },
    DeleteLink {
        name: String,
    },
    SetUp {
        name: String,
        up: bool,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetMac {
        name: String,
        mac: [u8; 6],
    },
    SetPromisc {
        name: String,
        on: bool,
    },
    SetMaster {
        name: String,
        master: Option<String>,
    },
    SetAlias {
        name: String,
        alias: String,
    },
    SetHairpin {
        name: String,
        on: bool,
    },
    SetIsolated {
        name: String,
        on: bool,
    },
    BridgeVlanAdd {
        port: String,
        vid: u16,
        pvid: bool,
        untagged: bool,
    },
    BridgeVlanDel {
        port: String,
        vid: u16,
    },
    BridgeVlans {
        port: String,
    },
    MoveToNetns {
        name: String,
        ns: PathBuf,
    },
    AddAddress {
        name: String,
        addr: IpNet,
    },
    DelAddress {
        name: String,
        addr: IpNet,
    },
    AddRoute(RouteSpec),
    DelRoute(RouteSpec),
    Routes,
    SetSysctl {
        path: String,
        value: String,
    },
    Sysctl {
        path: String,
    },
    WaitAddressesSettled {
        name: String,
        timeout: Duration,
    },
    WaitOperUp {
        name: String,
        timeout: Duration,
    },
}

impl Op {
    /// Whether the call changes state (as opposed to reading it).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Op::Link { .. }
                | Op::Links
                | Op::BridgeVlans { .. }
                | Op::Routes
                | Op::Sysctl { .. }
                | Op::WaitAddressesSettled { .. }
                | Op::WaitOperUp { .. }
        )
    }
}
