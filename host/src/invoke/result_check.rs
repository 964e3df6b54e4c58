//! The result check: what a guest returns for ADD must describe what was
//! applied.

use cni::{CniError, CniResult, ErrorCode, Request};
use plan::{Intent, ObservedLink, Side};

/// The result a runtime will trust must describe what was applied: every new
/// interface is a link the plan touched (in the container, `CNI_IFNAME` or `lo`
/// with `sandbox` = `CNI_NETNS`), its MAC is the kernel's, and every new container
/// address is on the link it names (host links included); every new route is
/// one IPAM returned or the plan added in the container; every DNS value
/// comes from IPAM or the network configuration. Entries copied from
/// `prevResult` belong to earlier plugins and pass as they are.
pub(super) fn check_result(
    result: &CniResult,
    request: &Request,
    observed: &[ObservedLink],
    ipam: &[CniResult],
    intents: &[Intent],
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
            Some(Some(link)) => on_link(link),
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
                "address {} is not on the interface it names",
                ip.address
            ));
        }
    }
    for route in &result.routes {
        let same = |r: &cni::Route| r.dst == route.dst && r.gw == route.gw;
        let known = prev.is_some_and(|p| p.routes.iter().any(same))
            || ipam.iter().any(|r| r.routes.iter().any(same))
            || intents.iter().any(|i| {
                matches!(i, Intent::AddRoute(r)
                    if r.side == Side::Container && r.dst == route.dst && r.gw == route.gw)
            });
        if !known {
            return lie(format!(
                "route to {} was neither returned by IPAM nor added by the plan",
                route.dst
            ));
        }
    }
    // DNS values come from IPAM, prevResult or the configuration's `dns`.
    let mut allowed: Vec<String> = Vec::new();
    for dns in ipam.iter().map(|r| &r.dns).chain(prev.map(|p| &p.dns)) {
        allowed.extend(dns_values(dns).map(str::to_string));
    }
    if let Some(conf_dns) = cni::json::field(&request.config.raw, "dns") {
        collect_strings(conf_dns, &mut allowed);
    }
    if let Some(value) = dns_values(&result.dns).find(|v| !allowed.iter().any(|a| a == v)) {
        return lie(format!(
            "DNS value {value:?} comes from neither IPAM nor the configuration"
        ));
    }
    Ok(())
}

fn dns_values(dns: &cni::Dns) -> impl Iterator<Item = &str> {
    dns.nameservers
        .iter()
        .chain(&dns.domain)
        .chain(&dns.search)
        .chain(&dns.options)
        .map(String::as_str)
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}
