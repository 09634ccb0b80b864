use std::path::PathBuf;

/// Errors of the speech crate. Each variant names what failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file is not where it should be.
    #[error("model `{name}` is missing at {path}; fetch it with `{fix}`")]
    ModelMissing { name: String, path: PathBuf, fix: String },

    /// A model file exists but is not what it claims to be.
    #[error("{path}: not a valid {format}: {reason}")]
    BadModel { path: PathBuf, format: &'static str, reason: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// ONNX Runtime could not be loaded or used.
    #[error("ONNX Runtime: {0}")]
    Onnx(String),

    /// whisper.cpp refused the model or the audio.
    #[error("whisper: {0}")]
    Whisper(String),

    /// A decode was abandoned on purpose (a provisional partial overtaken by a pause): not a
    /// failure; nothing was lost.
    #[error("whisper: decode abandoned")]
    Interrupted,

    /// The audio host or a device failed.
    #[error("audio: {0}")]
    Audio(String),

    /// espeak-ng (run as a separate process) is missing or failed.
    #[error("espeak-ng: {0}")]
    Espeak(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn bad(path: impl Into<PathBuf>, format: &'static str, reason: impl Into<String>) -> Error {
        Error::BadModel { path: path.into(), format, reason: reason.into() }
    }
}
