//! CNI spec versions, the VERSION answer and the per-verb version gates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{CniError, ErrorCode};
use super::quote::{go_quote, go_quote_list};
use super::request::Command;

/// Every spec version we accept in a config, in ascending order; the same
/// list as the reference's `version.All`.
pub const SUPPORTED_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A supported CNI spec version. Ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0
    V010,
    /// 0.2.0
    V020,
    /// 0.3.0
    V030,
    /// 0.3.1
    V031,
    /// 0.4.0
    V040,
    /// 1.0.0
    V100,
    /// 1.1.0
    V110,
}

impl CniVersion {
    /// All versions, oldest first (parallel to [`SUPPORTED_VERSIONS`]).
    pub const ALL: [CniVersion; 7] = [
        CniVersion::V010,
        CniVersion::V020,
        CniVersion::V030,
        CniVersion::V031,
        CniVersion::V040,
        CniVersion::V100,
        CniVersion::V110,
    ];

    /// The newest version, the one we implement ("1.1.0").
    pub const CURRENT: CniVersion = CniVersion::V110;

    /// The version string, e.g. "0.3.1".
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V010 => "0.1.0",
            CniVersion::V020 => "0.2.0",
            CniVersion::V030 => "0.3.0",
            CniVersion::V031 => "0.3.1",
            CniVersion::V040 => "0.4.0",
            CniVersion::V100 => "1.0.0",
            CniVersion::V110 => "1.1.0",
        }
    }

    /// Parses a config's `cniVersion`.
    ///
    /// Exact string match only, as the reference `Reconciler.Check` does
    /// ("1.0" or "v1.0.0" are refused), except that the empty string means
    /// 0.1.0 (`create.DecodeVersion`: configs predating the field). Failure
    /// is code 1 `incompatible CNI versions` with the reference's details
    /// `config is "X", plugin supports ["0.1.0" …]`.
    pub fn parse(s: &str) -> Result<CniVersion, CniError> {
        if s.is_empty() {
            return Ok(CniVersion::V010);
        }
        CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| incompatible(s))
    }

    /// True for 0.1.0 and 0.2.0, whose results use the `ip4`/`ip6` shape.
    pub fn is_legacy_result(self) -> bool {
        self <= CniVersion::V020
    }

    /// True for 0.3.0, 0.3.1 and 0.4.0, whose results carry `ips[].version`.
    pub fn is_04x_result(self) -> bool {
        (CniVersion::V030..=CniVersion::V040).contains(&self)
    }

    /// The oldest config version in which the reference skel accepts `cmd`,
    /// or `None` when any supported version will do.
    pub fn minimum_for(cmd: Command) -> Option<CniVersion> {
        match cmd {
            Command::Check => Some(CniVersion::V040),
            Command::Gc | Command::Status => Some(CniVersion::V110),
            Command::Add | Command::Del | Command::Version => None,
        }
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = CniError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::parse(s)
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CniVersion::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("{}: {}", e.msg, e.details)))
    }
}

/// The reference's incompatible-version error (skel `checkVersionAndCall`,
/// `version.ErrorIncompatible.Details`).
fn incompatible(config: &str) -> CniError {
    CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions").with_details(
        format!(
            "config is {}, plugin supports {}",
            go_quote(config),
            go_quote_list(&SUPPORTED_VERSIONS)
        ),
    )
}

/// The VERSION answer: compact JSON plus a newline, byte-identical to the
/// reference (`json.NewEncoder(w).Encode(pluginInfo)`).
///
/// `cniVersion` is always "1.1.0" like the reference, although the spec says
/// to echo the input's: the reference skel discards stdin for VERSION, and
/// libcni's decoder only needs a version it knows.
pub fn version_info_json() -> String {
    let quoted: Vec<String> = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect();
    format!(
        "{{\"cniVersion\":\"{}\",\"supportedVersions\":[{}]}}\n",
        CniVersion::CURRENT,
        quoted.join(",")
    )
}

/// The text the reference prints to stderr when CNI_COMMAND is unset
/// (skel `pluginMain`): the caller's `about` line, then the version list.
pub fn about_text(about: &str) -> String {
    format!(
        "{about}\nCNI protocol versions supported: {}\n",
        SUPPORTED_VERSIONS.join(", ")
    )
}

/// Checks the config's raw `cniVersion` for `cmd` and returns the parsed
/// version, with the reference skel's order, codes and messages.
///
/// ADD and DEL need only an exact match. CHECK (≥0.4.0), GC and STATUS
/// (≥1.1.0) first compare numerically, so e.g. CHECK with "0.3.5" says
/// `config version does not allow CHECK` and GC with "2.0.0" says `plugin
/// version does not allow GC`, both code 1; a version that is not even
/// numeric is code 6 with Go's parse message. Only then the exact match.
pub fn check_command_version(cmd: Command, raw: &str) -> Result<CniVersion, CniError> {
    if let Some(min) = CniVersion::minimum_for(cmd) {
        let verb = cmd.as_str();
        let config = loose_triple(raw).map_err(CniError::decoding)?;
        let min = loose_triple(min.as_str()).map_err(CniError::decoding)?;
        if config < min {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("config version does not allow {verb}"),
            ));
        }
        let newest = loose_triple(CniVersion::CURRENT.as_str()).map_err(CniError::decoding)?;
        if config > newest {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("plugin version does not allow {verb}"),
            ));
        }
    }
    CniVersion::parse(raw)
}

/// The reference's `version.ParseVersion`: up to three dot-separated Go
/// `strconv.Atoi` integers, missing parts 0, "" = 0.1.0. Only used for the
/// ≥ comparisons of the verb gates, never to accept a version.
fn loose_triple(version: &str) -> Result<(i64, i64, i64), String> {
    if version.is_empty() {
        return Ok((0, 1, 0));
    }
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() >= 4 {
        return Err(format!(
            "invalid version {}: too many parts",
            go_quote(version)
        ));
    }
    let mut out = [0i64; 3];
    for (i, (part, name)) in parts.iter().zip(["major", "minor", "micro"]).enumerate() {
        out[i] = go_atoi(part).map_err(|e| {
            format!(
                "failed to convert {name} version part {}: {e}",
                go_quote(part)
            )
        })?;
    }
    Ok((out[0], out[1], out[2]))
}

/// Go's `strconv.Atoi`: optional sign, ASCII digits, 64-bit range.
fn go_atoi(s: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s));
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
