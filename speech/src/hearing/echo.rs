//! Acoustic echo cancellation: what the player hands to the device is the far-end reference of
//! WebRTC's AEC3 (sonora's pure-Rust port), applied to the microphone before the VAD, so the
//! avatar does not hear itself and a person can interrupt it at normal speaker volume.
//!
//! The reference travels from the output callback through a lock-free ring ([`EchoTap`] on
//! the audio thread, [`EchoReference`] on the hearing thread), at the device's rate, exactly
//! as handed over: ducked, faded, silence when nothing plays. The hearing thread resamples it
//! to 16 kHz and feeds it to the canceller before each 10 ms capture frame; AEC3's own delay
//! estimator finds the output → room → input delay (device buffers included).
//!
//! AEC3 runs from sonora-aec3's own parts (its block processor, framing and config), as
//! sonora's `AudioProcessing` runs them at 16 kHz mono, because `AudioProcessing` only takes
//! AEC3's default tuning and hiwar tunes how its suppressor treats a dominant near end
//! ([`aec3_config`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sonora::high_pass_filter::HighPassFilter;
use sonora_aec3::block::Block;
use sonora_aec3::block_framer::BlockFramer;
use sonora_aec3::block_processor::BlockProcessor;
use sonora_aec3::config::EchoCanceller3Config;
use sonora_aec3::frame_blocker::FrameBlocker;

use super::resample::Resampler;
use crate::Result;

/// Samples per 10 ms frame at 16 kHz, AEC3's unit.
pub const FRAME: usize = 160;
/// Seconds of reference the ring holds (the hearing thread drains it every few milliseconds).
const RING_SECONDS: usize = 2;

/// The output callback's end: pushes every sample handed to the device. Never blocks or
/// allocates; when no one reads (no canceller), the ring fills and samples are counted and
/// dropped.
pub struct EchoTap {
    producer: rtrb::Producer<f32>,
    link: Arc<Link>,
}

impl EchoTap {
    /// Called from the audio callback with the mono samples handed over.
    #[inline]
    pub fn push(&mut self, sample: f32) {
        if self.producer.push(sample).is_err() {
            self.link.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct Link {
    consumer: Mutex<rtrb::Consumer<f32>>,
    rate: u32,
    overflow: AtomicU64,
}

/// The reader's end: what the speaker played, for the canceller. Cloned into the hearing
/// config; a restarted hearing picks it up again.
#[derive(Debug, Clone)]
pub struct EchoReference {
    link: Arc<Link>,
}

/// A reference ring for a device at `rate`: the tap for its callback, the reference for hearing.
pub fn echo_link(rate: u32) -> (EchoTap, EchoReference) {
    let (producer, consumer) = rtrb::RingBuffer::new(rate as usize * RING_SECONDS);
    let link = Arc::new(Link { consumer: Mutex::new(consumer), rate, overflow: AtomicU64::new(0) });
    (EchoTap { producer, link: Arc::clone(&link) }, EchoReference { link })
}

impl EchoReference {
    pub fn sample_rate(&self) -> u32 {
        self.link.rate
    }

    /// Appends what was played since the last call to `out`; returns how many samples.
    pub(crate) fn drain(&self, out: &mut Vec<f32>) -> usize {
        let Ok(mut consumer) = self.link.consumer.lock() else { return 0 };
        let n = consumer.slots();
        if let Ok(chunk) = consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            chunk.commit_all();
        }
        n
    }

    /// Drops what is in the ring (stale audio from before the canceller started).
    fn discard(&self) {
        let mut sink = Vec::new();
        self.drain(&mut sink);
    }
}

/// How the canceller is doing, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EchoStats {
    /// Echo return loss enhancement, dB (AEC3's own estimate).
    pub erle_db: Option<f64>,
    /// The delay AEC3 found between the reference and the microphone, ms.
    pub delay_ms: Option<i32>,
    /// Microphone frames that went to AEC3 before their share of the reference (held for
    /// [`HOLD_FRAMES`] and it did not come): each one an underrun of AEC3's render buffer.
    pub underruns: u64,
    /// Reference frames dropped because they ran ahead of the microphone for a second.
    pub dropped: u64,
}

/// AEC3's configuration: WebRTC's defaults, with the suppressor three times as transparent
/// while it judges the near end dominant (its near-end masks' echo-to-near-end thresholds ×3),
/// so more of a person talking over the answer comes through. Chosen by `hiwar bench echo
/// --sweep` (docs/benchmarks.md): the same ERLE and no start on the echo alone, the person
/// found sooner at 0 dB; detecting the near end more readily found more people but started
/// on the echo in the loudest room. The linear filter's output is exported, for
/// [`Canceller::linear_reduction`].
///
/// The delay is AEC3's strongest echo path, not its pre-echo detector's earliest one
/// ([`PRE_ECHO_DETECTION`]), and AEC3 settles on its first only once it is sure of it
/// ([`FIRST_DELAY_WHEN_SURE`]).
pub fn aec3_config() -> EchoCanceller3Config {
    let mut c = EchoCanceller3Config::default();
    nearend_transparency(&mut c, NEAREND_TRANSPARENCY);
    c.filter.export_linear_aec_output = true;
    c.delay.detect_pre_echo = PRE_ECHO_DETECTION;
    if FIRST_DELAY_WHEN_SURE {
        c.delay.delay_selection_thresholds.initial = c.delay.delay_selection_thresholds.converged;
    }
    c.validate();
    c
}

/// Whether AEC3 places its filter at the earliest echo its pre-echo detector finds (WebRTC's
/// default) rather than at the strongest: not in hiwar. Each new delay AEC3 settles on starts
/// its linear filters over, and in a reverberant room the pre-echo detector's choice, binned
/// in 4 ms blocks, moves between neighbouring blocks for seconds after the first estimate:
/// speech through sox's reverb, as in the echo test's room, 150–209 ms away, was re-estimated
/// after 1 s of sound in 46 of 60 rooms (as late as 5.7 s), and with the strongest path in
/// none. Live, in the echo test, such a reset just before a person spoke left the echo
/// uncancelled and the person below its margin (the test's occasional failure).
pub const PRE_ECHO_DETECTION: bool = false;

/// Whether AEC3's first delay waits for the votes that make an estimate sure (20 of its last
/// 250 lag estimates, WebRTC's "converged" threshold) instead of taking a coarse one after 5.
/// The coarse estimate is replaced by the first sure one without hysteresis, and where the
/// room's delay lies near the edge of one of AEC3's 4 ms blocks the two differ by a block:
/// live, in the echo test's room, in 4 of 19 runs, one in the first answer, each time
/// starting the linear filters over. Waiting for a sure estimate (and with [`HOLD_FRAMES`]):
/// no move before the person spoke in 32 runs (6 during and after their voice over the
/// answer, when the canceller settles again anyway), and the first delay ~0.2 s of sound later
/// (docs/benchmarks.md, stop 57).
pub const FIRST_DELAY_WHEN_SURE: bool = true;

/// How much more transparent than WebRTC's the suppressor is in its near-end state.
pub const NEAREND_TRANSPARENCY: f32 = 3.0;

/// Scales the suppressor's near-end masks (the echo-to-near-end ratios under which it lets the
/// signal through and over which it suppresses, low and high bands) by `k`.
pub fn nearend_transparency(c: &mut EchoCanceller3Config, k: f32) {
    let t = &mut c.suppressor.nearend_tuning;
    for m in [&mut t.mask_lf, &mut t.mask_hf] {
        m.enr_transparent *= k;
        m.enr_suppress *= k;
    }
}

/// A reference above this (−70 dBFS) is the speaker playing.
const PLAYING_LEVEL: f32 = 3e-4;
/// How long after the reference falls silent its echo may still be heard: 300 ms at 16 kHz
/// (a room's reverberant tail).
const PLAYING_TAIL: usize = 4_800;

/// Sound played through a new canceller before it has learnt the room's echo, 16 kHz: 4 s.
/// `hiwar bench echo` (the first answer through a fresh canceller, 105 of them in 5 rooms):
/// the VAD started on the echo as late as 2.8 s into it; none after 3 s.
pub const SETTLE: usize = 64_000;

/// Sound played after a voice stopped the answer before the canceller is trusted again,
/// 16 kHz: 1.5 s. AEC3's filter adapts on the voice as well as the echo while both sound, and
/// the next answer's first syllables then come through it (the echo test in the simulated
/// room, live: in 4 of 12 runs the answer after a barge-in started the VAD and stopped itself;
/// leaks up to 0.88 s of sound into it, none later).
pub const RESETTLE: usize = 24_000;

/// 10 ms frames a [`LinearStage`] window gathers while the answer plays: 500 ms.
const STAGE_FRAMES: usize = 50;
/// A window whose microphone is under this (−60 dBFS) holds no echo to weigh.
const STAGE_FLOOR: f64 = 1e-6 * (FRAME * STAGE_FRAMES) as f64;

/// How much of the echo the linear filter takes while the answer plays: the high-passed
/// microphone's energy over the linear output's, over windows of [`STAGE_FRAMES`] frames.
#[derive(Debug, Default, Clone, Copy)]
struct LinearStage {
    heard: f64,
    left: f64,
    frames: usize,
    /// The last whole window's reduction, dB; infinite where the microphone heard nothing.
    last_db: Option<f64>,
}

impl LinearStage {
    fn add(&mut self, heard: f64, left: f64) {
        self.heard += heard;
        self.left += left;
        self.frames += 1;
        if self.frames == STAGE_FRAMES {
            let db = if self.heard < STAGE_FLOOR { f64::INFINITY } else { 10.0 * (self.heard / self.left.max(1e-12)).log10() };
            *self = LinearStage { last_db: Some(db), ..LinearStage::default() };
        }
    }
}

/// Microphone frames the canceller holds back, at most, while their share of the reference has
/// not come: 30 ms. The output callback and the capture deliver on their own schedules (here
/// both 20 ms at a time, in no fixed order), and AEC3 pairs the two streams by count: a
/// microphone block processed before its render block is an underrun, after which AEC3 shifts
/// its buffer a block, re-estimates the delay and starts its linear filters over (the echo
/// test in the simulated room, live: in 5 of 19 runs after AEC3's first delay, one frame late
/// was enough; none in 32 runs waiting). Waiting costs hearing ~3 ms on average: in three runs
/// 0.4–28 % of the frames waited, 11–21 ms at the median, 32 ms at most.
pub const HOLD_FRAMES: usize = 3;
/// AEC3's 64-sample blocks of the reference handed to it ahead of the microphone, at most
/// before another frame: at the 8 over which it flushes its render buffer as excess. More
/// stays here.
const LEAD_BLOCKS: i64 = 8;
/// Captured frames over which a reference that stayed ahead of the microphone by more than
/// AEC3 takes ([`LEAD_BLOCKS`]) is dropped down to it: one second, as AEC3 judges excess render.
const EXCESS_WINDOW: usize = 100;
/// AEC3's block, in samples at 16 kHz.
const BLOCK: u64 = 64;

/// How AEC3 pairs the reference with the microphone, counted as it counts them: in blocks. At
/// the first microphone block after the reference began it starts with nothing ahead (what went
/// before is dropped); each microphone block then takes the next render block; one that finds
/// none is an underrun, and the next render block goes with the next microphone block.
#[derive(Debug, Default, Clone, Copy)]
struct Pairing {
    /// Samples handed to AEC3: the reference's, the microphone's.
    render: u64,
    capture: u64,
    /// Render blocks ahead of the microphone; None until AEC3 has paired the two.
    lead: Option<i64>,
}

impl Pairing {
    /// The blocks the next 10 ms frame makes of a stream that has had `total` samples.
    fn blocks(total: u64) -> i64 {
        ((total + FRAME as u64) / BLOCK - total / BLOCK) as i64
    }

    /// Whether the next microphone frame has its share of the reference.
    fn ready(&self) -> bool {
        self.lead.is_none_or(|l| l >= Pairing::blocks(self.capture))
    }

    /// Whether AEC3 would take another reference frame now.
    fn room(&self) -> bool {
        self.lead.is_none_or(|l| l < LEAD_BLOCKS)
    }

    fn rendered(&mut self) {
        let n = Pairing::blocks(self.render);
        self.render += FRAME as u64;
        if let Some(l) = self.lead.as_mut() {
            *l += n;
        }
    }

    fn captured(&mut self) {
        let n = Pairing::blocks(self.capture);
        self.capture += FRAME as u64;
        self.lead = match self.lead {
            Some(l) => Some((l - n).max(0)),
            None => (self.render > 0).then_some(0),
        };
    }
}

/// Half a 10 ms frame: AEC3 takes its frames as two sub-frames, and works in 64-sample blocks.
const SUB_FRAME: usize = FRAME / 2;
/// Float samples in AEC3's scale (16-bit PCM's), as sonora's AudioProcessing hands them over.
const S16: f32 = 32_768.0;

/// WebRTC's AEC3 at 16 kHz mono (one band): the block processor with the framing around it,
/// and the high-pass filter sonora applies to the microphone before it.
struct Aec3 {
    processor: BlockProcessor,
    high_pass: HighPassFilter,
    render_blocker: FrameBlocker,
    capture_blocker: FrameBlocker,
    framer: BlockFramer,
    render_block: Block,
    capture_block: Block,
    /// One sub-frame out of the framer.
    sub: SubFrame,
    /// The capture frame in AEC3's scale.
    capture: Vec<Vec<f32>>,
    /// The linear filter's output (the microphone less the modelled echo, before the
    /// suppressor), framed like the capture, when the config exports it.
    linear: Option<(Block, BlockFramer, SubFrame)>,
}

/// One sub-frame out of a framer: [band][channel][sample].
type SubFrame = Vec<Vec<Vec<f32>>>;

impl Aec3 {
    fn new(config: &EchoCanceller3Config) -> Aec3 {
        Aec3 {
            processor: BlockProcessor::new(config, super::TARGET_RATE as usize, 1, 1),
            high_pass: HighPassFilter::new(super::TARGET_RATE as i32, 1),
            render_blocker: FrameBlocker::new(1, 1),
            capture_blocker: FrameBlocker::new(1, 1),
            framer: BlockFramer::new(1, 1),
            render_block: Block::new(1, 1),
            capture_block: Block::new(1, 1),
            sub: vec![vec![vec![0.0; SUB_FRAME]]],
            capture: vec![vec![0.0; FRAME]],
            linear: config.filter.export_linear_aec_output.then(|| (Block::new(1, 1), BlockFramer::new(1, 1), vec![vec![vec![0.0; SUB_FRAME]]])),
        }
    }

    /// What the speaker played: one 10 ms frame, [-1, 1].
    fn render(&mut self, frame: &[f32]) {
        let mut scaled = [0.0f32; FRAME];
        for (o, s) in scaled.iter_mut().zip(frame) {
            *o = s.clamp(-1.0, 1.0) * S16;
        }
        for half in scaled.chunks_exact(SUB_FRAME) {
            self.render_blocker.insert_sub_frame_and_extract_block(&[vec![half]], &mut self.render_block);
            self.processor.buffer_render(&self.render_block);
        }
        if self.render_blocker.is_block_available() {
            self.render_blocker.extract_block(&mut self.render_block);
            self.processor.buffer_render(&self.render_block);
        }
    }

    /// One capture block through AEC3; the linear output, where exported, starts as the
    /// microphone itself (AEC3 leaves it untouched until the far end has started).
    fn process_block(&mut self, saturated: bool) {
        match &mut self.linear {
            Some((block, _, _)) => {
                block.view_mut(0, 0).copy_from_slice(self.capture_block.view(0, 0));
                self.processor.process_capture(false, saturated, Some(block), &mut self.capture_block);
            }
            None => self.processor.process_capture(false, saturated, None, &mut self.capture_block),
        }
    }

    /// One 10 ms microphone frame, [-1, 1], cancelled in place; the linear filter's output
    /// into `linear` where it is exported.
    /// Returns the high-passed microphone's energy in the frame ([-1, 1] scale).
    fn capture(&mut self, frame: &mut [f32], linear: &mut Vec<f32>) -> f64 {
        for (o, s) in self.capture[0].iter_mut().zip(frame.iter()) {
            *o = s.clamp(-1.0, 1.0) * S16;
        }
        self.high_pass.process_channels(&mut self.capture);
        let heard = self.capture[0].iter().map(|&v| f64::from(v / S16).powi(2)).sum();
        let saturated = self.capture[0].iter().any(|v| v.abs() >= 32_700.0);
        for half in 0..2 {
            let range = half * SUB_FRAME..(half + 1) * SUB_FRAME;
            self.capture_blocker.insert_sub_frame_and_extract_block(&[vec![&self.capture[0][range.clone()]]], &mut self.capture_block);
            self.process_block(saturated);
            self.framer.insert_block_and_extract_sub_frame(&self.capture_block, &mut self.sub);
            for (o, s) in frame[range].iter_mut().zip(&self.sub[0][0]) {
                *o = (s / S16).clamp(-1.0, 1.0);
            }
            if let Some((block, framer, sub)) = &mut self.linear {
                framer.insert_block_and_extract_sub_frame(block, sub);
                linear.extend(sub[0][0].iter().map(|s| (s / S16).clamp(-1.0, 1.0)));
            }
        }
        if self.capture_blocker.is_block_available() {
            self.capture_blocker.extract_block(&mut self.capture_block);
            self.process_block(saturated);
            self.framer.insert_block(&self.capture_block);
            if let Some((block, framer, _)) = &mut self.linear {
                framer.insert_block(block);
            }
        }
        heard
    }
}

/// The canceller on the hearing thread: 16 kHz in, 16 kHz out, 10 ms frames.
pub struct Canceller {
    aec: Aec3,
    reference: Option<EchoReference>,
    /// The reference at the device rate → 16 kHz.
    resampler: Option<Resampler>,
    raw: Vec<f32>,
    /// Reference samples at 16 kHz not yet handed to AEC3.
    far: Vec<f32>,
    /// Microphone samples not yet making a whole frame.
    near: Vec<f32>,
    frame: Vec<f32>,
    out: Vec<f32>,
    /// The linear filter's output for the same samples as `out`, where exported.
    linear: Vec<f32>,
    /// Samples since the reference last carried sound (see [`Canceller::playing`]).
    since_far: usize,
    /// Reference samples that carried sound since the canceller started (see
    /// [`Canceller::settling`]).
    sounding: usize,
    /// Sound still to play before the canceller is trusted again after a voice over the
    /// answer (see [`Canceller::doubt`]).
    doubt: usize,
    /// How much of the echo the linear filter takes while the answer plays.
    stage: LinearStage,
    /// The delay AEC3 last reported, ms (see [`Canceller::settling`]).
    delay_ms: i32,
    /// Whether microphone frames wait for their share of the reference (see [`HOLD_FRAMES`]).
    hold: bool,
    /// How far AEC3's reference is ahead of the microphone.
    pairing: Pairing,
    /// The reference stopped coming while the microphone went on (the player stalled or
    /// gone): frames are not held until it comes again.
    starved: bool,
    /// The least reference left waiting here over the current [`EXCESS_WINDOW`], and how many
    /// frames that window has seen.
    excess: (usize, usize),
    underruns: u64,
    dropped: u64,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller").field("reference", &self.reference.is_some()).finish_non_exhaustive()
    }
}

impl Canceller {
    /// A canceller reading the player's reference (live).
    pub fn live(reference: EchoReference) -> Result<Canceller> {
        reference.discard();
        let resampler = Resampler::between(reference.sample_rate(), super::TARGET_RATE)?;
        let mut c = Canceller::new();
        c.reference = Some(reference);
        c.resampler = Some(resampler);
        Ok(c.holding())
    }

    /// Microphone frames wait (up to [`HOLD_FRAMES`]) for their share of the reference, as live;
    /// a reference further ahead of the microphone than AEC3 takes, for a second, is dropped.
    pub fn holding(mut self) -> Canceller {
        self.hold = true;
        self
    }

    /// A canceller fed by hand with [`Canceller::render`] (benchmarks, tests).
    pub fn new() -> Canceller {
        Canceller::with_config(&aec3_config())
    }

    /// The same with an AEC3 configuration of its own (benchmarks).
    pub fn with_config(config: &EchoCanceller3Config) -> Canceller {
        Canceller {
            aec: Aec3::new(config),
            reference: None,
            resampler: None,
            raw: Vec::new(),
            far: Vec::new(),
            near: Vec::new(),
            frame: vec![0.0; FRAME],
            out: Vec::new(),
            linear: Vec::new(),
            since_far: usize::MAX,
            sounding: 0,
            doubt: 0,
            stage: LinearStage::default(),
            delay_ms: 0,
            hold: false,
            pairing: Pairing::default(),
            starved: false,
            excess: (usize::MAX, 0),
            underruns: 0,
            dropped: 0,
        }
    }

    /// Adds far-end samples at 16 kHz (what the speaker played), for a canceller fed by hand.
    pub fn render(&mut self, samples: &[f32]) {
        self.far.extend_from_slice(samples);
    }

    /// Cancels the echo in `near` (16 kHz microphone samples); returns the cleaned samples,
    /// whole frames only: up to 10 ms waits for the next call, and when holding
    /// ([`Canceller::holding`]), up to [`HOLD_FRAMES`] more wait for their share of the reference.
    pub fn process(&mut self, near: &[f32]) -> Result<&[f32]> {
        if let (Some(reference), Some(resampler)) = (&self.reference, &mut self.resampler) {
            self.raw.clear();
            if reference.drain(&mut self.raw) > 0 {
                let resampled = resampler.push(&self.raw)?;
                self.far.extend_from_slice(resampled);
            }
        }
        if self.far.len() >= FRAME {
            self.starved = false;
        }
        self.near.extend_from_slice(near);
        self.out.clear();
        self.linear.clear();
        let frames = self.near.len() / FRAME;
        let (mut used, mut done) = (0, 0);
        while done < frames {
            // The reference goes in ahead of the microphone it is paired with, as AEC3 pairs
            // them: each frame's share first, up to LEAD_BLOCKS ahead. A backlog (the hearing
            // thread held up) so stays in step: the whole reference first would overrun AEC3's
            // render buffer past ~0.5 s and lose the echo path (measured below).
            while self.far.len() - used >= FRAME && self.pairing.room() {
                self.render_frame(used);
                used += FRAME;
                self.pairing.rendered();
            }
            if !self.pairing.ready() {
                // This frame's share has not come: wait for it, unless frames have waited
                // HOLD_FRAMES already (the reference is late, or has stopped).
                if self.hold && !self.starved && frames - done <= HOLD_FRAMES {
                    break;
                }
                self.starved = self.hold;
                self.underruns += 1;
            }
            self.capture_frame(done);
            done += 1;
            self.pairing.captured();
            let waiting = (self.far.len() - used) / FRAME;
            self.excess = (self.excess.0.min(waiting), self.excess.1 + 1);
            if self.excess.1 == EXCESS_WINDOW {
                // The reference stayed ahead of the microphone for a second (the output's clock
                // runs faster than the microphone's): AEC3 would flush it; drop it here.
                let (least, _) = std::mem::replace(&mut self.excess, (usize::MAX, 0));
                if self.hold && least > 0 {
                    used += least * FRAME;
                    self.dropped += least as u64;
                    tracing::debug!(target: "hiwar::hearing", "echo canceller: {} ms of reference ahead of the microphone dropped", least * 10);
                }
            }
        }
        self.far.drain(..used);
        self.near.drain(..done * FRAME);
        Ok(&self.out)
    }

    /// The reference frame at `at` in `far` to AEC3, and what it tells of the answer playing.
    fn render_frame(&mut self, at: usize) {
        let mut far = [0.0f32; FRAME];
        for (o, s) in far.iter_mut().zip(&self.far[at..at + FRAME]) {
            *o = if s.is_finite() { *s } else { 0.0 };
        }
        if far.iter().any(|s| s.abs() > PLAYING_LEVEL) {
            self.since_far = 0;
            self.sounding = self.sounding.saturating_add(FRAME);
            self.doubt = self.doubt.saturating_sub(FRAME);
        } else {
            self.since_far = self.since_far.saturating_add(FRAME);
        }
        self.aec.render(&far);
    }

    /// The microphone frame `k` of `near` through AEC3, into `out` (and `linear`).
    fn capture_frame(&mut self, k: usize) {
        for (i, s) in self.frame.iter_mut().zip(&self.near[k * FRAME..(k + 1) * FRAME]) {
            *i = if s.is_finite() { *s } else { 0.0 };
        }
        let from = self.linear.len();
        let heard = self.aec.capture(&mut self.frame, &mut self.linear);
        // Weighed only where the configuration exports the linear output.
        if self.playing() && self.linear.len() > from {
            self.stage.add(heard, self.linear[from..].iter().map(|&v| f64::from(v).powi(2)).sum());
        }
        self.out.extend_from_slice(&self.frame);
        // A new delay starts AEC3's linear filters over: the echo comes through until they
        // have learnt it again.
        let delay = self.aec.processor.get_metrics().delay_ms;
        if delay != self.delay_ms {
            tracing::debug!(target: "hiwar::hearing", "echo canceller: AEC3 moved its delay from {} to {delay} ms after {:.1} s of sound", self.delay_ms, self.sounding as f64 / 16_000.0);
            self.delay_ms = delay;
            self.doubt = RESETTLE;
        }
    }

    /// Whether the speaker is playing, or was within the room's echo tail (300 ms): while it
    /// is, what the microphone hears may hold the answer's echo.
    pub fn playing(&self) -> bool {
        self.since_far < PLAYING_TAIL
    }

    /// Whether the answer plays while the canceller is still learning the room: until
    /// [`SETTLE`] of sound has been played through it, AEC3 has not found the echo's path and
    /// the echo comes through (`hiwar bench echo`, the first answer: the VAD starts on it);
    /// and again for [`RESETTLE`] of sound after a voice over the answer ([`Canceller::doubt`])
    /// and after AEC3 settled on a new delay, which starts its linear filters over.
    pub fn settling(&self) -> bool {
        self.playing() && (self.sounding < SETTLE || self.doubt > 0)
    }

    /// A voice was heard while the answer played, and stopped it (a barge-in): AEC3 adapted on
    /// it too, so the canceller settles again for [`RESETTLE`] of the next sound.
    pub fn doubt(&mut self) {
        self.doubt = RESETTLE;
    }

    /// Microphone samples handed to [`Canceller::process`] that have not come out yet: under a
    /// frame, and frames waiting for their reference ([`HOLD_FRAMES`]).
    pub fn pending(&self) -> usize {
        self.near.len()
    }

    /// Samples of sound played through the canceller since it started, 16 kHz.
    pub fn sounding(&self) -> usize {
        self.sounding
    }

    /// The linear filter's output for the samples the last [`Canceller::process`] returned
    /// (the microphone less AEC3's model of the echo, before its suppressor): empty unless the
    /// configuration exports it (`filter.export_linear_aec_output`).
    pub fn linear(&self) -> &[f32] {
        &self.linear
    }

    /// How much of the echo AEC3's linear filter took over the last 500 ms of the answer (the
    /// high-passed microphone over the linear output, dB; infinite where the microphone heard
    /// nothing; None before a whole window, or where the linear output is not exported). Live,
    /// in the echo test's room, 10–23 dB once the filter has converged; 0–5 dB while a person
    /// talks over the answer, and after a barge-in until the filter has learnt the echo again.
    pub fn linear_reduction(&self) -> Option<f64> {
        self.stage.last_db
    }

    pub fn stats(&self) -> EchoStats {
        let m = self.aec.processor.get_metrics();
        EchoStats { erle_db: Some(m.echo_return_loss_enhancement), delay_ms: Some(m.delay_ms), underruns: self.underruns, dropped: self.dropped }
    }
}

impl Default for Canceller {
    fn default() -> Self {
        Canceller::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random speech-like noise (deterministic).
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let r = (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                // A syllable-rate envelope, as speech has.
                let env = (0.5 + 0.5 * (i as f32 / 16_000.0 * std::f32::consts::TAU * 4.0).sin()).powi(2);
                0.2 * r * env
            })
            .collect()
    }

    fn energy(v: &[f32]) -> f64 {
        v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() + 1e-12
    }

    #[test]
    fn the_echo_of_what_was_played_is_removed_and_a_voice_over_it_is_kept() {
        let n = 16_000 * 8;
        let far = noise(n, 7);
        // The room: 30 ms late, −3 dB.
        let delay = 480;
        let echo: Vec<f32> = (0..n).map(|i| if i >= delay { 0.7 * far[i - delay] } else { 0.0 }).collect();
        let voice = noise(n, 99);
        let at = n * 3 / 4;
        let mic: Vec<f32> = (0..n).map(|i| echo[i] + if i >= at { voice[i] } else { 0.0 }).collect();
        let mut c = Canceller::new();
        let mut out = Vec::new();
        // In uneven blocks, as a device delivers.
        let mut pos = 0;
        for block in [333usize, 160, 1024, 77].iter().cycle() {
            if pos >= n {
                break;
            }
            let end = (pos + block).min(n);
            c.render(&far[pos..end]);
            out.extend_from_slice(c.process(&mic[pos..end]).expect("process"));
            pos = end;
        }
        assert_eq!(out.len(), n / FRAME * FRAME);
        let (a, b) = (16_000 * 3, at);
        let erle = 10.0 * (energy(&mic[a..b]) / energy(&out[a..b])).log10();
        assert!(erle > 20.0, "ERLE {erle:.1} dB");
        let kept = 10.0 * (energy(&out[at..out.len()]) / energy(&voice[at..out.len()])).log10();
        assert!(kept > -10.0, "the voice over the echo came through at {kept:.1} dB");
    }

    #[test]
    fn a_backlog_from_a_held_up_thread_keeps_the_echo_cancelled() {
        let n = 16_000 * 20;
        let far = noise(n, 7);
        // The room: 50 ms late, 0 dB.
        let echo: Vec<f32> = (0..n).map(|i| if i >= 800 { far[i - 800] } else { 0.0 }).collect();
        let mut c = Canceller::new();
        let mut out = Vec::new();
        let (mut pos, mut calls) = (0, 0);
        while pos < n {
            // 20 ms at a time; after 4 s, every 2 s the thread is held up for a second and then
            // takes the second's reference and microphone at once.
            let block = if pos >= 64_000 && calls % 100 == 0 { 16_000 } else { 320 };
            calls += 1;
            let end = (pos + block).min(n);
            c.render(&far[pos..end]);
            out.extend_from_slice(c.process(&echo[pos..end]).expect("process"));
            pos = end;
        }
        // The echo left in each 100 ms after the canceller has converged.
        let worst = (64_000..out.len() - 1600)
            .step_by(1600)
            .map(|w| 10.0 * (energy(&out[w..w + 1600]) / energy(&echo[w..w + 1600])).log10())
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(worst < -20.0, "a 100 ms stretch kept the echo at {worst:.1} dB of its level");
    }

    /// The reference and the microphone as a device delivers them live (echo test, simulated
    /// room): 20 ms of each in turn, the reference first; every 1.5 s the reference's 20 ms
    /// comes as 10 ms, and the other 10 ms with its next delivery, after the microphone's.
    /// Returns AEC3's delays after a second of sound, the underruns, and the frames out.
    fn delivered_with_jitter(mut c: Canceller) -> (Vec<i32>, u64, usize) {
        let n = 16_000 * 20;
        let far = noise(n, 7);
        // The room: 50 ms late, 0 dB.
        let mic: Vec<f32> = (0..n).map(|i| if i >= 800 { far[i - 800] } else { 0.0 }).collect();
        let (mut rendered, mut heard, mut short) = (0, 0, 0);
        let (mut delays, mut out) = (Vec::new(), 0);
        for tick in 0.. {
            if heard >= n {
                break;
            }
            if tick % 2 == 0 {
                let mut take = 2 * FRAME + short;
                short = 0;
                if tick % 300 == 298 {
                    short = FRAME;
                    take -= FRAME;
                }
                let end = (rendered + take).min(n);
                c.render(&far[rendered..end]);
                rendered = end;
                out += c.process(&[]).expect("process").len();
            } else {
                let end = (heard + 2 * FRAME).min(n);
                out += c.process(&mic[heard..end]).expect("process").len();
                heard = end;
            }
            // AEC3's first estimate comes within 0.5 s of sound here.
            let delay = c.stats().delay_ms.unwrap_or(0);
            if c.sounding() >= 16_000 && delays.last() != Some(&delay) {
                delays.push(delay);
            }
        }
        (delays, c.stats().underruns, out / FRAME)
    }

    #[test]
    fn a_microphone_frame_waits_for_a_reference_that_comes_late_and_aec3_keeps_its_delay() {
        let frames = 16_000 * 20 / FRAME;
        let (delays, underruns, out) = delivered_with_jitter(Canceller::new().holding());
        assert_eq!(underruns, 0, "frames went in before their reference");
        assert_eq!(delays.len(), 1, "AEC3 moved its delay (and started its filters over): {delays:?}");
        assert!(out + HOLD_FRAMES >= frames, "{out} of {frames} frames out");
        // Not waiting, the same deliveries underrun AEC3's render buffer and move its delay.
        let (delays, underruns, _) = delivered_with_jitter(Canceller::new());
        assert!(underruns > 0 && delays.len() > 1, "{underruns} underruns, delays {delays:?}");
    }

    #[test]
    fn a_reference_that_stops_is_not_waited_for_and_one_that_runs_ahead_is_dropped() {
        let mic = noise(16_000 * 6, 3);
        let far = noise(16_000 * 6, 7);
        // The player stops after 1 s; the microphone goes on, 20 ms at a time.
        let mut c = Canceller::new().holding();
        let (mut out, mut late) = (0, 0);
        for (k, m) in mic.chunks(2 * FRAME).enumerate() {
            if k < 50 {
                c.render(&far[k * 2 * FRAME..(k + 1) * 2 * FRAME]);
            }
            out += c.process(m).expect("process").len();
            assert_eq!(c.pending(), k * 2 * FRAME + m.len() - out);
            late = late.max(c.pending());
        }
        assert!(late <= HOLD_FRAMES * FRAME + FRAME, "hearing waited {} ms on a dead player", late / 16);
        assert_eq!(out, mic.len(), "every frame came out");
        // The player's clock runs 10 % fast: the reference ahead is dropped, not kept.
        let far = noise(16_000 * 7, 7);
        let (mut c, mut kept) = (Canceller::new().holding(), 0);
        for (k, m) in mic.chunks(2 * FRAME).enumerate() {
            let from = k * 2 * FRAME * 11 / 10;
            c.render(&far[from..from + 2 * FRAME * 11 / 10]);
            c.process(m).expect("process");
            kept = kept.max(c.far.len());
        }
        assert!(c.stats().dropped > 0, "nothing dropped");
        assert!(kept < 16_000 / 4, "{} ms of reference kept", kept / 16);
    }

    #[test]
    fn the_canceller_knows_while_the_answer_and_its_tail_play() {
        // The reference comes with the microphone, 10 ms at a time, as it does live.
        let mut c = Canceller::new();
        assert!(!c.playing(), "nothing played yet");
        let mic = vec![0.0; FRAME];
        for frame in noise(16_000, 5).chunks(FRAME) {
            c.render(frame);
            c.process(&mic).expect("process");
        }
        assert!(c.playing(), "a second of sound played");
        // Silence: still playing for the room's tail (300 ms), then not.
        let mut flags = Vec::new();
        for _ in 0..100 {
            c.render(&mic);
            c.process(&mic).expect("process");
            flags.push(c.playing());
        }
        let stopped = flags.iter().position(|p| !p).expect("stopped playing");
        assert!((28..=31).contains(&stopped), "stopped {stopped} frames into the silence");
        assert!(flags[stopped..].iter().all(|p| !p));
    }

    #[test]
    fn a_new_canceller_is_settling_until_it_has_played_enough_sound() {
        let mut c = Canceller::new();
        let mic = vec![0.0; FRAME];
        let mut settling = Vec::new();
        for frame in noise(SETTLE * 2, 5).chunks(FRAME) {
            c.render(frame);
            c.process(&mic).expect("process");
            settling.push((c.settling(), c.sounding()));
        }
        // Settling exactly until SETTLE of sound has played (the envelope's quiet frames do
        // not count), then never again.
        assert!(settling.iter().all(|&(s, sound)| s == (sound < SETTLE)), "{settling:?}");
        let learnt = settling.iter().position(|s| !s.0).expect("settled");
        assert!(learnt >= SETTLE / FRAME - 1, "settled {learnt} frames in");
        assert!(settling[learnt..].iter().all(|s| !s.0), "once learnt, it stays learnt");
        // Silence in between does not count towards it, nor make it settle again.
        let mut quiet = Canceller::new();
        for _ in 0..SETTLE / FRAME {
            quiet.render(&mic);
            quiet.process(&mic).expect("process");
        }
        assert!(!quiet.settling(), "nothing plays, so nothing settles");
        assert_eq!(quiet.sounding(), 0);
    }

    #[test]
    fn a_voice_that_stopped_the_answer_makes_the_canceller_settle_again_for_resettle_of_sound() {
        let mut c = Canceller::new();
        let mic = vec![0.0; FRAME];
        let sound = noise(SETTLE * 2, 7);
        let mut frames = sound.chunks(FRAME);
        for frame in frames.by_ref().take(SETTLE / FRAME + 50) {
            c.render(frame);
            c.process(&mic).expect("process");
        }
        assert!(c.playing() && !c.settling(), "learnt");
        c.doubt();
        assert!(c.settling(), "a voice stopped the answer");
        // Silence does not count towards it: the answer's next sound is what must be trusted.
        for _ in 0..100 {
            c.render(&mic);
            c.process(&mic).expect("process");
        }
        assert!(!c.playing() && !c.settling(), "nothing plays, so nothing settles");
        let from = c.sounding();
        let mut settled_after = None;
        for frame in frames {
            c.render(frame);
            c.process(&mic).expect("process");
            if c.playing() && !c.settling() {
                settled_after = Some(c.sounding() - from);
                break;
            }
        }
        assert_eq!(settled_after, Some(RESETTLE), "settles again after RESETTLE of sound");
    }

    #[test]
    fn a_canceller_that_finds_a_new_delay_settles_again() {
        // The room: 30 ms late for 8 s, then 100 ms (the output moved to another device).
        let n = 16_000 * 16;
        let far = noise(n, 3);
        let (switch, before, after) = (16_000 * 8, 480, 1_600);
        let mic: Vec<f32> = (0..n).map(|i| if i < switch { if i >= before { far[i - before] } else { 0.0 } } else { far[i - after] }).collect();
        let mut c = Canceller::new();
        let mut told = Vec::new();
        for (k, (f, m)) in far.chunks(FRAME).zip(mic.chunks(FRAME)).enumerate() {
            c.render(f);
            c.process(m).expect("process");
            told.push((k * FRAME, c.settling(), c.stats().delay_ms.unwrap_or(-1)));
        }
        // Settled on the first room well before the switch (4 s of sound take ~4.4 s of this
        // envelope), with one delay.
        let settled: Vec<_> = told.iter().filter(|(at, ..)| (16_000 * 5..switch).contains(at)).collect();
        assert!(settled.iter().all(|(_, s, _)| !s), "settling before the switch");
        let first = settled[0].2;
        assert!(settled.iter().all(|&&(_, _, d)| d == first), "the delay moved in the first room");
        // AEC3 found the new delay, and the canceller was not trusted for RESETTLE of sound.
        let moved = told.iter().position(|&(at, _, d)| at >= switch && d != first).expect("AEC3 found the new delay");
        let (at, ..) = told[moved];
        assert!(at - switch < 16_000 * 2, "found {} s after the switch", (at - switch) as f64 / 16_000.0);
        let again: Vec<usize> = told[moved..].iter().filter(|(_, s, _)| *s).map(|(at, ..)| *at).collect();
        assert!(again.first().is_some_and(|&a| a == at), "{again:?}");
        assert!(again.len() * FRAME >= RESETTLE, "settled again only {} samples", again.len() * FRAME);
        assert!(!told.last().expect("frames").1, "still settling at the end");
    }

    #[test]
    fn the_linear_reduction_tells_a_filter_that_has_the_echo_from_a_voice_over_it() {
        let n = 16_000 * 12;
        let far = noise(n, 7);
        // The room: 30 ms late, −3 dB.
        let echo: Vec<f32> = (0..n).map(|i| if i >= 480 { 0.7 * far[i - 480] } else { 0.0 }).collect();
        let voice = noise(n, 99);
        let at = n * 2 / 3;
        let mut c = Canceller::new();
        let mut taken = Vec::new();
        for (k, (f, e)) in far.chunks(FRAME).zip(echo.chunks(FRAME)).enumerate() {
            let i = k * FRAME;
            let mic: Vec<f32> = e.iter().zip(&voice[i..i + FRAME]).map(|(e, v)| e + if i >= at { *v } else { 0.0 }).collect();
            c.render(f);
            c.process(&mic).expect("process");
            taken.push((i, c.linear_reduction()));
        }
        let at_window = |t: usize| taken.iter().rev().find(|(i, _)| *i <= t).and_then(|(_, db)| *db).expect("a window");
        let converged = at_window(at - 1);
        let voiced = at_window(n - 1);
        assert!(converged > 20.0, "the filter took {converged:.1} dB of the echo alone");
        assert!(voiced < 3.0, "it took {voiced:.1} dB of the echo with a voice as loud over it");
        // Nothing played: nothing weighed.
        assert_eq!(Canceller::new().linear_reduction(), None);
    }

    #[test]
    fn without_a_reference_the_microphone_passes_through_and_bad_samples_are_silenced() {
        let mut c = Canceller::new();
        let mut mic = noise(16_000, 3);
        mic[100] = f32::NAN;
        mic[200] = f32::INFINITY;
        let out = c.process(&mic).expect("process").to_vec();
        assert!(out.iter().all(|s| s.is_finite()));
        let level = 10.0 * (energy(&out[1600..]) / energy(&mic[1600..out.len()])).log10();
        assert!(level.abs() < 3.0, "no echo, so no cancelling: {level:.1} dB");
    }

    #[test]
    fn the_tap_counts_what_no_one_reads_without_blocking() {
        let (mut tap, reference) = echo_link(100);
        for _ in 0..250 {
            tap.push(0.5);
        }
        assert_eq!(reference.link.overflow.load(Ordering::Relaxed), 50);
        let mut out = Vec::new();
        assert_eq!(reference.drain(&mut out), 200);
        assert_eq!(reference.sample_rate(), 100);
    }
}
