//! Which key files an open reads, and in which order. Anyone who can write
//! to the storage can plant key files: each is read only if it is small
//! (`MAX_KEY_FILE_BYTES`) and derived only within the KDF limits
//! (format.md §3.2), and the key that opened the repository last time on
//! this host is tried first, so planted files cost nothing while it works.

use crate::backend::{private, Backend, ObjectInfo};
use crate::error::{Error, Result};
use crate::format::keyfile::{too_large, KeyFile, MAX_KEY_FILE_BYTES};
use crate::format::ObjectKind;
use std::path::Path;

/// Read and parse a listed key file, refusing one larger than a key file can
/// be before downloading it (the listing's size) and after (the bytes).
pub fn read_key_file(backend: &dyn Backend, obj: &ObjectInfo) -> Result<KeyFile> {
    if obj.size > MAX_KEY_FILE_BYTES {
        return Err(too_large(&obj.name, obj.size));
    }
    let bytes = backend.get(&obj.name)?;
    // A key file is named by the hash of its bytes (format.md §2): one that
    // does not match was changed or cut short, whatever it still parses as.
    let named = ObjectKind::Key.parse_name(&obj.name);
    if named != Some(crate::format::Id::hash_of(&bytes)) {
        return Err(Error::damaged(
            &obj.name,
            "content does not match its name (changed or truncated)",
        ));
    }
    KeyFile::parse(&bytes, &obj.name)
}

/// `keys` with the key file named `preferred` first, the others in listing order.
pub fn trial_order(mut keys: Vec<ObjectInfo>, preferred: Option<&str>) -> Vec<ObjectInfo> {
    if let Some(i) = preferred.and_then(|p| keys.iter().position(|k| k.name == p)) {
        let k = keys.remove(i);
        keys.insert(0, k);
    }
    keys
}

/// The file in a repository's cache directory naming the key that opened it last.
const LAST_KEY: &str = "last-key";

/// The key file that opened the repository last (from its cache directory `dir`).
pub fn remembered_key(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(LAST_KEY)).ok()?;
    let name = text.trim();
    let hex = name.strip_prefix(ObjectKind::Key.dir())?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
}

/// Remember `key_name` as the key that opened the repository; best effort
/// (a failure only means every key is tried again next time).
pub fn remember_key(dir: &Path, key_name: &str) {
    if private::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp-{}",
        &crate::format::Id::random().to_hex()[..16]
    ));
    let _ = private::write_replace(&dir.join(LAST_KEY), &tmp, key_name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> ObjectInfo {
        ObjectInfo {
            name: name.into(),
            size: 400,
            modified: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_remembered_key_goes_first() {
        let keys = vec![obj("keys/a"), obj("keys/b"), obj("keys/c")];
        let names = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.name).collect::<Vec<_>>();
        assert_eq!(
            names(trial_order(keys.clone(), Some("keys/c"))),
            ["keys/c", "keys/a", "keys/b"]
        );
        // A key that is gone changes nothing.
        assert_eq!(
            names(trial_order(keys, Some("keys/x"))),
            ["keys/a", "keys/b", "keys/c"]
        );
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache/0123");
        assert_eq!(remembered_key(&dir), None);
        let name = format!("keys/{}", "ab".repeat(32));
        remember_key(&dir, &name);
        assert_eq!(remembered_key(&dir), Some(name));
        std::fs::write(dir.join(LAST_KEY), "../../etc/passwd").unwrap();
        assert_eq!(remembered_key(&dir), None);
    }
}
