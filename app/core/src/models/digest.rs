//! File digests: sha256 always, SHA-1 and MD5 where a publisher lists only those.

use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::manifest::File;

/// Digests of one file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// Hashes a file in one pass, calling `progress` with the bytes read so far.
pub fn digest_file(path: &Path, mut progress: impl FnMut(u64)) -> std::io::Result<Digests> {
    let mut file = std::fs::File::open(path)?;
    let (mut s256, mut s1, mut m5) = (Sha256::new(), Sha1::new(), Md5::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
        m5.update(&buf[..n]);
        size += n as u64;
        progress(size);
    }
    Ok(Digests { size, sha256: hex::encode(s256.finalize()), sha1: hex::encode(s1.finalize()), md5: hex::encode(m5.finalize()) })
}

/// Why a file is not the one the manifest pins, or `None` if it is.
pub fn mismatch(expected: &File, got: &Digests) -> Option<String> {
    if let Some(size) = expected.size
        && size != got.size
    {
        let hint = if got.size < size { "truncated or interrupted download" } else { "not the pinned version" };
        return Some(format!("size {} bytes, expected {size} ({hint})", got.size));
    }
    let checks = [("sha256", &expected.sha256, &got.sha256), ("sha1", &expected.sha1, &got.sha1), ("md5", &expected.md5, &got.md5)];
    checks.into_iter().find_map(|(algo, want, have)| {
        want.as_ref().filter(|w| *w != have).map(|w| format!("{algo} {have}, expected {w} (corrupt, or not the pinned version)"))
    })
}
