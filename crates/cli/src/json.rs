//! JSON pretty-printed as virsh prints it (`--pretty`): libvirt reads the text and writes
//! it back with yajl's beautifier — two spaces a level, `"key": value`, an empty object or
//! array opened and closed on lines of their own, a line end after the whole value —
//! numbers as they were written, keys in their order.

/// How deep a document may nest before it is refused (as not JSON).
const MAX_DEPTH: usize = 1024;

/// `text` pretty-printed, or `None` when it is not one JSON value.
pub fn pretty(text: &str) -> Option<String> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
        out: String::with_capacity(text.len() * 2),
    };
    p.value(0)?;
    p.skip_ws();
    if p.i != p.b.len() {
        return None;
    }
    p.out.push('\n');
    Some(p.out)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    out: String,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    /// One value at nesting `depth`, written where the output stands.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match *self.b.get(self.i)? {
            b'{' => self.container(depth, b'}'),
            b'[' => self.container(depth, b']'),
            b'"' => {
                let s = self.string()?;
                self.write_string(&s);
                Some(())
            }
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.word("null"),
            _ => self.number(),
        }
    }

    /// An object (`close` is `}`) or an array (`]`).
    fn container(&mut self, depth: usize, close: u8) -> Option<()> {
        self.i += 1;
        self.out.push(if close == b'}' { '{' } else { '[' });
        self.out.push('\n');
        self.skip_ws();
        let mut first = true;
        if self.b.get(self.i) != Some(&close) {
            loop {
                if !first {
                    self.out.push_str(",\n");
                }
                first = false;
                self.indent(depth + 1);
                if close == b'}' {
                    self.skip_ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let k = self.string()?;
                    self.write_string(&k);
                    self.skip_ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    self.out.push_str(": ");
                }
                self.value(depth + 1)?;
                self.skip_ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(c) if *c == close => break,
                    _ => return None,
                }
            }
        }
        self.i += 1;
        self.out.push('\n');
        self.indent(depth);
        self.out.push(char::from(close));
        Some(())
    }

    fn word(&mut self, w: &str) -> Option<()> {
        if !self.b[self.i..].starts_with(w.as_bytes()) {
            return None;
        }
        self.i += w.len();
        self.out.push_str(w);
        Some(())
    }

    /// A number, checked and written as it was.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i > s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        if self.b.get(self.i) == Some(&b'0') {
            self.i += 1;
        } else if !digits(self) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        self.out
            .push_str(std::str::from_utf8(&self.b[start..self.i]).ok()?);
        Some(())
    }

    /// A string's value (the escapes decoded).
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut s = Vec::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(s).ok(),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return None,
                c => s.push(c),
            }
        }
    }

    /// The character of a `\uXXXX` escape (a surrogate pair taking two).
    fn unicode_escape(&mut self) -> Option<char> {
        let hex4 = |p: &mut Self| {
            let h = std::str::from_utf8(p.b.get(p.i..p.i + 4)?).ok()?;
            let v = u32::from_str_radix(h, 16).ok()?;
            p.i += 4;
            Some(v)
        };
        let hi = hex4(self)?;
        if (0xd800..0xdc00).contains(&hi) {
            if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                return None;
            }
            self.i += 2;
            let lo = hex4(self)?;
            if !(0xdc00..0xe000).contains(&lo) {
                return None;
            }
            return char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
        }
        char::from_u32(hi)
    }

    /// A string as yajl writes it.
    fn write_string(&mut self, s: &str) {
        self.out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04X}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_as_yajl_writes_it() {
        assert_eq!(
            pretty(r#"{"return":{}}"#).unwrap(),
            "{\n  \"return\": {\n\n  }\n}\n"
        );
        assert_eq!(
            pretty(r#"{"return":[1,{"a":true,"b":-1.5e3}],"x":"a\"\u00e9\u0001"}"#).unwrap(),
            "{\n  \"return\": [\n    1,\n    {\n      \"a\": true,\n      \"b\": -1.5e3\n    }\n  ],\n  \
             \"x\": \"a\\\"é\\u0001\"\n}\n"
        );
        assert_eq!(pretty("[]").unwrap(), "[\n\n]\n");
        for bad in ["", "{", "[1,]", "{\"a\"}", "01", "nul", "1 2", "\"\\x\""] {
            assert_eq!(pretty(bad), None, "{bad}");
        }
    }
}
