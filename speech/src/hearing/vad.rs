//! Silero VAD (v6, 16 kHz ONNX) through ONNX Runtime, streaming: 512-sample windows with the
//! model's recurrent state and 64-sample context carried from one window to the next.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use crate::{Error, Result};

/// Samples per VAD window at 16 kHz (32 ms).
pub const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

pub struct SileroVad {
    session: Session,
    state: Vec<f32>,
    input: Vec<f32>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Loads the model; ONNX Runtime must have been loaded first (`crate::onnx::load`).
    pub fn load(model: &Path) -> Result<SileroVad> {
        let session = crate::onnx::session(model, 1, "silero-vad-onnx")?;
        Ok(SileroVad { session, state: vec![0.0; STATE], input: vec![0.0; CONTEXT + WINDOW] })
    }

    /// Forgets everything heard (a new stream).
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.input.fill(0.0);
    }

    /// The probability that `window` (512 samples at 16 kHz) holds speech.
    pub fn probability(&mut self, window: &[f32]) -> Result<f32> {
        if window.len() != WINDOW {
            return Err(Error::Audio(format!("VAD window of {} samples, expected {WINDOW}", window.len())));
        }
        // The previous window's last 64 samples lead this one, as the model was trained.
        self.input.copy_within(WINDOW.., 0);
        self.input[CONTEXT..].copy_from_slice(window);
        let onnx = |e: ort::Error| Error::Onnx(format!("VAD: {e}"));
        let input = Tensor::from_array(([1usize, CONTEXT + WINDOW], self.input.clone())).map_err(onnx)?;
        let state = Tensor::from_array(([2usize, 1, 128], self.state.clone())).map_err(onnx)?;
        let rate = Tensor::from_array(((), vec![16_000i64])).map_err(onnx)?;
        let outputs = self.session.run(ort::inputs!["input" => input, "state" => state, "sr" => rate]).map_err(onnx)?;
        let (_, prob) = outputs["output"].try_extract_tensor::<f32>().map_err(onnx)?;
        let (_, next) = outputs["stateN"].try_extract_tensor::<f32>().map_err(onnx)?;
        if next.len() != STATE || prob.is_empty() {
            return Err(Error::Onnx("VAD: unexpected output shapes".into()));
        }
        self.state.copy_from_slice(next);
        Ok(prob[0])
    }
}
