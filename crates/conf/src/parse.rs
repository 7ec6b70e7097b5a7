//! The `.conf` syntax: a hand-written, non-panicking, bounded parser.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::ConfError;

/// The largest file accepted, in bytes (1 MiB).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The longest string value accepted, in bytes (64 KiB).
pub const MAX_STRING_BYTES: usize = 64 << 10;
/// The most items one list may hold.
pub const MAX_LIST_ITEMS: usize = 10_000;
/// How deeply lists may be nested (`[[1]]` is two deep).
pub const MAX_LIST_DEPTH: usize = 8;

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A decimal integer, possibly negative: `42`, `-1`.
    Int(i64),
    /// A string: `"..."`, `'...'` or `"""..."""`, taken literally.
    Str(String),
    /// A list of values: `[ "a", "b" ]`.
    List(Vec<Value>),
}

impl Value {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// "an integer", "a string" or "a list", for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
        }
    }
}

/// One `key = value` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The setting's name.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// The 1-based line the key is on.
    pub line: usize,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// The file name used in messages.
    pub path: String,
    /// The settings in file order, each key once: where a key is repeated,
    /// only its first occurrence is here (libvirt's rule).
    pub entries: Vec<Entry>,
    /// Things worth telling the user that do not stop the parse (a repeated
    /// key), each starting with `file:line:`.
    pub warnings: Vec<String>,
}

impl ConfFile {
    /// The entry for `key`, if the file sets it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value of `key`, if the file sets it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }
}

/// Parses `.conf` text. `path_for_messages` is the name errors and
/// warnings start with.
///
/// The syntax, as libvirt reads it:
///
/// * statements are `key = value`, one a line, optionally ended by `;`
///   (after which another statement may follow on the same line);
/// * keys are `[A-Za-z_][A-Za-z0-9_.]*`;
/// * values are decimal integers (`42`, `-1`, `+3`), strings in double
///   quotes, single quotes or triple double quotes (`"""..."""`, the only
///   kind that may span lines), or lists of values in `[ ]` separated by
///   commas (a trailing comma is allowed; lists may span lines and hold
///   comments);
/// * there is no escape processing: a backslash in a string is a backslash;
/// * `#` starts a comment to the end of the line, outside strings;
/// * blank lines, spaces, tabs and `\r` (CRLF files) are ignored.
///
/// Where a key appears twice the first occurrence wins; the later one is
/// dropped and a warning names it.
///
/// Limits: the text may be at most [`MAX_FILE_BYTES`], a string at most
/// [`MAX_STRING_BYTES`], a list at most [`MAX_LIST_ITEMS`] items and
/// [`MAX_LIST_DEPTH`] levels deep. Breaking one is an error.
pub fn parse(path_for_messages: &str, text: &str) -> Result<ConfFile, ConfError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(path_for_messages, text.len() as u64));
    }
    Parser::new(path_for_messages, text).file()
}

/// Reads and parses the file at `path`; `Ok(None)` when it does not exist.
///
/// Messages name the file by `path` as given. A file larger than
/// [`MAX_FILE_BYTES`] is refused without being read whole; text that is not
/// UTF-8 is a syntax error on the line where the bad bytes are.
pub fn load(path: &Path) -> Result<Option<ConfFile>, ConfError> {
    let name = path.display().to_string();
    let io = |source| ConfError::Io {
        file: name.clone(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_FILE_BYTES as u64 {
        return Err(too_large(&name, len));
    }
    // The file may grow between the check and the read: read one byte past
    // the limit at most.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(&name, bytes.len() as u64));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = good
                .get(line_start..)
                .map_or(0, |s| String::from_utf8_lossy(s).chars().count())
                + 1;
            return Err(ConfError::Syntax {
                file: name,
                line,
                column,
                message: "the text is not valid UTF-8".into(),
            });
        }
    };
    parse(&name, text).map(Some)
}

fn too_large(file: &str, len: u64) -> ConfError {
    ConfError::File {
        file: file.to_string(),
        message: format!("the file is {len} bytes; the limit is {MAX_FILE_BYTES}"),
    }
}

/// A place in the text, for errors that point back at an opening token.
#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    line: usize,
    line_start: usize,
}

struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

fn is_key_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

impl<'a> Parser<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Parser {
            file,
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// Moves past one byte, counting lines.
    fn bump(&mut self) {
        if let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.pos;
            }
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            line_start: self.line_start,
        }
    }

    fn error_at(&self, at: Mark, message: impl Into<String>) -> ConfError {
        let column = self
            .text
            .get(at.line_start..at.pos)
            .map_or(0, |s| s.chars().count())
            + 1;
        ConfError::Syntax {
            file: self.file.to_string(),
            line: at.line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfError {
        self.error_at(self.mark(), message)
    }

    /// Describes what is at the current position, for "found ..." messages.
    fn found(&self) -> String {
        match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            None => "the end of the file".into(),
            Some('\n') => "the end of the line".into(),
            Some(c) => format!("'{}'", c.escape_debug()),
        }
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.bump();
        }
    }

    /// Skips a `#` comment up to (not including) the end of the line.
    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            self.pos += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        }
    }

    /// Skips blanks, comments and line ends.
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(b) if is_blank(b) || b == b'\n' => self.bump(),
                Some(b'#') => self.skip_comment(),
                _ => return,
            }
        }
    }

    fn file(mut self) -> Result<ConfFile, ConfError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut warnings = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        loop {
            self.skip_space();
            if self.peek().is_none() {
                break;
            }
            let line = self.line;
            let key = self.key()?;
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(self.error(format!(
                    "expected '=' after '{key}', found {}",
                    self.found()
                )));
            }
            self.bump();
            self.skip_blanks();
            if matches!(self.peek(), None | Some(b'\n' | b'#' | b';')) {
                return Err(self.error("expected a value after '='"));
            }
            let value = self.value(0)?;
            self.skip_blanks();
            if self.peek() == Some(b';') {
                // Another statement may follow on the same line.
                self.bump();
            } else {
                self.skip_comment();
                if !matches!(self.peek(), None | Some(b'\n')) {
                    return Err(self.error(format!(
                        "expected the end of the line after the value of '{key}', found {}",
                        self.found()
                    )));
                }
            }
            match seen.get(&key) {
                Some(first) => warnings.push(format!(
                    "{}:{line}: '{key}' is set again; the first setting, on line {first}, is kept",
                    self.file
                )),
                None => {
                    seen.insert(key.clone(), line);
                    entries.push(Entry { key, value, line });
                }
            }
        }
        Ok(ConfFile {
            path: self.file.to_string(),
            entries,
            warnings,
        })
    }

    fn key(&mut self) -> Result<String, ConfError> {
        if !self.peek().is_some_and(is_key_start) {
            return Err(self.error(format!("expected a setting name, found {}", self.found())));
        }
        let start = self.pos;
        while self.peek().is_some_and(is_key_char) {
            self.bump();
        }
        self.slice(start, self.pos)
    }

    /// The text between two byte offsets that sit next to ASCII bytes.
    fn slice(&self, start: usize, end: usize) -> Result<String, ConfError> {
        self.text
            .get(start..end)
            .map(str::to_string)
            .ok_or_else(|| self.error("internal error: split inside a character"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, ConfError> {
        match self.peek() {
            Some(b'"') if self.peek_at(1) == Some(b'"') && self.peek_at(2) == Some(b'"') => {
                self.triple_quoted().map(Value::Str)
            }
            Some(q @ (b'"' | b'\'')) => self.quoted(q).map(Value::Str),
            Some(b'[') => self.list(depth),
            Some(b) if b.is_ascii_digit() || b == b'-' || b == b'+' => self.integer(),
            _ => Err(self.error(format!(
                "expected a value (a number, a quoted string or a list), found {}",
                self.found()
            ))),
        }
    }

    fn integer(&mut self) -> Result<Value, ConfError> {
        let at = self.mark();
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.bump();
        }
        let digits = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        if self.pos == digits {
            return Err(self.error(format!(
                "expected digits after the sign, found {}",
                self.found()
            )));
        }
        if self.peek().is_some_and(is_key_char) {
            // `1.5`, `0x10`, `12abc`: name the whole word.
            while self.peek().is_some_and(is_key_char) {
                self.bump();
            }
            let word = self.slice(start, self.pos)?;
            return Err(self.error_at(at, format!("'{word}' is not a decimal integer")));
        }
        let text = self.slice(start, self.pos)?;
        text.parse::<i64>()
            .map(Value::Int)
            .map_err(|_| self.error_at(at, format!("integer {text} is out of range")))
    }

    /// A string in `"..."` or `'...'`, on one line.
    fn quoted(&mut self, quote: u8) -> Result<String, ConfError> {
        let at = self.mark();
        let start = self.pos + 1;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == quote || b == b'\n');
        match end {
            Some(len) if rest.get(len) == Some(&quote) => {
                if len > MAX_STRING_BYTES {
                    return Err(self.string_too_long(at, len));
                }
                let s = self.slice(start, start + len)?;
                // No line ends inside: moving `pos` keeps the line count right.
                self.pos = start + len + 1;
                Ok(s)
            }
            _ => Err(self.error_at(
                at,
                format!(
                    "unterminated string: no closing {} on this line",
                    char::from(quote)
                ),
            )),
        }
    }

    /// A string in `"""..."""`, which may span lines.
    fn triple_quoted(&mut self) -> Result<String, ConfError> {
        let at = self.mark();
        let start = self.pos + 3;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let Some(len) = rest.windows(3).position(|w| w == b"\"\"\"") else {
            return Err(self.error_at(at, "unterminated string: no closing \"\"\""));
        };
        if len > MAX_STRING_BYTES {
            return Err(self.string_too_long(at, len));
        }
        let s = self.slice(start, start + len)?;
        // Walk over the string so that the line count stays right.
        while self.pos < start + len + 3 {
            self.bump();
        }
        Ok(s)
    }

    fn string_too_long(&self, at: Mark, len: usize) -> ConfError {
        self.error_at(
            at,
            format!("string is {len} bytes long; the limit is {MAX_STRING_BYTES}"),
        )
    }

    fn list(&mut self, depth: usize) -> Result<Value, ConfError> {
        let at = self.mark();
        if depth >= MAX_LIST_DEPTH {
            return Err(self.error(format!("lists are nested more than {MAX_LIST_DEPTH} deep")));
        }
        self.bump(); // '['
        let mut items = Vec::new();
        loop {
            // Here: just after '[' or ','.
            self.skip_space();
            match self.peek() {
                None => return Err(self.error_at(at, "unterminated list: no closing ']'")),
                Some(b']') => break,
                Some(_) => {}
            }
            if items.len() >= MAX_LIST_ITEMS {
                return Err(self.error_at(at, format!("list has more than {MAX_LIST_ITEMS} items")));
            }
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                None => return Err(self.error_at(at, "unterminated list: no closing ']'")),
                Some(b',') => self.bump(),
                Some(b']') => break,
                Some(_) => {
                    return Err(self.error(format!(
                        "expected ',' or ']' in the list, found {}",
                        self.found()
                    )))
                }
            }
        }
        self.bump(); // ']'
        Ok(Value::List(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> ConfFile {
        match parse("t.conf", text) {
            Ok(f) => f,
            Err(e) => panic!("{text:?} did not parse: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse("t.conf", text) {
            Ok(f) => panic!("{text:?} parsed: {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn one(text: &str) -> Value {
        let f = p(text);
        assert_eq!(f.entries.len(), 1, "{text:?}");
        f.entries[0].value.clone()
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn integers() {
        assert_eq!(one("a = 42"), Value::Int(42));
        assert_eq!(one("a = -1"), Value::Int(-1));
        assert_eq!(one("a = +3"), Value::Int(3));
        assert_eq!(one("a = 0770"), Value::Int(770));
        assert_eq!(one("a=0"), Value::Int(0));
        assert_eq!(one("a = 9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(one("a = -9223372036854775808"), Value::Int(i64::MIN));
    }

    #[test]
    fn strings() {
        assert_eq!(one(r#"a = "hello world""#), s("hello world"));
        assert_eq!(one("a = 'single'"), s("single"));
        assert_eq!(
            one(r#"a = 'has "double" inside'"#),
            s(r#"has "double" inside"#)
        );
        assert_eq!(
            one(r#"a = "has 'single' inside""#),
            s("has 'single' inside")
        );
        assert_eq!(one(r#"a = "" "#), s(""));
        assert_eq!(one("a = ''"), s(""));
        assert_eq!(one("a = \"# not a comment\""), s("# not a comment"));
        assert_eq!(one("a = \"ünïcödé ✓\""), s("ünïcödé ✓"));
    }

    #[test]
    fn no_escape_processing() {
        assert_eq!(one(r#"a = "back\slash\n""#), s(r"back\slash\n"));
        assert_eq!(one(r"a = 'C:\path\'"), s(r"C:\path\"));
        // A backslash does not escape the closing quote.
        assert_eq!(
            err(r#"a = "x\" y""#),
            "t.conf:1: expected the end of the line after the value of 'a', found 'y'"
        );
    }

    #[test]
    fn triple_quotes_span_lines() {
        let f = p("a = \"\"\"first\n  second \"quoted\" 'x'\n# not a comment\n\"\"\"\nb = 1\n");
        assert_eq!(
            f.get("a"),
            Some(&s("first\n  second \"quoted\" 'x'\n# not a comment\n"))
        );
        // Line counting carries on after the string.
        assert_eq!(f.entry("b").map(|e| e.line), Some(5));
        assert_eq!(one("a = \"\"\"one \"\" two\"\"\""), s("one \"\" two"));
        assert_eq!(one("a = \"\"\"\"\"\""), s(""));
    }

    #[test]
    fn lists() {
        assert_eq!(one("a = []"), Value::List(vec![]));
        assert_eq!(one("a = [ ]"), Value::List(vec![]));
        assert_eq!(
            one(r#"a = [ "a", "b" ]"#),
            Value::List(vec![s("a"), s("b")])
        );
        assert_eq!(one(r#"a = ["a",]"#), Value::List(vec![s("a")]));
        assert_eq!(
            one(r#"a = [1, 'two', """three""", [4, -5]]"#),
            Value::List(vec![
                Value::Int(1),
                s("two"),
                s("three"),
                Value::List(vec![Value::Int(4), Value::Int(-5)])
            ])
        );
    }

    #[test]
    fn lists_span_lines_with_comments() {
        let text = "a = [   # opening comment\n  \"one\",  # first\n\n  # a line of comment ] , [\n  \"two\" # no comma yet\n  ,\n  \"three\",\n]  # done\nb = 2\n";
        let f = p(text);
        assert_eq!(
            f.get("a"),
            Some(&Value::List(vec![s("one"), s("two"), s("three")]))
        );
        assert_eq!(f.entry("b").map(|e| e.line), Some(9));
    }

    #[test]
    fn comments_blank_lines_and_separators() {
        let text = "# leading comment\n\n   \t\nx = 1 # trailing\ny = \"s\"; z = 3;\r\nw.v_2 = 'q' ; # both\n_k=4\n\n# end";
        let f = p(text);
        let keys: Vec<_> = f.entries.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            keys,
            vec![("x", 4), ("y", 5), ("z", 5), ("w.v_2", 6), ("_k", 7)]
        );
        assert_eq!(f.get("z"), Some(&Value::Int(3)));
        assert_eq!(f.get("w.v_2"), Some(&s("q")));
        assert!(f.warnings.is_empty());
        assert_eq!(f.path, "t.conf");
    }

    #[test]
    fn crlf_and_empty_files() {
        let f = p("a = 1\r\nb = \"x\"\r\n");
        assert_eq!(f.get("b"), Some(&s("x")));
        assert!(p("").entries.is_empty());
        assert!(p("\n\n# only a comment").entries.is_empty());
        assert_eq!(one("a = 1"), Value::Int(1)); // no final newline
    }

    #[test]
    fn first_duplicate_wins_with_a_warning() {
        let f = p("a = 1\nb = 2\na = 3\na = \"four\"\n");
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.get("a"), Some(&Value::Int(1)));
        assert_eq!(
            f.warnings,
            vec![
                "t.conf:3: 'a' is set again; the first setting, on line 1, is kept".to_string(),
                "t.conf:4: 'a' is set again; the first setting, on line 1, is kept".to_string(),
            ]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("a =\n", "t.conf:1: expected a value after '='"),
            ("\n\na = # c\n", "t.conf:3: expected a value after '='"),
            ("a = ;", "t.conf:1: expected a value after '='"),
            ("a =", "t.conf:1: expected a value after '='"),
            ("a 1", "t.conf:1: expected '=' after 'a', found '1'"),
            (
                "a\n= 1",
                "t.conf:1: expected '=' after 'a', found the end of the line",
            ),
            (
                "x = 1\n1a = 2",
                "t.conf:2: expected a setting name, found '1'",
            ),
            ("-a = 2", "t.conf:1: expected a setting name, found '-'"),
            (";", "t.conf:1: expected a setting name, found ';'"),
            ("a-b = 1", "t.conf:1: expected '=' after 'a', found '-'"),
            (
                "a = b",
                "t.conf:1: expected a value (a number, a quoted string or a list), found 'b'",
            ),
            (
                "a = 1 2",
                "t.conf:1: expected the end of the line after the value of 'a', found '2'",
            ),
            ("a = 1.5", "t.conf:1: '1.5' is not a decimal integer"),
            ("a = 0x10", "t.conf:1: '0x10' is not a decimal integer"),
            (
                "a = -",
                "t.conf:1: expected digits after the sign, found the end of the file",
            ),
            (
                "a = 99999999999999999999",
                "t.conf:1: integer 99999999999999999999 is out of range",
            ),
            (
                "a = \"abc",
                "t.conf:1: unterminated string: no closing \" on this line",
            ),
            (
                "a = \"abc\nb\"",
                "t.conf:1: unterminated string: no closing \" on this line",
            ),
            (
                "a = 'abc",
                "t.conf:1: unterminated string: no closing ' on this line",
            ),
            (
                "\na = \"\"\"abc\n\n",
                "t.conf:2: unterminated string: no closing \"\"\"",
            ),
            ("a = [1,\n2", "t.conf:1: unterminated list: no closing ']'"),
            (
                "a = [1\n2]",
                "t.conf:2: expected ',' or ']' in the list, found '2'",
            ),
            (
                "a = [1,,2]",
                "t.conf:1: expected a value (a number, a quoted string or a list), found ','",
            ),
            (
                "a = [,]",
                "t.conf:1: expected a value (a number, a quoted string or a list), found ','",
            ),
            (
                "a = [1] x",
                "t.conf:1: expected the end of the line after the value of 'a', found 'x'",
            ),
            (
                "a = \u{1}",
                "t.conf:1: expected a value (a number, a quoted string or a list), found '\\u{1}'",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&err(text), want, "for {text:?}");
        }
    }

    #[test]
    fn errors_carry_a_column() {
        match parse("t.conf", "ab = 1\n  é = 1 2\n") {
            Err(ConfError::Syntax { line, column, .. }) => {
                assert_eq!((line, column), (2, 3));
            }
            other => panic!("{other:?}"),
        }
        match parse("t.conf", "k = 'é' x") {
            Err(e @ ConfError::Syntax { .. }) => {
                assert_eq!(e.line(), Some(1));
                assert_eq!(e.file(), "t.conf");
                let ConfError::Syntax { column, .. } = e else {
                    unreachable!()
                };
                assert_eq!(column, 9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_size_limit() {
        let mut text = "a = 1\n".to_string();
        text.push_str(&"#".repeat(MAX_FILE_BYTES - text.len()));
        assert!(parse("t.conf", &text).is_ok());
        text.push('#');
        let e = parse("t.conf", &text).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "t.conf: the file is {} bytes; the limit is 1048576",
                MAX_FILE_BYTES + 1
            )
        );
    }

    #[test]
    fn string_size_limit() {
        for (open, close) in [("\"", "\""), ("'", "'"), ("\"\"\"", "\"\"\"")] {
            let ok = format!("x = 1\na = {open}{}{close}\n", "s".repeat(MAX_STRING_BYTES));
            assert_eq!(
                p(&ok).get("a").and_then(Value::as_str).map(str::len),
                Some(MAX_STRING_BYTES)
            );
            let bad = format!(
                "x = 1\na = {open}{}{close}\n",
                "s".repeat(MAX_STRING_BYTES + 1)
            );
            assert_eq!(
                err(&bad),
                "t.conf:2: string is 65537 bytes long; the limit is 65536"
            );
        }
    }

    #[test]
    fn list_size_and_depth_limits() {
        let ok = format!("a = [{}]", "1,".repeat(MAX_LIST_ITEMS));
        assert_eq!(
            p(&ok).get("a").and_then(Value::as_list).map(<[Value]>::len),
            Some(MAX_LIST_ITEMS)
        );
        let bad = format!("\na = [{}]", "1,".repeat(MAX_LIST_ITEMS + 1));
        assert_eq!(err(&bad), "t.conf:2: list has more than 10000 items");

        let deep_ok = format!(
            "a = {}{}",
            "[".repeat(MAX_LIST_DEPTH),
            "]".repeat(MAX_LIST_DEPTH)
        );
        assert!(parse("t.conf", &deep_ok).is_ok());
        let deep_bad = format!(
            "a = {}{}",
            "[".repeat(MAX_LIST_DEPTH + 1),
            "]".repeat(MAX_LIST_DEPTH + 1)
        );
        assert_eq!(
            err(&deep_bad),
            "t.conf:1: lists are nested more than 8 deep"
        );
        // A file of nothing but '[' is an error, not a stack overflow.
        assert!(parse("t.conf", &format!("a = {}", "[".repeat(MAX_FILE_BYTES - 4))).is_err());
    }

    #[test]
    fn value_accessors() {
        assert_eq!(Value::Int(3).as_int(), Some(3));
        assert_eq!(s("x").as_int(), None);
        assert_eq!(s("x").as_str(), Some("x"));
        assert_eq!(Value::List(vec![]).as_str(), None);
        assert_eq!(Value::List(vec![]).as_list(), Some(&[][..]));
        assert_eq!(Value::Int(1).kind(), "an integer");
        assert_eq!(s("").kind(), "a string");
        assert_eq!(Value::List(vec![]).kind(), "a list");
        assert_eq!(p("a = 1").get("b"), None);
    }

    /// xorshift64*: deterministic pseudo-random numbers without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn check_no_panic(text: &str) {
        match parse("fuzz.conf", text) {
            Ok(f) => {
                for e in &f.entries {
                    assert!(e.line >= 1);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("fuzz.conf:"), "{msg}");
                if let ConfError::Syntax { line, column, .. } = e {
                    assert!(
                        line >= 1 && line <= text.lines().count().max(1) + 1,
                        "{msg}"
                    );
                    assert!(column >= 1);
                } else {
                    panic!("unexpected error kind: {msg}");
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Raw bytes, made into text the way a reader of odd files would.
        for _ in 0..2000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_no_panic(&String::from_utf8_lossy(&bytes));
        }
        // Text made of the syntax's own pieces, which gets further in.
        const PIECES: &[&str] = &[
            "a",
            "key_1",
            "x.y",
            " ",
            "\t",
            "\n",
            "\r",
            "=",
            " = ",
            "\"",
            "'",
            "\"\"\"",
            "[",
            "]",
            ",",
            ";",
            "#",
            "-",
            "+",
            "0",
            "42",
            "9999999999999999999999",
            "\\",
            "é",
            "\u{0}",
            "\"str\"",
            "'s'",
            "[1,",
            "]\n",
        ];
        for _ in 0..3000 {
            let n = rng.below(40);
            let text: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            check_no_panic(&text);
        }
    }

    #[test]
    fn load_reads_files() {
        let dir = std::env::temp_dir().join(format!("vireo-conf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        assert!(load(&dir.join("missing.conf")).unwrap().is_none());

        let good = dir.join("good.conf");
        std::fs::write(&good, "a = 1\nb = [\"x\"]\n").unwrap();
        let f = load(&good).unwrap().unwrap();
        assert_eq!(f.path, good.display().to_string());
        assert_eq!(f.get("a"), Some(&Value::Int(1)));

        let bad = dir.join("bad.conf");
        std::fs::write(&bad, "a = 1\nb = \n").unwrap();
        let e = load(&bad).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:2: expected a value after '='", bad.display())
        );

        let binary = dir.join("binary.conf");
        std::fs::write(&binary, b"a = 1\nb = \"\xff\xfe\"\n").unwrap();
        let e = load(&binary).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:2: the text is not valid UTF-8", binary.display())
        );

        let big = dir.join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 1]).unwrap();
        let e = load(&big).map(|_| ()).unwrap_err();
        assert!(matches!(e, ConfError::File { .. }), "{e}");
        assert!(e.to_string().contains("the limit is 1048576"), "{e}");

        // A directory exists but cannot be read as a file.
        let e = load(&dir).map(|_| ()).unwrap_err();
        assert!(matches!(e, ConfError::Io { .. }), "{e}");

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
