//! Model file formats: reading CTranslate2 and NumPy files, writing whisper.cpp's ggml format.
//!
//! The registries only carry Whisper in CTranslate2's format; whisper.cpp needs ggml. The
//! converter here is the project's own, written from the two formats' public definitions.

mod ct2;
mod ggml;
mod npy;

pub use ct2::{Ct2Model, DType, Variable};
pub use ggml::{GgmlWhisperInfo, Weights, WhisperConversion, WhisperSources, convert_ct2_whisper, convert_ct2_whisper_as, read_ggml_whisper_info};
pub use npy::{NpyArray, read_npy, read_npz_member};
