//! The names and comments of masquerade rules, exactly as the reference
//! derives them, and how they are read back.

use std::fmt::Write as _;

use sha2::{Digest, Sha512};

use cni::go_quote;
use plan::AttachmentKey;

/// The nftables table (family `inet`) that the reference uses.
pub const NFT_TABLE: &str = "cni_plugins_masquerade";
/// The regular chain holding one rule per attachment address.
pub const NFT_MASQ_CHAIN: &str = "masq_checks";
/// The base chain (nat, postrouting, priority srcnat).
pub const NFT_POSTROUTING_CHAIN: &str = "postrouting";

pub(super) const NFT_TABLE_COMMENT: &str =
    "Masquerading for plugins from github.com/containernetworking/plugins";
pub(super) const NFT_MASQ_CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// knftables `CommentLengthMax`, which is also what `nft` accepts.
pub(super) const NFT_COMMENT_MAX: usize = 128;

/// Lowercase hex of sha512(`input`).
pub(super) fn sha512_hex(input: &str) -> String {
    let mut out = String::with_capacity(128);
    for byte in Sha512::digest(input.as_bytes()) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The first 16 hex digits of sha512(`input`) (the reference's
/// `MustFormatHashWithPrefix(16, "", input)`).
pub(super) fn h16(input: &str) -> String {
    let mut hex = sha512_hex(input);
    hex.truncate(16);
    hex
}

/// The comment prefix shared by every nftables rule of `network`.
pub(super) fn nft_network_prefix(network: &str) -> String {
    format!("{}-", h16(network))
}

/// `<h16(network)>-<h16(ifname:containerID)>`: the comment prefix that the
/// reference matches to delete the rules of one attachment.
pub fn nft_instance_prefix(key: &AttachmentKey) -> String {
    format!(
        "{}-{}",
        h16(&key.network),
        h16(&format!("{}:{}", key.ifname, key.container_id))
    )
}

/// The comment of the nftables rules of `key`: the instance prefix, then the
/// names with `"` removed, cut to 128 bytes (the reference's
/// `commentForInstance`).
pub fn nft_rule_comment(key: &AttachmentKey) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_instance_prefix(key),
        strip(&key.network),
        strip(&key.ifname),
        strip(&key.container_id)
    );
    // Go cuts at byte 128 even inside a character; a String cannot, so with
    // non-ASCII names (which CNI forbids anyway) we cut a little earlier.
    let mut end = comment.len().min(NFT_COMMENT_MAX);
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    comment.truncate(end);
    comment
}

/// Reads `(ifname, containerID)` back from a rule comment of `network`.
pub(super) fn parse_nft_comment(network: &str, comment: &str) -> Option<(String, String)> {
    let head = format!("{}-", h16(network));
    let rest = comment.strip_prefix(&head)?;
    // 16 hex digits of the interface hash, then the readable part.
    let rest = rest.get(16..)?;
    let rest = rest.strip_prefix(&format!(", net: {}, if: ", network.replace('"', "")))?;
    Some(match rest.split_once(", id: ") {
        Some((ifname, cid)) => (ifname.to_string(), cid.to_string()),
        None => (rest.to_string(), String::new()),
    })
}

/// The reference's iptables chain: `CNI-` and the first 24 hex digits of
/// sha512(network + containerID) (`utils.FormatChainName`). The interface
/// name is not part of it: all attachments of one container to one network
/// share the chain.
pub fn iptables_chain_name(network: &str, container_id: &str) -> String {
    let mut hex = sha512_hex(&format!("{network}{container_id}"));
    hex.truncate(24);
    format!("CNI-{hex}")
}

/// The reference's iptables comment, `name: "<network>" id: "<containerID>"`
/// with Go `%q` quoting (`utils.FormatComment`).
pub fn iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Reads one Go-quoted string from the start of `s`; returns it and the rest.
pub(super) fn go_unquote(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| {
                    let digits: String = chars.by_ref().take(n).map(|(_, d)| d).collect();
                    if digits.len() != n {
                        return None;
                    }
                    u32::from_str_radix(&digits, 16).ok()
                };
                out.push(match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    '\\' | '"' | '\'' => e,
                    'x' => char::from_u32(hex(&mut chars, 2)?)?,
                    'u' => char::from_u32(hex(&mut chars, 4)?)?,
                    'U' => char::from_u32(hex(&mut chars, 8)?)?,
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Reads `(network, containerID)` back from an iptables comment.
pub(super) fn parse_iptables_comment(comment: &str) -> Option<(String, String)> {
    let (network, rest) = go_unquote(comment.strip_prefix("name: ")?)?;
    let (container_id, rest) = go_unquote(rest.strip_prefix(" id: ")?)?;
    rest.is_empty().then_some((network, container_id))
}
