//! The generated bindings stay private: the rest of the host sees only the domain
//! types of `plan` and `cni`, converted in `convert`.

use wasmtime::component::{HasSelf, Linker};

use super::{convert, GuestCommand, GuestLogLevel, GuestState};

wasmtime::component::bindgen!({
    world: "cni-plugin",
    path: "../../wit",
});

pub(crate) use wasm_cni::plugin::types::*;

/// Link the `host` and `types` imports (WASI is linked separately).
pub(crate) fn add_host_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    CniPlugin::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)
}

impl wasm_cni::plugin::types::Host for GuestState {}

impl wasm_cni::plugin::host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => GuestLogLevel::Debug,
            LogLevel::Info => GuestLogLevel::Info,
            LogLevel::Warn => GuestLogLevel::Warn,
            LogLevel::Error => GuestLogLevel::Error,
        };
        self.guest_log(level, &message);
    }

    fn link(&mut self, ns: Netns, name: String) -> Option<LinkFacts> {
        self.services
            .link(convert::side_from_wit(ns), &name)
            .map(|l| convert::link_to_wit(&l))
    }

    fn routes(&mut self, ns: Netns) -> Vec<RouteFacts> {
        self.services
            .routes(convert::side_from_wit(ns))
            .iter()
            .map(convert::route_to_wit)
            .collect()
    }

    fn fresh_link_name(&mut self, prefix: String) -> String {
        // A prefix that cannot make a valid name is the guest's bug; answer with
        // something the validator will reject rather than trap here.
        if prefix.len() > 7 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.contract_error = Some(format!(
                "fresh-link-name: prefix {prefix:?} must be at most 7 ASCII letters or digits"
            ));
            return String::new();
        }
        self.services.fresh_link_name(&prefix)
    }

    fn masquerade_rules(&mut self, network: String) -> Vec<MasqueradeRule> {
        self.services
            .masquerade_rules(&network)
            .iter()
            .map(convert::masq_rule_to_wit)
            .collect()
    }

    fn ipam(&mut self, command: Command) -> Result<Option<CniResult>, PluginError> {
        let command = match command {
            Command::Add => GuestCommand::Add,
            Command::Del => GuestCommand::Del,
            Command::Check => GuestCommand::Check,
            Command::Gc => GuestCommand::Gc,
            Command::Status => GuestCommand::Status,
        };
        match self.services.ipam(command) {
            Ok(result) => Ok(result.as_ref().map(convert::result_to_wit)),
            Err(e) => {
                self.host_errors.push((e.code.as_u32(), e.msg.clone()));
                Err(PluginError {
                    code: e.code.as_u32(),
                    msg: e.msg,
                    details: e.details,
                })
            }
        }
    }
}
