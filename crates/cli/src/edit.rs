//! virsh's `*-edit`: the object's XML in a temporary file, the user's editor (`$VISUAL`,
//! else `$EDITOR`, else `vi`) on it, and the result defined when it changed. When the
//! definition fails (or the object changed meanwhile), a terminal is asked whether to edit
//! again, and anything else is told why.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};

/// What virsh passes to the editor without a shell: an editor named only by these runs
/// directly, any other through `sh -c`, and then the file's name must be made of them too.
const PLAIN: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+_.:@/";

/// The temporary file, removed however the edit ends.
struct TempFile(PathBuf);

impl TempFile {
    /// A new file (0600) holding `doc` in `$TMPDIR` (or /tmp), named as virsh names it.
    fn new(doc: &str) -> Result<TempFile> {
        let dir = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let pid = std::process::id() as u64;
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
            ^ (pid << 32);
        for _ in 0..100 {
            // Six characters of a xorshift of the clock and the pid, as mkstemp's XXXXXX.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let tag: String = (0..6)
                .map(|i| {
                    let set = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    set[((seed >> (i * 6)) % set.len() as u64) as usize] as char
                })
                .collect();
            let path = dir.join(format!("virsh{tag}.xml"));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let t = TempFile(path);
                    f.write_all(doc.as_bytes()).map_err(|e| {
                        anyhow!(
                            "write: {}: failed to write to temporary file: {}",
                            t.0.display(),
                            crate::virsh::os_text(&e)
                        )
                    })?;
                    return Ok(t);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!(
                    "g_mkstemp_full: failed to create temporary file: {}",
                    crate::virsh::os_text(&e)
                ),
            }
        }
        bail!("g_mkstemp_full: failed to create temporary file: File exists")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the user's editor on `file` with this terminal, and waits for it.
fn edit_file(file: &std::path::Path) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_string());
    let name = file.to_string_lossy();
    let plain = |s: &str| s.chars().all(|c| PLAIN.contains(c));
    let mut cmd = if plain(&editor) {
        let mut c = std::process::Command::new(&editor);
        c.arg(file);
        c
    } else {
        if !plain(&name) {
            bail!(
                "{name}: temporary filename contains shell meta or other unacceptable characters (is $TMPDIR wrong?)"
            );
        }
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(format!("{editor} {name}"));
        c
    };
    let shown = if plain(&editor) {
        format!("{editor} {name}")
    } else {
        format!("sh -c '{editor} {name}'")
    };
    let status = cmd.status().map_err(|e| {
        anyhow!(
            "Cannot run program '{editor}': {}",
            crate::virsh::os_text(&e)
        )
    })?;
    if !status.success() {
        let how = match status.code() {
            Some(n) => format!("exit status {n}"),
            None => "fatal signal".to_string(),
        };
        bail!("internal error: Child process ({shown}) unexpected {how}");
    }
    Ok(())
}

/// What the user answers to "Try again?": `y` (edit again), `n` (give up) or `f` (define
/// again as it is); `None` without a terminal to ask.
fn ask(msg: &str, why: Option<&anyhow::Error>) -> Option<char> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    if let Some(e) = why {
        for cause in e.chain() {
            eprintln!("error: {cause}");
        }
    }
    loop {
        print!("{msg} Try again? [y,n,f,?]: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => return Some('n'),
            Ok(_) => {}
        }
        match line.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
            Some(c @ ('y' | 'n' | 'f')) => return Some(c),
            Some('?') => {
                println!("y - yes, start editor again");
                println!("n - no, throw away my changes");
                println!("f - force, try to redefine again");
                println!("? - print this help");
            }
            _ => {}
        }
    }
}

/// What the temporary file holds after the edit.
fn read_back(tmp: &TempFile) -> Result<String> {
    std::fs::read_to_string(&tmp.0).map_err(|e| {
        anyhow!(
            "{}: failed to read temporary file: {}",
            tmp.0.display(),
            crate::virsh::os_text(&e)
        )
    })
}

/// `text` in a temporary file, the user's editor on it, and what the file holds then.
pub(crate) fn edit_text(text: &str) -> Result<String> {
    let tmp = TempFile::new(text)?;
    edit_file(&tmp.0)?;
    read_back(&tmp)
}

/// The edit: `get` gives the object's XML (again before defining, to see whether it
/// changed meanwhile), `define` defines an edited one and names the object it made;
/// `unchanged` is printed (as it is) when the user changed nothing, `edited(name)` (and a
/// line end) once defined.
pub async fn run<G, GF, GE, D, DF, DE>(
    get: G,
    define: D,
    unchanged: &str,
    edited: impl Fn(&str) -> String,
) -> Result<()>
where
    G: Fn() -> GF,
    GF: Future<Output = std::result::Result<String, GE>>,
    GE: Into<anyhow::Error>,
    D: Fn(String) -> DF,
    DF: Future<Output = std::result::Result<String, DE>>,
    DE: Into<anyhow::Error>,
{
    let mut doc = get().await.map_err(Into::into)?;
    let tmp = TempFile::new(&doc)?;
    'edit: loop {
        edit_file(&tmp.0)?;
        let new = read_back(&tmp)?;
        if new == doc {
            print!("{unchanged}");
            return Ok(());
        }
        loop {
            // Did the object change while it was being edited?
            let now = get().await.map_err(Into::into)?;
            let (msg, why) = if now != doc {
                doc = now;
                ("The XML configuration was changed by another user.", None)
            } else {
                match define(new.clone()).await {
                    Ok(name) => {
                        println!("{}", edited(&name));
                        return Ok(());
                    }
                    Err(e) => ("Failed.", Some(e.into())),
                }
            };
            match ask(msg, why.as_ref()) {
                Some('y') => continue 'edit,
                Some('f') => continue,
                Some(_) => return Err(crate::network::Quiet.into()),
                None => {
                    // No terminal: the daemon's reason, then virsh's word for it.
                    return Err(match why {
                        Some(e) => e.context(msg),
                        None => anyhow!(msg),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_temporary_file_is_private_named_as_virsh_names_it_and_removed() {
        let t = TempFile::new("<pool/>").unwrap();
        let name = t.0.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("virsh") && name.ends_with(".xml"),
            "{name}"
        );
        assert_eq!(name.len(), "virshXXXXXX.xml".len(), "{name}");
        assert!(name.chars().all(|c| PLAIN.contains(c)), "{name}");
        let m = std::fs::metadata(&t.0).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&t.0).unwrap(), "<pool/>");
        let other = TempFile::new("").unwrap();
        assert_ne!(other.0, t.0);
        let path = t.0.clone();
        drop(t);
        assert!(!path.exists());
    }
}
