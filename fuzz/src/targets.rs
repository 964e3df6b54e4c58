//! The bodies of the fuzz targets. Each takes any bytes and panics only on a bug.

use serde_json::Value;

use crate::cni::request::{validate_container_id, validate_interface_name};
use crate::cni::{
    parse_invocation, parse_result, render_result, render_result_string, CniError, CniResult,
    CniVersion, Command, ErrorCode, Invocation, Request, SUPPORTED_VERSIONS,
};
use crate::plan_input::PlanInput;
use crate::promises::{check_accepted_plan, is_link_name};
use crate::validate::validate_plan;

/// `cni_parse`: one invocation in the [`crate::framing`] format. `parse_invocation`
/// must not panic, and neither may anything that prints what it returns: the error
/// JSON in every version, a `prevResult` rendered in every version. What it returns
/// must also be what it documents (see [`check_request`]).
pub fn cni_parse(data: &[u8]) {
    let (env, stdin) = crate::framing::split(data);
    match parse_invocation(&env, stdin) {
        Ok(Invocation::Request(request)) => {
            assert_eq!(
                request.stdin, stdin,
                "Request::stdin is not the stdin given"
            );
            check_request(&request);
        }
        Ok(Invocation::About | Invocation::Version) => {}
        Err(e) => check_error_json(&e),
    }
}

/// `validate_plan`: an invocation and a plan described by [`PlanInput`]. The
/// validator must not panic; a plan it accepts must keep its promises
/// ([`check_accepted_plan`]); a plan it refuses must be refused with the policy or the
/// limit code and an error that renders.
pub fn validate_plan_target(data: &[u8]) {
    let Some(input) = PlanInput::decode(data) else {
        return;
    };
    let (inv, intents) = input.build();
    let inv = inv.borrow();
    match validate_plan(&intents, &inv) {
        Ok(()) => {
            if let Err(broken) = check_accepted_plan(&intents, &inv) {
                panic!(
                    "validate_plan accepted a plan that breaks its promises: {broken}\n\
                     invocation: {inv:?}\nplan: {intents:#?}"
                );
            }
        }
        Err(refusal) => {
            let e = CniError::from(refusal);
            assert!(
                matches!(e.code, ErrorCode::PolicyRejected | ErrorCode::LimitExceeded),
                "validate_plan refused with code {:?}: {}",
                e.code,
                e.msg
            );
            check_error_json(&e);
        }
    }
}

/// The error JSON in every version (and none) is JSON that reads back as the error.
fn check_error_json(e: &CniError) {
    for version in std::iter::once("").chain(SUPPORTED_VERSIONS) {
        let json = e.to_json(version);
        assert!(json.ends_with('\n'), "error JSON without a final newline");
        let value: Value = serde_json::from_str(&json)
            .unwrap_or_else(|err| panic!("CniError::to_json wrote invalid JSON ({err}): {json}"));
        let want_version = (!version.is_empty()).then_some(version);
        assert_eq!(
            value.get("cniVersion").and_then(Value::as_str),
            want_version,
            "{json}"
        );
        let back: CniError = serde_json::from_value(value)
            .unwrap_or_else(|err| panic!("the error JSON does not read back ({err}): {json}"));
        assert_eq!(&back, e, "the error JSON does not read back as the error");
    }
}

/// What `parse_invocation` documents about a request it returns, checked with rules
/// written out here again.
fn check_request(r: &Request) {
    assert_ne!(r.command, Command::Version);
    let has_container = matches!(r.command, Command::Add | Command::Check | Command::Del);
    if has_container {
        assert!(
            id_chars(&r.container_id),
            "accepted CNI_CONTAINERID {:?}",
            r.container_id
        );
        assert!(
            is_link_name(&r.ifname),
            "accepted CNI_IFNAME {:?} for {}",
            r.ifname,
            r.command
        );
        // The host's own validators must agree with the rules above.
        assert!(validate_container_id(&r.container_id).is_ok());
        assert!(validate_interface_name(&r.ifname).is_ok());
    }
    if matches!(r.command, Command::Add | Command::Check) {
        assert!(r.netns.is_some(), "{} without CNI_NETNS", r.command);
    }
    if let Some(netns) = &r.netns {
        assert!(!netns.as_os_str().is_empty());
    }
    assert!(
        r.path.iter().all(|p| !p.as_os_str().is_empty()),
        "an empty CNI_PATH entry was kept"
    );
    assert!(
        id_chars(&r.config.name),
        "accepted network name {:?}",
        r.config.name
    );
    let min = match r.command {
        Command::Check => Some(CniVersion::V040),
        Command::Gc | Command::Status => Some(CniVersion::V110),
        Command::Add | Command::Del | Command::Version => None,
    };
    if let Some(min) = min {
        assert!(
            r.config.cni_version >= min,
            "{} accepted in config version {}",
            r.command,
            r.config.cni_version
        );
    }
    if r.command != Command::Gc {
        assert_eq!(r.config.valid_attachments, None);
    }
    assert_ne!(r.config.plugin_type.as_deref(), Some(""));
    assert_ne!(r.config.ipam_type.as_deref(), Some(""));

    // CNI_ARGS is kept leniently; its strict readings must not panic either.
    let strict = r.args.validate();
    if let Err(e) = &strict {
        check_error_json(e);
    }
    let _ = r.args.ignore_unknown();
    if let Err(e) = r.args.check_known(&["K8S_POD_NAME", "IP", "MAC"]) {
        check_error_json(&e);
    }

    if let Some(prev) = &r.config.prev_result {
        check_result_rendering(prev);
    }
}

/// A result renders in every version, or fails only where the spec's version cannot
/// express it (0.1.0/0.2.0 without any address); what it prints reads back, exactly
/// so in the 1.x versions, which hold the whole model.
fn check_result_rendering(r: &CniResult) {
    for v in CniVersion::ALL {
        match render_result(r, v) {
            Ok(value) => {
                assert_eq!(
                    value.get("cniVersion").and_then(Value::as_str),
                    Some(v.as_str())
                );
                let text = render_result_string(r, v)
                    .unwrap_or_else(|e| panic!("render_result_string({v}) failed: {}", e.msg));
                let reread: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("the {v} result is not JSON ({e}): {text}"));
                assert_eq!(
                    reread, value,
                    "render_result_string differs from render_result"
                );
                let back = parse_result(&value, v).unwrap_or_else(|e| {
                    panic!("the {v} rendering does not parse back: {}\n{text}", e.msg)
                });
                if !v.is_legacy_result() && !v.is_04x_result() {
                    assert_eq!(
                        &back, r,
                        "the {v} rendering does not read back the same:\n{text}"
                    );
                }
            }
            Err(e) => {
                assert!(
                    v.is_legacy_result() && r.ips.is_empty(),
                    "render_result({v}) failed: {}",
                    e.msg
                );
                check_error_json(&e);
            }
        }
    }
}

/// The reference's `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` for container IDs and network names.
fn id_chars(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    /// Replays the committed seed corpus (and anything in the working corpus) through
    /// the target bodies, so that the checks run on stable without libFuzzer.
    fn replay(target: &str, body: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut n = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            body(&data);
            n += 1;
        }
        n
    }

    #[test]
    fn cni_parse_seeds() {
        assert!(replay("cni_parse", super::cni_parse) >= 20);
    }

    /// The seeds are what their names say: `bad-*` is refused, the others are not.
    #[test]
    fn cni_parse_seeds_are_named_for_their_outcome() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/cni_parse");
        for entry in fs::read_dir(dir).expect("corpus") {
            let path = entry.expect("corpus entry").path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue; // an input libFuzzer found (named by its SHA-1), not a named seed
            }
            let data = fs::read(&path).expect("seed");
            let (env, stdin) = crate::framing::split(&data);
            let outcome = crate::cni::parse_invocation(&env, stdin);
            assert_eq!(
                outcome.is_err(),
                name.starts_with("bad-"),
                "{name}: {outcome:?}"
            );
        }
    }

    #[test]
    fn validate_plan_seeds() {
        assert!(replay("validate_plan", super::validate_plan_target) >= 10);
    }
}
