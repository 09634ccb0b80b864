//! The voice: text → phonemes → Piper/VITS on ONNX Runtime → audio with a per-phoneme
//! timeline (the face's input).
//!
//! Built so far: the English path (espeak-ng phonemes, the registry's en_US-joe-medium voice)
//! with exact phoneme timing from the model's own duration predictor. The Arabic front-end
//! (diacritisation, rule-based G2P), text normalisation, streaming and playback follow.

pub mod arabic;
mod chunker;
mod normalize;
mod onnx_patch;
mod piper;
mod player;
mod tashkeel;

pub use onnx_patch::{add_graph_output, duration_output};
pub use piper::{PiperVoice, Speech, TimedPhoneme, TimedWord, VoiceConfig, split_clauses};
pub use chunker::Chunker;
pub use normalize::{cardinal, normalize_for_speech};
pub use player::{PlayClock, Player};
pub use tashkeel::{Diacritizer, is_tashkeel};
