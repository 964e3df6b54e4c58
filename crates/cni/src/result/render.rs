//! A result rendered in the shape of the version the config asks for (the
//! reference's converters, then Go's JSON encoding).

use super::*;

/// Renders `r` in version `v`, as the reference converters followed by Go's
/// JSON encoding produce it. Every rendering carries `cniVersion`.
///
/// - 1.0.0/1.1.0: the model as is (`dns` dropped when empty).
/// - 0.3.0/0.3.1/0.4.0: each ip gains `"version": "4"|"6"`; interfaces keep
///   only name/mac/sandbox; routes keep every field; `dns` is always written
///   (`{}` when empty: these versions have no custom marshaller and Go's
///   `omitempty` never omits a struct).
/// - 0.1.0/0.2.0: the first v4 and first v6 address become `ip4`/`ip6`
///   (with gateway); routes go to the block of their destination's family,
///   reduced to `{dst, gw}`, and are dropped if that family has no address;
///   interfaces and ip interface indices are dropped; `dns` always written.
///   With no address at all this fails with the reference's message
///   `cannot convert: no valid IP addresses`, code 999: the reference
///   surfaces it as an untyped plugin error (999), and neither 1 (the
///   version itself is supported) nor 2 (no offending key) would say more.
pub fn render_result(r: &CniResult, v: CniVersion) -> Result<Value, CniError> {
    let mut out = Map::new();
    out.insert("cniVersion".into(), Value::from(v.as_str()));
    if v.is_legacy_result() {
        let v4 = r.ips.iter().find(|ip| matches!(ip.address, IpNet::V4(_)));
        let v6 = r.ips.iter().find(|ip| matches!(ip.address, IpNet::V6(_)));
        if v4.is_none() && v6.is_none() {
            return Err(CniError::internal(NO_VALID_IPS));
        }
        for (key, ip, want_v4) in [("ip4", v4, true), ("ip6", v6, false)] {
            let Some(ip) = ip else { continue };
            let mut block = Map::new();
            block.insert("ip".into(), Value::from(ip.address.to_string()));
            if let Some(gw) = ip.gateway {
                block.insert("gateway".into(), Value::from(gw.to_string()));
            }
            let routes: Vec<Value> = r
                .routes
                .iter()
                .filter(|rt| matches!(rt.dst, IpNet::V4(_)) == want_v4)
                .map(|rt| to_value(&Route::new(rt.dst, rt.gw)))
                .collect::<Result<_, _>>()?;
            if !routes.is_empty() {
                block.insert("routes".into(), Value::Array(routes));
            }
            out.insert(key.into(), Value::Object(block));
        }
        out.insert("dns".into(), to_value(&r.dns)?);
    } else if v.is_04x_result() {
        if !r.interfaces.is_empty() {
            let ifs = r
                .interfaces
                .iter()
                .map(|i| {
                    to_value(&Interface {
                        name: i.name.clone(),
                        mac: i.mac.clone(),
                        sandbox: i.sandbox.clone(),
                        ..Interface::default()
                    })
                })
                .collect::<Result<_, _>>()?;
            out.insert("interfaces".into(), Value::Array(ifs));
        }
        if !r.ips.is_empty() {
            let ips = r
                .ips
                .iter()
                .map(|ip| {
                    let mut o = match to_value(ip)? {
                        Value::Object(o) => o,
                        _ => Map::new(),
                    };
                    let family = if matches!(ip.address, IpNet::V4(_)) {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".into(), Value::from(family));
                    Ok(Value::Object(o))
                })
                .collect::<Result<_, CniError>>()?;
            out.insert("ips".into(), Value::Array(ips));
        }
        if !r.routes.is_empty() {
            out.insert("routes".into(), to_value(&r.routes)?);
        }
        out.insert("dns".into(), to_value(&r.dns)?);
    } else if let Value::Object(body) = to_value(r)? {
        out.extend(body);
    }
    Ok(Value::Object(out))
}

/// [`render_result`] pretty-printed for stdout (four-space indent as the
/// reference, plus a trailing newline).
pub fn render_result_string(r: &CniResult, v: CniVersion) -> Result<String, CniError> {
    let value = render_result(r, v)?;
    pretty_json(&value).map_err(|e| CniError::internal(format!("rendering result: {e}")))
}

fn to_value<T: Serialize>(t: &T) -> Result<Value, CniError> {
    serde_json::to_value(t).map_err(|e| CniError::internal(format!("rendering result: {e}")))
}
