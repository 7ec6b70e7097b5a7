//! The token that lets one Vireo daemon vouch for its caller's identity to another
//! (CONNECT_SET_IDENTITY): a random secret in a file only its owner (root, for the system
//! daemons) can read. A daemon accepts a forwarded identity only with this token.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The typed parameter that carries the token (Vireo's own; libvirt ignores unknown ones).
pub const TOKEN_PARAM: &str = "vireo.identity-token";

/// Reads the token, creating it (mode 0600) if this is the first daemon to start.
pub fn load_or_create(config_dir: &Path) -> std::io::Result<String> {
    let path = config_dir.join("identity-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if t.trim().len() >= 32 {
            return Ok(t.trim().to_string());
        }
    }
    std::fs::create_dir_all(config_dir)?;
    let token: String = (0..2)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let tmp = config_dir.join(format!(".identity-token.{}", std::process::id()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    // Another daemon starting at the same moment may have won: keep the one on disk.
    match std::fs::hard_link(&tmp, &path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(token)
        }
        Err(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(std::fs::read_to_string(&path)?.trim().to_string())
        }
    }
}

/// Compares without stopping at the first difference.
pub fn token_matches(given: &str, ours: &str) -> bool {
    given.len() == ours.len()
        && given
            .bytes()
            .zip(ours.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_private() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create(d.path()).unwrap();
        let b = load_or_create(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("identity-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(token_matches(&a, &b));
        assert!(!token_matches(&a, "x"));
    }
}
