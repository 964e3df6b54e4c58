//! The result check: what a guest returns for ADD must describe what was
//! applied.

use cni::{CniError, CniResult, ErrorCode, Request};
use plan::{ObservedLink, Side};

/// The result a runtime will trust must describe what was applied: every new
/// interface is a link the plan touched (in the container, `CNI_IFNAME` or `lo`
/// with `sandbox` = `CNI_NETNS`), its MAC is the kernel's, and every new container
/// address is on that link. Entries copied from `prevResult` belong to earlier
/// plugins and pass as they are.
pub(super) fn check_result(
    result: &CniResult,
    request: &Request,
    observed: &[ObservedLink],
    ipam: &[CniResult],
) -> Result<(), CniError> {
    let lie = |what: String| {
        Err(CniError::new(
            ErrorCode::ContractViolation,
            format!("plugin result contradicts what was applied: {what}"),
        ))
    };
    let prev = request.config.prev_result.as_ref();
    let netns = request.netns.as_ref().map(|p| p.display().to_string());
    let mut links: Vec<Option<&ObservedLink>> = Vec::new();
    for iface in &result.interfaces {
        if prev.is_some_and(|p| p.interfaces.contains(iface)) {
            links.push(None);
            continue;
        }
        let side = if iface.sandbox.is_some() {
            Side::Container
        } else {
            Side::Host
        };
        if side == Side::Container && iface.sandbox != netns {
            return lie(format!(
                "interface {} claims sandbox {:?}",
                iface.name, iface.sandbox
            ));
        }
        let Some(link) = observed
            .iter()
            .find(|l| l.side == side && l.name == iface.name)
        else {
            return lie(format!(
                "interface {} ({side}) was not touched by the plan",
                iface.name
            ));
        };
        if let (Some(claimed), Some(real)) = (&iface.mac, &link.mac) {
            if !claimed.eq_ignore_ascii_case(&real.to_string()) {
                return lie(format!(
                    "interface {} has MAC {real}, not {claimed}",
                    iface.name
                ));
            }
        }
        links.push(Some(link));
    }
    for ip in &result.ips {
        if prev.is_some_and(|p| p.ips.contains(ip)) {
            continue;
        }
        let on_link = |l: &ObservedLink| l.addresses.contains(&ip.address);
        let ok = match ip.interface.and_then(|i| links.get(i as usize)) {
            Some(Some(link)) if link.side == Side::Container => on_link(link),
            Some(Some(_)) => true,
            // An entry of prevResult's interfaces, or no interface at all.
            _ => {
                ipam.iter()
                    .any(|r| r.ips.iter().any(|i| i.address == ip.address))
                    || observed
                        .iter()
                        .any(|l| l.side == Side::Container && on_link(l))
            }
        };
        if !ok {
            return lie(format!(
                "address {} is not on the container interface",
                ip.address
            ));
        }
    }
    Ok(())
}
