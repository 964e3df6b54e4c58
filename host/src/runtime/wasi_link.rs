//! WASI 0.2 linked interface by interface, only what a component imports.
//!
//! `wasmtime_wasi::p2::add_to_linker_sync` defines every function of every
//! WASI interface, sockets and filesystem included, for each linker: about half
//! a millisecond per invocation, most of it for interfaces a CNI plugin never
//! imports. The interfaces here are the same ones, with the same host
//! implementations; an import we do not know is left to instantiation, which
//! then fails naming it (as it would for any unknown import).

use std::collections::BTreeSet;

use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::{self, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
use wasmtime_wasi::WasiView;

/// `wasi:io` state is the resource table.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The WASI interfaces `component` imports, as `wasi:<package>/<interface>`
/// (versions dropped: every 0.2.x import is served by the 0.2 bindings).
pub fn imported_wasi(engine: &Engine, component: &Component) -> BTreeSet<String> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            let name = name.split('@').next().unwrap_or(name);
            name.starts_with("wasi:").then(|| name.to_string())
        })
        .collect()
}

/// Adds the synchronous host implementation of each interface in `wanted`.
pub fn add_to_linker<T: WasiView>(
    l: &mut Linker<T>,
    wanted: &BTreeSet<String>,
) -> wasmtime::Result<()> {
    for name in wanted {
        match name.as_str() {
            "wasi:io/error" => {
                bindings::io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?
            }
            "wasi:io/poll" => {
                sync::io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
            }
            "wasi:io/streams" => {
                sync::io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
            }
            "wasi:clocks/wall-clock" => {
                bindings::clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
            }
            "wasi:clocks/monotonic-clock" => {
                bindings::clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
            }
            "wasi:filesystem/preopens" => {
                bindings::filesystem::preopens::add_to_linker::<T, WasiFilesystem>(
                    l,
                    T::filesystem,
                )?;
            }
            "wasi:filesystem/types" => {
                sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
            }
            "wasi:random/random" => {
                bindings::random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
            }
            "wasi:random/insecure" => {
                bindings::random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
            }
            "wasi:random/insecure-seed" => {
                bindings::random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
            }
            "wasi:cli/exit" => bindings::cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/environment" => {
                bindings::cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:cli/stdin" => bindings::cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/stdout" => bindings::cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/stderr" => bindings::cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?,
            "wasi:cli/terminal-input" => {
                bindings::cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:cli/terminal-output" => {
                bindings::cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:cli/terminal-stdin" => {
                bindings::cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:cli/terminal-stdout" => {
                bindings::cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:cli/terminal-stderr" => {
                bindings::cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
            }
            "wasi:sockets/tcp-create-socket" => {
                bindings::sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(
                    l,
                    T::sockets,
                )?;
            }
            "wasi:sockets/instance-network" => {
                bindings::sockets::instance_network::add_to_linker::<T, WasiSockets>(
                    l,
                    T::sockets,
                )?;
            }
            "wasi:sockets/network" => {
                bindings::sockets::network::add_to_linker::<T, WasiSockets>(
                    l,
                    &Default::default(),
                    T::sockets,
                )?;
            }
            "wasi:sockets/ip-name-lookup" => {
                bindings::sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            }
            "wasi:sockets/tcp" => {
                sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            }
            "wasi:sockets/udp" => {
                sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            }
            "wasi:sockets/udp-create-socket" => {
                sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{bindings, engine_config, ipam_bindings, GuestState};

    /// Every bundled component instantiates against a linker holding only the
    /// WASI interfaces it imports (checked by `instantiate_pre`), none of them
    /// sockets; without them the error names the missing import.
    #[test]
    fn bundled_components_link_with_their_imports_only() {
        let engine = Engine::new(&engine_config()).expect("engine");
        for (name, bytes, _) in crate::plugins::bundled::BUNDLED {
            let component = Component::new(&engine, bytes).expect("compile");
            let wasi = imported_wasi(&engine, &component);
            assert!(wasi.contains("wasi:cli/environment"), "{name}: {wasi:?}");
            assert!(
                !wasi.iter().any(|i| i.starts_with("wasi:sockets")),
                "{name}: {wasi:?}"
            );
            let host = |l: &mut Linker<GuestState>| {
                if *name == "host-local" {
                    ipam_bindings::add_host_to_linker(l)
                } else {
                    bindings::add_host_to_linker(l)
                }
            };
            let mut linker = Linker::new(&engine);
            add_to_linker(&mut linker, &wasi).expect("link WASI");
            host(&mut linker).expect("link host");
            linker.instantiate_pre(&component).expect(name);

            let mut bare = Linker::new(&engine);
            host(&mut bare).expect("link host");
            let err = bare
                .instantiate_pre(&component)
                .err()
                .expect("WASI missing");
            assert!(format!("{err:#}").contains("wasi:"), "{name}: {err:#}");
        }
    }
}
