//! Playback through cpal. The output callback pulls from a lock-free ring, fades out on stop,
//! and publishes the played-sample clock: how many samples the listener has heard, from the
//! samples handed to the device minus the device's own latency. That clock is the only time
//! the face, the captions and embedders may use.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::hearing::{EchoReference, EchoTap, Resampler, echo_link};
use crate::{Error, Result};

/// Fade applied when playback is stopped (barge-in), in milliseconds.
const FADE_MS: u64 = 8;
/// The gain of ducked playback (−18 dB: the answer steps back while a voice over it is judged).
pub const DUCK_GAIN: f32 = 0.125;
/// How fast the gain moves towards its target, in milliseconds (a click-free ramp).
const DUCK_RAMP_MS: u64 = 15;

/// What the output callback publishes (atomics only).
#[derive(Debug, Default)]
pub struct PlayClock {
    /// Frames handed to the device since the stream started.
    handed: AtomicU64,
    /// The device's latency from hand-over to sound, in frames (from cpal's timestamps).
    latency: AtomicU64,
    rate: AtomicU64,
    /// The highest position reported so far: the device's latency estimate jitters by a few
    /// frames from callback to callback, and the clock must never run backwards.
    reported: AtomicU64,
    /// Frames of queued audio handed over (silence filled in when the queue is empty is not
    /// counted): how much speech the device was given, e.g. after a stop.
    audible: AtomicU64,
    /// Frames in the device's last callback buffer.
    buffer: AtomicU64,
    /// Playback ducked (see [`DUCK_GAIN`]).
    ducked: AtomicBool,
    /// Stops that dropped what was queued (the callback counts them; the player then queues
    /// from the device's position, not after the audio that was dropped).
    dropped: AtomicU64,
}

impl PlayClock {
    /// The frame being heard now: frames handed over minus those still in the device.
    /// Monotonic.
    pub fn position(&self) -> u64 {
        let now = self.handed.load(Ordering::Acquire).saturating_sub(self.latency.load(Ordering::Relaxed));
        self.reported.fetch_max(now, Ordering::AcqRel).max(now)
    }

    pub fn latency_frames(&self) -> u64 {
        self.latency.load(Ordering::Relaxed)
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate.load(Ordering::Relaxed) as u32
    }

    /// Ducks playback (`true`) or brings it back to full level; the callback ramps the gain.
    pub fn duck(&self, on: bool) {
        self.ducked.store(on, Ordering::Release);
    }

    pub fn is_ducked(&self) -> bool {
        self.ducked.load(Ordering::Acquire)
    }

    /// Frames of queued audio handed to the device so far.
    pub fn audible_frames(&self) -> u64 {
        self.audible.load(Ordering::Acquire)
    }

    /// Frames in the device's last callback.
    pub fn buffer_frames(&self) -> u64 {
        self.buffer.load(Ordering::Relaxed)
    }
}

/// Frames the stop fade lasts at `rate`.
pub fn fade_frames(rate: u32) -> u64 {
    (u64::from(rate) * FADE_MS / 1000).max(1)
}

/// Stops a player from another thread (barge-in); see [`Player::stop`].
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

/// An open output device. Audio is queued at any rate and resampled to the device's.
pub struct Player {
    ring: rtrb::Producer<f32>,
    clock: Arc<PlayClock>,
    /// Frames queued in all (at the device rate).
    queued: u64,
    /// The clock's count of dropped queues when `queued` was last brought up to date.
    drops_seen: u64,
    stopping: Arc<AtomicBool>,
    rate: u32,
    device: String,
    echo: EchoReference,
    _thread: StreamThread,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player").field("device", &self.device).field("rate", &self.rate).finish_non_exhaustive()
    }
}

/// The thread that owns the (not `Send`) cpal stream; dropping it stops the stream.
struct StreamThread {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Player {
    /// Opens `device` (empty: the default output) at its native rate and format.
    pub fn open(device: &str) -> Result<Player> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let clock = Arc::new(PlayClock::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let (c, s, name) = (Arc::clone(&clock), Arc::clone(&stopping), device.to_string());
        let handle = std::thread::Builder::new()
            .name("player".into())
            .spawn(move || match build(&name, c, s) {
                Ok((stream, producer, rate, device, echo)) => {
                    let _ = ready_tx.send(Ok((producer, rate, device, echo)));
                    // Hold the stream until the player is dropped.
                    let _ = stop_rx.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Audio(format!("cannot start the player thread: {e}")))?;
        let thread = StreamThread { stop: Some(stop_tx), handle: Some(handle) };
        let (ring, rate, device, echo) = ready_rx.recv().map_err(|_| Error::Audio("the player thread died".into()))??;
        Ok(Player { ring, clock, queued: 0, drops_seen: 0, stopping, rate, device, echo, _thread: thread })
    }

    pub fn clock(&self) -> Arc<PlayClock> {
        Arc::clone(&self.clock)
    }

    /// What this player hands to the device, for the echo canceller (see [`crate::hearing::Canceller`]).
    pub fn echo_reference(&self) -> EchoReference {
        self.echo.clone()
    }

    pub fn stopper(&self) -> Stopper {
        Stopper { stopping: Arc::clone(&self.stopping) }
    }

    /// Frames queued in all, at the device rate (where the queued audio ends on the clock).
    pub fn queued_until(&self) -> u64 {
        self.queued
    }

    /// Where audio queued now starts on the clock: after what is still queued, or where the
    /// device is when the queue ran dry or a stop dropped it. (Counting on from the dropped
    /// audio's end put the next answer's clock — its lips, its "heard" time, the words an
    /// interruption keeps — as far in the future as the audio a barge-in had dropped.)
    fn next_start(&mut self) -> u64 {
        let drops = self.clock.dropped.load(Ordering::Acquire);
        if drops != self.drops_seen {
            self.drops_seen = drops;
            self.queued = 0;
        }
        self.queued.max(self.clock.handed.load(Ordering::Acquire))
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// Queues mono `samples` at `rate`, waiting for room in the ring as playback proceeds.
    /// Returns the device-rate frame at which this audio starts playing.
    pub fn queue(&mut self, samples: &[f32], rate: u32) -> Result<u64> {
        self.queue_announced(samples, rate, |_, _| {}, || true)
    }

    /// Like [`Player::queue`], but gives up (returning where it starts, having queued what it
    /// could) as soon as `keep()` turns false while it waits for room: a cancelled answer
    /// stops being queued. And it tells `announce` where this audio will start and end on the
    /// clock (device-rate frames) before it waits for room. The ring holds two seconds:
    /// a longer piece is still being queued while its start plays, so whoever shows it (the
    /// face's lips, captions, the "speaking" state) must hear of it first, not when the last
    /// of it is in the ring (3.4 s into a 5.4 s sentence).
    pub fn queue_announced(&mut self, samples: &[f32], rate: u32, announce: impl FnOnce(u64, u64), keep: impl Fn() -> bool) -> Result<u64> {
        let mut resampler = Resampler::between(rate, self.rate)?;
        let mut converted = resampler.push(samples)?.to_vec();
        converted.extend_from_slice(resampler.finish()?);
        let start = self.next_start();
        announce(start, start + converted.len() as u64);
        self.stopping.store(false, Ordering::Release);
        let mut rest = converted.as_slice();
        while !rest.is_empty() {
            if !keep() {
                break;
            }
            let n = self.ring.slots().min(rest.len());
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if let Ok(chunk) = self.ring.write_chunk_uninit(n) {
                chunk.fill_from_iter(rest[..n].iter().copied());
            }
            rest = &rest[n..];
        }
        self.queued = start + (converted.len() - rest.len()) as u64;
        Ok(start)
    }

    /// Blocks until everything queued has been heard (device latency included).
    pub fn wait_until_heard(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.clock.position() < self.queued {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Stops at once (barge-in): the callback fades out over a few milliseconds and drops
    /// what is still queued.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.clock.duck(false);
    }
}

type Built = (cpal::Stream, rtrb::Producer<f32>, u32, String, EchoReference);

/// The stop fade's progress and the ducking gain, owned by the callback.
struct Fade {
    frames: u64,
    left: u64,
    /// The gain now, and the step per frame that ramps it towards its target.
    gain: f32,
    step: f32,
}

impl Fade {
    fn new(rate: u32) -> Fade {
        let ramp = (u64::from(rate) * DUCK_RAMP_MS / 1000).max(1);
        Fade { frames: fade_frames(rate), left: 0, gain: 1.0, step: (1.0 - DUCK_GAIN) / ramp as f32 }
    }
}

/// The output callback's work: ring → device buffer (mono to every channel), silence when
/// the ring is empty, the fade and drop on stop, the frames-handed counter, and the echo tap
/// (exactly what is handed over, for the canceller's reference). Runs on the
/// real-time audio thread: no allocation, no lock, no logging (a test proves the first).
fn render<T: SizedSample + FromSample<f32>>(
    data: &mut [T],
    channels: usize,
    ring: &mut rtrb::Consumer<f32>,
    fade: &mut Fade,
    stopping: &AtomicBool,
    clock: &PlayClock,
    tap: &mut EchoTap,
) {
    let frames = data.len() / channels;
    if stopping.swap(false, Ordering::AcqRel) {
        fade.left = fade.frames;
    }
    let target = if clock.ducked.load(Ordering::Acquire) { DUCK_GAIN } else { 1.0 };
    let mut audible = 0u64;
    for frame in data.chunks_exact_mut(channels) {
        let popped = ring.pop();
        audible += u64::from(popped.is_ok());
        let mut s = popped.unwrap_or(0.0);
        if fade.gain != target {
            fade.gain = if fade.gain < target { (fade.gain + fade.step).min(target) } else { (fade.gain - fade.step).max(target) };
        }
        s *= fade.gain;
        if fade.left > 0 {
            fade.left -= 1;
            s *= fade.left as f32 / fade.frames as f32;
            if fade.left == 0 {
                // Faded out: drop the rest of what was queued.
                let n = ring.slots();
                if let Ok(chunk) = ring.read_chunk(n) {
                    chunk.commit_all();
                }
                clock.dropped.fetch_add(1, Ordering::Release);
            }
        }
        tap.push(s);
        let v = T::from_sample_(s);
        frame.iter_mut().for_each(|out| *out = v);
    }
    clock.audible.fetch_add(audible, Ordering::Release);
    clock.buffer.store(frames as u64, Ordering::Relaxed);
    clock.handed.fetch_add(frames as u64, Ordering::Release);
}

fn build(device: &str, clock: Arc<PlayClock>, stopping: Arc<AtomicBool>) -> Result<Built> {
    let (dev, name, supported) = crate::audio::open_device(device, crate::audio::Direction::Output)?;
    let format = supported.sample_format();
    let config: cpal::StreamConfig = supported.into();
    let rate = config.sample_rate;
    clock.rate.store(u64::from(rate), Ordering::Relaxed);
    // Two seconds of queue: the voice runs ahead of playback by at most this much.
    let (producer, consumer) = rtrb::RingBuffer::new(rate as usize * 2);
    let (tap, echo) = echo_link(rate);
    let stream = match format {
        SampleFormat::F32 => output::<f32>(&dev, &config, consumer, clock, stopping, tap),
        SampleFormat::I16 => output::<i16>(&dev, &config, consumer, clock, stopping, tap),
        SampleFormat::I32 => output::<i32>(&dev, &config, consumer, clock, stopping, tap),
        SampleFormat::U16 => output::<u16>(&dev, &config, consumer, clock, stopping, tap),
        other => return Err(Error::Audio(format!("{name}: sample format {other} is not supported"))),
    }
    .map_err(|e| Error::Audio(format!("{name}: {e}")))?;
    stream.play().map_err(|e| Error::Audio(format!("{name}: {e}")))?;
    Ok((stream, producer, rate, name, echo))
}

fn output<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    mut ring: rtrb::Consumer<f32>,
    clock: Arc<PlayClock>,
    stopping: Arc<AtomicBool>,
    mut tap: EchoTap,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    let rate = f64::from(config.sample_rate);
    let mut fade = Fade::new(config.sample_rate);
    dev.build_output_stream::<T, _, _>(
        *config,
        move |data: &mut [T], info| {
            let ts = info.timestamp();
            let latency = ts.playback.duration_since(ts.callback);
            clock.latency.store((latency.as_secs_f64() * rate) as u64, Ordering::Relaxed);
            render(data, channels, &mut ring, &mut fade, &stopping, &clock, &mut tap);
        },
        move |_err| {},
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_fades_out_within_milliseconds_drops_the_queue_and_does_not_allocate() {
        let (mut producer, mut ring) = rtrb::RingBuffer::<f32>::new(48_000);
        for _ in 0..48_000 {
            let _ = producer.push(0.5);
        }
        let (clock, stopping) = (PlayClock::default(), AtomicBool::new(false));
        let mut fade = Fade::new(48_000);
        let mut buffer = vec![0.0f32; 2 * 480]; // 10 ms of stereo
        let (mut tap, echo) = echo_link(48_000);
        let allocations = crate::test_alloc::watched(|| {
            render(&mut buffer, 2, &mut ring, &mut fade, &stopping, &clock, &mut tap);
            assert!(buffer.iter().all(|s| (*s - 0.5).abs() < 1e-6), "playing at full level");
            stopping.store(true, Ordering::Release); // barge-in
            render(&mut buffer, 2, &mut ring, &mut fade, &stopping, &clock, &mut tap);
        });
        assert_eq!(allocations, 0, "the output callback allocated or freed");
        let left: Vec<f32> = buffer.iter().step_by(2).copied().collect();
        assert!(left.windows(2).all(|w| w[1] <= w[0]), "a monotonic fade");
        let silent_from = left.iter().position(|s| *s == 0.0).expect("silence after the fade");
        assert!(silent_from <= 48_000 * 8 / 1000, "faded in {silent_from} frames");
        assert!(left[silent_from..].iter().all(|s| *s == 0.0));
        assert_eq!(ring.slots(), 0, "what was queued is dropped");
        assert_eq!(clock.handed.load(Ordering::Acquire), 960);
        // The echo tap saw exactly what was handed over, mono: full level, then the fade.
        let mut reference = Vec::new();
        assert_eq!(echo.drain(&mut reference), 960);
        assert!(reference[..480].iter().all(|s| (*s - 0.5).abs() < 1e-6));
        assert_eq!(&reference[480..], &left[..], "the reference is the faded output");
    }

    /// A player at 48 kHz with a ring of `frames` and no device: the test plays it by hand
    /// through `render` with the consumer and the echo tap returned.
    fn player_without_device(frames: usize) -> (Player, rtrb::Consumer<f32>, EchoTap) {
        let (ring, consumer) = rtrb::RingBuffer::<f32>::new(frames);
        let (tap, echo) = echo_link(48_000);
        let player = Player {
            ring,
            clock: Arc::new(PlayClock::default()),
            queued: 0,
            drops_seen: 0,
            stopping: Arc::new(AtomicBool::new(false)),
            rate: 48_000,
            device: "test".into(),
            echo,
            _thread: StreamThread { stop: None, handle: None },
        };
        (player, consumer, tap)
    }

    #[test]
    fn a_piece_longer_than_the_ring_is_announced_before_it_waits_for_room() {
        // A ring of 0.1 s and a piece of 1 s: queueing it waits for the device to play.
        let (mut player, mut consumer, mut tap) = player_without_device(4_800);
        let (clock, stopping) = (Arc::clone(&player.clock), Arc::clone(&player.stopping));
        let (tx, rx) = mpsc::channel();
        let queued = std::thread::spawn(move || {
            let start = player.queue_announced(&vec![0.5; 48_000], 48_000, |start, end| tx.send((start, end)).expect("send"), || true);
            (start.expect("queue"), player.queued_until())
        });
        // Announced while nothing has been played yet: the whole piece's place on the clock.
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).expect("announced before the wait"), (0, 48_000));
        assert_eq!(clock.handed.load(Ordering::Acquire), 0);
        let (mut fade, mut buffer) = (Fade::new(48_000), vec![0.0f32; 480]);
        while !queued.is_finished() {
            render(&mut buffer, 1, &mut consumer, &mut fade, &stopping, &clock, &mut tap);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(queued.join().expect("join"), (0, 48_000));
    }

    #[test]
    fn audio_queued_after_a_stop_starts_where_the_device_is_not_after_what_was_dropped() {
        let (mut player, mut consumer, mut tap) = player_without_device(96_000);
        let clock = Arc::clone(&player.clock);
        let (mut fade, mut buffer) = (Fade::new(48_000), vec![0.0f32; 480]);
        let mut play = |player: &Player| render(&mut buffer, 1, &mut consumer, &mut fade, &player.stopping, &clock, &mut tap);
        // A second of an answer; 10 ms of it played, then a barge-in stops it.
        assert_eq!(player.queue(&vec![0.5; 48_000], 48_000).expect("queue"), 0);
        play(&player);
        player.stopper().stop();
        play(&player);
        assert_eq!(player.clock.dropped.load(Ordering::Acquire), 1);
        // The next answer starts now (frame 960), not after the dropped second (48 000).
        assert_eq!(player.queue(&vec![0.5; 4_800], 48_000).expect("queue"), 960);
        assert_eq!(player.queued_until(), 960 + 4_800);
        // Without a stop, audio is queued after what is still to play.
        play(&player);
        assert_eq!(player.queue(&vec![0.5; 480], 48_000).expect("queue"), 960 + 4_800);
    }

    #[test]
    fn ducking_ramps_the_level_down_and_back_without_a_step() {
        let (mut tx, mut ring) = rtrb::RingBuffer::<f32>::new(48_000);
        for _ in 0..48_000 {
            let _ = tx.push(0.5);
        }
        let clock = PlayClock::default();
        let (stopping, mut fade) = (AtomicBool::new(false), Fade::new(48_000));
        let mut buffer = vec![0.0f32; 480];
        let mut out = Vec::new();
        let (mut tap, _echo) = echo_link(48_000);
        let mut block = |out: &mut Vec<f32>| {
            render(&mut buffer, 1, &mut ring, &mut fade, &stopping, &clock, &mut tap);
            out.extend_from_slice(&buffer);
        };
        block(&mut out);
        clock.duck(true);
        for _ in 0..5 {
            block(&mut out);
        }
        clock.duck(false);
        for _ in 0..5 {
            block(&mut out);
        }
        assert!(out[..480].iter().all(|s| *s == 0.5), "full level before");
        let ducked = out[480 * 4];
        assert!((ducked - 0.5 * DUCK_GAIN).abs() < 1e-6, "ducked to {ducked}");
        assert!(out.windows(2).all(|w| (w[1] - w[0]).abs() < 0.001), "a ramp, not a step");
        assert!((out[out.len() - 1] - 0.5).abs() < 1e-6, "back to full level");
    }
}
