//! Lip-sync from the audio alone, for speech that arrives without phoneme timing (a voice
//! with no durations, or `hiwar say --audio FILE.wav`).
//!
//! Every 10 ms: loudness against the recording's own range opens the jaw; the share of
//! high-frequency energy (first-difference energy over energy, a cheap spectral centroid)
//! tells fricatives (teeth together, lips spread) from vowels, and bright vowels (spread)
//! from dark ones (rounded). The track is smoothed without delay, since the whole chunk is
//! known before it plays.

use crate::SamplePos;
use crate::lipsync::Mouth;
use crate::viseme::Viseme;

/// Analysis step, seconds.
const HOP: f64 = 0.010;

/// A mouth track computed from audio.
#[derive(Debug, Clone)]
pub struct AudioLipSync {
    sample_rate: u32,
    hop: usize,
    frames: Vec<Mouth>,
}

impl AudioLipSync {
    /// Analyses mono `samples` at `sample_rate`.
    pub fn analyze(samples: &[f32], sample_rate: u32) -> AudioLipSync {
        let sample_rate = sample_rate.max(1);
        let hop = ((f64::from(sample_rate) * HOP) as usize).max(1);
        let window = 2 * hop;
        let n = samples.len().div_ceil(hop);
        let mut level_db = Vec::with_capacity(n);
        let mut brightness = Vec::with_capacity(n);
        for f in 0..n {
            let centre = f * hop + hop / 2;
            let lo = centre.saturating_sub(window / 2);
            let hi = (centre + window / 2).min(samples.len());
            let w = &samples[lo..hi];
            let energy: f64 = w.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / w.len().max(1) as f64;
            let diff: f64 = w.windows(2).map(|p| f64::from(p[1] - p[0]).powi(2)).sum::<f64>() / w.len().max(1) as f64;
            level_db.push(10.0 * (energy + 1e-12).log10());
            // 0 for a pure low tone, about 2 for white noise.
            brightness.push(if energy > 1e-10 { diff / energy } else { 0.0 });
        }
        // The recording's own range: its loud speech and its background.
        let mut sorted: Vec<f64> = level_db.iter().copied().filter(|d| d.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(-120.0);
        let top = pct(0.95);
        let floor = pct(0.10).max(top - 45.0).min(top - 20.0);
        let mut frames: Vec<Mouth> = level_db
            .iter()
            .zip(&brightness)
            .map(|(&db, &bright)| {
                let level = ((db - floor) / (top - floor)).clamp(0.0, 1.0) as f32;
                // Below a quarter of the range the mouth is shut: the closures of stops and
                // the pauses between words must show.
                let open = ((level - 0.25) / 0.75).clamp(0.0, 1.0).powf(0.7);
                if open <= 0.0 {
                    return Mouth::REST;
                }
                let bright = bright as f32;
                let viseme = if bright > 0.9 {
                    Viseme::SS
                } else if bright > 0.35 {
                    Viseme::E
                } else if bright > 0.12 {
                    Viseme::Aa
                } else {
                    Viseme::O
                };
                Mouth::of(viseme, open)
            })
            .collect();
        smooth(&mut frames);
        AudioLipSync { sample_rate, hop, frames }
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The analysed audio's length in samples (to the end of its last frame).
    pub fn len_samples(&self) -> u64 {
        (self.frames.len() * self.hop) as u64
    }

    /// The mouth at sample `pos` of the analysed audio (rest outside it).
    pub fn sample(&self, pos: SamplePos) -> Mouth {
        // Frames describe their centre; interpolate between neighbours.
        let x = pos as f64 / self.hop as f64 - 0.5;
        if x < -1.0 || self.frames.is_empty() {
            return Mouth::REST;
        }
        let i = x.floor();
        let k = (x - i) as f32;
        let at = |j: f64| if j < 0.0 { Mouth::REST } else { self.frames.get(j as usize).copied().unwrap_or(Mouth::REST) };
        at(i).lerp(&at(i + 1.0), k)
    }
}

/// A symmetric three-tap smoothing (no delay), leaving full closures shut.
fn smooth(frames: &mut [Mouth]) {
    let original = frames.to_vec();
    for i in 0..frames.len() {
        if original[i] == Mouth::REST {
            continue;
        }
        let prev = if i > 0 { original[i - 1] } else { Mouth::REST };
        let next = original.get(i + 1).copied().unwrap_or(Mouth::REST);
        frames[i] = prev.lerp(&next, 0.5).lerp(&original[i], 0.5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn tone(seconds: f64, hz: f64, amp: f32) -> Vec<f32> {
        (0..(seconds * f64::from(RATE)) as usize).map(|i| amp * (std::f64::consts::TAU * hz * i as f64 / f64::from(RATE)).sin() as f32).collect()
    }

    fn noise(seconds: f64, amp: f32) -> Vec<f32> {
        let mut s = 0x1234_5678_u32;
        (0..(seconds * f64::from(RATE)) as usize)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                amp * (s as f32 / u32::MAX as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn loud_voicing_opens_and_silence_closes() {
        let mut audio = vec![0.0; RATE as usize / 2];
        audio.extend(tone(0.4, 300.0, 0.5));
        audio.extend(vec![0.0; RATE as usize / 5]);
        audio.extend(noise(0.2, 0.2));
        audio.extend(vec![0.0; RATE as usize / 2]);
        let a = AudioLipSync::analyze(&audio, RATE);
        let at = |s: f64| a.sample((s * f64::from(RATE)) as u64);
        assert!(at(0.25).jaw < 0.01, "silence {:?}", at(0.25));
        assert!(at(0.7).jaw > 0.3, "vowel {:?}", at(0.7));
        assert!(at(1.0).jaw < 0.01, "gap {:?}", at(1.0));
        assert_eq!(at(1.2).dominant(), Viseme::SS, "hiss {:?}", at(1.2));
        assert_eq!(at(10.0), Mouth::REST);
    }

    #[test]
    fn no_nan_on_silence_or_empty_audio() {
        for audio in [vec![], vec![0.0; 1000], vec![1.0; 1000]] {
            let a = AudioLipSync::analyze(&audio, RATE);
            for s in (0..2000).step_by(37) {
                let m = a.sample(s);
                assert!(m.jaw.is_finite() && (0.0..=1.0).contains(&m.jaw), "{m:?}");
                assert!(m.visemes.iter().all(|w| w.is_finite() && (0.0..=1.0).contains(w)));
            }
        }
    }
}
