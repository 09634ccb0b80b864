//! Hearing: microphone or file → 16 kHz → Silero VAD → utterances → whisper, with partial
//! transcripts while the person speaks and a final one at the end of speech.
//!
//! Threads: the cpal callback only copies into a lock-free ring; the `hearing` thread
//! resamples, runs the VAD and segments; the `whisper` thread decodes. Nothing heavy runs on
//! the audio thread and the VAD never waits for whisper.

mod capture;
mod echo;
mod file;
mod listener;
mod live;
mod resample;
mod route;
mod segmenter;
mod transcriber;
mod turn;
mod vad;

use std::path::PathBuf;
use std::time::Instant;

pub use capture::{Capture, CaptureStats};
pub use echo::{
    Canceller, EchoReference, EchoStats, EchoTap, FRAME as FRAME_10MS, PRE_ECHO_DETECTION, RESETTLE, SETTLE, aec3_config, echo_link, nearend_transparency,
};
pub use file::{DecodedAudio, FileSource, open_audio_file, read_16k};
pub use listener::{Listener, TurnJudgement};
pub use live::{Hearing, InputLevel, Liveness, PacedSource, Source, level_db};
pub use resample::{Resampler, TARGET_RATE};
pub use route::{Route, RouteWatch, default_source_hears_default_sink};
pub use segmenter::{Boundary, Segmenter, SegmenterConfig, TurnWaits};
/// AEC3's configuration (sonora-aec3's), for a canceller tuned by hand.
pub use sonora_aec3::config::EchoCanceller3Config as Aec3Config;
pub use transcriber::{
    Decide, LanguageChoice, LanguageScore, SURE_DETECTION, TIE_MARGIN, Transcriber, Vocabulary, is_phantom, script_share, transcribe_file, transcribe_samples,
};
pub use turn::{SmartTurn, TURN_SAMPLES, TurnFeatures};
pub use vad::{SileroVad, WINDOW};

/// Everything hearing needs to know; the app fills it from its config.
#[derive(Debug, Clone)]
pub struct HearingConfig {
    pub whisper_model: PathBuf,
    pub vad_model: PathBuf,
    /// Smart Turn, used when `segmenter.turn` asks for a semantic end of turn.
    pub smart_turn: Option<PathBuf>,
    pub segmenter: SegmenterConfig,
    /// Languages detection may choose between (Arabic first).
    pub languages: Vec<String>,
    /// Decode in this language only.
    pub forced_language: Option<String>,
    /// The operator's own words for whisper's prompt (after the vocabulary).
    pub initial_prompt: String,
    /// Whisper's prompt per language from the organisation's knowledge; the app fills it and
    /// rebuilds it on reload (see [`transcriber::Vocabulary`]).
    pub vocabulary: Vocabulary,
    /// Tokens of whisper's prompt the vocabulary and `initial_prompt` may fill together.
    pub prompt_tokens: usize,
    pub no_speech_threshold: f32,
    /// Encode only the frames an utterance needs (much faster on short utterances).
    pub short_window: bool,
    /// Whisper's temperature fallback: re-decode a degenerate result by sampling.
    pub temperature_fallback: bool,
    /// A fixed-language decode checks the utterance's last decode as a draft (see
    /// `whisper::DecodeOptions::draft`).
    pub draft: bool,
    /// The fallback's log-probability test: a decode whose mean token log-probability is under
    /// this is sampled again (whisper's reference: −1.0); `f32::NEG_INFINITY` resamples loops only.
    pub fallback_logprob: f32,
    /// Beam width (1: greedy).
    pub beam_size: usize,
    /// How often to re-decode the growing utterance for a partial transcript.
    pub partial_interval_ms: u32,
    pub threads: usize,
    /// Input device name; empty for the default.
    pub input_device: String,
    /// What the speaker plays, for the echo canceller on the microphone (None: no canceller).
    pub echo: Option<EchoReference>,
}

impl HearingConfig {
    pub fn new(whisper_model: PathBuf, vad_model: PathBuf) -> HearingConfig {
        HearingConfig {
            whisper_model,
            vad_model,
            smart_turn: None,
            segmenter: SegmenterConfig::default(),
            languages: vec!["ar".into(), "en".into()],
            forced_language: None,
            initial_prompt: String::new(),
            vocabulary: Vocabulary::default(),
            prompt_tokens: transcriber::PROMPT_TOKENS,
            no_speech_threshold: 0.6,
            short_window: true,
            temperature_fallback: true,
            draft: true,
            fallback_logprob: -1.0,
            beam_size: 1,
            partial_interval_ms: 500,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            input_device: String::new(),
            echo: None,
        }
    }
}

/// A finished utterance. Positions are 16 kHz samples from the start of the stream; segment
/// and word times are seconds from the start of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub id: u64,
    pub start: u64,
    /// End of speech: the last voiced sample.
    pub end: u64,
    pub lang: String,
    pub text: String,
    pub confidence: f32,
    pub segments: Vec<crate::whisper::Segment>,
    /// How its language was chosen.
    pub language: LanguageChoice,
}

/// What hearing reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum HearingEvent {
    /// `level_db`: the loudness (RMS, dBFS) of the speech so far, to tell a voice from the
    /// echo of hiwar's own.
    SpeechStarted {
        utterance: u64,
        start: u64,
        at: Instant,
        level_db: f32,
    },
    /// The growing utterance decoded so far (`upto` is the last sample it covers).
    Partial {
        utterance: u64,
        text: String,
        lang: String,
        upto: u64,
        at: Instant,
    },
    /// End-pointing decision taken at `decided_at` (samples); `decided` is when, in wall time.
    SpeechEnded {
        utterance: u64,
        last_voiced: u64,
        decided_at: u64,
        decided: Instant,
        /// The semantic end of turn's probability of "complete", when it was asked.
        turn: Option<f32>,
    },
    /// The final transcript; `None` when the audio held no words (noise, a cough, a phantom).
    Final {
        utterance: Option<Utterance>,
        id: u64,
        ready: Instant,
        speculative: bool,
    },
    DeviceLost {
        reason: String,
    },
    DeviceRestored {
        device: String,
    },
    /// The capture ring was full and this many samples were dropped in all (hearing fell behind).
    Overrun {
        dropped: u64,
    },
    /// A failure that stopped hearing; the app reports it and may restart.
    Failed {
        reason: String,
    },
}
