//! Mono resampling to whisper's 16 kHz with rubato's FFT resampler (band-limited, not sample
//! dropping), streaming: push any number of samples, take what is ready.

use rubato::{FftFixedIn, Resampler as _};

use crate::{Error, Result};

pub const TARGET_RATE: u32 = 16_000;
const CHUNK: usize = 1024;

pub struct Resampler {
    inner: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    out: Vec<f32>,
    /// Output samples still to drop to cancel the filter's delay.
    skip: usize,
    rate: u32,
    target: u32,
    /// Samples taken in and given out, to end the stream at exactly the right length.
    taken: u64,
    given: u64,
    /// Input samples that were not finite numbers (replaced: NaN by silence, ±inf by full scale).
    replaced: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler").field("passthrough", &self.inner.is_none()).finish_non_exhaustive()
    }
}

impl Resampler {
    /// A resampler from `rate` to 16 kHz (a pass-through when `rate` is already 16 kHz).
    pub fn new(rate: u32) -> Result<Resampler> {
        Resampler::between(rate, TARGET_RATE)
    }

    /// A resampler from `rate` to `target` (a pass-through when they are equal).
    pub fn between(rate: u32, target: u32) -> Result<Resampler> {
        if rate == 0 || target == 0 {
            return Err(Error::Audio("sample rate 0".into()));
        }
        let inner = if rate == target {
            None
        } else {
            Some(
                FftFixedIn::new(rate as usize, target as usize, CHUNK, 2, 1)
                    .map_err(|e| Error::Audio(format!("cannot resample {rate} Hz to {target} Hz: {e}")))?,
            )
        };
        let skip = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Resampler { inner, pending: Vec::with_capacity(CHUNK * 2), out: Vec::new(), skip, rate, target, taken: 0, given: 0, replaced: 0 })
    }

    /// Input samples so far that were not finite numbers and were replaced (NaN by silence,
    /// ±infinity by full scale): a source that delivers them is damaged, and the caller says so.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Feeds samples; returns the 16 kHz samples that are ready. Samples that are not finite
    /// numbers are replaced on the way in (see [`Resampler::replaced`]).
    pub fn push(&mut self, samples: &[f32]) -> Result<&[f32]> {
        self.out.clear();
        self.taken += samples.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            self.out.extend_from_slice(samples);
            self.replaced += crate::audio::replace_non_finite(&mut self.out) as u64;
            return Ok(&self.out);
        };
        let from = self.pending.len();
        self.pending.extend_from_slice(samples);
        self.replaced += crate::audio::replace_non_finite(&mut self.pending[from..]) as u64;
        let mut used = 0;
        while self.pending.len() - used >= inner.input_frames_next() {
            let need = inner.input_frames_next();
            let block = inner.process(&[&self.pending[used..used + need]], None).map_err(|e| Error::Audio(format!("resampler: {e}")))?;
            used += need;
            append_skipping(&mut self.out, &block[0], &mut self.skip);
        }
        self.pending.drain(..used);
        self.given += self.out.len() as u64;
        Ok(&self.out)
    }

    /// Flushes what is still buffered (end of a file).
    pub fn finish(&mut self) -> Result<&[f32]> {
        self.out.clear();
        let Some(inner) = self.inner.as_mut() else {
            return Ok(&self.out);
        };
        // Pad what is pending to a whole block, then push one block of silence through to
        // flush the filter's delay; the output is cut to the exact length below.
        let need = inner.input_frames_next();
        let mut pending = std::mem::take(&mut self.pending);
        pending.resize(need, 0.0);
        for block in [pending, vec![0.0; need]] {
            let out = inner.process(&[block.as_slice()], None).map_err(|e| Error::Audio(format!("resampler: {e}")))?;
            append_skipping(&mut self.out, &out[0], &mut self.skip);
        }
        // The last block was padded with zeros: end at the input's length, converted.
        let total = self.taken * u64::from(self.target) / u64::from(self.rate);
        let keep = total.saturating_sub(self.given).min(self.out.len() as u64) as usize;
        self.out.truncate(keep);
        self.given += keep as u64;
        Ok(&self.out)
    }
}

fn append_skipping(out: &mut Vec<f32>, block: &[f32], skip: &mut usize) {
    let drop = (*skip).min(block.len());
    *skip -= drop;
    out.extend_from_slice(&block[drop..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize).map(|i| (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 0.5).collect()
    }

    fn resample_all(rate: u32, input: &[f32], block: usize) -> Vec<f32> {
        let mut r = Resampler::new(rate).expect("resampler");
        let mut out = Vec::new();
        for chunk in input.chunks(block) {
            out.extend_from_slice(r.push(chunk).expect("push"));
        }
        out.extend_from_slice(r.finish().expect("finish"));
        out
    }

    #[test]
    fn length_and_tone_survive_any_block_size() {
        for (rate, block) in [(48_000, 480), (44_100, 1000), (8_000, 77), (22_050, 4096)] {
            let input = tone(rate, 440.0, 1.0);
            let out = resample_all(rate, &input, block);
            let expected = 16_000usize;
            assert!(out.len().abs_diff(expected) <= 16, "{rate} Hz: {} samples", out.len());
            // The 440 Hz tone is still there, at the same level: compare with a 16 kHz tone.
            let reference = tone(16_000, 440.0, 1.0);
            let corr: f32 = out[2000..14000].iter().zip(&reference[2000..14000]).map(|(a, b)| a * b).sum::<f32>()
                / reference[2000..14000].iter().map(|b| b * b).sum::<f32>();
            assert!((corr - 1.0).abs() < 0.05, "{rate} Hz: correlation {corr}");
        }
    }

    #[test]
    fn content_above_8khz_is_filtered_not_aliased() {
        // 12 kHz at 48 kHz would alias to 4 kHz if samples were merely dropped.
        let out = resample_all(48_000, &tone(48_000, 12_000.0, 0.5), 1024);
        let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
        assert!(rms < 0.01, "rms {rms}");
    }

    #[test]
    fn input_ending_on_a_block_boundary_flushes_cleanly() {
        let mut r = Resampler::new(22_050).expect("resampler");
        let block = r.inner.as_ref().map(|i| i.input_frames_next()).expect("fft");
        let mut out = r.push(&tone(22_050, 300.0, 1.0)[..block * 4]).expect("push").to_vec();
        out.extend_from_slice(r.finish().expect("finish with nothing pending"));
        let expected = (block * 4) as u64 * 16_000 / 22_050;
        assert_eq!(out.len() as u64, expected);
    }

    #[test]
    fn non_finite_input_is_replaced_at_any_rate_and_the_rest_survives() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000] {
            let mut input = tone(rate, 440.0, 1.0);
            input[100] = f32::NAN;
            input[2_000] = f32::INFINITY;
            input[3_000] = f32::NEG_INFINITY;
            let mut r = Resampler::new(rate).expect("resampler");
            let mut out = Vec::new();
            for chunk in input.chunks(777) {
                out.extend_from_slice(r.push(chunk).expect("push"));
            }
            out.extend_from_slice(r.finish().expect("finish"));
            assert_eq!(r.replaced(), 3, "{rate} Hz");
            assert!(out.iter().all(|s| s.is_finite()), "{rate} Hz: non-finite output");
            assert!(out.len().abs_diff(16_000) <= 16, "{rate} Hz: {} samples", out.len());
            let rms = (out[4_000..12_000].iter().map(|s| s * s).sum::<f32>() / 8_000.0).sqrt();
            assert!((rms - 0.354).abs() < 0.03, "{rate} Hz: the tone is kept (rms {rms})");
        }
    }

    #[test]
    fn sixteen_khz_passes_through_unchanged() {
        let input = tone(16_000, 300.0, 0.1);
        assert_eq!(resample_all(16_000, &input, 100), input);
    }
}
