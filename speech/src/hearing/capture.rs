//! Microphone capture through cpal. The callback only converts to mono f32 and copies into a
//! lock-free ring: no allocation, no lock, no logging. A full ring drops the buffer and counts
//! it; a device error or silence from the device marks the capture lost so the hearing thread
//! can reopen it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::{Error, Result};

/// Ring capacity: two seconds at the device rate.
const RING_SECONDS: u32 = 2;
/// A running device that delivers nothing for this long is treated as lost.
const STALL: Duration = Duration::from_secs(3);

/// Counters the callback updates (atomics only).
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Samples (mono frames) dropped because the ring was full.
    pub dropped: AtomicU64,
    /// Mono frames delivered.
    pub frames: AtomicU64,
    /// Set by the error callback when the device goes away.
    pub lost: AtomicBool,
}

/// An open input stream and the consumer end of its ring. Not `Send` (cpal streams stay on
/// the thread that made them): open it on the hearing thread.
pub struct Capture {
    _stream: cpal::Stream,
    ring: rtrb::Consumer<f32>,
    rate: u32,
    device: String,
    stats: Arc<CaptureStats>,
    last_data: Instant,
    last_frames: u64,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("device", &self.device).field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens `device` (by the name `hiwar doctor` lists; empty for the default) at its native
    /// rate and format.
    pub fn open(device: &str) -> Result<Capture> {
        let (dev, name, supported) = crate::audio::open_device(device, crate::audio::Direction::Input)?;
        let format = supported.sample_format();
        let config: cpal::StreamConfig = supported.into();
        let rate = config.sample_rate;
        let channels = usize::from(config.channels.max(1));
        let (producer, ring) = rtrb::RingBuffer::new((rate * RING_SECONDS) as usize);
        let stats = Arc::new(CaptureStats::default());
        let stream = match format {
            SampleFormat::F32 => build::<f32>(&dev, &config, channels, producer, &stats),
            SampleFormat::I16 => build::<i16>(&dev, &config, channels, producer, &stats),
            SampleFormat::U16 => build::<u16>(&dev, &config, channels, producer, &stats),
            SampleFormat::I32 => build::<i32>(&dev, &config, channels, producer, &stats),
            SampleFormat::U8 => build::<u8>(&dev, &config, channels, producer, &stats),
            SampleFormat::F64 => build::<f64>(&dev, &config, channels, producer, &stats),
            other => return Err(Error::Audio(format!("{name}: sample format {other} is not supported"))),
        }
        .map_err(|e| Error::Audio(format!("{name}: {e}")))?;
        stream.play().map_err(|e| Error::Audio(format!("{name}: {e}")))?;
        Ok(Capture { _stream: stream, ring, rate, device: name, stats, last_data: Instant::now(), last_frames: 0 })
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Moves what the callback has captured into `out` (appending); returns how many samples.
    pub fn read(&mut self, out: &mut Vec<f32>) -> usize {
        let n = self.ring.slots();
        if n == 0 {
            return 0;
        }
        if let Ok(chunk) = self.ring.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            chunk.commit_all();
        }
        n
    }

    /// Whether the device is gone: an error from cpal, or no data for a few seconds.
    pub fn is_lost(&mut self) -> bool {
        let frames = self.stats.frames.load(Ordering::Relaxed);
        if frames != self.last_frames {
            self.last_frames = frames;
            self.last_data = Instant::now();
        }
        self.stats.lost.load(Ordering::Relaxed) || self.last_data.elapsed() > STALL
    }
}

/// The input callback's work: interleaved frames → mono f32 → ring. Runs on the real-time
/// audio thread, so it must not allocate, lock or log (a test proves it does not allocate).
fn deliver<T>(data: &[T], channels: usize, producer: &mut rtrb::Producer<f32>, stats: &CaptureStats)
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let frames = data.len() / channels;
    match producer.write_chunk_uninit(frames) {
        Ok(chunk) => {
            let mono = data.chunks_exact(channels).map(|frame| frame.iter().map(|s| <f32 as FromSample<T>>::from_sample_(*s)).sum::<f32>() / channels as f32);
            chunk.fill_from_iter(mono);
        }
        Err(_) => {
            stats.dropped.fetch_add(frames as u64, Ordering::Relaxed);
        }
    }
    stats.frames.fetch_add(frames as u64, Ordering::Relaxed);
}

fn build<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    mut producer: rtrb::Producer<f32>,
    stats: &Arc<CaptureStats>,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let data_stats = Arc::clone(stats);
    let error_stats = Arc::clone(stats);
    dev.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| deliver(data, channels, &mut producer, &data_stats),
        move |err| {
            if matches!(err.kind(), cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable) {
                error_stats.lost.store(true, Ordering::Relaxed);
            }
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_alloc::watched;

    #[test]
    fn the_callback_neither_allocates_nor_frees_and_counts_overruns() {
        let (mut producer, mut consumer) = rtrb::RingBuffer::<f32>::new(1000);
        let stats = CaptureStats::default();
        let stereo_i16: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { 16_384 } else { -16_384 / 2 }).collect();
        let mono_f32: Vec<f32> = vec![0.25; 480];
        let allocations = watched(|| {
            deliver(&stereo_i16, 2, &mut producer, &stats); // 480 frames
            deliver(&mono_f32, 1, &mut producer, &stats); // 480 more: 960 of 1000
            deliver(&mono_f32, 1, &mut producer, &stats); // no room: dropped, counted
        });
        assert_eq!(allocations, 0, "the audio callback allocated or freed");
        assert_eq!(stats.frames.load(Ordering::Relaxed), 1440);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 480);
        let first = consumer.pop().expect("a sample");
        assert!((first - 0.125).abs() < 1e-3, "(0.5 + -0.25) / 2 mixed to mono: {first}");
        assert_eq!(consumer.slots(), 959);
    }
}
