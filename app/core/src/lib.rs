//! hiwar's core: what every part of the app shares, below the dialogue, the stage and the
//! server.
//!
//! - [`config`]: `hiwar.toml` and `HIWAR_*`, every value checked at load.
//! - [`bus`]: the typed events everything publishes and observes, and hearing's adapter onto it.
//! - [`models`]: the manifest, the cache, fetching, and verification at load.
//! - [`build`]: the config turned into speech's settings and loaded voices.
//! - [`speaking`]: the one voice worker (text → speech → the speaker, memory or nowhere).
//! - [`log`]: logging with redaction and size-rotated files; [`notify`]: systemd's notify
//!   protocol.
//! - [`assets`], [`runtime`]: where the bundled assets are; the async runtime, wav writing,
//!   wiping what a visitor said.
//!
//! Boundaries: no HTTP server, no WebSocket, no rendering, no dialogue; it depends on `speech`
//! (and nothing above it). Wire and config formats of the app live here or above.

pub mod assets;
pub mod build;
pub mod bus;
pub mod config;
pub mod log;
pub mod memory;
pub mod models;
pub mod notify;
pub mod runtime;
pub mod speaking;
