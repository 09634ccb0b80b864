//! hiwar's dialogue: what is said back, and when.
//!
//! - [`mind`]: the organisation's knowledge (Arabic-aware BM25), the LLM client (Qwen over any
//!   OpenAI-compatible endpoint, streamed), conversation memory.
//! - [`turn`]: one question answered — chunks to the voice, the holding phrase, the fallback.
//! - [`live`]: the live loop (states, barge-in, sessions, the voice's watchdog), fed by
//!   [`input`].
//! - [`kiosk`]: running unattended — the watchdog over hearing, reloading the config.
//!
//! Boundaries: it depends on `core` and `speech`; it renders nothing and serves nothing (the
//! stage and the server sit above it and see it through the bus).

pub mod input;
pub mod kiosk;
pub mod live;
pub mod mind;
pub mod turn;
