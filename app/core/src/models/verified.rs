//! Verification at load: a file of the manifest is used only once its size and digest match.
//! Hashing a 150 MB model at every start would cost about a second, so a file once verified is
//! remembered by its identity on disk (device, inode, size, modification and change times)
//! together with the digest it was checked against, in `$HIWAR_HOME/.verified`; any write to
//! the file changes its identity and it is hashed again before its next use. A cache that
//! cannot be written (a read-only model folder) only costs the hashing.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::digest::{digest_file, mismatch};
use super::manifest::File;

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    pub fn of(path: &Path) -> std::io::Result<Identity> {
        let m = std::fs::metadata(path)?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }

    fn line(&self, pin: &str, path: &Path) -> String {
        format!("{pin}\t{}\t{}\t{}\t{}\t{}\t{}\n", self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns, path.display())
    }

    fn parse(line: &str) -> Option<(String, Identity, PathBuf)> {
        let f: Vec<&str> = line.splitn(7, '\t').collect();
        let [pin, dev, ino, size, mtime, ctime, path] = f[..] else { return None };
        let id =
            Identity { dev: dev.parse().ok()?, ino: ino.parse().ok()?, size: size.parse().ok()?, mtime_ns: mtime.parse().ok()?, ctime_ns: ctime.parse().ok()? };
        Some((pin.to_string(), id, PathBuf::from(path)))
    }
}

/// The digest a file is pinned to, as a key: a manifest change invalidates what was verified.
fn pin(file: &File) -> Option<String> {
    file.sha256
        .as_ref()
        .map(|d| format!("sha256:{d}"))
        .or_else(|| file.sha1.as_ref().map(|d| format!("sha1:{d}")))
        .or_else(|| file.md5.as_ref().map(|d| format!("md5:{d}")))
}

/// Files verified by this process, and the on-disk record of earlier ones.
#[derive(Debug, Default)]
struct Known {
    loaded: bool,
    entries: BTreeMap<PathBuf, (String, Identity)>,
}

static KNOWN: Mutex<Known> = Mutex::new(Known { loaded: false, entries: BTreeMap::new() });

fn record_path(home: &Path) -> PathBuf {
    home.join(".verified")
}

fn load(known: &mut Known, home: &Path) {
    if known.loaded {
        return;
    }
    known.loaded = true;
    let text = std::fs::read_to_string(record_path(home)).unwrap_or_default();
    for (pin, id, path) in text.lines().filter_map(Identity::parse) {
        known.entries.insert(path, (pin, id));
    }
}

fn save(known: &Known, home: &Path) {
    let text: String = known.entries.iter().map(|(path, (pin, id))| id.line(pin, path)).collect();
    let dest = record_path(home);
    let tmp = home.join(format!(".verified.{}", std::process::id()));
    // Written aside and renamed: another hiwar reading it sees the old record or the new one.
    if std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &dest)).is_err() {
        std::fs::remove_file(&tmp).ok();
    }
}

/// Why `path` may not be used as `file`, or `None` when it may: missing, or its size or digest
/// differ from the manifest's (hashing only when its identity is not already known as good).
pub fn check(home: &Path, path: &Path, file: &File) -> Result<(), Problem> {
    let id = Identity::of(path)
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { Problem::Missing } else { Problem::Corrupt(format!("unreadable: {e}")) })?;
    let Some(pin) = pin(file) else { return Ok(()) };
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    load(&mut known, home);
    if known.entries.get(path).is_some_and(|(p, i)| *p == pin && *i == id) {
        return Ok(());
    }
    let digests = digest_file(path, |_| {}).map_err(|e| Problem::Corrupt(format!("unreadable: {e}")))?;
    if let Some(why) = mismatch(file, &digests) {
        known.entries.remove(path);
        return Err(Problem::Corrupt(why));
    }
    // The identity after hashing: a file rewritten while it was read is not remembered.
    if Identity::of(path).is_ok_and(|after| after == id) {
        known.entries.insert(path.to_path_buf(), (pin, id));
        save(&known, home);
    }
    Ok(())
}

/// Remembers `path` as verified (its digest was just checked, e.g. by `models fetch`).
pub fn remember(home: &Path, path: &Path, file: &File) {
    let (Some(pin), Ok(id)) = (pin(file), Identity::of(path)) else { return };
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    load(&mut known, home);
    known.entries.insert(path.to_path_buf(), (pin, id));
    save(&known, home);
}

/// Why a model file may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn file_for(bytes: &[u8], path: &str) -> File {
        File {
            path: path.into(),
            size: Some(bytes.len() as u64),
            approx_size: None,
            sha256: Some(hex::encode(sha2::Sha256::digest(bytes))),
            sha1: None,
            md5: None,
            member: Some("p:m".into()),
            url: None,
        }
    }

    #[test]
    fn a_file_is_verified_once_then_known_until_it_changes() {
        let home = tempfile::tempdir().expect("tempdir");
        let path = home.path().join("model.bin");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let file = file_for(&bytes, "model.bin");
        assert_eq!(check(home.path(), &path, &file), Ok(()));
        let record = std::fs::read_to_string(home.path().join(".verified")).expect("record written");
        assert!(record.contains("model.bin"), "{record}");
        // Damaged in place (same size): the identity changed, so it is hashed again, and refused.
        let mut damaged = bytes.clone();
        damaged[50_000..54_096].iter_mut().for_each(|b| *b ^= 0xff);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, &damaged).expect("damage");
        assert!(matches!(check(home.path(), &path, &file), Err(Problem::Corrupt(why)) if why.contains("sha256")));
        // Restored: good again.
        std::fs::write(&path, &bytes).expect("restore");
        assert_eq!(check(home.path(), &path, &file), Ok(()));
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(check(home.path(), &path, &file), Err(Problem::Missing));
    }
}
