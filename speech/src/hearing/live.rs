//! Live hearing: a `hearing` thread (capture → resample → VAD → segments) and a `whisper`
//! thread (partials while the person speaks, the final at the end of speech). The final is
//! decoded speculatively as soon as speech pauses, so it is usually ready when the
//! end-pointing decision lands one silence window later.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::Capture;
use super::echo::Canceller;
use super::listener::Listener;
use super::resample::Resampler;
use super::route::RouteWatch;
use super::segmenter::Boundary;
use super::transcriber::{Decide, TAIL_SAMPLES, Transcriber};
use super::turn::SmartTurn;
use super::vad::SileroVad;
use super::{HearingConfig, HearingEvent, Utterance};
use crate::whisper::Interrupt;
use crate::{Error, Result};

/// Where live audio comes from.
#[derive(Debug)]
pub enum Source {
    /// A cpal input device (empty name: the default).
    Microphone { device: String },
    /// Samples fed at real-time pace, as a microphone would (benchmarks, tests).
    Paced(PacedSource),
    /// Blocks of mono samples at `rate` as another part of the program receives them (a
    /// WebSocket client's microphone); the stream ends when the sender is dropped.
    Stream { blocks: Receiver<Vec<f32>>, rate: u32 },
}

/// Mono samples at `rate`, delivered in real time in blocks of `block` samples.
#[derive(Debug, Clone)]
pub struct PacedSource {
    pub samples: Vec<f32>,
    pub rate: u32,
    pub block: usize,
}

/// The input's loudness now: RMS of the last block delivered, in dBFS (−100 for silence),
/// as f32 bits; how long the voice in progress has gone on, in 16 kHz samples; and whether
/// the echo canceller is still learning the room while the answer plays. Written by the hearing thread, read by anyone (the dialogue's echo estimate, barge-in).
#[derive(Debug, Default)]
pub struct InputLevel(std::sync::atomic::AtomicU32, AtomicU64, AtomicBool);

impl InputLevel {
    pub fn db(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// How long the voice in progress has gone on, from its onset, on the input's sample clock
    /// (0 when no one speaks).
    pub fn voiced_for(&self) -> Duration {
        Duration::from_micros(self.1.load(Ordering::Relaxed) * 1_000_000 / 16_000)
    }

    /// Whether the echo canceller is still learning the room while the answer plays
    /// (`Canceller::settling`): the level then holds echo it will soon take out, and is no
    /// measure of the echo a voice must rise above.
    pub fn settling(&self) -> bool {
        self.2.load(Ordering::Relaxed)
    }

    fn set(&self, db: f32) {
        self.0.store(db.to_bits(), Ordering::Relaxed);
    }
}

/// How the hearing threads are doing, for a watchdog: samples taken in so far, and since when
/// whisper has been busy with one decode.
#[derive(Debug)]
pub struct Liveness {
    epoch: Instant,
    samples: AtomicU64,
    /// Milliseconds after `epoch` when the decode in progress began, plus one (0: idle).
    decoding_since: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { epoch: Instant::now(), samples: AtomicU64::new(0), decoding_since: AtomicU64::new(0) }
    }
}

impl Liveness {
    /// Samples (16 kHz) that reached the VAD.
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// How long the decode in progress has taken, if one is.
    pub fn decoding_for(&self) -> Option<Duration> {
        match self.decoding_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(self.epoch.elapsed().saturating_sub(Duration::from_millis(since - 1))),
        }
    }

    fn decoding(&self, busy: bool) {
        let v = if busy { self.epoch.elapsed().as_millis() as u64 + 1 } else { 0 };
        self.decoding_since.store(v, Ordering::Relaxed);
    }
}

/// RMS of `samples` in dBFS, −100 for silence.
pub fn level_db(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let mean = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    (10.0 * mean.max(1e-10).log10()).max(-100.0)
}

/// The stretch before a voice's start over the answer that [`log_onset_over_answer`] weighs:
/// 160 ms, about what the VAD needs to start while the answer plays.
const ONSET_SAMPLES: usize = 2_560;

/// Says, for the operator, how a voice that began over the answer stood against the
/// canceller: the microphone's level before it, what it took away, and AEC3's own state. For
/// the record only: it does not tell a person from a leak of the answer's own echo (in the
/// echo test a person lost 0–13 dB of it, a leak −1 to 14 dB: AEC3's suppressor takes part of
/// a voice over the echo too).
fn log_onset_over_answer(c: &Canceller, microphone: &[f32], after: &[f32]) {
    let (mic, out) = (level_db(microphone), level_db(after));
    let s = c.stats();
    tracing::info!(
        target: "hiwar::hearing",
        "speech began over the answer: microphone {mic:.0} dBFS, {:.0} dB of it taken by the canceller (last 160 ms); its linear filter took {:.1} dB of the last 500 ms; AEC3 ERLE {:.1} dB, delay {} ms, {:.1} s of sound played",
        mic - out,
        c.linear_reduction().unwrap_or(f64::NAN),
        s.erle_db.unwrap_or(f64::NAN),
        s.delay_ms.unwrap_or(-1),
        c.sounding() as f64 / f64::from(super::TARGET_RATE),
    );
}

/// A running hearing pipeline. Dropping it stops the threads.
#[derive(Debug)]
pub struct Hearing {
    pub events: Receiver<HearingEvent>,
    pub level: Arc<InputLevel>,
    pub liveness: Arc<Liveness>,
    stop: Arc<AtomicBool>,
    forget: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

enum Job {
    /// `pauses`: how many pauses had begun when it was sent; a later one abandons it.
    Partial {
        id: u64,
        start: u64,
        upto: u64,
        pauses: u64,
        audio: Vec<f32>,
    },
    Speculative {
        id: u64,
        start: u64,
        last_voiced: u64,
        /// How many pauses had ended in more speech when it was sent; a later one makes it stale.
        resumed: u64,
        audio: Vec<f32>,
    },
    Finalize {
        id: u64,
        start: u64,
        last_voiced: u64,
        audio: Vec<f32>,
    },
    /// A visitor's session ended: what the whisper thread keeps of the last utterance (its
    /// last partial and speculative decode, whisper's states, the drafts) is wiped.
    Forget,
}

impl Job {
    /// What it is, for its time on the whisper thread ([`JobTiming`]), from now.
    fn timing(&self) -> JobTiming {
        let (kind, id, samples) = match self {
            Job::Partial { id, audio, .. } => ("partial", *id, audio.len()),
            Job::Speculative { id, audio, .. } => ("speculative", *id, audio.len()),
            Job::Finalize { id, audio, .. } => ("final", *id, audio.len()),
            Job::Forget => ("forget", 0, 0),
        };
        JobTiming { kind, id, seconds: samples as f32 / 16_000.0, began: Instant::now(), outcome: "decoded" }
    }
}

impl Hearing {
    /// Loads the models (errors surface here, before any thread starts) and starts listening.
    pub fn start(config: HearingConfig, source: Source) -> Result<Hearing> {
        let level = Arc::new(InputLevel::default());
        level.set(-100.0);
        Hearing::start_with_level(config, source, level)
    }

    /// As [`Hearing::start`], reporting loudness into `level` (a restarted hearing keeps the
    /// one its listeners already hold).
    pub fn start_with_level(config: HearingConfig, source: Source, level: Arc<InputLevel>) -> Result<Hearing> {
        let transcriber = Transcriber::load(&config)?;
        let vad = SileroVad::load(&config.vad_model)?;
        let turn = load_turn(&config);
        let (events, rx) = mpsc::channel();
        let (jobs, job_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let pauses = Arc::new(Pauses::default());
        let liveness = Arc::new(Liveness::default());
        let forget = Arc::new(AtomicBool::new(false));

        let decoder = {
            let (events, busy, pauses, liveness) = (events.clone(), Arc::clone(&busy), Arc::clone(&pauses), Arc::clone(&liveness));
            std::thread::Builder::new()
                .name("whisper".into())
                .spawn(move || decode_loop(&transcriber, &job_rx, &events, &busy, &pauses, &liveness))
                .map_err(|e| Error::Audio(format!("cannot start the whisper thread: {e}")))?
        };
        let hearing = {
            let stop = Arc::clone(&stop);
            let level = Arc::clone(&level);
            let liveness = Arc::clone(&liveness);
            let forget = Arc::clone(&forget);
            std::thread::Builder::new()
                .name("hearing".into())
                .spawn(move || {
                    let mut ear = Ear {
                        config,
                        events: events.clone(),
                        jobs,
                        busy,
                        pauses,
                        level,
                        liveness,
                        forget,
                        next_id: 0,
                        current: None,
                        last_partial: 0,
                        reported_non_finite: 0,
                    };
                    let result = match source {
                        Source::Microphone { device } => ear.listen_mic(vad, turn, &device, &stop),
                        Source::Paced(paced) => ear.listen_paced(Listener::with_turn(vad, turn, ear.config.segmenter), paced, &stop),
                        Source::Stream { blocks, rate } => ear.listen_stream(Listener::with_turn(vad, turn, ear.config.segmenter), &blocks, rate, &stop),
                    };
                    if let Err(e) = result {
                        let _ = events.send(HearingEvent::Failed { reason: e.to_string() });
                    }
                })
                .map_err(|e| Error::Audio(format!("cannot start the hearing thread: {e}")))?
        };
        Ok(Hearing { events: rx, level, liveness, stop, forget, threads: vec![hearing, decoder] })
    }

    /// Wipes the audio kept between utterances (at the end of a visitor's session), as soon
    /// as no one is speaking.
    pub fn forget(&self) {
        self.forget.store(true, Ordering::Relaxed);
    }

    /// A handle that wipes this hearing's audio from another thread.
    pub fn forgetter(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.forget)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Hearing {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The hearing thread's state.
struct Ear {
    config: HearingConfig,
    events: Sender<HearingEvent>,
    jobs: Sender<Job>,
    busy: Arc<AtomicBool>,
    pauses: Arc<Pauses>,
    level: Arc<InputLevel>,
    liveness: Arc<Liveness>,
    forget: Arc<AtomicBool>,
    next_id: u64,
    /// The utterance in progress: (id, start sample).
    current: Option<(u64, u64)>,
    last_partial: u64,
    /// Non-finite input samples already reported.
    reported_non_finite: u64,
}

/// Says, the first time and then at each tenfold, that the input holds samples that are not
/// numbers (they were replaced; hearing goes on).
fn warn_non_finite(resampler: &Resampler, reported: &mut u64) {
    let n = resampler.replaced();
    if n > 0 && (*reported == 0 || n >= *reported * 10) {
        *reported = n;
        tracing::warn!(
            "the audio input delivered {n} sample(s) that are not finite numbers (NaN or infinity): replaced by silence or full scale, hearing goes on"
        );
    }
}

impl Ear {
    fn listen_paced(&mut self, mut listener: Listener, source: PacedSource, stop: &AtomicBool) -> Result<()> {
        let mut resampler = Resampler::new(source.rate)?;
        let started = Instant::now();
        let block = source.block.max(1);
        for (i, chunk) in source.samples.chunks(block).enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Deliver each block when its last sample would have been captured.
            let due = Duration::from_secs_f64(((i + 1) * block) as f64 / f64::from(source.rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let resampled = resampler.push(chunk)?.to_vec();
            self.feed(&mut listener, &resampled)?;
            warn_non_finite(&resampler, &mut self.reported_non_finite);
        }
        let tail = resampler.finish()?.to_vec();
        self.feed(&mut listener, &tail)?;
        listener.finish(|l, b| self.on_boundary(l, b))?;
        Ok(())
    }

    fn listen_stream(&mut self, mut listener: Listener, blocks: &Receiver<Vec<f32>>, rate: u32, stop: &AtomicBool) -> Result<()> {
        let mut resampler = Resampler::new(rate)?;
        // When the sender stops sending mid-utterance (a client that mutes its microphone
        // after speaking), the time without audio is silence: after STALL of nothing, it is fed
        // as silence, so the turn still ends (Smart Turn's "unfinished" wait needs 1.5 s of it).
        const STALL: Duration = Duration::from_secs(1);
        let mut last_block = Instant::now();
        let mut filled = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            match blocks.recv_timeout(Duration::from_millis(100)) {
                Ok(block) => {
                    (last_block, filled) = (Instant::now(), Duration::ZERO);
                    let resampled = resampler.push(&block)?.to_vec();
                    self.feed(&mut listener, &resampled)?;
                    warn_non_finite(&resampler, &mut self.reported_non_finite);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let quiet = last_block.elapsed();
                    if quiet >= STALL && listener.in_speech() {
                        let gap = quiet - filled;
                        filled = quiet;
                        self.feed(&mut listener, &vec![0.0; (gap.as_secs_f64() * 16_000.0) as usize])?;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let tail = resampler.finish()?.to_vec();
        self.feed(&mut listener, &tail)?;
        listener.finish(|l, b| self.on_boundary(l, b))?;
        Ok(())
    }

    fn listen_mic(&mut self, mut vad: SileroVad, mut turn: Option<SmartTurn>, device: &str, stop: &AtomicBool) -> Result<()> {
        let mut buf = Vec::with_capacity(16_000);
        let mut reported_drops = 0;
        // The speaker's echo is cancelled before the VAD hears anything.
        let mut canceller = match &self.config.echo {
            Some(reference) => Some(Canceller::live(reference.clone())?),
            None => None,
        };
        let mut stats_at = Instant::now();
        // Where the sound server moves the capture when the microphone goes away.
        let route = RouteWatch::start();
        let mut reported = false;
        while !stop.load(Ordering::Relaxed) {
            if let Some(w) = &route {
                wait_for_microphone(w, &self.events, stop, reported);
            }
            let mut capture = match Capture::open(device) {
                Ok(c) => c,
                Err(e) => {
                    let _ = self.events.send(HearingEvent::DeviceLost { reason: e.to_string() });
                    wait_for_device(device, stop);
                    continue;
                }
            };
            let _ = self.events.send(HearingEvent::DeviceRestored { device: capture.device().to_string() });
            let mut resampler = Resampler::new(capture.sample_rate())?;
            vad.reset();
            let mut listener = Listener::with_turn(vad, turn, self.config.segmenter);
            let mut on_speaker = None;
            // Whether the utterance in progress was heard while the answer played.
            let mut overheard = false;
            // The microphone's last samples before the canceller, for the line logged when a
            // voice begins over the answer.
            let mut before_canceller: VecDeque<f32> = VecDeque::with_capacity(ONSET_SAMPLES);
            while !stop.load(Ordering::Relaxed) {
                if let Some(w) = route.as_ref().filter(|w| w.hears_itself()) {
                    on_speaker = w.route().hears_itself().map(str::to_string);
                    if on_speaker.is_some() {
                        break;
                    }
                }
                buf.clear();
                if capture.read(&mut buf) == 0 {
                    if capture.is_lost() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let resampled = resampler.push(&buf)?;
                let heard = match &mut canceller {
                    Some(c) => {
                        before_canceller.extend(resampled.iter().copied());
                        let extra = before_canceller.len().saturating_sub(ONSET_SAMPLES);
                        before_canceller.drain(..extra);
                        c.process(resampled)?.to_vec()
                    }
                    None => resampled.to_vec(),
                };
                // While the answer plays, a voice over it comes through the canceller in pieces.
                listener.set_playing(canceller.as_ref().is_some_and(Canceller::playing));
                // Until the canceller has learnt the room, the answer's echo comes through it.
                let settling = canceller.as_ref().is_some_and(Canceller::settling);
                listener.set_settling(settling);
                self.level.2.store(settling, Ordering::Relaxed);
                let was_in_speech = listener.in_speech();
                self.feed(&mut listener, &heard)?;
                if let Some(c) = canceller.as_ref().filter(|c| c.playing() && !was_in_speech && listener.in_speech()) {
                    // The microphone's last samples that came out of the canceller, beside what
                    // came out (a frame waiting for its reference has not yet).
                    let raw = before_canceller.make_contiguous();
                    let raw = &raw[..raw.len().saturating_sub(c.pending())];
                    log_onset_over_answer(c, raw, listener.audio(listener.position().saturating_sub(raw.len() as u64), listener.position()));
                }
                // A voice heard over an answer that it stopped: the canceller settles again
                // for the next answer. Not while the answer goes on (a backchannel, or the
                // first words of a longer interruption): the rest of the voice must be heard.
                if let Some(c) = canceller.as_mut() {
                    if listener.in_speech() {
                        overheard |= c.playing();
                    } else if std::mem::take(&mut overheard) && !c.playing() {
                        c.doubt();
                    }
                }
                warn_non_finite(&resampler, &mut self.reported_non_finite);
                if let Some(c) = canceller.as_ref().filter(|_| stats_at.elapsed() >= Duration::from_secs(30)) {
                    stats_at = Instant::now();
                    let s = c.stats();
                    tracing::debug!(
                        target: "hiwar::hearing",
                        "echo canceller: ERLE {:?} dB, delay {:?} ms, {} microphone frames before their reference, {} reference frames dropped",
                        s.erle_db,
                        s.delay_ms,
                        s.underruns,
                        s.dropped
                    );
                }
                let dropped = capture.stats().dropped.load(Ordering::Relaxed);
                if dropped > reported_drops {
                    reported_drops = dropped;
                    let _ = self.events.send(HearingEvent::Overrun { dropped });
                }
            }
            // Close what was being said, then hand the VAD to the next capture.
            listener.finish(|l, b| self.on_boundary(l, b))?;
            (vad, turn) = listener.into_models();
            if stop.load(Ordering::Relaxed) {
                break;
            }
            reported = on_speaker.is_some();
            let reason = match on_speaker {
                Some(source) => format!(
                    "the sound server moved the capture to {source}, the speaker's own sound (the microphone is gone); not listening until a microphone is back"
                ),
                None => format!("{} stopped delivering audio", capture.device()),
            };
            let _ = self.events.send(HearingEvent::DeviceLost { reason });
        }
        Ok(())
    }

    fn feed(&mut self, listener: &mut Listener, samples: &[f32]) -> Result<()> {
        if !samples.is_empty() {
            self.level.set(level_db(samples));
            self.liveness.samples.fetch_add(samples.len() as u64, Ordering::Relaxed);
        }
        // The words before this pause, heard as a finished question, may end it sooner.
        if let Some(v) = self.pauses.question.swap(0, Ordering::Relaxed).checked_sub(1) {
            listener.heard_question(v);
        }
        listener.push(samples, |l, b| self.on_boundary(l, b))?;
        self.level.1.store(listener.voiced_span(), Ordering::Relaxed);
        if !listener.in_speech() && self.forget.swap(false, Ordering::Relaxed) {
            listener.forget();
            let _ = self.jobs.send(Job::Forget);
        }
        // A partial while speech goes on, if whisper is free and enough new audio came. Not
        // during a pause: whisper must be free for the final when the pause turns out to be
        // the end.
        if let Some((id, start)) = self.current {
            let now = listener.position();
            let interval = u64::from(self.config.partial_interval_ms) * 16;
            if listener.voiced() && now - self.last_partial >= interval && !self.busy.load(Ordering::Relaxed) {
                self.last_partial = now;
                self.busy.store(true, Ordering::Relaxed);
                let pauses = self.pauses.begun.load(Ordering::Relaxed);
                let _ = self.jobs.send(Job::Partial { id, start, upto: now, pauses, audio: listener.audio(start, now).to_vec() });
            }
        }
        Ok(())
    }

    fn on_boundary(&mut self, l: &Listener, boundary: Boundary) {
        match boundary {
            Boundary::Started { start } => {
                let id = self.next_id;
                self.next_id += 1;
                self.current = Some((id, start));
                self.last_partial = l.position();
                let level_db = level_db(l.audio(start, l.position()));
                let _ = self.events.send(HearingEvent::SpeechStarted { utterance: id, start, at: Instant::now(), level_db });
            }
            Boundary::Paused { last_voiced } => {
                if let Some((id, start)) = self.current {
                    // The partial in flight, if any, gives way to the speculative final.
                    if let Ok(mut at) = self.pauses.last_begun.lock() {
                        *at = Some(Instant::now());
                    }
                    self.pauses.begun.fetch_add(1, Ordering::Relaxed);
                    let resumed = self.pauses.resumed.load(Ordering::Relaxed);
                    let audio = l.audio(start, last_voiced + TAIL_SAMPLES).to_vec();
                    let _ = self.jobs.send(Job::Speculative { id, start, last_voiced, resumed, audio });
                }
            }
            Boundary::Resumed => {
                self.pauses.resumed.fetch_add(1, Ordering::Relaxed);
            }
            Boundary::Probe { .. } => {} // the listener answers it itself
            Boundary::Ended { start, last_voiced, decided_at, turn } => {
                let id = self.current.take().map_or(self.next_id, |(id, _)| id);
                let _ = self.events.send(HearingEvent::SpeechEnded { utterance: id, last_voiced, decided_at, decided: Instant::now(), turn });
                let audio = l.audio(start, last_voiced + TAIL_SAMPLES).to_vec();
                let _ = self.jobs.send(Job::Finalize { id, start, last_voiced, audio });
            }
        }
    }
}

/// Smart Turn, where the config asks for it; hearing goes on with silence alone (and says so)
/// when it cannot be loaded: a person is waiting, and a slower end of turn is better than none.
fn load_turn(config: &HearingConfig) -> Option<SmartTurn> {
    let path = config.smart_turn.as_ref().filter(|_| config.segmenter.turn.is_some())?;
    match SmartTurn::load(path) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("semantic end of turn unavailable, turns end after {} ms of silence: {e}", config.segmenter.end_silence_ms);
            None
        }
    }
}

/// Waits while a capture opened now would hear the speaker (the sound server's default source
/// is its monitor, or the capture just closed is still listed there), saying so once unless
/// the loss was `reported` already.
fn wait_for_microphone(watch: &RouteWatch, events: &Sender<HearingEvent>, stop: &AtomicBool, reported: bool) {
    let mut said = reported;
    while !stop.load(Ordering::Relaxed) {
        let route = watch.route();
        if !route.default_hears_itself() && route.hears_itself().is_none() {
            return;
        }
        if !said {
            said = true;
            let reason = format!("the default source is {}, the speaker's own sound; not listening until a microphone is back", route.default_source);
            let _ = events.send(HearingEvent::DeviceLost { reason });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_device(device: &str, stop: &AtomicBool) {
    // Poll for the device to come back, without busy-waiting.
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        if Capture::open(device).is_ok() {
            return;
        }
    }
}

/// Audio a partial must cover before it makes the full language decision (decoding both
/// languages when detection is not sure); later decodes of the utterance keep its choice,
/// unless it chose a language other than the primary on a decode whisper rejects
/// ([`super::LanguageChoice::settles`]): then the next decode decides again on more audio.
const LANG_EVIDENCE: usize = 16_000 * 3 / 2;

/// One whisper job's time on the whisper thread, logged when it ends however it ends
/// (`hiwar::hearing` at debug; no words): what a final waited behind (docs/benchmarks.md, "Why
/// the final is late").
struct JobTiming {
    kind: &'static str,
    id: u64,
    seconds: f32,
    began: Instant,
    outcome: &'static str,
}

impl Drop for JobTiming {
    fn drop(&mut self) {
        let ms = self.began.elapsed().as_millis();
        tracing::debug!(target: "hiwar::hearing", "whisper: {} of utterance {}, {:.2} s of audio: {} in {ms} ms", self.kind, self.id, self.seconds, self.outcome);
    }
}

/// The hearing thread's pause counts, which the whisper thread compares with those a job was
/// sent with.
#[derive(Debug, Default)]
struct Pauses {
    /// Pauses begun (a partial sent before is abandoned: the speculative final replaces it).
    begun: AtomicU64,
    /// Pauses that ended in more speech (a speculative final sent before is stale).
    resumed: AtomicU64,
    /// When the last pause began (how long an abandoned partial held the final up is logged).
    last_begun: std::sync::Mutex<Option<Instant>>,
    /// 1 + the last voiced sample of the last pause whose speculative decode heard a finished
    /// question (0: none since the hearing thread last looked): see
    /// [`super::Listener::heard_question`].
    question: AtomicU64,
}

impl Pauses {
    /// The whisper thread's speculative decode of the pause after `last_voiced` heard `u`.
    fn heard(&self, last_voiced: u64, u: Option<&Utterance>) {
        if u.is_some_and(|u| crate::text::is_question(&u.text)) {
            tracing::debug!(target: "hiwar::hearing", "whisper: the words before the pause are a finished question");
            self.question.store(last_voiced + 1, Ordering::Relaxed);
        }
    }
}

fn decode_loop(t: &Transcriber, jobs: &Receiver<Job>, events: &Sender<HearingEvent>, busy: &AtomicBool, pauses_now: &Pauses, liveness: &Liveness) {
    // The last speculative decode: (utterance, last voiced sample, result).
    let mut speculative: Option<(u64, u64, Option<Utterance>)> = None;
    // The language partials settled on for the utterance in progress.
    let mut detected: Option<(u64, String)> = None;
    // The last partial: (utterance, last sample it covers, result).
    let mut last_partial: Option<(u64, u64, Option<Utterance>)> = None;
    loop {
        liveness.decoding(false);
        let Ok(job) = jobs.recv() else { break };
        liveness.decoding(true);
        if let Job::Forget = job {
            (speculative, detected, last_partial) = (None, None, None);
            t.forget();
            tracing::debug!(target: "hiwar::hearing", "whisper: the session's last decodes and whisper's states wiped");
            continue;
        }
        let mut timing = job.timing();
        let kind = timing.kind;
        // A speculative final that more speech overtook is what was heard so far: a partial.
        let overtaken = kind != "final" && speculative.as_ref().is_some_and(|(s, _, _)| *s == timing.id);
        if overtaken && let Some((id, upto, Some(u))) = speculative.take() {
            let (text, lang) = (u.text.clone(), u.lang.clone());
            let _ = events.send(HearingEvent::Partial { utterance: id, text, lang, upto, at: Instant::now() });
        }
        let result = match job {
            Job::Partial { id, start, upto, pauses, audio } => {
                // Detection alone until there is enough audio to decide on; then the full
                // decision, once, and later decodes of this utterance keep it.
                let decide = match detected.as_ref().filter(|(d, _)| *d == id) {
                    Some((_, lang)) => Decide::Settled(lang),
                    None if audio.len() >= LANG_EVIDENCE => Decide::Full,
                    None => Decide::Detect,
                };
                // A pause since it was sent: the speculative final (next in the queue) is wanted
                // first; this provisional decode is abandoned between two decoder steps. Not the
                // partial that decides the language: that decision is what makes the finals
                // after it one decode each.
                let paused_since = || pauses_now.begun.load(Ordering::Relaxed) != pauses;
                let interrupt = (decide != Decide::Full).then_some(Interrupt(&paused_since));
                let r = t.transcribe_partial(id, &audio, start, upto, decide, interrupt);
                busy.store(false, Ordering::Relaxed);
                if matches!(r, Err(Error::Interrupted)) {
                    timing.outcome = "abandoned for the final";
                    if let Some(at) = pauses_now.last_begun.lock().ok().and_then(|at| *at) {
                        tracing::debug!(target: "hiwar::hearing", "whisper: the partial gave way {} ms after the pause began", at.elapsed().as_millis());
                    }
                    continue;
                }
                r.map(|u| {
                    if let Some(u) = &u {
                        if audio.len() >= LANG_EVIDENCE && u.language.settles() {
                            detected = Some((id, u.lang.clone()));
                        }
                        let (text, lang) = (u.text.clone(), u.lang.clone());
                        let _ = events.send(HearingEvent::Partial { utterance: id, text, lang, upto, at: Instant::now() });
                    }
                    last_partial = Some((id, upto, u));
                })
            }
            Job::Speculative { id, start, last_voiced, resumed, audio } => {
                if resumed != pauses_now.resumed.load(Ordering::Relaxed) {
                    timing.outcome = "stale: the speech went on";
                    continue;
                }
                // A partial that already heard the whole utterance, tail included, is the final (the
                // same audio a final decode would get).
                // Only a partial whose language was decided: one from detection alone (under
                // 1.5 s of audio) gets the full decision here.
                let decided = |u: &Option<Utterance>| u.as_ref().is_some_and(|u| (u.language.sure || u.language.how != "detected") && u.language.settles());
                if let Some((_, _, u)) = last_partial.take().filter(|(p, upto, u)| *p == id && *upto >= last_voiced + TAIL_SAMPLES && decided(u)) {
                    pauses_now.heard(last_voiced, u.as_ref());
                    speculative = Some((id, last_voiced, u.map(|u| Utterance { end: last_voiced, ..u })));
                    timing.outcome = "the last partial kept";
                    continue;
                }
                let settled = detected.as_ref().filter(|(d, _)| *d == id).map(|(_, l)| l.clone());
                let decide = settled.as_deref().map_or(Decide::Full, Decide::Settled);
                // The speech going on makes it stale: it is abandoned between two of whisper's
                // steps, so the partials and the final after it do not wait for it.
                let resumed_since = || pauses_now.resumed.load(Ordering::Relaxed) != resumed;
                let r = t.transcribe_speculative(id, &audio, start, last_voiced, decide, Interrupt(&resumed_since));
                if matches!(r, Err(Error::Interrupted)) {
                    timing.outcome = "abandoned: the speech went on";
                    continue;
                }
                r.map(|u| {
                    // Its language decision stands for the rest of the utterance, as a partial's.
                    if let Some(u) = &u
                        && audio.len() >= LANG_EVIDENCE
                        && settled.is_none()
                        && u.language.settles()
                    {
                        detected = Some((id, u.lang.clone()));
                    }
                    pauses_now.heard(last_voiced, u.as_ref());
                    speculative = Some((id, last_voiced, u));
                })
            }
            Job::Finalize { id, start, last_voiced, audio } => {
                let hint = detected.take().filter(|(d, _)| *d == id).map(|(_, l)| l);
                let (utterance, from_guess) = match speculative.take() {
                    Some((sid, sv, u)) if sid == id && sv == last_voiced => {
                        timing.outcome = "the speculative decode kept";
                        (Ok(u), true)
                    }
                    _ => (t.transcribe_with(id, &audio, start, last_voiced, hint.as_deref().map_or(Decide::Full, Decide::Settled)), false),
                };
                utterance.map(|utterance| {
                    if let Some(u) = &utterance {
                        t.remember(u);
                    }
                    let _ = events.send(HearingEvent::Final { utterance, id, ready: Instant::now(), speculative: from_guess });
                })
            }
            // Handled before the timing, above.
            Job::Forget => Ok(()),
        };
        if let Err(e) = result {
            timing.outcome = "failed";
            let _ = events.send(HearingEvent::Failed { reason: format!("{kind}: {e}") });
        }
    }
}
