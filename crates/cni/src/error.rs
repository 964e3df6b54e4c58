//! The CNI error result (SPEC.md §"Error") and the error codes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares the codes once: the enum and both directions of the number table.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $n:literal,)*) => {
        /// A CNI error code.
        ///
        /// 0–99 are reserved by the spec; the reference library adds 8 and 999.
        /// 100 and up are ours (SPEC.md: "Error codes 100+ are plugin-specific").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// Any other number, e.g. read from a delegated plugin's error output.
            Other(u32),
        }

        impl ErrorCode {
            /// The numeric code as written in the error JSON.
            pub fn as_u32(self) -> u32 {
                match self {
                    $(ErrorCode::$variant => $n,)*
                    ErrorCode::Other(n) => n,
                }
            }

            /// The variant for a numeric code; numbers without a named variant
            /// become [`ErrorCode::Other`], so `from_u32(n).as_u32() == n` always.
            pub fn from_u32(n: u32) -> ErrorCode {
                $(if n == $n {
                    return ErrorCode::$variant;
                })*
                ErrorCode::Other(n)
            }
        }
    };
}

error_codes! {
    /// 1: the config's cniVersion is not one we support, or the verb is not
    /// allowed in that version.
    IncompatibleVersion = 1,
    /// 2: a config field we do not support; the message must name key and value.
    UnsupportedField = 2,
    /// 3: the container is unknown or does not exist (implies no cleanup needed).
    UnknownContainer = 3,
    /// 4: an environment variable is missing or invalid; the message names it.
    InvalidEnvironment = 4,
    /// 5: an I/O failure, e.g. reading stdin.
    IoFailure = 5,
    /// 6: failure to decode JSON.
    DecodingFailure = 6,
    /// 7: the network configuration is invalid.
    InvalidNetworkConfig = 7,
    /// 8: CNI_NETNS is invalid (reference-only code, not in the spec table).
    InvalidNetns = 8,
    /// 11: a transient condition; the runtime should retry later.
    TryAgainLater = 11,
    /// 50: STATUS: the plugin cannot service ADD requests.
    PluginNotAvailable = 50,
    /// 51: STATUS: as 50, and existing containers may have limited connectivity.
    LimitedConnectivity = 51,
    /// 999: any failure without a more specific code (the reference's
    /// `ErrInternal`, used for every untyped plugin error).
    Internal = 999,
    /// 100: the host's policy refused what the guest asked for.
    PolicyRejected = 100,
    /// 101: the guest component trapped.
    GuestTrapped = 101,
    /// 102: the guest ran out of its time (fuel/epoch) budget, or a native
    /// IPAM delegate out of `limits.delegateMs`.
    GuestTimeout = 102,
    /// 103: the guest exceeded its memory limit.
    GuestOutOfMemory = 103,
    /// 104: the guest broke the host/guest contract (malformed plan, bad handle, …).
    ContractViolation = 104,
    /// 105: the named guest component could not be found.
    ComponentNotFound = 105,
    /// 106: the guest component's digest does not match the pinned one.
    DigestMismatch = 106,
    /// 107: applying the guest's plan to the system failed.
    ApplyFailed = 107,
    /// 108: the guest's plan has more intents than `limits.maxIntents`.
    LimitExceeded = 108,
    /// 109: the guest passed more than `limits.hostcallBytes` to the host in one call.
    HostcallLimit = 109,
    /// 110: the guest wrote more than `limits.outputBytes` to stdout or stderr.
    OutputLimit = 110,
    /// 111: the guest exceeded the table, instance or WASI-handle limits.
    TableLimit = 111,
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(ErrorCode::from_u32)
    }
}

/// A CNI error: what a plugin prints on stdout (with a non-zero exit) when a
/// request fails.
///
/// `Display` is `msg` alone; `details` is meant for the JSON output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    /// The error code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// A longer explanation; omitted from the JSON when empty.
    pub details: String,
}

impl CniError {
    /// An error with the given code and message and no details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details` set.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// Code 999, the reference's code for any plugin error without a more
    /// specific one.
    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Internal, msg)
    }

    /// Code 4, a missing or invalid environment variable.
    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, msg)
    }

    /// Code 6, a JSON decoding failure.
    pub fn decoding(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::DecodingFailure, msg)
    }

    /// Code 7, an invalid network configuration.
    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    /// The error JSON for stdout: `{"cniVersion","code","msg","details"}`,
    /// pretty-printed with a trailing newline.
    ///
    /// The spec includes `cniVersion`; the reference omits it (libcni ignores
    /// it either way). We follow the spec, except that an empty `cni_version`
    /// (e.g. when stdin could not be decoded) omits the key rather than
    /// printing an empty version. `details` is omitted when empty, as in the
    /// reference (`omitempty`). Indentation is the reference's four spaces.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion", skip_serializing_if = "str::is_empty")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        let wire = Wire {
            cni_version,
            code: self.code.as_u32(),
            msg: &self.msg,
            details: &self.details,
        };
        // Serializing plain strings and a number cannot fail; the fallback
        // keeps this path free of panics all the same.
        pretty_json(&wire).unwrap_or_else(|_| {
            format!(
                "{{\n    \"code\": {},\n    \"msg\": \"internal error rendering an error\"\n}}\n",
                self.code.as_u32()
            )
        })
    }
}

impl<'de> Deserialize<'de> for CniError {
    /// Reads the error shape a plugin prints, as libcni does
    /// (`pkg/invoke/raw_exec.go` pluginErr): `code` required, `msg` and
    /// `details` default to empty, `cniVersion` and unknown keys ignored.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            code: u32,
            #[serde(default)]
            msg: Option<String>,
            #[serde(default)]
            details: Option<String>,
        }
        let w = Wire::deserialize(d)?;
        Ok(CniError {
            code: ErrorCode::from_u32(w.code),
            msg: w.msg.unwrap_or_default(),
            details: w.details.unwrap_or_default(),
        })
    }
}

/// Pretty-prints with the reference's four-space indent (Go
/// `json.MarshalIndent(v, "", "    ")`) and appends a newline.
pub(crate) fn pretty_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    // serde_json only ever writes UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: [(ErrorCode, u32); 24] = [
        (ErrorCode::IncompatibleVersion, 1),
        (ErrorCode::UnsupportedField, 2),
        (ErrorCode::UnknownContainer, 3),
        (ErrorCode::InvalidEnvironment, 4),
        (ErrorCode::IoFailure, 5),
        (ErrorCode::DecodingFailure, 6),
        (ErrorCode::InvalidNetworkConfig, 7),
        (ErrorCode::InvalidNetns, 8),
        (ErrorCode::TryAgainLater, 11),
        (ErrorCode::PluginNotAvailable, 50),
        (ErrorCode::LimitedConnectivity, 51),
        (ErrorCode::Internal, 999),
        (ErrorCode::PolicyRejected, 100),
        (ErrorCode::GuestTrapped, 101),
        (ErrorCode::GuestTimeout, 102),
        (ErrorCode::GuestOutOfMemory, 103),
        (ErrorCode::ContractViolation, 104),
        (ErrorCode::ComponentNotFound, 105),
        (ErrorCode::DigestMismatch, 106),
        (ErrorCode::ApplyFailed, 107),
        (ErrorCode::LimitExceeded, 108),
        (ErrorCode::HostcallLimit, 109),
        (ErrorCode::OutputLimit, 110),
        (ErrorCode::TableLimit, 111),
    ];

    #[test]
    fn codes_round_trip() {
        for (code, n) in ALL {
            assert_eq!(code.as_u32(), n, "{code:?}");
            assert_eq!(ErrorCode::from_u32(n), code);
        }
        for n in [0, 9, 10, 12, 49, 52, 99, 112, 500, 1000, u32::MAX] {
            assert_eq!(ErrorCode::from_u32(n), ErrorCode::Other(n));
            assert_eq!(ErrorCode::from_u32(n).as_u32(), n);
        }
    }

    #[test]
    fn display_is_msg() {
        let e = CniError::new(ErrorCode::InvalidNetworkConfig, "bad").with_details("very bad");
        assert_eq!(e.to_string(), "bad");
        assert_eq!(e.details, "very bad");
    }

    #[test]
    fn json_shape_with_details() {
        let e = CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
            .with_details("config is \"9.9.9\"");
        let s = e.to_json("1.1.0");
        assert_eq!(
            s,
            "{\n    \"cniVersion\": \"1.1.0\",\n    \"code\": 1,\n    \"msg\": \"incompatible CNI versions\",\n    \"details\": \"config is \\\"9.9.9\\\"\"\n}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.1.0","code":1,"msg":"incompatible CNI versions","details":"config is \"9.9.9\""})
        );
    }

    #[test]
    fn json_omits_empty_details_and_version() {
        let e = CniError::internal("boom");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"0.4.0","code":999,"msg":"boom"})
        );
        let v: serde_json::Value = serde_json::from_str(&e.to_json("")).unwrap();
        assert_eq!(v, serde_json::json!({"code":999,"msg":"boom"}));
        assert!(e.to_json("").ends_with("}\n"));
    }

    #[test]
    fn custom_codes_render() {
        let e = CniError::new(ErrorCode::LimitExceeded, "too many intents");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["code"], 108);
    }

    #[test]
    fn deserialize_plugin_output() {
        let e: CniError = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","code":7,"msg":"no IP ranges specified","details":"x","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            CniError::invalid_config("no IP ranges specified").with_details("x")
        );
        // The reference prints no cniVersion and omits empty details.
        let e: CniError =
            serde_json::from_str("{\n    \"code\": 999,\n    \"msg\": \"m\"\n}").unwrap();
        assert_eq!(e, CniError::internal("m"));
        let e: CniError = serde_json::from_str(r#"{"code":12345}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Other(12345));
        assert_eq!(e.msg, "");
        assert!(serde_json::from_str::<CniError>(r#"{"msg":"no code"}"#).is_err());
        assert!(serde_json::from_str::<CniError>(r#"{"code":-1}"#).is_err());
        // Our own output parses back to the same error.
        let orig = CniError::new(ErrorCode::ApplyFailed, "x").with_details("y");
        let back: CniError = serde_json::from_str(&orig.to_json("1.1.0")).unwrap();
        assert_eq!(back, orig);
    }
}
