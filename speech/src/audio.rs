//! Audio devices through cpal (ALSA on Linux).

use cpal::traits::{DeviceTrait, HostTrait};

use crate::{Error, Result};

/// Which way a device carries sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// The device named `name` (as `hiwar doctor` lists it; empty for the default) with that
/// name, and its default stream configuration.
pub fn open_device(name: &str, direction: Direction) -> Result<(cpal::Device, String, cpal::SupportedStreamConfig)> {
    let host = cpal::default_host();
    let what = if direction == Direction::Input { "input" } else { "output" };
    let dev = if name.is_empty() {
        match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(|| Error::Audio(format!("no default {what} device")))?
    } else {
        match direction {
            Direction::Input => host.input_devices(),
            Direction::Output => host.output_devices(),
        }
        .map_err(|e| Error::Audio(e.to_string()))?
        .find(|d| d.description().is_ok_and(|desc| desc.name() == name))
        .ok_or_else(|| Error::Audio(format!("{what} device `{name}` not found")))?
    };
    let label = describe(&dev);
    let config = match direction {
        Direction::Input => dev.default_input_config(),
        Direction::Output => dev.default_output_config(),
    }
    .map_err(|e| Error::Audio(format!("{label}: {e}")))?;
    Ok((dev, label, config))
}

/// What the audio host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDevices {
    pub host: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The default input device, if one exists and can be opened; else why not.
    pub default_input: Result<String, String>,
    /// The default output device, if one exists and can be opened; else why not.
    pub default_output: Result<String, String>,
}

fn describe(device: &cpal::Device) -> String {
    device.description().map_or_else(|_| "(unnamed)".to_string(), |d| d.name().to_string())
}

/// Lists the default host's input and output devices. Never panics: a host without devices
/// gives empty lists.
pub fn list_devices() -> AudioDevices {
    let host = cpal::default_host();
    AudioDevices {
        host: host.id().name().to_string(),
        inputs: host.input_devices().map(|it| it.map(|d| describe(&d)).collect()).unwrap_or_default(),
        outputs: host.output_devices().map(|it| it.map(|d| describe(&d)).collect()).unwrap_or_default(),
        default_input: usable(host.default_input_device(), |d| d.default_input_config()),
        default_output: usable(host.default_output_device(), |d| d.default_output_config()),
    }
}

/// A device counts only if it opens: cpal names a "default" device even on a machine whose
/// ALSA has no card at all, and only asking for its configuration finds that out.
fn usable(device: Option<cpal::Device>, config: impl Fn(&cpal::Device) -> Result<cpal::SupportedStreamConfig, cpal::Error>) -> Result<String, String> {
    let device = device.ok_or_else(|| "no default device".to_string())?;
    match config(&device) {
        Ok(c) => Ok(format!("{} ({})", describe(&device), describe_config(&c))),
        Err(e) => Err(format!("the default device cannot be opened: {e}")),
    }
}

fn describe_config(c: &cpal::SupportedStreamConfig) -> String {
    format!("{} Hz, {} ch, {:?}", c.sample_rate(), c.channels(), c.sample_format())
}

/// Replaces samples that are not finite numbers — NaN becomes silence, ±infinity full scale —
/// and returns how many there were. A damaged file or a broken driver can deliver them, and
/// one NaN would otherwise poison a whole resampling block or the VAD's recurrent state.
pub fn replace_non_finite(samples: &mut [f32]) -> usize {
    let mut replaced = 0;
    for s in samples.iter_mut().filter(|s| !s.is_finite()) {
        *s = if s.is_nan() { 0.0 } else { s.signum() };
        replaced += 1;
    }
    replaced
}

/// Pink noise (Paul Kellet's filter over seeded white noise) added at `snr_db` below the
/// speech's active level ([`active_level`]; 16 kHz): the benchmark's noisy conditions, and
/// the tests that pin what it found in them.
pub fn with_noise(samples: &[f32], snr_db: f32, seed: u64) -> Vec<f32> {
    let level = active_level(samples, 16_000);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut white = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut b = [0.0f64; 7];
    let mut pink: Vec<f64> = (0..samples.len())
        .map(|_| {
            let w = white();
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let out = b.iter().sum::<f64>() + w * 0.5362;
            b[6] = w * 0.115926;
            out
        })
        .collect();
    let rms = (pink.iter().map(|x| x * x).sum::<f64>() / pink.len().max(1) as f64).sqrt().max(1e-12);
    let gain = level / 10f64.powf(f64::from(snr_db) / 20.0) / rms;
    for p in &mut pink {
        *p *= gain;
    }
    samples.iter().zip(&pink).map(|(&s, &n)| (f64::from(s) + n).clamp(-1.0, 1.0) as f32).collect()
}

/// The active level of speech: the RMS (linear, full scale 1.0) over its 20 ms frames that lie
/// within 30 dB of the loudest, so pauses and a quiet tail do not pull it down; 0 for silence.
pub fn active_level(samples: &[f32], sample_rate: u32) -> f64 {
    let n = (sample_rate as usize / 50).max(1);
    let frames: Vec<f64> = samples.chunks(n).map(|f| f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len() as f64).collect();
    let loudest = frames.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = frames.into_iter().filter(|&e| e > loudest * 1e-3).collect();
    (active.iter().sum::<f64>() / active.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_active_level_leaves_the_pauses_out() {
        let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let level = super::active_level(&tone, 16_000);
        assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.01, "{level}");
        let mut paused = tone.clone();
        paused.extend(vec![0.0; 32_000]);
        assert!((super::active_level(&paused, 16_000) - level).abs() < 1e-4, "two seconds of silence do not lower it");
        assert_eq!(super::active_level(&[0.0; 640], 16_000), 0.0);
        assert_eq!(super::active_level(&[], 16_000), 0.0);
    }

    #[test]
    fn non_finite_samples_become_silence_or_full_scale() {
        let mut s = [0.5, f32::NAN, f32::INFINITY, -0.25, f32::NEG_INFINITY];
        assert_eq!(super::replace_non_finite(&mut s), 3);
        assert_eq!(s, [0.5, 0.0, 1.0, -0.25, -1.0]);
        assert_eq!(super::replace_non_finite(&mut s), 0);
    }
}
