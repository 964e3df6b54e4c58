//! `CNI_ARGS`, read as the reference's `types.LoadArgs` reads it.

use std::net::IpAddr;

use super::raw::parse_ip_arg;
use crate::error::{code, Failure};

/// The reference's `types.LoadArgs` into `IPAMEnvArgs`: the keys `IP` and
/// `IgnoreUnknown` (case-sensitive), anything else unknown.
///
/// Unlike the reference, `K8S_*` keys are tolerated without `IgnoreUnknown`:
/// Kubernetes runtimes send them and a missing `IgnoreUnknown` is a common
/// cause of `unknown args` failures (cni#126, cni#560).
pub(super) fn parse_cni_args(pairs: &[(String, String)]) -> Result<Option<IpAddr>, Failure> {
    let fail = |msg: String| {
        Failure::new(code::INVALID_ENVIRONMENT, msg)
            .with_details("from the CNI_ARGS environment variable")
    };
    let mut requested = None;
    let mut ignore_unknown = false;
    let mut unknown = Vec::new();
    for (key, value) in pairs {
        let pair = format!("{key}={value}");
        match key.as_str() {
            "IP" => {
                requested = parse_ip_arg(value).map_err(|e| {
                    fail(format!("ARGS: error parsing value of pair {}: {e}", go_quote(&pair)))
                })?;
            }
            "IgnoreUnknown" => {
                let lower = value.to_lowercase();
                ignore_unknown = match lower.as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(fail(format!(
                            "ARGS: error parsing value of pair {}: boolean unmarshal error: invalid input {lower}",
                            go_quote(&pair)
                        )))
                    }
                };
            }
            // Go finds the embedded struct by name and cannot decode text into it.
            "CommonArgs" => {
                return Err(fail(
                    "ARGS: cannot unmarshal into field 'CommonArgs' - type '*types.CommonArgs' does not implement encoding.TextUnmarshaler"
                        .to_string(),
                ))
            }
            k if k.starts_with("K8S_") => {}
            _ => unknown.push(pair),
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        let list: Vec<String> = unknown.iter().map(|p| go_quote(p)).collect();
        return Err(
            fail(format!("ARGS: unknown args [{}]", list.join(" "))).with_details(
                "set IgnoreUnknown=1 in CNI_ARGS to ignore keys host-local does not use",
            ),
        );
    }
    Ok(requested)
}

/// Go's `%q` for a string: double quotes with Go escapes.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
