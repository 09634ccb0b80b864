//! The models manifest (`assets/models.toml`): what each model is, where it comes from, and
//! the digests that prove a file is the one we meant.

use std::collections::HashSet;

use anyhow::{Context as _, bail, ensure};
use serde::Deserialize;

/// The manifest format this build understands.
pub const SCHEMA: u32 = 1;

/// The manifest shipped inside the binary.
pub const BUILT_IN: &str = include_str!("../../../../assets/models.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    pub purpose: String,
    pub licence: String,
    /// Required models are fetched by default and checked by `verify` and `doctor`.
    #[serde(default)]
    pub required: bool,
    /// Registry packages the files come out of.
    #[serde(default, rename = "source")]
    pub sources: Vec<Source>,
    /// How the files are made from the sources when they are not copied out as they are.
    #[serde(default)]
    pub convert: Option<Convert>,
    #[serde(rename = "file")]
    pub files: Vec<File>,
    /// Anything an operator should know (e.g. where a digest came from).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Pypi,
}

/// One package in a registry, pinned by version and by the archive's sha256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub registry: Registry,
    pub package: String,
    pub version: String,
    /// The archive's file name as the registry serves it.
    pub archive: String,
    pub sha256: String,
    /// For platform wheels: the wheel platform tag and Python version to ask pip for, so every
    /// machine downloads the same archive.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub python_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Convert {
    pub kind: ConvertKind,
    /// `package:member` references into the sources.
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvertKind {
    /// CTranslate2 Whisper (model.bin parts…, mel_filters.npz, *.tiktoken) → whisper.cpp ggml.
    WhisperCt2Ggml,
    /// The same, its 2-D weights quantised to q8_0.
    #[serde(rename = "whisper-ct2-ggml-q8_0")]
    WhisperCt2GgmlQ8_0,
}

/// One file as it lies in the cache, with the digests that verify it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Path under the cache directory.
    pub path: String,
    /// Exact size in bytes, where known.
    #[serde(default)]
    pub size: Option<u64>,
    /// The publisher's approximate size, where the exact one is not published.
    #[serde(default)]
    pub approx_size: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub sha1: Option<String>,
    #[serde(default)]
    pub md5: Option<String>,
    /// `package:member`: copied out of a source archive.
    #[serde(default)]
    pub member: Option<String>,
    /// Downloaded over HTTPS (optional models that no registry carries).
    #[serde(default)]
    pub url: Option<String>,
}

impl File {
    pub fn has_digest(&self) -> bool {
        self.sha256.is_some() || self.sha1.is_some() || self.md5.is_some()
    }
}

impl Manifest {
    pub fn parse(text: &str, name: &str) -> anyhow::Result<Manifest> {
        #[derive(Deserialize)]
        struct Head {
            schema: Option<u32>,
        }
        let head: Head = toml::from_str(text).with_context(|| format!("models manifest {name}"))?;
        match head.schema {
            Some(SCHEMA) => {}
            Some(other) => bail!(
                "models manifest {name} has schema {other}, but this hiwar reads schema {SCHEMA}: \
                 use the manifest that came with this version (leave models.manifest empty)"
            ),
            None => bail!("models manifest {name} has no `schema = {SCHEMA}` line"),
        }
        let manifest: Manifest = toml::from_str(text).map_err(|e| anyhow::anyhow!("models manifest {name}: {}", e.to_string().trim_end()))?;
        manifest.validate().with_context(|| format!("models manifest {name}"))?;
        Ok(manifest)
    }

    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for m in &self.models {
            ensure!(names.insert(&m.name), "model {} appears twice", m.name);
            ensure!(!m.files.is_empty(), "model {} lists no file", m.name);
            let packages: HashSet<&str> = m.sources.iter().map(|s| s.package.as_str()).collect();
            for s in &m.sources {
                check_hex(&s.sha256, 64).with_context(|| format!("model {}: sha256 of {}", m.name, s.package))?;
            }
            let refs = m.convert.iter().flat_map(|c| c.inputs.iter()).chain(m.files.iter().filter_map(|f| f.member.as_ref()));
            for r in refs {
                let (package, member) = r.split_once(':').with_context(|| format!("model {}: `{r}` is not package:member", m.name))?;
                ensure!(packages.contains(package) && !member.is_empty(), "model {}: `{r}` names no source package", m.name);
            }
            for f in &m.files {
                ensure!(paths.insert(&f.path), "file {} appears twice", f.path);
                ensure!(!f.path.starts_with('/') && !f.path.split('/').any(|c| c == ".."), "model {}: file path {} must stay inside the cache", m.name, f.path);
                let origins = [f.member.is_some(), f.url.is_some(), m.convert.is_some()].iter().filter(|b| **b).count();
                ensure!(origins == 1, "model {}: file {} needs exactly one of member, url or a convert step", m.name, f.path);
                if f.url.is_none() {
                    ensure!(f.sha256.is_some() && f.size.is_some(), "model {}: registry file {} needs size and sha256", m.name, f.path);
                }
                for (digest, len) in [(&f.sha256, 64), (&f.sha1, 40), (&f.md5, 32)] {
                    if let Some(d) = digest {
                        check_hex(d, len).with_context(|| format!("model {}: digest of {}", m.name, f.path))?;
                    }
                }
                if let Some(url) = &f.url {
                    ensure!(url.starts_with("https://") || url.starts_with("http://"), "model {}: {url} is not an http(s) address", m.name);
                }
            }
        }
        Ok(())
    }
}

fn check_hex(s: &str, len: usize) -> anyhow::Result<()> {
    ensure!(s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "`{s}` is not {len} lower-case hex digits");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_manifest_is_valid_and_complete() {
        let m = Manifest::parse(BUILT_IN, "assets/models.toml").expect("built-in manifest");
        for required in ["whisper-base", "silero-vad", "silero-vad-onnx", "smart-turn", "onnxruntime", "piper-en-joe", "tashkeel"] {
            let model = m.get(required).unwrap_or_else(|| panic!("{required} in manifest"));
            assert!(model.required, "{required} is required");
            assert!(model.files.iter().all(|f| f.sha256.is_some()), "{required} pinned by sha256");
        }
        for optional in ["whisper-small", "whisper-large-v3-turbo", "piper-ar-kareem-low", "piper-ar-kareem-medium"] {
            let model = m.get(optional).unwrap_or_else(|| panic!("{optional} in manifest"));
            assert!(!model.required);
            assert!(model.files.iter().all(|f| f.url.as_deref().is_some_and(|u| u.starts_with("https://"))));
        }
    }

    #[test]
    fn a_manifest_of_another_schema_is_refused_with_the_fix() {
        let err = Manifest::parse("schema = 2\n", "new.toml").expect_err("schema 2").to_string();
        assert!(err.contains("schema 2") && err.contains("models.manifest"), "{err}");
    }

    #[test]
    fn bad_digests_and_dangling_members_are_refused() {
        let bad_digest = r#"
schema = 1
[[model]]
name = "x"
purpose = "p"
licence = "MIT"
[[model.source]]
registry = "pypi"
package = "pkg"
version = "1.0"
archive = "pkg-1.0.whl"
sha256 = "ABC"
[[model.file]]
path = "x/y"
size = 1
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
member = "pkg:y"
"#;
        let err = format!("{:#}", Manifest::parse(bad_digest, "m").expect_err("bad digest"));
        assert!(err.contains("`ABC` is not 64"), "{err}");

        let dangling =
            bad_digest.replace("sha256 = \"ABC\"", &format!("sha256 = \"{}\"", "a".repeat(64))).replace("member = \"pkg:y\"", "member = \"other:y\"");
        let err = format!("{:#}", Manifest::parse(&dangling, "m").expect_err("dangling"));
        assert!(err.contains("names no source package"), "{err}");

        let escaping =
            bad_digest.replace("sha256 = \"ABC\"", &format!("sha256 = \"{}\"", "a".repeat(64))).replace("path = \"x/y\"", "path = \"../../etc/passwd\"");
        let err = format!("{:#}", Manifest::parse(&escaping, "m").expect_err("escape"));
        assert!(err.contains("inside the cache"), "{err}");
    }
}
