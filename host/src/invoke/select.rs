//! Which component serves a request.

use cni::{CniError, ErrorCode, Request};

use crate::plugins::{ComponentSource, PluginStore};

/// Which component serves this request, and the optional digest pin.
pub(super) fn select_component(
    invoked_as: Option<&str>,
    request: &Request,
    store: &PluginStore,
) -> Result<ComponentSource, CniError> {
    let wasm = request.config.raw.get("wasm");
    let field = |key: &str| -> Result<Option<String>, CniError> {
        match wasm.and_then(|w| w.get(key)) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("wasm.{key} must be a string, got {other}"),
            )),
        }
    };
    if wasm.is_some_and(|w| !w.is_object()) {
        return Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            "\"wasm\" must be an object like {\"component\": \"name\", \"digest\": \"sha256:...\"}",
        ));
    }
    let name = match (field("component")?, invoked_as) {
        (Some(name), _) => name,
        (None, Some(name)) => name.to_string(),
        (None, None) => request.config.plugin_type.clone().ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                "no component to run: set \"type\" or \"wasm.component\"",
            )
        })?,
    };
    let source = store.find(&name)?;
    if let Some(pin) = field("digest")? {
        source.verify_pin(&pin)?;
    }
    Ok(source)
}
