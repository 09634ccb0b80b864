//! Whisper speech recognition through whisper-rs (whisper.cpp).

use std::path::Path;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::{Error, Result};

/// Sample rate whisper expects.
pub const SAMPLE_RATE: u32 = 16_000;

/// One decoded segment; times are seconds from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

/// A transcription of one piece of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// ISO 639-1 code of the language whisper decoded in.
    pub lang: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join(" ")
    }
}

/// Which language to decode in.
#[derive(Debug, Clone, Copy)]
pub enum Language<'a> {
    /// Force this language (ISO 639-1, e.g. `ar`).
    Fixed(&'a str),
    /// Detect, but choose only among these (so short Arabic is not labelled Farsi or Urdu).
    Among(&'a [&'a str]),
}

/// A loaded whisper model; keep it and reuse it (loading costs far more than a short decode).
pub struct WhisperModel {
    ctx: WhisperContext,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").finish_non_exhaustive()
    }
}

impl WhisperModel {
    pub fn load(path: &Path) -> Result<WhisperModel> {
        static HOOKS: std::sync::Once = std::sync::Once::new();
        // whisper.cpp and ggml log to stderr by default; route them through `tracing`.
        HOOKS.call_once(whisper_rs::install_logging_hooks);
        if !path.exists() {
            return Err(Error::ModelMissing {
                name: "whisper".into(),
                path: path.to_path_buf(),
                fix: "hiwar models fetch whisper-base".into(),
            });
        }
        let path_str = path.to_str().ok_or_else(|| Error::Whisper(format!("{} is not UTF-8", path.display())))?;
        let ctx = WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
            .map_err(|e| Error::Whisper(format!("cannot load {}: {e}", path.display())))?;
        Ok(WhisperModel { ctx })
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32], language: Language<'_>) -> Result<Transcript> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut state = self.ctx.create_state().map_err(|e| Error::Whisper(e.to_string()))?;
        let lang = match language {
            Language::Fixed(lang) => lang.to_string(),
            Language::Among(allowed) => {
                state.pcm_to_mel(samples, threads).map_err(|e| Error::Whisper(e.to_string()))?;
                let (_, probs) = state.lang_detect(0, threads).map_err(|e| Error::Whisper(e.to_string()))?;
                allowed
                    .iter()
                    .filter_map(|l| Some((*l, *probs.get(usize::try_from(whisper_rs::get_lang_id(l)?).ok()?)?)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(l, _)| l.to_string())
                    .ok_or_else(|| Error::Whisper(format!("none of {allowed:?} is a whisper language")))?
            }
        };
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(&lang));
        params.set_n_threads(threads as i32);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_nst(true);
        state.full(params, samples).map_err(|e| Error::Whisper(e.to_string()))?;
        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(|e| Error::Whisper(e.to_string()))?.into_owned();
            segments.push(Segment {
                start: segment.start_timestamp() as f32 / 100.0,
                end: segment.end_timestamp() as f32 / 100.0,
                text,
            });
        }
        Ok(Transcript { lang, segments })
    }
}
