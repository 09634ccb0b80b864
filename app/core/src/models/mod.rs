//! The model cache: what the manifest promises, what is on disk, and fetching the difference.

mod digest;
mod http;
pub mod manifest;
mod pypi;
pub mod verified;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hiwar_speech::models::{Weights, WhisperSources, convert_ct2_whisper_as};

use self::manifest::{ConvertKind, File, Manifest, Model, Registry};
use crate::config::{Config, HOME_VAR};

pub use self::digest::digest_file;

/// The state of one file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    Ok,
    Missing,
    /// Present, but no digest is pinned for it yet.
    Unpinned {
        sha256: String,
    },
    Corrupt(String),
}

/// The model cache at `$HIWAR_HOME` with the manifest that describes it.
#[derive(Debug)]
pub struct Store {
    pub home: PathBuf,
    pub manifest: Manifest,
    /// This build can run the voice on CUDA and the config lets it (voice.device ≠ cpu).
    pub gpu: bool,
}

/// The cache directory: `$HIWAR_HOME`, or the user's cache dir + `hiwar`.
pub fn home_dir() -> PathBuf {
    match std::env::var_os(HOME_VAR) {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => dirs::cache_dir().unwrap_or_else(|| PathBuf::from(".cache")).join("hiwar"),
    }
}

pub fn fetch_hint(name: &str) -> String {
    format!("hiwar models fetch {name}")
}

impl Store {
    pub fn open(config: &Config) -> anyhow::Result<Store> {
        let manifest = if config.models.manifest.is_empty() {
            Manifest::parse(manifest::BUILT_IN, "built-in assets/models.toml")?
        } else {
            let path = &config.models.manifest;
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read models manifest {path} (models.manifest)"))?;
            Manifest::parse(&text, path)?
        };
        Ok(Store { home: home_dir(), manifest, gpu: cfg!(feature = "cuda") && config.voice.device != "cpu" })
    }

    pub fn path(&self, file: &File) -> PathBuf {
        self.home.join(&file.path)
    }

    /// The cache path of a model's first file whose path ends with `suffix`.
    pub fn file_of(&self, model: &str, suffix: &str) -> Option<PathBuf> {
        let m = self.manifest.get(model)?;
        m.files.iter().find(|f| f.path.ends_with(suffix)).map(|f| self.path(f))
    }

    /// A model file from the cache, ready to load: present, and its size and digest match the
    /// manifest (see [`verified`]); else an error naming the file and the fix.
    pub fn verified_file(&self, model: &str, suffix: &str) -> anyhow::Result<PathBuf> {
        let m = self.manifest.get(model).with_context(|| format!("no model {model} in the manifest"))?;
        let file = m.files.iter().find(|f| f.path.ends_with(suffix)).with_context(|| format!("model {model} has no file {suffix} in the manifest"))?;
        let path = self.path(file);
        self.check_file(m, file, &path)?;
        Ok(path)
    }

    /// A path the config names: if it is one of the cache's manifest files, it is verified like
    /// [`Store::verified_file`]; a file of the operator's own is used as it is.
    pub fn check_configured(&self, path: &Path) -> anyhow::Result<()> {
        for m in &self.manifest.models {
            for file in &m.files {
                let cached = self.path(file);
                if cached == path || std::fs::canonicalize(&cached).ok().zip(std::fs::canonicalize(path).ok()).is_some_and(|(a, b)| a == b) {
                    return self.check_file(m, file, path);
                }
            }
        }
        Ok(())
    }

    fn check_file(&self, m: &Model, file: &File, path: &Path) -> anyhow::Result<()> {
        match verified::check(&self.home, path, file) {
            Ok(()) => Ok(()),
            Err(verified::Problem::Missing) => bail!("model file {} is missing — fix: {}", path.display(), fetch_hint(&m.name)),
            Err(verified::Problem::Corrupt(why)) => {
                bail!("model file {} is damaged and was not loaded: {why} — fix: {} (it replaces the file)", path.display(), fetch_hint(&m.name))
            }
        }
    }

    /// The ONNX Runtime library in the cache.
    pub fn onnx_runtime_path(&self) -> Option<PathBuf> {
        self.file_of("onnxruntime", "libonnxruntime.so.1.32.0")
    }

    /// Loads ONNX Runtime from the cache (once per process): the CUDA build of it when this
    /// build and the config want the GPU and it has been fetched, else the CPU one.
    pub fn load_onnx_runtime(&self) -> anyhow::Result<hiwar_speech::onnx::OnnxRuntimeInfo> {
        if self.gpu {
            match self.file_of("onnxruntime-gpu", "libonnxruntime.so.1.31.1").filter(|p| p.is_file()) {
                Some(_) => {
                    let path = self.verified_file("onnxruntime-gpu", "libonnxruntime.so.1.31.1")?;
                    return hiwar_speech::onnx::load(&path).with_context(|| fetch_hint("onnxruntime-gpu"));
                }
                None => tracing::warn!(
                    "the voice may run on CUDA, but ONNX Runtime's CUDA build is not in the cache ({}): using the CPU",
                    fetch_hint("onnxruntime-gpu")
                ),
            }
        }
        let path = self.verified_file("onnxruntime", "libonnxruntime.so.1.32.0")?;
        hiwar_speech::onnx::load(&path).with_context(|| fetch_hint("onnxruntime"))
    }

    /// A file's state, hashing it in full (what `models verify` and `doctor` report); a good
    /// one is remembered, so loading it next needs no second read.
    pub fn file_status(&self, file: &File) -> FileStatus {
        let path = self.path(file);
        if !path.is_file() {
            return FileStatus::Missing;
        }
        match digest_file(&path, |_| {}) {
            Err(e) => FileStatus::Corrupt(format!("unreadable: {e}")),
            Ok(d) => match digest::mismatch(file, &d) {
                Some(why) => FileStatus::Corrupt(why),
                None if !file.has_digest() => FileStatus::Unpinned { sha256: d.sha256 },
                None => {
                    verified::remember(&self.home, &path, file);
                    FileStatus::Ok
                }
            },
        }
    }

    /// Per-file status of a model.
    pub fn model_status(&self, model: &Model) -> Vec<(PathBuf, FileStatus)> {
        model.files.iter().map(|f| (self.path(f), self.file_status(f))).collect()
    }

    fn select<'m>(&'m self, names: &[String], default: impl Fn(&Model) -> bool) -> anyhow::Result<Vec<&'m Model>> {
        if names.is_empty() {
            return Ok(self.manifest.models.iter().filter(|m| default(m)).collect());
        }
        names
            .iter()
            .map(|n| {
                self.manifest.get(n).ok_or_else(|| {
                    let known: Vec<&str> = self.manifest.models.iter().map(|m| m.name.as_str()).collect();
                    anyhow::anyhow!("no model named `{n}` in the manifest; known: {}", known.join(", "))
                })
            })
            .collect()
    }

    /// `hiwar models list`.
    pub fn list(&self) -> anyhow::Result<ExitCode> {
        println!("model cache: {}  (set {HOME_VAR} to move it); manifest schema {}\n", self.home.display(), self.manifest.schema);
        println!("{:<24} {:<9} {:<10} {:>9}  purpose", "model", "needed", "status", "size");
        for m in &self.manifest.models {
            let status = summarise(&self.model_status(m));
            let size: u64 = m.files.iter().filter_map(|f| f.size).sum();
            let size = if size > 0 {
                format!("{:.1} MB", size as f64 / 1e6)
            } else {
                m.files.iter().find_map(|f| f.approx_size.clone()).unwrap_or_else(|| "?".into())
            };
            let needed = if m.required { "required" } else { "optional" };
            println!("{:<24} {:<9} {:<10} {:>9}  {}", m.name, needed, status, size, m.purpose);
            println!("{:<24} licence: {}", "", m.licence);
            if !m.note.is_empty() {
                println!("{:<24} note: {}", "", m.note);
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `hiwar models verify`.
    pub fn verify(&self, names: &[String]) -> anyhow::Result<ExitCode> {
        let models = self.select(names, |m| m.required || m.files.iter().any(|f| self.path(f).exists()))?;
        let mut failed = false;
        for m in models {
            for (path, status) in self.model_status(m) {
                let line = match &status {
                    FileStatus::Ok => format!("ok       {}", path.display()),
                    FileStatus::Unpinned { sha256 } => {
                        format!("unpinned {} (no published digest; pin sha256 = \"{sha256}\" in the manifest)", path.display())
                    }
                    FileStatus::Missing => format!("MISSING  {} — fix: {}", path.display(), fetch_hint(&m.name)),
                    FileStatus::Corrupt(why) => {
                        format!("CORRUPT  {}: {why} — fix: {}", path.display(), fetch_hint(&m.name))
                    }
                };
                failed |= matches!(status, FileStatus::Missing | FileStatus::Corrupt(_));
                println!("{:<24} {line}", m.name);
            }
        }
        if failed {
            eprintln!("some models are missing or corrupt; run the fix shown beside each");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `hiwar models fetch`.
    pub fn fetch(&self, names: &[String], config: &Config) -> anyhow::Result<ExitCode> {
        let models = self.select(names, |m| m.required)?;
        ensure_writable(&self.home)?;
        let stall = Duration::from_secs(config.models.download_timeout_secs.max(1));
        let count = models.len();
        for (i, m) in models.into_iter().enumerate() {
            let step = format!("[{}/{count}] {}", i + 1, m.name);
            let todo: Vec<&File> = m.files.iter().filter(|f| !matches!(self.file_status(f), FileStatus::Ok | FileStatus::Unpinned { .. })).collect();
            if todo.is_empty() {
                println!("{step}: present and verified");
                continue;
            }
            println!("{step}: fetching — {}", m.purpose);
            self.fetch_model(m, &todo, stall, &config.models.python).with_context(|| format!("fetching model {}", m.name))?;
            println!("{step}: verified");
        }
        Ok(ExitCode::SUCCESS)
    }

    fn fetch_model(&self, model: &Model, todo: &[&File], stall: Duration, python: &str) -> anyhow::Result<()> {
        for file in todo {
            if let Some(parent) = self.path(file).parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
        }
        if todo.iter().all(|f| f.url.is_some()) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            for file in todo {
                let (url, dest) = (file.url.as_deref().unwrap_or_default(), self.path(file));
                println!("  downloading {url}");
                let part = part_path(&dest);
                runtime.block_on(http::download(url, &part, stall))?;
                self.install(file, &part)?;
            }
            return Ok(());
        }

        let work = self.home.join(".downloads").join(&model.name);
        std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
        let mut archives = std::collections::HashMap::new();
        for source in &model.sources {
            let archive = match source.registry {
                Registry::Pypi => {
                    println!("  pip download {}=={}", source.package, source.version);
                    pypi::download(source, &work, python)?
                }
            };
            archives.insert(source.package.as_str(), archive);
        }
        let member = |reference: &str, dest: &Path| -> anyhow::Result<()> {
            let (package, member) = reference.split_once(':').context("package:member")?;
            let archive = archives.get(package).context("member of an unknown package")?;
            pypi::extract(archive, member, dest)
        };
        match &model.convert {
            Some(convert) => {
                let inputs = convert
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let name = r.rsplit('/').next().unwrap_or("input");
                        let dest = work.join(format!("{i}-{name}"));
                        member(r, &dest).map(|()| dest)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let [file] = todo else { bail!("a converted model makes exactly one file") };
                let part = part_path(&self.path(file));
                match convert.kind {
                    ConvertKind::WhisperCt2Ggml | ConvertKind::WhisperCt2GgmlQ8_0 => {
                        let sources = whisper_sources(&inputs)?;
                        let weights = if convert.kind == ConvertKind::WhisperCt2Ggml { Weights::F16 } else { Weights::Q8_0 };
                        println!("  converting CTranslate2 → ggml ({weights:?} weights)");
                        let done = convert_ct2_whisper_as(&sources, &part, weights)?;
                        println!(
                            "  wrote {} tensors, {:.1} MB (whisper {}, {} mel bins)",
                            done.tensors,
                            done.bytes as f64 / 1e6,
                            done.info.size_name(),
                            done.info.n_mels
                        );
                    }
                }
                self.install(file, &part)?;
            }
            None => {
                for file in todo {
                    let reference = file.member.as_deref().context("registry file without member")?;
                    let part = part_path(&self.path(file));
                    member(reference, &part)?;
                    self.install(file, &part)?;
                }
            }
        }
        std::fs::remove_dir_all(&work).ok();
        Ok(())
    }

    /// Verifies a finished `.part` file and renames it into place; a bad one is deleted.
    fn install(&self, file: &File, part: &Path) -> anyhow::Result<()> {
        let dest = self.path(file);
        let got = digest_file(part, |_| {}).with_context(|| format!("cannot read {}", part.display()))?;
        if let Some(why) = digest::mismatch(file, &got) {
            std::fs::remove_file(part).ok();
            bail!("{} failed verification: {why}; the download was deleted — run the same command again", dest.display());
        }
        if !file.has_digest() {
            println!("  {}: no published digest to check; pin it in the manifest: sha256 = \"{}\"", file.path, got.sha256);
        }
        std::fs::rename(part, &dest).with_context(|| format!("cannot move {} into place", dest.display()))?;
        verified::remember(&self.home, &dest, file);
        Ok(())
    }
}

fn whisper_sources(inputs: &[PathBuf]) -> anyhow::Result<WhisperSources> {
    let ends = |p: &&PathBuf, s: &str| p.to_str().is_some_and(|p| p.ends_with(s));
    let mel = inputs.iter().find(|p| ends(p, ".npz")).context("converter input: no .npz mel filters")?;
    let tiktoken = inputs.iter().find(|p| ends(p, ".tiktoken")).context("converter input: no .tiktoken vocabulary")?;
    let parts = inputs.iter().filter(|p| !ends(p, ".npz") && !ends(p, ".tiktoken")).cloned().collect();
    Ok(WhisperSources { ct2_parts: parts, mel_filters_npz: mel.clone(), tiktoken: tiktoken.clone() })
}

/// `dest` with `.part` appended: where a file is written before it is moved into place.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

fn ensure_writable(home: &Path) -> anyhow::Result<()> {
    let probe = home.join(".write-test");
    std::fs::create_dir_all(home)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("the model cache {} is not writable; set {HOME_VAR} to a writable directory", home.display()))
}

fn summarise(statuses: &[(PathBuf, FileStatus)]) -> &'static str {
    if statuses.iter().any(|(_, s)| matches!(s, FileStatus::Corrupt(_))) {
        "CORRUPT"
    } else if statuses.iter().all(|(_, s)| matches!(s, FileStatus::Missing)) {
        "missing"
    } else if statuses.iter().any(|(_, s)| matches!(s, FileStatus::Missing)) {
        "partial"
    } else if statuses.iter().any(|(_, s)| matches!(s, FileStatus::Unpinned { .. })) {
        "unpinned"
    } else {
        "ok"
    }
}
