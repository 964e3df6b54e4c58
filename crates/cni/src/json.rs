//! Reading a network configuration as the reference's Go decoder does: a key
//! matches exactly, or else ignoring ASCII case; `null` is the same as absent;
//! a value of the wrong type is code 7 with a message naming the key's path and
//! the value. Host and guests share this one reader.

use serde_json::{Map, Value};

use crate::error::CniError;

/// The value of `key` in `obj` as Go's `encoding/json` finds it: the exact key
/// first, then the first key equal ignoring ASCII case. `null` counts as absent.
pub fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let v = obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })?;
    (!v.is_null()).then_some(v)
}

/// An object being read, with its path for messages (`ipam`, `ranges[0][1]`).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    /// The top-level object of a configuration.
    pub fn root(obj: &'a Map<String, Value>) -> Self {
        Fields { obj, path: "" }
    }

    /// `v` as an object at `path`, or code 7.
    pub fn of(v: &'a Value, path: &'a str) -> Result<Self, CniError> {
        match v.as_object() {
            Some(obj) => Ok(Fields { obj, path }),
            None => Err(type_error(path, "an object", v)),
        }
    }

    /// The underlying map.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.obj
    }

    /// The path of `key` in this object, for messages.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key` (see [`field`]).
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        field(self.obj, key)
    }

    /// A boolean, or code 7.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, CniError> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// A string, or code 7.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An integer, or code 7.
    pub fn int(&self, key: &str) -> Result<Option<i64>, CniError> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// An object, or code 7.
    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, CniError> {
        self.typed(key, "an object", Value::as_object)
    }

    /// An array, or code 7.
    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, CniError> {
        self.typed(key, "an array", Value::as_array)
    }

    /// An array of strings (absent is empty), or code 7.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, CniError> {
        let Some(items) = self.array(key)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(
                    &format!("{}[{i}]", self.path_of(key)),
                    "a string",
                    other,
                )),
            })
            .collect()
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        read: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => read(v)
                .map(Some)
                .ok_or_else(|| type_error(&self.path_of(key), expected, v)),
        }
    }
}

/// Code 7: `<path>: expected <what>, got <value>` (the value cut at 64 bytes).
pub fn type_error(path: &str, expected: &str, got: &Value) -> CniError {
    let mut shown = got.to_string();
    if shown.len() > 64 {
        let mut cut = 61;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    CniError::invalid_config(format!("{path}: expected {expected}, got {shown}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ErrorCode;

    #[test]
    fn keys_match_like_go() {
        let v = json!({"isGateway": true, "IPMASQ": true, "mtu": null, "Mtu": 9000});
        let obj = v.as_object().expect("object");
        assert_eq!(field(obj, "isGateway"), Some(&json!(true)));
        assert_eq!(
            field(obj, "ipMasq"),
            Some(&json!(true)),
            "ASCII case ignored"
        );
        assert_eq!(field(obj, "mtu"), None, "null is absent");
        assert_eq!(field(obj, "hairpinMode"), None);
    }

    #[test]
    fn wrong_types_are_code_7_naming_path_and_value() {
        let v = json!({"isGateway": "yes", "ipam": {"ranges": [["x", 1]], "n": 1.5}});
        let root = Fields::of(&v, "").expect("object");
        let e = root.bool("isGateway").expect_err("a string");
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert_eq!(e.msg, r#"isGateway: expected a boolean, got "yes""#);
        let ipam = Fields::of(root.get("ipam").expect("ipam"), "ipam").expect("object");
        assert_eq!(
            ipam.int("n").expect_err("float").msg,
            "ipam.n: expected an integer, got 1.5"
        );
        let long = json!({"k": "x".repeat(100)});
        let e = Fields::of(&long, "")
            .expect("object")
            .int("k")
            .expect_err("long");
        assert!(e.msg.ends_with("...") && e.msg.len() < 100, "{}", e.msg);
        let list = json!({"l": ["a", 2]});
        let e = Fields::of(&list, "c")
            .expect("object")
            .str_list("l")
            .expect_err("number");
        assert_eq!(e.msg, "c.l[1]: expected a string, got 2");
    }
}
