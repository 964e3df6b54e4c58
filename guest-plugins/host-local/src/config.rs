//! Parsing and validation of the whole host-local configuration: the network
//! config JSON plus `CNI_ARGS`, as the reference's `LoadIPAMConfig` does it
//! (plugins `backend/allocator/config.go`, `range.go`, `range_set.go`).
//!
//! Pure: no I/O. The validation messages are the reference's, word for word;
//! where the reference would only fail inside Go's JSON decoder, the message
//! names the key and the value instead.
//!
//! Two habits of the reference are kept on purpose so that every config it
//! accepts is accepted here: object keys match case-insensitively (Go's
//! `encoding/json`), and `null` means "absent".

use std::net::IpAddr;

use serde_json::Value;

use crate::ip;
use cni::{CniError, ErrorCode};

mod cni_args;
mod raw;

use cni_args::parse_cni_args;
use raw::{RawConfig, RawRange};

/// Where the reference keeps its state when `ipam.dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A validated host-local configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpamConfig {
    /// The config's `cniVersion` (empty when absent).
    pub cni_version: String,
    /// The range sets in allocation order: `runtimeConfig.ipRanges`, then the
    /// legacy top-level range, then `ipam.ranges`. Index `i` owns
    /// `last_reserved_ip.<i>`.
    pub range_sets: Vec<RangeSet>,
    /// `ipam.routes`, returned verbatim in the ADD result.
    pub routes: Vec<Route>,
    /// `ipam.dataDir`, or [`DEFAULT_DATA_DIR`]. The host opens it; the guest only
    /// validates it.
    pub data_dir: String,
    /// `ipam.resolvConf`, when set and not empty.
    pub resolv_conf: Option<String>,
    /// Requested addresses, deduplicated, in the order CNI_ARGS `IP`,
    /// `args.cni.ips`, `runtimeConfig.ips`; prefixes dropped.
    pub requested_ips: Vec<IpAddr>,
}

/// One pool of disjoint ranges of a single address family; an ADD takes one
/// address from each set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSet {
    /// At least one range, all of the same family, none overlapping.
    pub ranges: Vec<Range>,
}

/// A validated range: `subnet` with defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The network address (host bits are rejected).
    pub subnet: IpAddr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The first allocatable address, inclusive.
    pub range_start: IpAddr,
    /// The last allocatable address, inclusive.
    pub range_end: IpAddr,
    /// Returned with every address of this range and never allocated. Like the
    /// reference, not checked against the subnet.
    pub gateway: IpAddr,
}

/// A route of `ipam.routes`, normalised the way the reference re-encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination CIDR (host bits kept as written).
    pub dst: String,
    /// Next hop, when given.
    pub gw: Option<String>,
    /// Omitted when 0 (Go `omitempty`).
    pub mtu: Option<u32>,
    /// Omitted when 0 (Go `omitempty`).
    pub advmss: Option<u32>,
    /// Omitted when 0 (Go `omitempty`).
    pub priority: Option<u32>,
    /// Kept even when 0 (a pointer in the reference).
    pub table: Option<u32>,
    /// Kept even when 0 (a pointer in the reference).
    pub scope: Option<u32>,
}

impl Range {
    /// Whether `addr` lies in the subnet and between the range's start and end.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = ip::canonical(addr);
        in_subnet(self.subnet, self.prefix, addr)
            && ip::to_u128(addr) >= ip::to_u128(self.range_start)
            && ip::to_u128(addr) <= ip::to_u128(self.range_end)
    }

    /// The reference's `Range.Overlaps`: same family and either range holds an
    /// end of the other.
    pub fn overlaps(&self, other: &Range) -> bool {
        ip::same_family(self.range_start, other.range_start)
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }

    /// The gateway as an integer when it is of the range's family.
    pub fn gateway_u128(&self) -> Option<u128> {
        ip::same_family(self.gateway, self.range_start).then(|| ip::to_u128(self.gateway))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

impl RangeSet {
    /// The range holding `addr`, if any.
    pub fn range_for(&self, addr: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(addr))
    }

    /// Whether some range of the set holds `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_some()
    }

    /// Whether any range of `self` overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|r| other.ranges.iter().any(|o| r.overlaps(o)))
    }

    /// Whether the set is IPv4 (decided by its first range, as the reference does).
    pub fn is_v4(&self) -> bool {
        self.ranges.first().is_some_and(|r| r.range_start.is_ipv4())
    }
}

impl std::fmt::Display for RangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn in_subnet(subnet: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    if !ip::same_family(subnet, addr) {
        return false;
    }
    let m = ip::mask(prefix, ip::bits(subnet));
    ip::to_u128(addr) & m == ip::to_u128(subnet) & m
}

/// Parses and validates the network configuration `config` (the full stdin
/// JSON) together with the `CNI_ARGS` pairs.
///
/// Errors carry code 6 when `config` is not JSON, 4 for `CNI_ARGS`, and 7 for
/// everything else.
/// The most range sets (addresses per container) a config may ask for; the
/// reference sets no bound.
pub const MAX_RANGE_SETS: usize = 16;

/// The most ranges of all sets together.
pub const MAX_RANGES: usize = 1024;

pub fn load(config: &str, cni_args: &[(String, String)]) -> Result<IpamConfig, CniError> {
    let root: Value = serde_json::from_str(config).map_err(|e| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("error unmarshall network config: {e}"),
        )
    })?;
    let raw = RawConfig::parse(&root)?;
    let Some(ipam) = raw.ipam else {
        return Err(CniError::invalid_config("IPAM config missing 'ipam' key"));
    };

    let mut requested = Vec::new();
    if let Some(ip) = parse_cni_args(cni_args)? {
        requested.push(Some(ip));
    }
    requested.extend(raw.args_ips);
    requested.extend(raw.runtime_ips);
    let mut requested_ips: Vec<IpAddr> = Vec::new();
    for ip in requested {
        // An empty string in `args.cni.ips` or `runtimeConfig.ips` decodes to a
        // nil IP in the reference, which its canonicalisation then rejects.
        let ip = ip.ok_or_else(|| {
            CniError::invalid_config("cannot understand ip: IP <nil> not v4 nor v6")
        })?;
        if !requested_ips.contains(&ip) {
            requested_ips.push(ip);
        }
    }

    let mut raw_sets = raw.runtime_ranges;
    if let Some(legacy) = ipam.legacy {
        raw_sets.push(legacy);
    }
    raw_sets.extend(ipam.ranges);
    if raw_sets.is_empty() {
        return Err(CniError::invalid_config("no IP ranges specified"));
    }
    // Each set is one address of the container: a config with 11,000 sets
    // once ran out of time half-way and left 571 reservations behind.
    if raw_sets.len() > MAX_RANGE_SETS {
        return Err(CniError::invalid_config(format!(
            "{} range sets, more than {MAX_RANGE_SETS} (each is one address of the container)",
            raw_sets.len()
        )));
    }
    let ranges: usize = raw_sets.iter().map(|(_, set)| set.len()).sum();
    if ranges > MAX_RANGES {
        return Err(CniError::invalid_config(format!(
            "{ranges} ranges in all, more than {MAX_RANGES}"
        )));
    }

    let mut range_sets = Vec::with_capacity(raw_sets.len());
    for (i, (source, raw_set)) in raw_sets.iter().enumerate() {
        let set = canonicalize_set(raw_set).map_err(|e| {
            CniError::invalid_config(format!("invalid range set {i}: {e}"))
                .with_details(format!("range set {i} is {source}"))
        })?;
        range_sets.push(set);
    }

    let v4 = range_sets.iter().filter(|s| s.is_v4()).count();
    let v6 = range_sets.len() - v4;
    if (v4 > 1 || v6 > 1) && !version_at_least(&raw.cni_version, (0, 3, 0)) {
        return Err(CniError::invalid_config(format!(
            "CNI version {} does not support more than 1 address per family",
            raw.cni_version
        ))
        .with_details(
            "cniVersion 0.3.0 or later is needed for more than one range set per family",
        ));
    }

    let named: Vec<(&RangeSet, &str)> = range_sets
        .iter()
        .zip(raw_sets.iter().map(|(source, _)| source.as_str()))
        .collect();
    for (i, (a, a_source)) in named.iter().enumerate() {
        for (j, (b, b_source)) in named.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(
                    CniError::invalid_config(format!("range set {i} overlaps with {j}"))
                        .with_details(format!(
                            "range set {i} is {a_source} ({a}), range set {j} is {b_source} ({b})"
                        )),
                );
            }
        }
    }

    Ok(IpamConfig {
        cni_version: raw.cni_version,
        range_sets,
        routes: ipam.routes,
        data_dir: ipam
            .data_dir
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        resolv_conf: ipam.resolv_conf.filter(|r| !r.is_empty()),
        requested_ips,
    })
}

/// The reference's `Range.Canonicalize`: validation plus defaults, in its order.
fn canonicalize_range(raw: &RawRange) -> Result<Range, String> {
    let Some(cidr) = raw.subnet else {
        // A range without `subnet` has a nil network address in the reference.
        return Err("IP <nil> not v4 nor v6".to_string());
    };
    let addr = ip::canonical(cidr.addr);
    // The mask keeps the family the subnet was written in; an IPv4-mapped IPv6
    // subnet therefore has a 128-bit mask over a 4-byte address.
    let mask_bits = ip::bits(cidr.addr);
    let mapped = addr.is_ipv4() && cidr.addr.is_ipv6();
    let ones = u32::from(cidr.prefix);
    if ones > mask_bits - 2 {
        // Go prints such a mixed net as IPv4 with the mask's last 32 bits.
        let shown = if mapped { ones - 96 } else { ones };
        return Err(format!("Network {addr}/{shown} too small to allocate from"));
    }
    if mapped {
        return Err("IPNet IP and Mask version mismatch".to_string());
    }
    let mask = ip::mask(cidr.prefix, mask_bits);
    let network = ip::from_u128(addr, ip::to_u128(addr) & mask);
    if network != addr {
        return Err(format!(
            "Network has host bits set. For a subnet mask of length {ones} the network address is {network}"
        ));
    }
    let subnet_text = format!("{network}/{ones}");
    let first = ip::from_u128(network, ip::to_u128(network) + 1);
    let gateway = raw.gateway.unwrap_or(first);

    // While a range is being built, the reference's `Contains` checks only the
    // bounds that are already known.
    let within = |a: IpAddr, lo: Option<IpAddr>, hi: Option<IpAddr>| {
        in_subnet(network, cidr.prefix, a)
            && lo.is_none_or(|lo| !ip::same_family(a, lo) || ip::to_u128(a) >= ip::to_u128(lo))
            && hi.is_none_or(|hi| !ip::same_family(a, hi) || ip::to_u128(a) <= ip::to_u128(hi))
    };
    let range_start = match raw.range_start {
        Some(s) if !within(s, Some(s), raw.range_end) => {
            return Err(format!("RangeStart {s} not in network {subnet_text}"));
        }
        Some(s) => s,
        None => first,
    };
    let range_end = match raw.range_end {
        Some(e) if !within(e, Some(range_start), Some(e)) => {
            return Err(format!("RangeEnd {e} not in network {subnet_text}"));
        }
        Some(e) => e,
        None => {
            let last = ip::to_u128(network) | (!mask & ip::all_ones(mask_bits));
            // IPv4 keeps the broadcast address out; IPv6 has none.
            let last = if network.is_ipv4() { last - 1 } else { last };
            // Only an IPv4 `rangeStart` at the broadcast address gets here. The
            // reference accepts it and then walks the whole address space on ADD.
            if ip::to_u128(range_start) > last {
                return Err(format!(
                    "RangeStart {range_start} is after the default RangeEnd {}",
                    ip::from_u128(network, last)
                ));
            }
            ip::from_u128(network, last)
        }
    };
    Ok(Range {
        subnet: network,
        prefix: cidr.prefix,
        range_start,
        range_end,
        gateway,
    })
}

/// The reference's `RangeSet.Canonicalize`.
fn canonicalize_set(raw: &[RawRange]) -> Result<RangeSet, String> {
    if raw.is_empty() {
        return Err("empty range set".to_string());
    }
    let mut ranges: Vec<Range> = Vec::with_capacity(raw.len());
    for r in raw {
        let r = canonicalize_range(r)?;
        if let Some(first) = ranges.first() {
            if !ip::same_family(first.range_start, r.range_start) {
                return Err("mixed address families".to_string());
            }
        }
        ranges.push(r);
    }
    for (i, r1) in ranges.iter().enumerate() {
        for r2 in ranges.iter().skip(i + 1) {
            if r1.overlaps(r2) {
                return Err(format!("subnets {r1} and {r2} overlap"));
            }
        }
    }
    Ok(RangeSet { ranges })
}

/// The reference's `version.GreaterThanOrEqualTo`; an empty version is 0.1.0
/// and an unparsable one is never at least anything.
fn version_at_least(version: &str, min: (i64, i64, i64)) -> bool {
    if version.is_empty() {
        return (0, 1, 0) >= min;
    }
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() > 3 {
        return false;
    }
    let mut v = [0i64; 3];
    for (slot, part) in v.iter_mut().zip(&parts) {
        match part.parse() {
            Ok(n) => *slot = n,
            Err(_) => return false,
        }
    }
    (v[0], v[1], v[2]) >= min
}

#[cfg(test)]
mod tests;
