//! A pairing directory: `tls.key` (0600), `tls.crt` (certificate then CA chain), `ca.crt`
//! (the signing CA chain), `connector-ca.crt` (the connector's serving CA, as pinned) and
//! `pairing.json` (where to renew). All five change together: each version is written into a
//! new hidden directory and the `..data` symlink is swapped to it with one rename, the way the
//! kubelet updates Secret volumes. The names users open are symlinks into `..data`; a reader
//! that opens `tls.key` and then `tls.crt` just as a renewal switches may still get one of each
//! (as with Secret volumes): load both again when they do not match. One certpair command at a
//! time works on a directory ([`lock`]).

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};

use super::error::ClientError;

pub const KEY: &str = "tls.key";
pub const CERT: &str = "tls.crt";
pub const CA: &str = "ca.crt";
pub const CONNECTOR_CA: &str = "connector-ca.crt";
pub const META: &str = "pairing.json";
/// A key whose certificate has not arrived yet (the CSR awaits approval): kept, so that the
/// same command run again asks with the same key, as the connector requires.
const PENDING_KEY: &str = ".pending.key";
/// For a pairing in that state, the certificate token and where to send it (0600).
const PENDING_PAIRING: &str = ".pending.json";
const DATA: &str = "..data";

/// Which API the pairing speaks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Rest,
    Graphql,
}

/// `pairing.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub application: String,
    pub api: Api,
    /// REST: the management info URL; GraphQL: the certificate-secured GraphQL endpoint.
    pub management_url: String,
}

/// A pairing as read back.
pub struct Pairing {
    pub key: PKey<Private>,
    /// `tls.crt` as written (certificate then CA chain).
    pub chain_pem: Vec<u8>,
    pub leaf: X509,
    pub connector_ca_pem: Vec<u8>,
    pub meta: Meta,
}

/// What one version of the directory holds.
pub struct Files<'a> {
    pub key: &'a PKey<Private>,
    pub client_pem: &'a [u8],
    pub ca_pem: &'a [u8],
    pub connector_ca_pem: &'a [u8],
    pub meta: &'a Meta,
}

const STEP: &str = "files";

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::local(STEP, format!("{what} {}: {e}", path.display()))
}

fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>, ClientError> {
    let path = dir.join(name);
    fs::read(&path).map_err(|e| {
        io_error("reading", &path, e).with_hint(
            "pass the directory certpair pair wrote (--out); pair first if there is none",
        )
    })
}

/// Whether `dir` holds a pairing.
pub fn exists(dir: &Path) -> bool {
    dir.join(CERT).exists() || dir.join(DATA).exists()
}

pub fn read(dir: &Path) -> Result<Pairing, ClientError> {
    let key_pem = read_file(dir, KEY)?;
    let chain_pem = read_file(dir, CERT)?;
    let key = PKey::private_key_from_pem(&key_pem)
        .map_err(|e| io_error("reading the key in", &dir.join(KEY), e))?;
    let leaf = X509::from_pem(&chain_pem)
        .map_err(|e| io_error("reading the certificate in", &dir.join(CERT), e))?;
    let connector_ca_pem = read_file(dir, CONNECTOR_CA)?;
    let meta: Meta = serde_json::from_slice(&read_file(dir, META)?)
        .map_err(|e| io_error("reading", &dir.join(META), e))?;
    Ok(Pairing {
        key,
        chain_pem,
        leaf,
        connector_ca_pem,
        meta,
    })
}

/// Held while a command works on a directory; released when dropped (the file is closed).
pub struct Lock(#[allow(dead_code)] fs::File);

/// Takes the directory's lock (`.lock`, an flock), or says who has it.
pub fn lock(dir: &Path) -> Result<Lock, ClientError> {
    fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error("opening", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock(file)),
        Err(fs::TryLockError::WouldBlock) => Err(ClientError::local(
            STEP,
            format!(
                "another certpair command is working on {} (a renew --watch?)",
                dir.display()
            ),
        )
        .with_hint("try again when it has finished")),
        Err(fs::TryLockError::Error(e)) => Err(io_error("locking", &path, e)),
    }
}

/// Writes a new version of the directory and switches to it at once. The caller holds
/// [`lock`].
pub fn write(dir: &Path, files: &Files<'_>) -> Result<(), ClientError> {
    let key_pem = files
        .key
        .private_key_to_pem_pkcs8()
        .map_err(|e| ClientError::local(STEP, format!("encoding the key: {e}")))?;
    let meta = serde_json::to_vec_pretty(files.meta)
        .map_err(|e| ClientError::local(STEP, format!("encoding {META}: {e}")))?;
    let chain = [files.client_pem, files.ca_pem].concat();
    let contents: [(&str, &[u8], u32); 5] = [
        (KEY, &key_pem, 0o600),
        (CERT, &chain, 0o644),
        (CA, files.ca_pem, 0o644),
        (CONNECTOR_CA, files.connector_ca_pem, 0o644),
        (META, &meta, 0o644),
    ];
    fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let version = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir).map_err(|e| io_error("creating", &version_dir, e))?;
    for (name, bytes, mode) in contents {
        write_new(&version_dir.join(name), bytes, mode)?;
    }
    sync(&version_dir)?;
    // The switch: a new symlink renamed over the old one.
    let tmp = dir.join(format!("..data_tmp{version}"));
    let _ = fs::remove_file(&tmp);
    symlink(&version, &tmp).map_err(|e| io_error("linking", &tmp, e))?;
    fs::rename(&tmp, dir.join(DATA)).map_err(|e| io_error("switching", &dir.join(DATA), e))?;
    for (name, _, _) in contents {
        let link = dir.join(name);
        let target = PathBuf::from(DATA).join(name);
        // Anything else at that name (a file, a link elsewhere) is replaced by the link.
        if fs::read_link(&link).ok().as_ref() != Some(&target) {
            if fs::symlink_metadata(&link).is_ok() {
                fs::remove_file(&link).map_err(|e| io_error("replacing", &link, e))?;
            }
            symlink(&target, &link).map_err(|e| io_error("linking", &link, e))?;
        }
    }
    sync(dir)?;
    // Older versions go; nothing points at them any more.
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("..") && name != DATA && name != version.as_str() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    clear_pending(dir);
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ClientError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error("writing", path, e))?;
    // The umask may have narrowed the mode; set it on the open file (not by path, which a
    // link could redirect).
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing", path, e))
}

fn sync(dir: &Path) -> Result<(), ClientError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing", dir, e))
}

/// The key kept for a certificate that has not arrived, if any.
pub fn pending_key(dir: &Path) -> Option<PKey<Private>> {
    fs::read(dir.join(PENDING_KEY))
        .ok()
        .and_then(|pem| PKey::private_key_from_pem(&pem).ok())
}

/// Keeps `key` (0600) until the certificate for it is written.
pub fn keep_pending_key(dir: &Path, key: &PKey<Private>) -> Result<(), ClientError> {
    let pem = key
        .private_key_to_pem_pkcs8()
        .map_err(|e| ClientError::local(STEP, format!("encoding the key: {e}")))?;
    fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let path = dir.join(PENDING_KEY);
    let _ = fs::remove_file(&path);
    write_new(&path, &pem, 0o600)
}

/// The certificate token and its URL of a pairing whose certificate has not arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPairing {
    /// SHA-256 of the one-time token the pairing started with: only the same command (the
    /// same token) resumes it; a new token starts afresh.
    pub started_with: String,
    pub token: String,
    pub sign_url: String,
    pub subject: String,
    pub management_url: String,
}

pub fn pending_pairing(dir: &Path) -> Option<PendingPairing> {
    fs::read(dir.join(PENDING_PAIRING))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn keep_pending_pairing(dir: &Path, pending: &PendingPairing) -> Result<(), ClientError> {
    let bytes = serde_json::to_vec(pending)
        .map_err(|e| ClientError::local(STEP, format!("encoding {PENDING_PAIRING}: {e}")))?;
    let path = dir.join(PENDING_PAIRING);
    let _ = fs::remove_file(&path);
    write_new(&path, &bytes, 0o600)
}

pub fn clear_pending(dir: &Path) {
    let _ = fs::remove_file(dir.join(PENDING_KEY));
    let _ = fs::remove_file(dir.join(PENDING_PAIRING));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_switch_together_and_the_key_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let key = crate::pki::generate_p256().expect("key");
        let meta = Meta {
            application: "billing".into(),
            api: Api::Rest,
            management_url: "https://connector/v1/applications/management/info".into(),
        };
        for round in 0..3 {
            let client = format!("client {round}\n");
            write(
                dir.path(),
                &Files {
                    key: &key,
                    client_pem: client.as_bytes(),
                    ca_pem: b"ca\n",
                    connector_ca_pem: b"connector ca\n",
                    meta: &meta,
                },
            )
            .expect("write");
            assert_eq!(
                fs::read_to_string(dir.path().join(CERT)).expect("read"),
                format!("client {round}\nca\n")
            );
        }
        let mode = fs::metadata(dir.path().join(KEY))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // One version left, plus the links.
        let hidden: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        assert_eq!(hidden.len(), 1, "{hidden:?}");
        assert!(
            fs::symlink_metadata(dir.path().join(KEY))
                .expect("link")
                .file_type()
                .is_symlink()
        );
    }
}
