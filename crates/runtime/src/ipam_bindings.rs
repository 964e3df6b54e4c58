//! Bindings of the `ipam-plugin` world, sharing the `types` of the main world.

use wasmtime::component::{HasSelf, Linker};

use super::{GuestLogLevel, GuestState};

wasmtime::component::bindgen!({
    world: "ipam-plugin",
    path: "../../wit",
    with: {
        "wasm-cni:plugin/types": super::bindings::wasm_cni::plugin::types,
    },
});

use super::bindings::wasm_cni::plugin::types::{CniDns, LogLevel};

/// Link the `ipam-host` import (WASI is linked separately).
pub(crate) fn add_host_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    IpamPlugin::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)
}

impl wasm_cni::plugin::ipam_host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => GuestLogLevel::Debug,
            LogLevel::Info => GuestLogLevel::Info,
            LogLevel::Warn => GuestLogLevel::Warn,
            LogLevel::Error => GuestLogLevel::Error,
        };
        self.guest_log(level, &message);
    }

    /// The host decides which files may be read (and how); only the parsing
    /// is done here.
    fn read_resolv_conf(&mut self, path: String) -> Result<CniDns, String> {
        self.services
            .resolv_conf(&path)
            .map(|text| parse_resolv_conf(&text))
    }
}

/// Parse `nameserver`, `domain`, `search` and `options` lines the way the
/// reference host-local does (later `domain` wins; `search` and `options`
/// accumulate).
fn parse_resolv_conf(text: &str) -> CniDns {
    let mut dns = CniDns {
        nameservers: Vec::new(),
        domain: None,
        search: Vec::new(),
        options: Vec::new(),
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_string)),
            Some("domain") => dns.domain = words.next().map(str::to_string),
            Some("search") => dns.search.extend(words.map(str::to_string)),
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_is_parsed_like_the_reference() {
        let dns = parse_resolv_conf(
            "# comment\nnameserver 10.0.0.1\nnameserver 10.0.0.2\ndomain a.example\n\
             search x.example y.example\noptions ndots:2 edns0\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(dns.domain.as_deref(), Some("a.example"));
        assert_eq!(dns.search, ["x.example", "y.example"]);
        assert_eq!(dns.options, ["ndots:2", "edns0"]);
    }
}
