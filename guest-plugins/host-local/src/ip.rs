//! Address parsing and arithmetic, with the reference's (Go `net`) semantics.
//!
//! Go keeps IPv4 addresses as 4 bytes after `To4()` and treats an IPv4-mapped
//! IPv6 address (`::ffff:a.b.c.d`) as that IPv4 address. Every address that
//! enters this plugin goes through [`canonical`] so that `::ffff:10.1.2.3` and
//! `10.1.2.3` name the same file on disk, as they do for the reference.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4-mapped IPv6 address becomes the IPv4 address; anything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Go's `net.ParseIP` followed by `To4()`: a plain address, canonicalised.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical)
}

/// A CIDR as Go's `net.ParseCIDR` reads it, keeping the address as written
/// (host bits included) like CNI's `types.IPNet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address part, not canonicalised: its family is the mask's family
    /// (`::ffff:10.0.0.0/104` has a 128-bit mask).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `<ip>/<prefix>`; none when Go's `net.ParseCIDR` would fail.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        // Go's netip rejects signs and leading zeros in the prefix.
        if prefix.is_empty()
            || !prefix.bytes().all(|b| b.is_ascii_digit())
            || (prefix.len() > 1 && prefix.starts_with('0'))
        {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        if u32::from(prefix) > bits(addr) {
            return None;
        }
        Some(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// 32 or 128.
pub fn bits(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address as an integer of its family's width.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of the same family as `like` whose integer value is `n`
/// (truncated to 32 bits for IPv4).
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        // Truncation is intended: callers stay within the family's range.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// `bits` one bits: the largest address of a family of that width.
pub fn all_ones(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The netmask of `prefix` ones in a family of `bits` bits, as an integer.
pub fn mask(prefix: u8, bits: u32) -> u128 {
    let prefix = u32::from(prefix).min(bits);
    let all = all_ones(bits);
    if prefix == 0 {
        0
    } else {
        all & !all.checked_shr(prefix).unwrap_or(0)
    }
}

/// Whether `a` and `b` are the same family.
pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_maps_v4_mapped_v6_to_v4() {
        assert_eq!(canonical(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(parse_ip("::ffff:10.1.2.3"), Some(ip("10.1.2.3")));
        assert_eq!(parse_ip("10.1.2"), None);
        assert_eq!(parse_ip(""), None);
    }

    #[test]
    fn cidr_parse_follows_go() {
        assert_eq!(
            Cidr::parse("10.1.2.3/24"),
            Some(Cidr {
                addr: ip("10.1.2.3"),
                prefix: 24
            })
        );
        assert_eq!(Cidr::parse("2001:db8::/64").map(|c| c.prefix), Some(64));
        for bad in [
            "10.1.2.0",
            "10.1.2.0/33",
            "10.1.2.0/",
            "10.1.2.0/+8",
            "10.1.2.0/08",
            "x/8",
            "/8",
            "::/129",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
        assert_eq!(Cidr::parse("10.0.0.0/0").map(|c| c.prefix), Some(0));
    }

    #[test]
    fn mask_and_u128_round_trip() {
        assert_eq!(mask(24, 32), 0xffff_ff00);
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(64, 128), u128::MAX << 64);
        assert_eq!(mask(128, 128), u128::MAX);
        let v4 = ip("10.1.2.3");
        assert_eq!(from_u128(v4, to_u128(v4) + 1), ip("10.1.2.4"));
        let v6 = ip("2001:db8::ffff");
        assert_eq!(from_u128(v6, to_u128(v6) + 1), ip("2001:db8::1:0"));
    }
}
