//! Semantic end of turn: Smart Turn v3.2 (Daily, BSD-2) on ONNX Runtime. Asked when the
//! person has paused briefly, it says from the sound of the last 8 s — intonation, rhythm, a
//! trailing "and…" — whether they have finished their turn or will go on.
//!
//! Its input is what transformers' `WhisperFeatureExtractor(chunk_length = 8)` computes, as
//! pipecat's `_whisper_features.py` writes it without transformers: the last 8 s at 16 kHz
//! (zero-padded at the front), normalised to zero mean and unit variance, a centred STFT
//! (reflect padding, periodic Hann window of 400, hop 160), a power spectrum projected on 80
//! Slaney mel filters, log10 with a floor, the last frame dropped, clamped to 8 below its
//! maximum and scaled by (x + 4) / 4: an 80 × 800 matrix, mel-major.

use std::path::Path;
use std::sync::Arc;

use ort::session::Session;
use ort::value::Tensor;
use realfft::{RealFftPlanner, RealToComplex};

use crate::{Error, Result};

/// Audio the model hears: the last 8 s at 16 kHz.
pub const TURN_SAMPLES: usize = 16_000 * 8;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const BINS: usize = N_FFT / 2 + 1;
/// Frames the model takes (the STFT gives one more, dropped as the reference does).
pub const TURN_FRAMES: usize = TURN_SAMPLES / HOP;

/// One mel filter: its first non-zero bin and its weights from there.
#[derive(Debug, Clone)]
struct Filter {
    first: usize,
    weights: Vec<f32>,
}

/// The whisper-style log-mel front end of Smart Turn (pure computation, no model).
pub struct TurnFeatures {
    window: Vec<f32>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for TurnFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnFeatures").finish_non_exhaustive()
    }
}

impl Default for TurnFeatures {
    fn default() -> Self {
        TurnFeatures::new()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    // Slaney: linear below 1 kHz, logarithmic above.
    if f >= 1000.0 { 15.0 + (f / 1000.0).ln() * (27.0 / 6.4f64.ln()) } else { 3.0 * f / 200.0 }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= 15.0 { 1000.0 * ((6.4f64.ln() / 27.0) * (m - 15.0)).exp() } else { 200.0 * m / 3.0 }
}

impl TurnFeatures {
    pub fn new() -> TurnFeatures {
        // Periodic Hann window (torch.hann_window's default).
        let window = (0..N_FFT).map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32).collect();
        // Triangular filters between N_MELS + 2 points evenly spaced in mel from 0 to 8 kHz,
        // area-normalised (Slaney), on the FFT bins' frequencies.
        let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(8000.0));
        let points: Vec<f64> = (0..N_MELS + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64)).collect();
        let bin_hz = |k: usize| 8000.0 * k as f64 / (BINS - 1) as f64;
        let filters = (0..N_MELS)
            .map(|m| {
                let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
                let norm = 2.0 / (right - left);
                let weight = |k: usize| {
                    let f = bin_hz(k);
                    let down = (f - left) / (centre - left);
                    let up = (right - f) / (right - centre);
                    (down.min(up).max(0.0) * norm) as f32
                };
                let first = (0..BINS).find(|&k| weight(k) > 0.0).unwrap_or(0);
                let last = (0..BINS).rev().find(|&k| weight(k) > 0.0).unwrap_or(first);
                Filter { first, weights: (first..=last).map(weight).collect() }
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        TurnFeatures { window, filters, fft }
    }

    /// The model's input for `audio` (16 kHz; the last 8 s are used, shorter audio is padded
    /// with silence in front): 80 × 800 values, mel-major. Non-finite samples count as silence.
    pub fn compute(&self, audio: &[f32]) -> Vec<f32> {
        let tail = &audio[audio.len().saturating_sub(TURN_SAMPLES)..];
        let mut x = vec![0.0f32; TURN_SAMPLES];
        let pad = TURN_SAMPLES - tail.len();
        for (d, s) in x[pad..].iter_mut().zip(tail) {
            *d = if s.is_finite() { *s } else { 0.0 };
        }
        // Zero mean, unit variance over the whole padded window (silence included), as the
        // reference does.
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / TURN_SAMPLES as f64;
        let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / TURN_SAMPLES as f64;
        let scale = 1.0 / (var + 1e-7).sqrt();
        for v in &mut x {
            *v = ((f64::from(*v) - mean) * scale) as f32;
        }
        // Centred frames: reflect-pad N_FFT / 2 on each side.
        let half = N_FFT / 2;
        let mut padded = Vec::with_capacity(TURN_SAMPLES + N_FFT);
        padded.extend((1..=half).rev().map(|i| x[i]));
        padded.extend_from_slice(&x);
        padded.extend((TURN_SAMPLES - 1 - half..TURN_SAMPLES - 1).rev().map(|i| x[i]));

        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; BINS];
        let mut out = vec![0.0f32; N_MELS * TURN_FRAMES];
        let mut max = f32::NEG_INFINITY;
        for t in 0..TURN_FRAMES {
            let start = t * HOP;
            for ((d, s), w) in frame.iter_mut().zip(&padded[start..start + N_FFT]).zip(&self.window) {
                *d = s * w;
            }
            // The lengths are the plan's own: this cannot fail.
            if self.fft.process_with_scratch(&mut frame, &mut spectrum, &mut scratch).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, f) in self.filters.iter().enumerate() {
                let e: f32 = f.weights.iter().zip(&power[f.first..]).map(|(w, p)| w * p).sum();
                let v = e.max(1e-10).log10();
                max = max.max(v);
                out[m * TURN_FRAMES + t] = v;
            }
        }
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        out
    }
}

/// Smart Turn v3.2 loaded: the probability that a turn is complete.
pub struct SmartTurn {
    session: Session,
    features: TurnFeatures,
}

impl std::fmt::Debug for SmartTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartTurn").finish_non_exhaustive()
    }
}

impl SmartTurn {
    /// Loads the model (one thread: it runs beside whisper); ONNX Runtime must be loaded.
    pub fn load(model: &Path) -> Result<SmartTurn> {
        let session = crate::onnx::session(model, 1, "smart-turn")?;
        let input = session.inputs().first().map(|i| i.name().to_string());
        if input.as_deref() != Some("input_features") {
            return Err(Error::Onnx(format!(
                "{}: not a Smart Turn v3 model (its input is {input:?}, expected \"input_features\"); fix: hiwar models fetch smart-turn",
                model.display()
            )));
        }
        Ok(SmartTurn { session, features: TurnFeatures::new() })
    }

    /// The probability (0–1) that the speech ending `audio` (16 kHz, its last 8 s matter)
    /// is a finished turn.
    pub fn probability(&mut self, audio: &[f32]) -> Result<f32> {
        let features = self.features.compute(audio);
        let onnx = |e: ort::Error| Error::Onnx(format!("Smart Turn: {e}"));
        let input = Tensor::from_array(([1usize, N_MELS, TURN_FRAMES], features)).map_err(onnx)?;
        let outputs = self.session.run(ort::inputs!["input_features" => input]).map_err(onnx)?;
        let (_, p) = outputs[0].try_extract_tensor::<f32>().map_err(onnx)?;
        match p.first() {
            Some(p) if p.is_finite() => Ok(p.clamp(0.0, 1.0)),
            _ => Err(Error::Onnx("Smart Turn: no probability in its output".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mel_filters_are_slaney_triangles_over_0_to_8_khz() {
        let f = TurnFeatures::new();
        assert_eq!(f.filters.len(), N_MELS);
        // Every filter is non-empty and they march up the spectrum.
        for w in f.filters.windows(2) {
            assert!(!w[0].weights.is_empty());
            assert!(w[1].first >= w[0].first);
        }
        // The first filter's peak: bin 1 (40 Hz) lies on its rising edge, centred at ~35.6 Hz
        // (mel 0.53 → 35.6 Hz); Slaney's area normalisation makes the peak 2 / (right − left).
        let first = &f.filters[0];
        assert_eq!(first.first, 1);
        let peak = first.weights.iter().copied().fold(0.0f32, f32::max);
        assert!((0.02..0.03).contains(&peak), "{peak}");
    }

    #[test]
    fn silence_and_a_tone_give_the_reference_shape_and_range() {
        let f = TurnFeatures::new();
        let silence = f.compute(&[]);
        assert_eq!(silence.len(), N_MELS * TURN_FRAMES);
        // All-zero audio: every value is log10(1e-10) = −10, clamped to max − 8 = −10 → −1.5.
        assert!(silence.iter().all(|v| (v + 1.5).abs() < 1e-6), "{:?}", &silence[..4]);

        // One second of 1 kHz at the end: the loudest band is the one around 1 kHz, in the
        // last second's frames only, and nothing is below the floor (max − 8) / 4 scaled.
        let tone: Vec<f32> = (0..16_000).map(|n| 0.3 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin()).collect();
        let m = f.compute(&tone);
        let at = |mel: usize, t: usize| m[mel * TURN_FRAMES + t];
        let loudest = (0..N_MELS).max_by(|&a, &b| at(a, TURN_FRAMES - 50).total_cmp(&at(b, TURN_FRAMES - 50))).expect("mels");
        let centre_hz = mel_to_hz(hz_to_mel(8000.0) * (loudest + 1) as f64 / (N_MELS + 1) as f64);
        assert!((900.0..1100.0).contains(&centre_hz), "loudest band {loudest} at {centre_hz} Hz");
        assert!(at(loudest, TURN_FRAMES - 50) > at(loudest, 100) + 1.0);
        let (lo, hi) = m.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!((hi - lo - 2.0).abs() < 1e-4, "range {lo}..{hi}: max − 8 in log10, / 4");
    }

    #[test]
    fn non_finite_samples_count_as_silence() {
        let f = TurnFeatures::new();
        let mut audio = vec![0.1f32; 1000];
        audio[10] = f32::NAN;
        audio[20] = f32::INFINITY;
        assert!(f.compute(&audio).iter().all(|v| v.is_finite()));
    }
}
