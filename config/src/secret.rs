//! Files that hold secrets (private keys, the CA's bootstrap password, its registry of
//! secret hashes): created readable and writable by their owner only, so there is no
//! moment at which another local user could read them.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Creates (or truncates) `path` owner-only (0600 on Unix); an existing file is narrowed
/// before it is opened.
pub fn create(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)
}

/// Writes `bytes` to `path` owner-only ([`create`]), making its directory if needed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    create(path)?.write_all(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_owner_only_even_over_a_readable_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keystore/priv_sk");
        super::write(&path, b"new").expect("writes");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        super::write(&path, b"newer").expect("rewrites");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).expect("reads"), b"newer");
    }
}
