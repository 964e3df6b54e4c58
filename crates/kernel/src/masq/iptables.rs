//! The iptables backend, by exec of `iptables`/`ip6tables --wait`.

use crate::netlink::NetError;
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Command, Output};

use ipnet::IpNet;

use super::naming::*;
use super::{MasqRule, Masquerade};
use crate::nft::{NftSocket, NFPROTO_IPV4, NFPROTO_IPV6};
use plan::AttachmentKey;

/// The masquerade backend over `iptables`/`ip6tables` (`ipMasqBackend:
/// "iptables"`), writing exactly the reference's rules in table `nat`:
///
/// ```text
/// -N CNI-<24 hex of sha512(network + containerID)>
/// -A CNI-x -d 10.88.0.2/16 -j ACCEPT -m comment --comment 'name: "net" id: "cid"'
/// -A CNI-x ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment ...   (ff00::/8 for IPv6)
/// -A POSTROUTING -s 10.88.0.2 -j CNI-x -m comment --comment ...
/// ```
///
/// It execs the tools with `--wait` (as go-iptables does for the reference);
/// this is the only place in wasm-cni that execs a firewall tool. Each
/// process joins the network namespace the backend was opened in, so the
/// backend works from any thread.
///
/// The chain is per (network, container), not per interface, as in the
/// reference: removing one attachment removes the rules of every interface
/// of that container on that network.
pub struct IptablesMasquerade {
    pub(super) netns: File,
    /// Asks the kernel, without exec'ing anything, whether a `nat` table exists.
    pub(super) probe: std::cell::RefCell<Option<NftSocket>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub(super) fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    pub(super) fn multicast(self) -> &'static str {
        match self {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        }
    }
}

/// One `-A` line of `iptables -S`, split into arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SavedRule {
    pub(super) chain: String,
    /// The rule specification after `-A <chain>`.
    pub(super) spec: Vec<String>,
}

impl SavedRule {
    /// The value after `flag`, and whether a `!` came before the flag.
    pub(super) fn option(&self, flag: &str) -> Option<(&str, bool)> {
        let at = self.spec.iter().position(|a| a == flag)?;
        let negated = at > 0 && self.spec[at - 1] == "!";
        Some((self.spec.get(at + 1)?.as_str(), negated))
    }

    pub(super) fn target(&self) -> Option<&str> {
        self.option("-j").map(|(t, _)| t)
    }

    pub(super) fn owner(&self) -> Option<(String, String)> {
        parse_iptables_comment(self.option("--comment")?.0)
    }
}

/// Lines of `iptables -S` for one table: which chains exist, and the rules.
#[derive(Debug, Default)]
pub(super) struct SavedTable {
    pub(super) chains: Vec<String>,
    pub(super) rules: Vec<SavedRule>,
}

impl SavedTable {
    pub(super) fn parse(text: &str) -> Self {
        let mut table = SavedTable::default();
        for line in text.lines() {
            let mut args = split_saved_line(line).into_iter();
            match (args.next().as_deref(), args.next()) {
                (Some("-N"), Some(chain)) => table.chains.push(chain),
                (Some("-A"), Some(chain)) => table.rules.push(SavedRule {
                    chain,
                    spec: args.collect(),
                }),
                _ => {}
            }
        }
        table
    }

    pub(super) fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    /// The masquerade rules of `network`: POSTROUTING jumps carrying our
    /// comment into the chain named after that comment.
    pub(super) fn masq_rules(&self, network: &str) -> Vec<MasqRule> {
        let mut out = Vec::new();
        for jump in self.rules.iter().filter(|r| r.chain == "POSTROUTING") {
            let (Some(target), Some((net, cid))) = (jump.target(), jump.owner()) else {
                continue;
            };
            if net != network || target != iptables_chain_name(&net, &cid) {
                continue;
            }
            let Some(addr) = jump
                .option("-s")
                .and_then(|(s, _)| s.split('/').next())
                .and_then(|s| s.parse::<IpAddr>().ok())
            else {
                continue;
            };
            // The subnet is only in the chain's ACCEPT rule.
            let subnet = self
                .rules
                .iter()
                .filter(|r| r.chain == target && r.target() == Some("ACCEPT"))
                .filter_map(|r| r.option("-d"))
                .filter(|(_, negated)| !negated)
                .filter_map(|(d, _)| d.parse::<IpNet>().ok())
                .find(|net| net.contains(&addr));
            let prefix = subnet.map_or(if addr.is_ipv4() { 32 } else { 128 }, |n| n.prefix_len());
            if let Ok(source) = IpNet::new(addr, prefix) {
                out.push(MasqRule {
                    network: net,
                    container_id: cid,
                    ifname: String::new(),
                    source,
                });
            }
        }
        out
    }

    /// Container IDs of `network` owning a chain here (by a jump or by a rule
    /// inside the chain, so half-made chains count too).
    pub(super) fn owners(&self, network: &str) -> HashSet<String> {
        self.rules
            .iter()
            .filter_map(|r| {
                let (net, cid) = r.owner()?;
                let chain = iptables_chain_name(&net, &cid);
                let ours = r.chain == chain || r.target() == Some(chain.as_str());
                (ours && net == network).then_some(cid)
            })
            .collect()
    }
}

/// Splits a line of `iptables -S` into arguments; the tools quote a value
/// with `"` and escape `"`, `\` and `'` in it with `\` (`xtables_save_string`).
pub(super) fn split_saved_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(first) = chars.next() else {
            return out;
        };
        let mut arg = String::new();
        if first == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => arg.extend(chars.next()),
                    c => arg.push(c),
                }
            }
        } else {
            arg.push(first);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        out.push(arg);
    }
}

impl IptablesMasquerade {
    /// Remembers the calling thread's network namespace; every command runs
    /// in it.
    pub fn open() -> Result<Self, NetError> {
        let path = "/proc/thread-self/ns/net";
        let netns = File::open(path).map_err(|e| NetError::io(format!("open {path}"), e))?;
        Ok(IptablesMasquerade {
            netns,
            probe: std::cell::RefCell::new(NftSocket::open().ok()),
        })
    }

    /// Whether this namespace certainly has no `nat` table for `family`, in
    /// either iptables backend: none among nf_tables' tables (iptables-nft)
    /// and none in `/proc/net/ip{,6}_tables_names` (legacy x_tables, listed
    /// once the table is in use). Then there is nothing to list and no
    /// `iptables` process is started (each costs milliseconds). Any doubt (a
    /// failed probe, a call from another namespace) answers false.
    pub(super) fn certainly_no_nat_table(&self, family: Family) -> bool {
        let same_netns = (|| {
            let ours = nix::sys::stat::fstat(self.netns.as_fd()).ok()?;
            let here = nix::sys::stat::stat("/proc/thread-self/ns/net").ok()?;
            Some(ours.st_ino == here.st_ino && ours.st_dev == here.st_dev)
        })();
        if same_netns != Some(true) {
            return false;
        }
        let (nfproto, legacy) = match family {
            Family::V4 => (NFPROTO_IPV4, "/proc/thread-self/net/ip_tables_names"),
            Family::V6 => (NFPROTO_IPV6, "/proc/thread-self/net/ip6_tables_names"),
        };
        let legacy_nat = match std::fs::read_to_string(legacy) {
            Ok(names) => names.lines().any(|l| l.trim() == "nat"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(_) => return false,
        };
        if legacy_nat {
            return false;
        }
        let mut probe = self.probe.borrow_mut();
        let Some(sock) = probe.as_mut() else {
            return false;
        };
        match sock.list_tables(nfproto) {
            Ok(tables) => !tables.iter().any(|t| t == "nat"),
            Err(_) => false,
        }
    }

    /// Runs `<program> --wait -t nat <args>` in our namespace. `Ok(None)`
    /// when the program is not installed.
    pub(super) fn run(&self, family: Family, args: &[&str]) -> Result<Option<Output>, NetError> {
        let mut cmd = Command::new(family.program());
        cmd.args(["--wait", "-t", "nat"])
            .args(args)
            .env("LC_ALL", "C");
        crate::netns::exec_in(&mut cmd, &self.netns);
        match cmd.output() {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetError::io(format!("run {}", family.program()), e)),
        }
    }

    /// Like [`Self::run`], but a missing program or a failure is an error.
    pub(super) fn run_ok(&self, family: Family, args: &[&str]) -> Result<String, NetError> {
        let out = self
            .run(family, args)?
            .ok_or_else(|| not_installed(family))?;
        if !out.status.success() {
            return Err(command_error(family, args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `nat` table; `None` when the program is missing or the kernel has
    /// no such table for this family (a node without IPv6 NAT holds no IPv6
    /// masquerade rules).
    pub(super) fn list(&self, family: Family) -> Result<Option<SavedTable>, NetError> {
        if self.certainly_no_nat_table(family) {
            return Ok(None);
        }
        self.list_always(family)
    }

    /// [`Self::list`] without the probe: `iptables -S` also creates the table
    /// (iptables-nft) or loads it (legacy), which adding a rule needs.
    pub(super) fn list_always(&self, family: Family) -> Result<Option<SavedTable>, NetError> {
        let Some(out) = self.run(family, &["-S"])? else {
            return Ok(None);
        };
        if !out.status.success() {
            if String::from_utf8_lossy(&out.stderr).contains("does not exist") {
                return Ok(None);
            }
            return Err(command_error(family, &["-S"], &out));
        }
        Ok(Some(SavedTable::parse(&String::from_utf8_lossy(
            &out.stdout,
        ))))
    }

    /// go-iptables `AppendUnique`: `-C`, then `-A` if the check found nothing.
    pub(super) fn append_unique(
        &self,
        family: Family,
        chain: &str,
        spec: &[&str],
    ) -> Result<(), NetError> {
        let mut check = vec!["-C", chain];
        check.extend_from_slice(spec);
        let out = self
            .run(family, &check)?
            .ok_or_else(|| not_installed(family))?;
        match out.status.code() {
            Some(0) => Ok(()),
            // 1 is "no such rule" (go-iptables reads it the same way).
            Some(1) => {
                let mut append = vec!["-A", chain];
                append.extend_from_slice(spec);
                self.run_ok(family, &append).map(drop)
            }
            _ => Err(command_error(family, &check, &out)),
        }
    }

    /// The reference's teardown without knowing the addresses: delete every
    /// POSTROUTING rule jumping to the chain, then flush and delete it.
    pub(super) fn remove_chain(&self, network: &str, container_id: &str) -> Result<(), NetError> {
        let chain = iptables_chain_name(network, container_id);
        let mut first_error = None;
        for family in [Family::V4, Family::V6] {
            let result = (|| {
                let Some(table) = self.list(family)? else {
                    return Ok(());
                };
                for jump in table
                    .rules
                    .iter()
                    .filter(|r| r.chain == "POSTROUTING" && r.target() == Some(chain.as_str()))
                {
                    let mut delete = vec!["-D", "POSTROUTING"];
                    delete.extend(jump.spec.iter().map(String::as_str));
                    self.run_ok(family, &delete)?;
                }
                if table.has_chain(&chain) {
                    self.run_ok(family, &["-F", &chain])?;
                    self.run_ok(family, &["-X", &chain])?;
                }
                Ok::<(), NetError>(())
            })();
            // Try both families before reporting, like a DEL should.
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

pub(super) fn not_installed(family: Family) -> NetError {
    NetError::io(
        format!("run {}", family.program()),
        io::Error::new(io::ErrorKind::NotFound, "program not found in PATH"),
    )
}

pub(super) fn with_comment<'a>(spec: &[&'a str], comment: &'a str) -> Vec<&'a str> {
    let mut spec = spec.to_vec();
    spec.extend(["-m", "comment", "--comment", comment]);
    spec
}

pub(super) fn command_error(family: Family, args: &[&str], out: &Output) -> NetError {
    let status = match out.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    NetError::Command {
        command: format!("{} --wait -t nat {}", family.program(), args.join(" ")),
        status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

impl Masquerade for IptablesMasquerade {
    fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), NetError> {
        let family = Family::of(source.addr());
        let chain = iptables_chain_name(&key.network, &key.container_id);
        let comment = iptables_comment(&key.network, &key.container_id);
        let table = self
            .list_always(family)?
            .ok_or_else(|| not_installed(family))?;
        if !table.has_chain(&chain) {
            self.run_ok(family, &["-N", &chain])?;
        }
        // The reference's order and arguments (`ipn.String()` keeps the host
        // bits; the kernel stores the subnet).
        let dest = source.to_string();
        let addr = source.addr().to_string();
        let accept = with_comment(&["-d", &dest, "-j", "ACCEPT"], &comment);
        self.append_unique(family, &chain, &accept)?;
        let masq = with_comment(
            &["!", "-d", family.multicast(), "-j", "MASQUERADE"],
            &comment,
        );
        self.append_unique(family, &chain, &masq)?;
        let jump = with_comment(&["-s", &addr, "-j", &chain], &comment);
        self.append_unique(family, "POSTROUTING", &jump)
    }

    fn remove(&mut self, key: &AttachmentKey) -> Result<(), NetError> {
        self.remove_chain(&key.network, &key.container_id)
    }

    fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, NetError> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Some(table) = self.list(family)? {
                out.extend(table.masq_rules(network));
            }
        }
        Ok(out)
    }

    /// The interface names in `valid` are ignored: chains are per container.
    fn gc(&mut self, network: &str, valid: &[(String, String)]) -> Result<Vec<MasqRule>, NetError> {
        let keep: HashSet<&str> = valid.iter().map(|(cid, _)| cid.as_str()).collect();
        let mut stale = HashSet::new();
        let mut removed = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Some(table) = self.list(family)? {
                let gone: HashSet<String> = table
                    .owners(network)
                    .into_iter()
                    .filter(|cid| !keep.contains(cid.as_str()))
                    .collect();
                removed.extend(
                    table
                        .masq_rules(network)
                        .into_iter()
                        .filter(|r| gone.contains(&r.container_id)),
                );
                stale.extend(gone);
            }
        }
        for cid in &stale {
            self.remove_chain(network, cid)?;
        }
        Ok(removed)
    }
}
