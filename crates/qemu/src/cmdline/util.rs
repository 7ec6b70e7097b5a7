//! Small helpers shared by the builders: QEMU option strings ([`Opts`]), escaping,
//! ordered JSON objects, name and socket path checks.

use std::fmt::Display;
use std::path::Path;

use serde_json::Value;

use super::{unsupported, Result, MAX_SOCKET_PATH};

/// QEMU's `key=value,key=value` syntax takes a literal comma inside a value as `,,`.
pub(super) fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

pub(super) fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Builder for one `key=value,...` option string; every value is escaped.
pub(super) struct Opts(String);

impl Opts {
    /// `head` is written as is: a driver or backend name chosen by this module.
    pub(super) fn new(head: &str) -> Opts {
        Opts(head.to_string())
    }

    pub(super) fn set(mut self, key: &str, value: impl Display) -> Opts {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&esc(&value.to_string()));
        self
    }

    pub(super) fn set_opt(self, key: &str, value: Option<impl Display>) -> Opts {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Appends options that were formatted (and escaped) already.
    pub(super) fn raw(mut self, piece: &str) -> Opts {
        if !piece.is_empty() {
            if !self.0.is_empty() {
                self.0.push(',');
            }
            self.0.push_str(piece);
        }
        self
    }

    pub(super) fn done(self) -> String {
        self.0
    }
}

/// A JSON object with its keys in the given order (serde_json's map would sort them).
pub(super) fn json_obj(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Names accepted where a value is pasted into an option or a file name: CPU models and
/// features, keymaps, channel names used as socket file names.
pub(super) fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn check_socket_path(path: &Path, what: &str) -> Result<()> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return unsupported(format!(
            "{what}: socket path '{}' is longer than {MAX_SOCKET_PATH} bytes",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_and_json() {
        assert_eq!(esc("/a,b,,c"), "/a,,b,,,,c");
        assert_eq!(
            Opts::new("file").set("id", "x").set("path", "/a,b").done(),
            "file,id=x,path=/a,,b"
        );
        assert_eq!(
            json_obj(&[("b", json!(1)), ("a", json!("x\"y"))]),
            r#"{"b":1,"a":"x\"y"}"#
        );
    }
}
