//! Secret values at rest: AES-256-GCM under a key made at first start and kept in a file of
//! its own (0600, in the state directory, never beside the values). Each value file is
//! `MAGIC ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, with the secret's UUID as associated data,
//! so a value file copied onto another secret's name does not decrypt.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{Result, SecretError};

const MAGIC: &[u8; 8] = b"VIREOSV1";
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// Loads the key at `path`, making it (32 random bytes, 0600) when there is none.
    pub fn open(path: &Path) -> Result<Vault> {
        let key = match fs::read(path) {
            Ok(k) => Zeroizing::new(k),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => make_key(path)?,
            Err(e) => {
                return Err(SecretError::io(
                    format!("cannot read {}", path.display()),
                    e,
                ))
            }
        };
        if key.len() != KEY_LEN {
            return Err(SecretError::Internal(format!(
                "the secrets key {} is {} bytes, not {KEY_LEN}",
                path.display(),
                key.len()
            )));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        Ok(Vault { cipher })
    }

    /// Encrypts `value` for the secret `uuid`.
    pub fn seal(&self, uuid: &[u8; 16], value: &[u8]) -> Result<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value,
                    aad: uuid,
                },
            )
            .map_err(|_| SecretError::Internal("cannot encrypt the secret value".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a value file's contents for the secret `uuid`.
    pub fn unseal(&self, uuid: &[u8; 16], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let rest = data
            .strip_prefix(MAGIC.as_slice())
            .filter(|r| r.len() >= NONCE_LEN)
            .ok_or_else(|| SecretError::Internal("not a Vireo secret value file".into()))?;
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: uuid })
            .map(Zeroizing::new)
            .map_err(|_| {
                SecretError::Internal(
                    "the secret value does not decrypt with this host's key".into(),
                )
            })
    }
}

/// Writes a new random key: a temp file made 0600, synced, renamed, the directory synced.
fn make_key(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| SecretError::io(format!("cannot create {}", dir.display()), e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = Zeroizing::new(Aes256Gcm::generate_key(&mut OsRng).to_vec());
    let tmp: PathBuf = dir.join(format!(".secrets-key.tmp{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(SecretError::io(
            format!("cannot write {}", path.display()),
            e,
        ));
    }
    log::info!("made a new secrets key at {}", path.display());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_unseals_only_for_the_same_secret_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k/key");
        let v = Vault::open(&key).unwrap();
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let a = [1u8; 16];
        let sealed = v.seal(&a, b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(&*v.unseal(&a, &sealed).unwrap(), b"hunter2");
        // Another secret's name, a flipped bit, a truncated file: refused.
        assert!(v.unseal(&[2u8; 16], &sealed).is_err());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(v.unseal(&a, &bad).is_err());
        assert!(v.unseal(&a, &sealed[..10]).is_err());
        // The same key file again: still readable; another key: not.
        assert_eq!(
            &*Vault::open(&key).unwrap().unseal(&a, &sealed).unwrap(),
            b"hunter2"
        );
        let other = Vault::open(&dir.path().join("other")).unwrap();
        assert!(other.unseal(&a, &sealed).is_err());
        // A key of the wrong size is refused, not used.
        fs::write(dir.path().join("short"), b"abc").unwrap();
        assert!(Vault::open(&dir.path().join("short")).is_err());
    }
}
