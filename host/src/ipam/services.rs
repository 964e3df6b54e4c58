//! What an IPAM component may ask of the host besides its state directory.

use super::*;

/// What an IPAM component may ask of the host besides its state directory:
/// the resolv.conf files the administrator opened.
pub(super) struct IpamServices {
    pub(super) resolv_conf_paths: Vec<PathBuf>,
}

impl runtime::HostServices for IpamServices {
    fn link(&mut self, side: plan::Side, name: &str) -> Option<plan::ObservedLink> {
        NoServices.link(side, name)
    }
    fn routes(&mut self, side: plan::Side) -> Vec<plan::ObservedRoute> {
        NoServices.routes(side)
    }
    fn fresh_link_name(&mut self, prefix: &str) -> String {
        NoServices.fresh_link_name(prefix)
    }
    fn masquerade_rules(&mut self, network: &str) -> Vec<plan::MasqRuleFacts> {
        NoServices.masquerade_rules(network)
    }
    fn ipam(&mut self, command: GuestCommand) -> Result<Option<CniResult>, CniError> {
        NoServices.ipam(command)
    }
    fn log(&mut self, level: runtime::GuestLogLevel, message: &str) {
        NoServices.log(level, message)
    }
    /// Only regular files under `resolvConfPaths`, without following a link
    /// below an entry and without blocking; a path outside is refused before
    /// anything is opened (so it does not tell whether a file exists).
    fn resolv_conf(&mut self, path: &str) -> Result<String, String> {
        beneath::read_file(Path::new(path), &self.resolv_conf_paths, MAX_RESOLV_CONF)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|refused| match refused {
                beneath::Refused::NotAllowed { .. } | beneath::Refused::NotClean(_) => format!(
                    "{refused}: resolvConf may name only files the administrator opened \
                     (settings key resolvConfPaths)"
                ),
                other => other.to_string(),
            })
    }
}

/// resolv.conf files are small; a bigger one is not a resolv.conf.
const MAX_RESOLV_CONF: u64 = 64 << 10;
