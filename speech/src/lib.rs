//! hiwar-speech: everything that turns sound into text and text into sound, on the device.
//!
//! This crate owns audio I/O (cpal), hearing (VAD + whisper-rs), voice (ONNX Runtime) and the
//! formats of the models those need. It knows nothing of the app, its bus, its config file or
//! the network: callers hand it paths and plain values and get plain Rust types back.

mod error;

pub mod audio;
pub mod espeak;
pub mod hearing;
pub mod models;
pub mod onnx;
pub mod text;
pub mod voice;
pub mod whisper;

pub use error::{Error, Result};

#[cfg(test)]
mod test_alloc;
