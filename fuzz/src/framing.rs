//! The `cni_parse` input: the environment as `KEY=VALUE` lines, an empty line, then
//! stdin, byte for byte.
//!
//! ```text
//! CNI_COMMAND=ADD
//! CNI_CONTAINERID=abc123
//! CNI_IFNAME=eth0
//!
//! {"cniVersion":"1.1.0","name":"mynet","type":"bridge"}
//! ```
//!
//! A text format rather than an `arbitrary` structure, so that the seeds are real
//! invocations one can read, write and replay by hand. Every byte string is an input:
//! without an empty line the whole input is the environment and stdin is empty; a line
//! without `=` sets that name to the empty string; a later line wins over an earlier
//! one. A key or value that is not UTF-8 is dropped, as `main` drops such variables.

use std::collections::BTreeMap;

/// Splits an input into the environment and stdin.
pub fn split(data: &[u8]) -> (BTreeMap<String, String>, &[u8]) {
    let (env_part, stdin) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &data[data.len()..]),
    };
    let mut env = BTreeMap::new();
    for line in env_part.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let (key, value) = match line.iter().position(|&b| b == b'=') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &line[line.len()..]),
        };
        if let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
            env.insert(key.to_string(), value.to_string());
        }
    }
    (env, stdin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_then_stdin() {
        let (env, stdin) = split(b"CNI_COMMAND=ADD\nCNI_ARGS=A=1;B=2\nCNI_NETNS\n\n{\"a\":\n\n1}");
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["CNI_ARGS"], "A=1;B=2");
        assert_eq!(env["CNI_NETNS"], "");
        assert_eq!(stdin, b"{\"a\":\n\n1}");
    }

    #[test]
    fn any_bytes_are_an_input() {
        let (env, stdin) = split(b"CNI_COMMAND=DEL\n\xff=x\nK=\xfe");
        assert_eq!(env.len(), 1);
        assert!(stdin.is_empty());
        let (env, stdin) = split(b"\n\n");
        assert!(env.is_empty() && stdin.is_empty());
        let (env, stdin) = split(b"");
        assert!(env.is_empty() && stdin.is_empty());
    }
}
