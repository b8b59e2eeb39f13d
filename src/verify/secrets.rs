//! The secrets of a verify run: made fresh for each run, written into a
//! private temporary directory (0700, removed at the end) and mounted
//! read-only into every member at the image's secrets directory. Never
//! printed; the two passwords Spilo reads from its environment reach the
//! members through an `--env-file` beside the mount, never a command line.

use super::error::VerifyError;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};

/// The file pgsodium's getkey script reads, inside the secrets directory.
pub const PGSODIUM_KEY: &str = "pgsodium_root_key";

pub struct Secrets {
    _dir: tempfile::TempDir,
    /// The directory that is mounted (inside the private one).
    mount: PathBuf,
    pub pgsodium_root_key: [u8; 32],
    pub superuser_password: String,
    pub replication_password: String,
}

impl Secrets {
    /// Generate the secrets; `owner` is the image's postgres uid:gid, which
    /// must read them (when we cannot chown, as a rootless user, the files
    /// are world-readable inside the private directory instead).
    /// `omit` leaves files out (tests: a member without its key file).
    pub fn generate(parent: &Path, owner: Option<(u32, u32)>, omit: &[String]) -> Result<Self, VerifyError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| VerifyError::Io { what, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("secrets-")
            .tempdir_in(parent)
            .map_err(io("creating a temporary directory for the secrets"))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(io("making the secrets directory private"))?;
        let mount = dir.path().join("supabase");
        fs::create_dir(&mount).map_err(io("creating the secrets directory"))?;
        let key: [u8; 32] = random_bytes()?;
        let s = Secrets {
            pgsodium_root_key: key,
            superuser_password: hex::encode(random_bytes::<16>()?),
            replication_password: hex::encode(random_bytes::<16>()?),
            mount,
            _dir: dir,
        };
        let files = [
            ("password", hex::encode(random_bytes::<18>()?)),
            ("jwt_secret", hex::encode(random_bytes::<32>()?)),
            (PGSODIUM_KEY, hex::encode(key)),
        ];
        let owned = owner.is_some_and(|(u, g)| chown(&s.mount, Some(u), Some(g)).is_ok());
        for (name, value) in files {
            if omit.iter().any(|o| o == name) {
                continue;
            }
            let p = s.mount.join(name);
            fs::write(&p, format!("{value}\n")).map_err(io("writing a secret file"))?;
            if owned && let Some((u, g)) = owner {
                chown(&p, Some(u), Some(g)).map_err(io("handing a secret file to postgres"))?;
            }
            fs::set_permissions(&p, fs::Permissions::from_mode(if owned { 0o400 } else { 0o444 }))
                .map_err(io("setting a secret file's mode"))?;
        }
        fs::set_permissions(
            &s.mount,
            fs::Permissions::from_mode(if owned { 0o500 } else { 0o555 }),
        )
        .map_err(io("setting the secrets directory's mode"))?;
        Ok(s)
    }

    pub fn mount_dir(&self) -> &Path {
        &self.mount
    }

    /// An `--env-file` (0600, beside the mounted directory, not in it) with
    /// the passwords Spilo takes from its environment: they never appear on
    /// an engine command line.
    pub fn env_file(&self) -> Result<PathBuf, VerifyError> {
        use std::io::Write;
        let path = self._dir.path().join("member.env");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                writeln!(f, "PGPASSWORD_SUPERUSER={}", self.superuser_password)?;
                writeln!(f, "PGPASSWORD_STANDBY={}", self.replication_password)?;
                Ok(f)
            })
            .map_err(|source| VerifyError::Io {
                what: "writing the members' environment file".into(),
                source,
            })?;
        f.flush().ok();
        Ok(path)
    }

    /// What pgsodium derives from the root key: `pgsodium.derive_key(id, 32,
    /// context)` is libsodium's `crypto_kdf_derive_from_key`, BLAKE2b keyed
    /// with the root key, the id as salt and the context as personalisation.
    pub fn pgsodium_derived_key(&self, id: u64, context: &[u8; 8]) -> String {
        derive_key(&self.pgsodium_root_key, id, context)
    }
}

pub fn derive_key(root: &[u8; 32], id: u64, context: &[u8; 8]) -> String {
    use blake2::digest::Mac;
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&id.to_le_bytes());
    let mut persona = [0u8; 16];
    persona[..8].copy_from_slice(context);
    let mac = blake2::Blake2bMac::<blake2::digest::consts::U32>::new_with_salt_and_personal(
        Some(root),
        &salt,
        &persona,
    )
    .expect("key, salt and persona lengths are within BLAKE2b's limits");
    hex::encode(mac.finalize().into_bytes())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], VerifyError> {
    use std::io::Read;
    let mut b = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| VerifyError::Io {
            what: "reading /dev/urandom".into(),
            source,
        })?;
    Ok(b)
}

impl Drop for Secrets {
    /// The mounted directory is read-only (0555 or 0500, for the image):
    /// writable again first, so that its removal works for a user who is
    /// not root too (root ignores the mode).
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.mount, fs::Permissions::from_mode(0o700));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_key_is_libsodiums_kdf() {
        // Python: hashlib.blake2b(b'', digest_size=32, key=bytes(range(32)),
        //   salt=(1).to_bytes(8,'little')+bytes(8), person=b'pgsodium'+bytes(8)).hexdigest()
        let root: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            derive_key(&root, 1, b"pgsodium"),
            "fd2126ac878901c31b0eaada293687af77a566ef57b6fb03db6aa407ba832672"
        );
    }

    #[test]
    fn files_are_private_and_can_be_omitted() {
        let s = Secrets::generate(&std::env::temp_dir(), None, &[PGSODIUM_KEY.to_string()]).unwrap();
        let parent = s.mount_dir().parent().unwrap();
        assert_eq!(fs::metadata(parent).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(s.mount_dir().join("password").is_file());
        assert!(!s.mount_dir().join(PGSODIUM_KEY).exists());
        let kept = parent.to_path_buf();
        drop(s);
        assert!(!kept.exists(), "the private directory goes away with the run");
    }
}
