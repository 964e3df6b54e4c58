//! The CNI protocol core: pure functions from an invocation's environment
//! and stdin to a validated request, and from results and errors to the
//! bytes a plugin prints. Nothing here reads the process environment or
//! writes to stdout.
//!
//! The behaviour follows CNI spec 1.1.0 and, where the spec is silent or
//! the runtimes depend on it, the reference Go implementation
//! (`containernetworking/cni` skel, types and version packages); see
//! `shared/reference/cni.md`. Deliberate deviations are documented on the
//! item concerned.

pub mod args;
pub mod error;
pub mod json;
pub mod quote;
pub mod request;
pub mod result;
pub mod version;

pub use args::CniArgs;
pub use error::{CniError, ErrorCode};
pub use quote::{go_quote, go_quote_list};
pub use request::{parse_invocation, Attachment, Command, Invocation, NetConf, Request};
pub use result::{
    parse_result, render_result, render_result_string, CniResult, Dns, Interface, IpConfig, Route,
};
pub use version::{
    about_text, check_command_version, version_info_json, CniVersion, SUPPORTED_VERSIONS,
};
