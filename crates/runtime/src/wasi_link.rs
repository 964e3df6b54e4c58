//! WASI 0.2 linked interface by interface, only what a component imports.
//!
//! `wasmtime_wasi::p2::add_to_linker_sync` defines every function of every
//! WASI interface, sockets and filesystem included, for each linker: about half
//! a millisecond per invocation, most of it for interfaces a CNI plugin never
//! imports. The interfaces here are the same ones, with the same host
//! implementations; an import we do not know is left to instantiation, which
//! then fails naming it (as it would for any unknown import).

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::component::{Component, HasData, Linker, Resource, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::{self, sync};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
use wasmtime_wasi::WasiView;

/// `wasi:io` state is the resource table.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The WASI interfaces `component` imports: `wasi:<package>/<interface>` (the
/// 0.2 bindings serve every 0.2.x import) to the name as imported.
pub fn imported_wasi(engine: &Engine, component: &Component) -> BTreeMap<String, String> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            let short = name.split('@').next().unwrap_or(name);
            short
                .starts_with("wasi:")
                .then(|| (short.to_string(), name.to_string()))
        })
        .collect()
}

/// Adds the synchronous host implementation of each interface in `wanted`.
/// `max_wait` bounds every clock subscription (see [`add_bounded_clock`]).
pub fn add_to_linker<T: WasiView>(
    l: &mut Linker<T>,
    wanted: &BTreeMap<String, String>,
    max_wait: fn(&mut T) -> Duration,
) -> wasmtime::Result<()> {
    for (name, imported) in wanted {
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
            "wasi:clocks/monotonic-clock" => add_bounded_clock(l, imported, max_wait)?,
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

/// `wasi:clocks/monotonic-clock` with wasmtime-wasi's implementation, except
/// that a subscription never waits longer than `max_wait` (the guest's time
/// left): epoch interruption stops a guest only while it runs wasm code, and
/// a guest blocked in `poll` on a timer runs none, so a sleep of an hour would
/// otherwise hold the invocation for an hour. Woken early, the guest runs on
/// into its deadline and traps.
fn add_bounded_clock<T: WasiView>(
    l: &mut Linker<T>,
    imported: &str,
    max_wait: fn(&mut T) -> Duration,
) -> wasmtime::Result<()> {
    use bindings::clocks::monotonic_clock::Host;
    let bound = move |store: &mut T| u64::try_from(max_wait(store).as_nanos()).unwrap_or(u64::MAX);
    let mut clock = l.instance(imported)?;
    clock.func_wrap("now", |mut store, (): ()| {
        Ok((Host::now(&mut store.data_mut().clocks())?,))
    })?;
    clock.func_wrap("resolution", |mut store, (): ()| {
        Ok((Host::resolution(&mut store.data_mut().clocks())?,))
    })?;
    clock.func_wrap(
        "subscribe-instant",
        move |mut store, (when,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            let limit = bound(store.data_mut());
            let mut clocks = store.data_mut().clocks();
            let latest = Host::now(&mut clocks)?.saturating_add(limit);
            Ok((Host::subscribe_instant(&mut clocks, when.min(latest))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-duration",
        move |mut store, (duration,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            let limit = bound(store.data_mut());
            let mut clocks = store.data_mut().clocks();
            Ok((Host::subscribe_duration(&mut clocks, duration.min(limit))?,))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::engine_config;
    use crate::{bindings, ipam_bindings, GuestState};

    /// Every bundled component instantiates against a linker holding only the
    /// WASI interfaces it imports (checked by `instantiate_pre`), none of them
    /// sockets; without them the error names the missing import.
    #[test]
    fn bundled_components_link_with_their_imports_only() {
        let engine = Engine::new(&engine_config()).expect("engine");
        for (name, bytes, _) in bundled::BUNDLED {
            let component = Component::new(&engine, bytes).expect("compile");
            let wasi = imported_wasi(&engine, &component);
            assert!(
                wasi.contains_key("wasi:cli/environment"),
                "{name}: {wasi:?}"
            );
            assert!(
                !wasi.keys().any(|i| i.starts_with("wasi:sockets")),
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
            add_to_linker(&mut linker, &wasi, |_| Duration::from_secs(1)).expect("link WASI");
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
