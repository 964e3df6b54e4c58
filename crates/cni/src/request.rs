//! Turning a plugin invocation (environment + stdin) into a validated
//! request, with the reference skel's checks, order, codes and messages
//! (cni `pkg/skel/skel.go`, `pkg/utils/utils.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::args::CniArgs;
use super::error::{CniError, ErrorCode};
use super::quote::go_quote;
use super::result::{field, kind, opt_str, parse_result, CniResult};
use super::version::{check_command_version, CniVersion};

/// `CNI_COMMAND`
pub const ENV_COMMAND: &str = "CNI_COMMAND";
/// `CNI_CONTAINERID`
pub const ENV_CONTAINERID: &str = "CNI_CONTAINERID";
/// `CNI_NETNS`
pub const ENV_NETNS: &str = "CNI_NETNS";
/// `CNI_IFNAME`
pub const ENV_IFNAME: &str = "CNI_IFNAME";
/// `CNI_ARGS`
pub const ENV_ARGS: &str = "CNI_ARGS";
/// `CNI_PATH`
pub const ENV_PATH: &str = "CNI_PATH";
/// `CNI_NETNS_OVERRIDE` (reference-only, used by test harnesses)
pub const ENV_NETNS_OVERRIDE: &str = "CNI_NETNS_OVERRIDE";

/// The GC list of attachments still in use (SPEC.md HEAD).
pub const KEY_VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The key spec-v1.1.0 named by mistake; libcni sends it alongside the new one.
pub const KEY_LEGACY_ATTACHMENTS: &str = "cni.dev/attachments";

/// IFNAMSIZ - 1: the longest Linux interface name.
const MAX_IFNAME_LEN: usize = 15;

/// A CNI verb (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// ADD
    Add,
    /// DEL
    Del,
    /// CHECK
    Check,
    /// GC
    Gc,
    /// STATUS
    Status,
    /// VERSION
    Version,
}

impl Command {
    /// Parses a `CNI_COMMAND` value: exact, upper-case, as the reference.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;
    /// Fails with code 4 `unknown CNI_COMMAND: X`, the reference message.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::parse(s).ok_or_else(|| CniError::invalid_env(format!("unknown CNI_COMMAND: {s}")))
    }
}

/// What an invocation asks for.
// Built once per process and matched right away; boxing would only make
// the callers' patterns clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// CNI_COMMAND unset or empty: the reference prints an "about" text to
    /// stderr and exits 0 (see [`super::version::about_text`]).
    About,
    /// VERSION: print [`super::version::version_info_json`]; nothing else is
    /// read (the reference discards stdin).
    Version,
    /// ADD, DEL, CHECK, GC or STATUS, validated.
    Request(Request),
}

/// A validated ADD/DEL/CHECK/GC/STATUS request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The verb (never [`Command::Version`]).
    pub command: Command,
    /// CNI_CONTAINERID; validated for ADD/CHECK/DEL, may be empty (and is
    /// unvalidated, as in the reference) for GC/STATUS.
    pub container_id: String,
    /// CNI_NETNS; `None` when unset or empty (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME; validated for ADD/CHECK/DEL, may be empty for GC/STATUS.
    pub ifname: String,
    /// CNI_ARGS, parsed leniently: a plugin that uses them calls
    /// [`CniArgs::check_known`], which reports malformed input.
    pub args: CniArgs,
    /// CNI_PATH split on ':' with empty entries dropped (an empty entry
    /// would otherwise mean the current directory).
    pub path: Vec<PathBuf>,
    /// CNI_NETNS_OVERRIDE is `1` or `true` (any case): skip the "CNI_NETNS is
    /// our own netns" check (reference skel, for test harnesses).
    pub netns_override: bool,
    /// The parsed network configuration.
    pub config: NetConf,
    /// The exact stdin bytes, to hand unchanged to delegated (IPAM) plugins.
    pub stdin: Vec<u8>,
}

/// An entry of the GC valid-attachments list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name.
    #[serde(rename = "ifname")]
    pub ifname: String,
}

/// The network configuration from stdin: the well-known keys parsed, the
/// whole object kept in `raw` (unknown keys included) for the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion` (empty or absent = 0.1.0).
    pub cni_version: CniVersion,
    /// `name`, validated like a container ID.
    pub name: String,
    /// `type`; `None` when absent or empty.
    pub plugin_type: Option<String>,
    /// The whole config object.
    pub raw: Map<String, Value>,
    /// `prevResult`, parsed from any supported version's shape (the config's
    /// version when it carries none).
    pub prev_result: Option<CniResult>,
    /// `runtimeConfig` as given.
    pub runtime_config: Option<Value>,
    /// `args` as given (CONVENTIONS.md "args in network config").
    pub args: Option<Value>,
    /// `ipam.type`; `None` when absent or empty (bridge's L2 mode).
    pub ipam_type: Option<String>,
    /// GC only: `cni.dev/valid-attachments`, else the legacy
    /// `cni.dev/attachments`, else `None` (cnitool sends neither: "no list",
    /// which is not the same as `Some(vec![])`, "nothing is in use").
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The reference regex `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (Go RE2: `$` is the
/// end of the text, so a trailing newline does not match).
fn valid_name_chars(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        None => false,
        Some((first, rest)) => {
            first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        }
    }
}

/// The reference `ValidateContainerID`: empty is code 3 `missing
/// containerID`; bad characters are code 4 `invalid characters in
/// containerID` with the ID as details.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !valid_name_chars(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// The reference `ValidateNetworkName` (code 7). The reference's empty-name
/// message has a stray colon; skel reports an empty name earlier as
/// `missing network name`, and so do we.
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !valid_name_chars(name) {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

/// The reference `ValidateInterfaceName` (code 4, same messages): not
/// empty, at most 15 bytes, not `.` or `..`, no `/`, `:` or Unicode
/// whitespace. Deviation: `details` also names the offending value (quoted),
/// where the reference leaves it empty.
pub fn validate_interface_name(ifname: &str) -> Result<(), CniError> {
    let quoted = go_quote(ifname);
    if ifname.is_empty() {
        return Err(CniError::invalid_env("interface name is empty"));
    }
    if ifname.len() > MAX_IFNAME_LEN {
        return Err(
            CniError::invalid_env("interface name is too long").with_details(format!(
                "interface name should be less than {} characters, got {quoted}",
                MAX_IFNAME_LEN + 1
            )),
        );
    }
    if ifname == "." || ifname == ".." {
        return Err(CniError::invalid_env("interface name is . or ..").with_details(quoted));
    }
    if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(CniError::invalid_env(
            "interface name contains / or : or whitespace characters",
        )
        .with_details(quoted));
    }
    // The kernel accepts control characters in names, but the reference's check
    // does not look for them and no tool handles them well: refuse them here
    // rather than let every container intent fail validation later.
    if ifname.chars().any(char::is_control) {
        return Err(
            CniError::invalid_env("interface name contains control characters")
                .with_details(quoted),
        );
    }
    Ok(())
}

/// Reads an invocation from its environment and stdin, in the reference
/// skel's order:
///
/// 1. CNI_COMMAND unset/empty → [`Invocation::About`]; VERSION →
///    [`Invocation::Version`] (nothing else read); unknown → code 4
///    `unknown CNI_COMMAND: X`. (The reference validates stdin before
///    noticing an unknown verb; we report the verb first, which is the more
///    useful error and what libcni's VERSION probe of old plugins expects.)
/// 2. Environment, in the order CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
///    CNI_PATH: an invalid container ID or interface name fails at once;
///    every missing (unset or empty) required variable is then reported
///    together, code 4 `required env variables [CNI_NETNS,CNI_IFNAME]
///    missing`. Required: CONTAINERID and IFNAME for ADD/CHECK/DEL, NETNS
///    for ADD/CHECK, PATH for all five verbs. Values are only validated
///    where required (GC's CNI_CONTAINERID is not).
/// 3. stdin via [`NetConf::parse`].
pub fn parse_invocation(
    env: &BTreeMap<String, String>,
    stdin: &[u8],
) -> Result<Invocation, CniError> {
    let get = |k: &str| env.get(k).map(String::as_str).unwrap_or("");
    let raw_cmd = get(ENV_COMMAND);
    if raw_cmd.is_empty() {
        return Ok(Invocation::About);
    }
    let command: Command = raw_cmd.parse()?;
    if command == Command::Version {
        return Ok(Invocation::Version);
    }

    use Command::*;
    type Validator = fn(&str) -> Result<(), CniError>;
    let vars: [(&str, &[Command], Option<Validator>); 4] = [
        (
            ENV_CONTAINERID,
            &[Add, Check, Del],
            Some(validate_container_id),
        ),
        (ENV_NETNS, &[Add, Check], None),
        (
            ENV_IFNAME,
            &[Add, Check, Del],
            Some(validate_interface_name),
        ),
        (ENV_PATH, &[Add, Check, Del, Gc, Status], None),
    ];
    let mut missing = Vec::new();
    for (name, required_for, validate) in vars {
        let required = required_for.contains(&command);
        let value = get(name);
        if value.is_empty() {
            if required {
                missing.push(name);
            }
        } else if let (true, Some(validate)) = (required, validate) {
            validate(value)?;
        }
    }
    if !missing.is_empty() {
        return Err(CniError::invalid_env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }

    let config = NetConf::parse(stdin, command)?;
    let netns = get(ENV_NETNS);
    let netns_override = get(ENV_NETNS_OVERRIDE);
    Ok(Invocation::Request(Request {
        command,
        container_id: get(ENV_CONTAINERID).to_string(),
        netns: (!netns.is_empty()).then(|| PathBuf::from(netns)),
        ifname: get(ENV_IFNAME).to_string(),
        args: CniArgs::parse_lenient(get(ENV_ARGS)),
        path: get(ENV_PATH)
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        netns_override: netns_override == "1" || netns_override.eq_ignore_ascii_case("true"),
        config,
        stdin: stdin.to_vec(),
    }))
}

impl NetConf {
    /// Parses and validates stdin for `command`, with the reference's codes:
    ///
    /// - not JSON: 6 `error unmarshall network config: …`; JSON but not an
    ///   object: the same (`null` reads as `{}`, as Go does, and so fails on
    ///   the name);
    /// - `name` not a string: 6 (naming the key); empty or absent: 7
    ///   `missing network name`; bad characters: 7 `invalid characters found
    ///   in network name`, details = the name;
    /// - `cniVersion` not a string: 6 `decoding version from network config:
    ///   …`; then the verb gate and exact version match of
    ///   [`check_command_version`] (code 1, or 6 for a non-numeric version
    ///   under CHECK/GC/STATUS);
    /// - then the other keys: a wrong type is 7 naming the key, an
    ///   unparseable `prevResult` is 7 `could not parse prevResult: …`.
    ///
    /// Like Go, `null` counts as absent everywhere. Unlike Go, key names are
    /// matched exactly (Go's decoder would also take `"Name"` or `"NAME"`).
    pub fn parse(stdin: &[u8], command: Command) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin)
            .map_err(|e| CniError::decoding(format!("error unmarshall network config: {e}")))?;
        let raw = match value {
            Value::Object(o) => o,
            Value::Null => Map::new(),
            other => {
                return Err(CniError::decoding(format!(
                    "error unmarshall network config: expected a JSON object, found {}",
                    kind(&other)
                )))
            }
        };

        let name = opt_str(&raw, "name", "")
            .map_err(|e| CniError::decoding(format!("error unmarshall network config: {e}")))?
            .unwrap_or_default();
        validate_network_name(&name)?;

        let raw_version = opt_str(&raw, "cniVersion", "")
            .map_err(|e| CniError::decoding(format!("decoding version from network config: {e}")))?
            .unwrap_or_default();
        let cni_version = check_command_version(command, &raw_version)?;

        let bad = |e: String| CniError::invalid_config(format!("invalid network config: {e}"));
        let plugin_type = opt_str(&raw, "type", "").map_err(bad)?;
        let ipam_type = match field(&raw, "ipam") {
            None => None,
            Some(Value::Object(ipam)) => opt_str(ipam, "type", "ipam").map_err(bad)?,
            Some(v) => return Err(bad(format!("ipam: expected an object, found {}", kind(v)))),
        };
        let prev_result = match field(&raw, "prevResult") {
            None => None,
            Some(v) => Some(parse_result(v, cni_version).map_err(|e| {
                CniError::invalid_config(format!("could not parse prevResult: {}", e.msg))
            })?),
        };
        let valid_attachments = if command == Command::Gc {
            [KEY_VALID_ATTACHMENTS, KEY_LEGACY_ATTACHMENTS]
                .into_iter()
                .find_map(|key| field(&raw, key).map(|v| parse_attachments(v, key)))
                .transpose()
                .map_err(bad)?
        } else {
            None
        };

        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            prev_result,
            runtime_config: field(&raw, "runtimeConfig").cloned(),
            args: field(&raw, "args").cloned(),
            ipam_type,
            valid_attachments,
            raw,
        })
    }
}

fn parse_attachments(v: &Value, key: &str) -> Result<Vec<Attachment>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("{key}: expected an array, found {}", kind(v)))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{key}[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| format!("{path}: expected an object, found {}", kind(item)))?;
            Ok(Attachment {
                container_id: opt_str(o, "containerID", &path)?.unwrap_or_default(),
                ifname: opt_str(o, "ifname", &path)?.unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
