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

/// Opens `conn` to another Vireo daemon as that daemon's client: CONNECT_SET_IDENTITY with
/// the token and the user vouched for (`None`: the daemon calls for itself, and is then
/// internal there), then CONNECT_OPEN of `fam`'s URI (system or session, as `paths` are).
pub async fn open_as_peer(
    conn: &vireo_rpc::client::Connection,
    token: &str,
    user: Option<vireo_rpc::server::Identity>,
    fam: vireo_proto::family::Family,
    paths: &crate::paths::Paths,
    readonly: bool,
) -> Result<(), vireo_rpc::client::CallError> {
    use vireo_proto::remote::{procs, ConnectOpenArgs, ConnectSetIdentityArgs, CONNECT_RO};
    use vireo_proto::typed::{TypedParam, TypedValue};
    let mut params = vec![TypedParam::new(
        TOKEN_PARAM,
        TypedValue::String(token.to_string()),
    )];
    if let Some(id) = user {
        params.push(TypedParam::new(
            "unix-user-id",
            TypedValue::ULLong(id.uid as u64),
        ));
        params.push(TypedParam::new(
            "unix-group-id",
            TypedValue::ULLong(id.gid as u64),
        ));
        if let Some(pid) = id.pid {
            params.push(TypedParam::new("process-id", TypedValue::LLong(pid as i64)));
        }
    }
    conn.call::<_, ()>(
        procs::CONNECT_SET_IDENTITY,
        &ConnectSetIdentityArgs {
            params: vireo_xdr::Array(params),
            flags: 0,
        },
    )
    .await?;
    let mode = if paths.privileged {
        "system"
    } else {
        "session"
    };
    conn.call::<_, ()>(
        procs::CONNECT_OPEN,
        &ConnectOpenArgs {
            name: Some(format!("{}:///{mode}", fam.scheme())),
            flags: if readonly { CONNECT_RO } else { 0 },
        },
    )
    .await
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
