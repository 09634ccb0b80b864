//! Reloading the operator's config without a restart (`systemctl reload hiwar`, i.e. SIGHUP):
//! the knowledge base, the persona prompt, the LLM settings, the voices and the dialogue's
//! settings. Everything new is loaded and checked before anything is swapped: a bad config, an
//! empty knowledge folder or a voice model that does not load keeps the old one running, and
//! the log says why.

use std::path::PathBuf;

use hiwar_speech::voice::Voices;

use crate::mind::Mind;
use hiwar_core::config::Config;

/// A config that loaded and passed every check, with what it builds.
pub struct Reloaded {
    pub config: Config,
    pub mind: Mind,
    pub voices: Voices,
}

impl std::fmt::Debug for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloaded").field("source", &self.config.source).finish_non_exhaustive()
    }
}

/// Sections that only a restart applies (the audio devices, hearing's models, the window).
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.audio != new.audio {
        out.push("audio");
    }
    if old.hearing != new.hearing {
        out.push("hearing");
    }
    if old.stage != new.stage {
        out.push("stage");
    }
    if old.log != new.log {
        out.push("log");
    }
    if old.serve != new.serve {
        out.push("serve");
    }
    out
}

/// Loads and checks the config at `path` (the one hiwar started with).
pub fn load(path: Option<&PathBuf>, old: &Config) -> anyhow::Result<Reloaded> {
    let config = Config::load(path.map(PathBuf::as_path))?;
    let mind = Mind::from_config(&config)?;
    // Both voices must really speak: a model file that loads but is damaged inside shows here.
    let voices = hiwar_core::build::speaking_voices(&config)?;
    let later = needs_restart(old, &config);
    if !later.is_empty() {
        tracing::warn!(target: "hiwar::ops", "config: changes to [{}] take effect at the next restart", later.join("], ["));
    }
    Ok(Reloaded { config, mind, voices })
}
