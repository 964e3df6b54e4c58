//! CNI_ARGS: `K1=V1;K2=V2` (SPEC.md §Parameters, parsed as the reference
//! `types.LoadArgs` does).

use super::error::CniError;
use super::quote::{go_quote, go_quote_list};

/// The key that makes unknown keys acceptable (reference `types.CommonArgs`).
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

/// Parsed CNI_ARGS.
///
/// Keys are case-sensitive (the reference maps them to Go struct field
/// names). A key may repeat; [`CniArgs::get`] returns the last value, as the
/// reference assigns the field once per pair.
///
/// Malformed input is kept, not rejected, by [`CniArgs::parse_lenient`]: the
/// reference only fails on CNI_ARGS inside plugins that load them (bridge,
/// host-local), while loopback never reads them. So the error is raised by
/// [`CniArgs::validate`] / [`CniArgs::check_known`], which a plugin that
/// consumes CNI_ARGS calls, exactly where the reference would fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    raw: String,
    pairs: Vec<(String, String)>,
    /// The first segment that is not exactly `K=V`.
    invalid: Option<String>,
}

impl CniArgs {
    /// Parses strictly: a segment (split on `;`) that does not split on `=`
    /// into exactly two parts is code 4 `ARGS: invalid pair "…"`, the
    /// reference message. Hence a value containing `=` is refused, as in the
    /// reference (libcni joins pairs without escaping, so it is ambiguous).
    ///
    /// The empty string has no pairs. So has `none`: the reference loopback
    /// test passes `CNI_ARGS=none`, which loopback never parses but the
    /// reference `LoadArgs` would refuse (`ARGS: invalid pair "none"`). No
    /// valid `K=V` list equals `none`, so reading it as "no arguments" only
    /// accepts more, and keeps a plugin that does read CNI_ARGS working under
    /// that test harness.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let args = CniArgs::parse_lenient(raw);
        args.validate()?;
        Ok(args)
    }

    /// Pairs a runtime already split (a guest gets CNI_ARGS so).
    pub fn from_pairs(pairs: &[(String, String)]) -> CniArgs {
        let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        CniArgs {
            raw: raw.join(";"),
            pairs: pairs.to_vec(),
            invalid: None,
        }
    }

    /// Parses without failing; a malformed segment is remembered and
    /// reported by [`CniArgs::validate`] and [`CniArgs::check_known`].
    /// [`CniArgs::pairs`] and [`CniArgs::get`] only see the well-formed pairs.
    pub fn parse_lenient(raw: &str) -> CniArgs {
        let mut args = CniArgs {
            raw: raw.to_string(),
            ..CniArgs::default()
        };
        if raw.is_empty() || raw == "none" {
            return args;
        }
        for segment in raw.split(';') {
            let mut kv = segment.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) => args.pairs.push((k.to_string(), v.to_string())),
                _ => {
                    if args.invalid.is_none() {
                        args.invalid = Some(segment.to_string());
                    }
                }
            }
        }
        args
    }

    /// The CNI_ARGS string as given (needed to pass it on to a delegate).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The well-formed `(key, value)` pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// True when there are no well-formed pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of `key` (case-sensitive); the last one if repeated.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Code 4 `ARGS: invalid pair "…"` if a segment was not `K=V`.
    ///
    /// The reference returns this as an untyped error, i.e. code 999; the
    /// spec's code for an invalid environment variable is 4, which we use.
    pub fn validate(&self) -> Result<(), CniError> {
        match &self.invalid {
            Some(segment) => Err(CniError::invalid_env(format!(
                "ARGS: invalid pair {}",
                go_quote(segment)
            ))),
            None => Ok(()),
        }
    }

    /// True when `IgnoreUnknown` is `1` or `true` (case-insensitive value,
    /// the reference `UnmarshallableBool`).
    pub fn ignore_unknown(&self) -> bool {
        self.get(IGNORE_UNKNOWN)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
    }

    /// Checks the pairs against the keys a plugin understands (`IgnoreUnknown`
    /// is always understood), in the reference's order: a malformed segment,
    /// then a malformed `IgnoreUnknown` value, then unknown keys, reported as
    /// `ARGS: unknown args ["K=V" …]` unless `IgnoreUnknown` is set. All code 4
    /// (the reference: 999, untyped).
    ///
    /// Deviation: unknown keys starting with `K8S_` are tolerated even
    /// without `IgnoreUnknown`. The reference refuses them, but Kubernetes
    /// runtimes always send `IgnoreUnknown=1` along with them, and runtimes
    /// that forget it broke plugins for years (cni#126, cni#560); accepting
    /// them harms nothing since no plugin acts on them.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        self.load(known, |_, _| Ok(()))
    }

    /// The reference's `types.LoadArgs` into a plugin's args struct whose
    /// fields are `known` (plus the embedded `CommonArgs`): pairs in order, each
    /// known key's value handed to `value` (an error there is `ARGS: error
    /// parsing value of pair "K=V": <error>`), `IgnoreUnknown` read as a Go
    /// boolean, then the unknown keys refused unless `IgnoreUnknown` is set.
    /// All code 4, with the same deviation for `K8S_*` keys as
    /// [`CniArgs::check_known`].
    pub fn load(
        &self,
        known: &[&str],
        mut value: impl FnMut(&str, &str) -> Result<(), String>,
    ) -> Result<(), CniError> {
        self.validate()?;
        let fail = |msg: String| {
            CniError::invalid_env(msg).with_details("from the CNI_ARGS environment variable")
        };
        let mut unknown = Vec::new();
        for (k, v) in &self.pairs {
            let pair = || go_quote(&format!("{k}={v}"));
            match k.as_str() {
                IGNORE_UNKNOWN => {
                    if !matches!(
                        v.to_ascii_lowercase().as_str(),
                        "1" | "true" | "0" | "false"
                    ) {
                        return Err(fail(format!(
                            "ARGS: error parsing value of pair {}: boolean unmarshal error: invalid input {}",
                            pair(),
                            v.to_ascii_lowercase()
                        )));
                    }
                }
                // Go finds the embedded struct by its name and cannot decode
                // text into it.
                "CommonArgs" => {
                    return Err(fail(
                        "ARGS: cannot unmarshal into field 'CommonArgs' - type \
                         '*types.CommonArgs' does not implement encoding.TextUnmarshaler"
                            .to_string(),
                    ))
                }
                key if known.contains(&key) => value(k, v).map_err(|e| {
                    fail(format!("ARGS: error parsing value of pair {}: {e}", pair()))
                })?,
                key if key.starts_with("K8S_") => {}
                _ => unknown.push(format!("{k}={v}")),
            }
        }
        if unknown.is_empty() || self.ignore_unknown() {
            Ok(())
        } else {
            Err(
                CniError::invalid_env(format!("ARGS: unknown args {}", go_quote_list(&unknown)))
                    .with_details(
                        "set IgnoreUnknown=1 in CNI_ARGS to ignore keys this plugin does not use",
                    ),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
