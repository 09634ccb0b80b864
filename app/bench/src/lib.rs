//! hiwar's benchmarks, and the stand-in LLM they (and the tests) talk to: measurement, never
//! product. Each `hiwar bench …` prints its figures as Markdown for docs/benchmarks.md.
//!
//! - [`speech`]: `bench asr` (against whisper.cpp called directly) and `bench tts` (against
//!   Python Piper).
//! - [`echo`]: `bench echo` — the echo canceller in a simulated room.
//! - [`tashkeel`]: `bench tashkeel` — diacritisation on the golden set, every model.
//! - [`live`]: `bench loop` — voice-to-voice latency, barge-in, LLM faults, memory.
//! - [`serve`]: `bench serve`; [`soak`]: `bench soak`; [`face`] and [`sync`]: `bench face`,
//!   `bench sync`.
//! - [`standin`]: a local server speaking the OpenAI / Model Studio wire format, with faults.
//! - [`stats`]: one percentile, one memory reading.
//!
//! Boundaries: only the binary depends on it.

pub mod asr;
pub mod echo;
pub mod face;
pub mod live;
pub mod serve;
pub mod soak;
pub mod speech;
pub mod standin;
pub mod stats;
pub mod sync;
pub mod tashkeel;
pub mod turn;
