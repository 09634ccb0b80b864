//! Builders that turn the config into speech's settings and loaded parts: hearing's settings
//! with every model verified, the voices, the diacritiser. Every command and service builds
//! them here, so a model is found, checked and loaded one way.

use std::path::PathBuf;

use anyhow::Context as _;
use hiwar_speech::hearing::{HearingConfig, SegmenterConfig, TurnWaits};
use hiwar_speech::voice::{PiperVoice, Voices};

use crate::config::Config;
use crate::models::{Store, fetch_hint};

/// Smart Turn in the model cache: (model, file).
pub const SMART_TURN: (&str, &str) = ("smart-turn", "smart-turn-v3.2-cpu.onnx");

/// The semantic end of turn's waits as the config sets them.
pub fn turn_waits(h: &crate::config::Hearing) -> TurnWaits {
    TurnWaits {
        probe_ms: h.turn_probe_ms,
        early_ms: h.turn_early_ms,
        reprobe_ms: h.turn_reprobe_ms,
        incomplete_ms: h.turn_incomplete_ms,
        threshold: h.turn_threshold,
        sure: h.turn_sure,
        unsure_ms: h.turn_unsure_ms,
        confirm_ms: h.turn_confirm_ms,
        question_ms: h.turn_question_ms,
    }
}

/// Builds hearing's settings from the config, with every model found and ONNX Runtime loaded.
pub fn hearing_config(config: &Config, lang: Option<&str>) -> anyhow::Result<HearingConfig> {
    let store = Store::open(config)?;
    let whisper = if config.hearing.whisper_model.is_empty() {
        store.verified_file("whisper-base", "ggml-base.bin")?
    } else {
        let path = PathBuf::from(&config.hearing.whisper_model);
        anyhow::ensure!(
            path.is_file(),
            "hearing.whisper_model = {} is missing; fix: point it at a whisper.cpp ggml file, or {}",
            path.display(),
            fetch_hint("whisper-base")
        );
        store.check_configured(&path)?;
        // A file of the operator's own: at least its header must be a whisper ggml model's.
        hiwar_speech::models::read_ggml_whisper_info(&path).with_context(|| format!("hearing.whisper_model = {}", path.display()))?;
        path
    };
    let vad = store.verified_file("silero-vad-onnx", "silero_vad_16k_op15.onnx")?;
    store.load_onnx_runtime()?;
    let h = &config.hearing;
    let mut out = HearingConfig::new(whisper, vad);
    out.segmenter = SegmenterConfig {
        start_threshold: h.vad_start_threshold,
        end_threshold: h.vad_end_threshold.min(h.vad_start_threshold),
        min_speech_ms: h.min_speech_ms,
        min_speech_playing_ms: h.min_speech_playing_ms,
        end_silence_ms: h.end_silence_ms,
        turn: (h.end_of_turn == "smart").then_some(turn_waits(h)),
        ..SegmenterConfig::default()
    };
    if out.segmenter.turn.is_some() {
        // Without the model a person is still heard: turns end on silence, and doctor says why.
        match store.verified_file(SMART_TURN.0, SMART_TURN.1) {
            Ok(path) => out.smart_turn = Some(path),
            Err(e) => tracing::warn!("hearing.end_of_turn = \"smart\" but {e:#}; turns end after {} ms of silence meanwhile", h.end_silence_ms),
        }
    }
    out.languages = h.languages.clone();
    out.forced_language = match lang {
        Some("auto") | None => Some(h.language.clone()).filter(|l| !l.is_empty()),
        Some(l) => Some(l.to_string()),
    };
    out.initial_prompt = h.initial_prompt.clone();
    out.prompt_tokens = h.prompt_tokens;
    out.no_speech_threshold = h.no_speech_threshold;
    out.short_window = h.short_window;
    out.temperature_fallback = h.temperature_fallback;
    out.draft = h.whisper_draft;
    out.fallback_logprob = if h.fallback_on_low_logprob { -1.0 } else { f32::NEG_INFINITY };
    out.beam_size = h.beam_size;
    out.partial_interval_ms = h.partial_interval_ms.max(100);
    out.input_device = config.audio.input_device.clone();
    if h.threads > 0 {
        out.threads = h.threads;
    }
    Ok(out)
}

/// Loads the English voice (config, else the cache's en_US-joe-medium) with ONNX Runtime.
pub fn english_voice(config: &Config) -> anyhow::Result<PiperVoice> {
    let store = Store::open(config)?;
    hiwar_speech::onnx::set_device(match config.voice.device.as_str() {
        "cpu" => hiwar_speech::onnx::Device::Cpu,
        "cuda" => hiwar_speech::onnx::Device::Cuda,
        "auto" => hiwar_speech::onnx::Device::Auto,
        other => anyhow::bail!("voice.device = {other:?}: use auto, cpu or cuda"),
    });
    store.load_onnx_runtime()?;
    let model = if config.voice.english_voice.is_empty() {
        store.verified_file("piper-en-joe", "en_US-joe-medium.onnx.json")?;
        store.verified_file("piper-en-joe", "en_US-joe-medium.onnx")?
    } else {
        let path = PathBuf::from(&config.voice.english_voice);
        store.check_configured(&path).context("voice.english_voice")?;
        path
    };
    let mut voice = PiperVoice::load(&model, "piper-en-joe").with_context(|| format!("voice.english_voice = {}", model.display()))?;
    if config.voice.deterministic {
        voice.config.noise_scale = 0.0;
        voice.config.noise_w = 0.0;
    }
    voice.accent = match config.voice.english_accent.as_str() {
        "" | "none" => None,
        "measured" => Some(hiwar_speech::voice::Accent::english()),
        spec => Some(hiwar_speech::voice::Accent::parse(spec).map_err(|e| anyhow::anyhow!("voice.english_accent: {e}"))?),
    };
    Ok(voice)
}

/// The voices to speak with: English always; an Arabic Piper voice when voice.arabic_voice
/// names one; the diacritiser when the text has Arabic.
pub fn voices(config: &Config, arabic_text: bool) -> anyhow::Result<Voices> {
    let english = english_voice(config)?;
    let arabic = if config.voice.arabic_voice.is_empty() {
        None
    } else {
        let path = PathBuf::from(&config.voice.arabic_voice);
        Store::open(config)?.check_configured(&path).context("voice.arabic_voice")?;
        Some(PiperVoice::load(&path, "piper-ar-kareem-medium").with_context(|| format!("voice.arabic_voice = {}", path.display()))?)
    };
    let diacritizer = if arabic_text { Some(diacritizer(config)?) } else { None };
    Ok(Voices { english, arabic, diacritizer })
}

/// The voices, each of which has just spoken a word: for services that must not start (or
/// reload) with a voice whose model loads but makes noise or nothing (a model damaged inside,
/// an operator's file that is not a voice). The check costs one short synthesis per voice.
pub fn speaking_voices(config: &Config) -> anyhow::Result<Voices> {
    let mut voices = voices(config, true)?;
    voices.speak("مرحبا").map_err(|e| anyhow::anyhow!("the Arabic voice does not speak: {e}"))?;
    voices.speak("Hello").map_err(|e| anyhow::anyhow!("the English voice does not speak: {e}"))?;
    Ok(voices)
}

/// The Arabic diacritiser (rawi v2) from the cache.
pub fn diacritizer(config: &Config) -> anyhow::Result<hiwar_speech::voice::Diacritizer> {
    let mut d = diacritizer_model(config, TASHKEEL_MODEL)?;
    // The knowledge base's own diacritised forms win over hiwar's lexicon.
    let own = crate::assets::knowledge_dir(config).join("lexicon.txt");
    if own.is_file() {
        let text = std::fs::read_to_string(&own).with_context(|| format!("cannot read {}", own.display()))?;
        let n = d.add_lexicon(&text);
        tracing::debug!(entries = n, file = %own.display(), "knowledge base lexicon");
    }
    Ok(d)
}

/// The diacritisation model hiwar speaks with, chosen by `hiwar bench tashkeel` on the golden
/// set (docs/benchmarks.md).
pub const TASHKEEL_MODEL: hiwar_speech::voice::TashkeelModel = hiwar_speech::voice::TashkeelModel::RawiEnsemble;

/// One diacritisation model with hiwar's lexicon and rules (`bare()` takes them off).
pub fn diacritizer_model(config: &Config, model: hiwar_speech::voice::TashkeelModel) -> anyhow::Result<hiwar_speech::voice::Diacritizer> {
    let store = Store::open(config)?;
    store.load_onnx_runtime()?;
    let (file, vocab) = model.files();
    let path = store.verified_file("tashkeel", file)?;
    let vocab = vocab.map(|v| store.verified_file("tashkeel", v)).transpose()?;
    Ok(hiwar_speech::voice::Diacritizer::load_model(model, &path, vocab.as_deref())?)
}
