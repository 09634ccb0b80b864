//! The voice worker: text in, speech out onto an output (the speaker, memory, nowhere), in the
//! order it was asked for, cancelled by turn.
//!
//! Two threads. The synthesis thread owns the voices and turns each piece of text into speech;
//! the output thread owns the output and queues the speech on it (on the speaker it waits for
//! room in the player's ring). Between them a channel keeps the order. A synthesis that hangs
//! (a wedged espeak-ng, a stuck inference) is seen from outside ([`VoiceOut::synthesizing_for`])
//! and the watchdog restarts the synthesis thread alone ([`VoiceOut::restart`]): the stuck one
//! is abandoned (its helper processes killed, so it gets an error and ends), a new one loads
//! the voices again and takes over the same queue, the piece that hung is tried once more, and
//! the output — the speaker, its clock, what is already queued — carries on untouched.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hiwar_speech::voice::{PlayClock, Player, Speech, Stopper, Voices};
use tokio::sync::mpsc;

use crate::config::Config;

/// A piece of text to say for a turn.
#[derive(Debug, Clone)]
struct Piece {
    turn: u64,
    what: &'static str,
    text: String,
    /// Already tried once by a synthesis thread that hung on it.
    retried: bool,
}

/// What the synthesis thread is asked to do, in order.
enum VoiceCmd {
    Say(Piece),
    /// Everything for `turn` has been sent.
    End {
        turn: u64,
    },
    /// New voices (the operator reloaded the config): used from the next piece on.
    Replace(Box<Voices>),
}

/// A chunk of speech queued on the output.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub turn: u64,
    pub what: &'static str,
    pub text: String,
    pub speech: Arc<Speech>,
    /// Where it plays on the output clock, and the clock's rate.
    pub start: u64,
    pub end: u64,
    pub clock_rate: u32,
    /// When it was queued, and the clock then: it is heard at
    /// `queued_at + (start − clock_then) / clock_rate` (+ nothing: the clock already counts
    /// the device's latency).
    pub queued_at: Instant,
    pub clock_then: u64,
    pub synth_ms: f64,
}

impl Spoken {
    /// When its first sample reaches the listener.
    pub fn heard_at(&self) -> Instant {
        self.queued_at + Duration::from_secs_f64(self.start.saturating_sub(self.clock_then) as f64 / f64::from(self.clock_rate.max(1)))
    }
}

#[derive(Debug)]
pub enum VoiceEvent {
    Spoken(Spoken),
    /// All of `turn`'s speech is queued; it ends at `end` on the clock.
    TurnEnd {
        turn: u64,
        end: u64,
    },
    Failed {
        turn: u64,
        message: String,
    },
}

/// Where speech goes: the speaker, or memory (demo videos, `chat --speak`, tests without a
/// device), where the clock is the count of samples kept.
pub enum Output {
    Speaker(Player),
    Memory {
        samples: Vec<f32>,
    },
    /// Counted, not kept (benchmarks of many turns).
    Null {
        played: u64,
    },
}

/// The commands waiting for synthesis, shared by the synthesis thread and any that replaces it.
#[derive(Default)]
struct Queue {
    items: Mutex<(VecDeque<VoiceCmd>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, cmd: VoiceCmd, front: bool) {
        let mut q = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if front {
            q.0.push_front(cmd)
        } else {
            q.0.push_back(cmd)
        }
        self.ready.notify_all();
    }

    /// The next command; `None` once closed and drained, or when `abandoned`.
    fn pop(&self, abandoned: &AtomicBool) -> Option<VoiceCmd> {
        let mut q = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if abandoned.load(Ordering::Acquire) {
                return None;
            }
            if let Some(cmd) = q.0.pop_front() {
                return Some(cmd);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait_timeout(q, Duration::from_millis(200)).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    fn close(&self) {
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1 = true;
        self.ready.notify_all();
    }
}

/// What the output thread is asked to do.
enum OutCmd {
    Queue { turn: u64, what: &'static str, text: String, speech: Speech, synth_ms: f64 },
    End { turn: u64 },
    Close,
}

/// One synthesis thread, as the worker sees it from outside.
struct Synth {
    /// Milliseconds after `epoch` (+1) when the synthesis in progress began; 0 when idle.
    since: Arc<AtomicU64>,
    /// The piece being synthesised (to try again after a restart).
    current: Arc<Mutex<Option<Piece>>>,
    /// The voices' helper processes (espeak-ng), killed when the thread is abandoned.
    helpers: Arc<Mutex<Vec<hiwar_speech::espeak::Helper>>>,
    abandoned: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// The voice worker. See the module's documentation.
pub struct VoiceOut {
    queue: Arc<Queue>,
    /// Turns up to this one are cancelled (their speech is dropped).
    cancelled: Arc<AtomicU64>,
    stopper: Option<Stopper>,
    pub clock: Option<Arc<PlayClock>>,
    epoch: Instant,
    synth: Mutex<Synth>,
    /// New voices for a restarted synthesis thread come from this config (the latest reload's).
    config: Mutex<Option<Config>>,
    out_tx: std::sync::mpsc::Sender<OutCmd>,
    events: mpsc::UnboundedSender<VoiceEvent>,
    output: Option<std::thread::JoinHandle<Vec<f32>>>,
}

impl std::fmt::Debug for VoiceOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceOut").finish_non_exhaustive()
    }
}

/// Whether `turn` is still wanted.
fn live(cancelled: &AtomicU64, turn: u64) -> bool {
    cancelled.load(Ordering::Acquire) < turn
}

impl VoiceOut {
    /// Starts the worker with `voices` speaking onto `output`. `config`, when given, is where
    /// a restarted synthesis thread loads its voices from (without it, [`VoiceOut::restart`]
    /// cannot replace a stuck thread).
    pub fn start(voices: Voices, output: Output, config: Option<Config>) -> (VoiceOut, mpsc::UnboundedReceiver<VoiceEvent>) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let cancelled = Arc::new(AtomicU64::new(0));
        let (stopper, clock) = match &output {
            Output::Speaker(p) => (Some(p.stopper()), Some(p.clock())),
            Output::Memory { .. } | Output::Null { .. } => (None, None),
        };
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let output = {
            let (cancelled, events) = (Arc::clone(&cancelled), events.clone());
            std::thread::Builder::new()
                .name("voice-out".into())
                .spawn(move || output_loop(output, &out_rx, &cancelled, &events))
                .expect("spawn the voice output thread")
        };
        let queue = Arc::new(Queue::default());
        let epoch = Instant::now();
        let synth = spawn_synth(Ok(voices), Arc::clone(&queue), Arc::clone(&cancelled), out_tx.clone(), events.clone(), epoch);
        let worker =
            VoiceOut { queue, cancelled, stopper, clock, epoch, synth: Mutex::new(synth), config: Mutex::new(config), out_tx, events, output: Some(output) };
        (worker, events_rx)
    }

    fn say(&self, turn: u64, what: &'static str, text: &str) {
        if !text.trim().is_empty() {
            self.queue.push(VoiceCmd::Say(Piece { turn, what, text: text.to_string(), retried: false }), false);
        }
    }

    fn end(&self, turn: u64) {
        self.queue.push(VoiceCmd::End { turn }, false);
    }

    /// Speaks with `voices` from the next piece on (the operator reloaded the config); a
    /// restart after this loads its voices from `config`.
    pub fn replace_voices(&self, voices: Voices, config: Config) {
        if let Ok(mut c) = self.config.lock() {
            *c = Some(config);
        }
        self.queue.push(VoiceCmd::Replace(Box::new(voices)), false);
    }

    /// Stops `turn`'s speech at once: nothing more is queued and the player fades out.
    pub fn cancel(&self, turn: u64) {
        self.cancelled.fetch_max(turn, Ordering::AcqRel);
        if let Some(s) = &self.stopper {
            s.stop();
        }
    }

    /// How long the synthesis in progress has run, if one is.
    pub fn synthesizing_for(&self) -> Option<Duration> {
        let synth = self.synth.lock().ok()?;
        match synth.since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(self.epoch.elapsed().saturating_sub(Duration::from_millis(since - 1))),
        }
    }

    /// Replaces a stuck synthesis thread: it is abandoned (its helper processes are killed, so
    /// a wait on them ends), and a new thread loads the voices from the config and carries on
    /// with the queue, trying the piece that hung once more (a piece that hangs twice is
    /// dropped). Never blocks the caller. Returns false when there is no config to load
    /// voices from.
    pub fn restart(&self) -> bool {
        let Some(config) = self.config.lock().ok().and_then(|c| c.clone()) else { return false };
        let mut synth = self.synth.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        synth.abandoned.store(true, Ordering::Release);
        for h in synth.helpers.lock().map(|h| h.clone()).unwrap_or_default() {
            h.kill();
        }
        let stuck = synth.current.lock().ok().and_then(|mut c| c.take());
        let again = match stuck {
            Some(p) if !p.retried && live(&self.cancelled, p.turn) => Some(VoiceCmd::Say(Piece { retried: true, ..p })),
            Some(p) => {
                let message = format!("synthesis hung twice on {:?}: dropped", p.text.chars().take(60).collect::<String>());
                let _ = self.events.send(VoiceEvent::Failed { turn: p.turn, message });
                None
            }
            None => None,
        };
        if let Some(cmd) = again {
            self.queue.push(cmd, true);
        }
        let voices = Box::new(move || crate::voice::speaking_voices(&config));
        let old = std::mem::replace(
            &mut *synth,
            spawn_synth(Err(voices), Arc::clone(&self.queue), Arc::clone(&self.cancelled), self.out_tx.clone(), self.events.clone(), self.epoch),
        );
        // The stuck thread is not joined: it ends by itself once its helper is gone.
        drop(old.handle);
        true
    }

    /// Waits for everything sent to be spoken; returns the audio kept in memory (if any).
    pub fn finish(mut self) -> Vec<f32> {
        self.queue.close();
        let handle = self.synth.lock().ok().and_then(|mut s| s.handle.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        let _ = self.out_tx.send(OutCmd::Close);
        self.output.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for VoiceOut {
    fn drop(&mut self) {
        self.queue.close();
        if let Ok(s) = self.synth.lock() {
            s.abandoned.store(true, Ordering::Release);
        }
        let _ = self.out_tx.send(OutCmd::Close);
    }
}

/// Where a turn's speech goes: the live voice worker, or a WebSocket session's stream.
pub trait Speak: Send + Sync {
    fn say(&self, turn: u64, what: &'static str, text: &str);
    /// Everything for `turn` has been sent.
    fn end(&self, turn: u64);
}

impl Speak for VoiceOut {
    fn say(&self, turn: u64, what: &'static str, text: &str) {
        VoiceOut::say(self, turn, what, text);
    }

    fn end(&self, turn: u64) {
        VoiceOut::end(self, turn);
    }
}

type LoadVoices = Box<dyn FnOnce() -> anyhow::Result<Voices> + Send>;

/// Starts a synthesis thread with `voices` (or loads them on the thread itself) that serves the
/// queue.
fn spawn_synth(
    voices: Result<Voices, LoadVoices>,
    queue: Arc<Queue>,
    cancelled: Arc<AtomicU64>,
    out: std::sync::mpsc::Sender<OutCmd>,
    events: mpsc::UnboundedSender<VoiceEvent>,
    epoch: Instant,
) -> Synth {
    let since = Arc::new(AtomicU64::new(0));
    let current = Arc::new(Mutex::new(None));
    let helpers = Arc::new(Mutex::new(Vec::new()));
    let abandoned = Arc::new(AtomicBool::new(false));
    let state = (Arc::clone(&since), Arc::clone(&current), Arc::clone(&helpers), Arc::clone(&abandoned));
    let handle = std::thread::Builder::new()
        .name("voice".into())
        .spawn(move || {
            let (since, current, helpers, abandoned) = state;
            let mut voices = match voices {
                Ok(v) => v,
                Err(load) => match load() {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = events.send(VoiceEvent::Failed { turn: 0, message: format!("the voices did not load again after a restart: {e:#}") });
                        return;
                    }
                },
            };
            if let Ok(mut h) = helpers.lock() {
                *h = voices.helpers();
            }
            while let Some(cmd) = queue.pop(&abandoned) {
                let piece = match cmd {
                    VoiceCmd::End { turn } => {
                        let _ = out.send(OutCmd::End { turn });
                        continue;
                    }
                    VoiceCmd::Replace(new) => {
                        voices = *new;
                        if let Ok(mut h) = helpers.lock() {
                            *h = voices.helpers();
                        }
                        continue;
                    }
                    VoiceCmd::Say(piece) => piece,
                };
                if !live(&cancelled, piece.turn) {
                    continue;
                }
                if let Ok(mut c) = current.lock() {
                    *c = Some(piece.clone());
                }
                since.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                let started = Instant::now();
                let result = voices.speak(&piece.text);
                since.store(0, Ordering::Relaxed);
                if let Ok(mut c) = current.lock() {
                    *c = None;
                }
                if abandoned.load(Ordering::Acquire) {
                    // Replaced while it worked (it hung): its successor speaks this piece.
                    return;
                }
                let Piece { turn, what, text, .. } = piece;
                match result {
                    Ok(speech) if !speech.samples.is_empty() => {
                        let synth_ms = started.elapsed().as_secs_f64() * 1e3;
                        let _ = out.send(OutCmd::Queue { turn, what, text, speech, synth_ms });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = events.send(VoiceEvent::Failed { turn, message: format!("{e}") });
                    }
                }
            }
        })
        .expect("spawn the voice thread");
    Synth { since, current, helpers, abandoned, handle: Some(handle) }
}

/// The output thread: queues each piece of speech on the output, in order, and reports it.
fn output_loop(mut output: Output, rx: &std::sync::mpsc::Receiver<OutCmd>, cancelled: &AtomicU64, events: &mpsc::UnboundedSender<VoiceEvent>) -> Vec<f32> {
    for cmd in rx {
        match cmd {
            OutCmd::Close => break,
            OutCmd::End { turn } => {
                let end = match &output {
                    Output::Speaker(p) => p.queued_until(),
                    Output::Memory { samples, .. } => samples.len() as u64,
                    Output::Null { played } => *played,
                };
                let _ = events.send(VoiceEvent::TurnEnd { turn, end });
            }
            OutCmd::Queue { turn, what, text, speech, synth_ms } => {
                if !live(cancelled, turn) {
                    continue;
                }
                let queued = match &mut output {
                    Output::Speaker(p) => {
                        let clock_then = p.clock().position();
                        let queued_at = Instant::now();
                        match p.queue_while(&speech.samples, speech.sample_rate, || live(cancelled, turn)) {
                            Ok(start) => {
                                if !live(cancelled, turn) {
                                    // Cancelled while queueing: drop what got in.
                                    p.stop();
                                }
                                Ok((start, p.queued_until(), p.sample_rate(), queued_at, clock_then))
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Output::Memory { samples } => {
                        let start = samples.len() as u64;
                        samples.extend_from_slice(&speech.samples);
                        Ok((start, samples.len() as u64, speech.sample_rate, Instant::now(), start))
                    }
                    Output::Null { played } => {
                        let start = *played;
                        *played += speech.samples.len() as u64;
                        Ok((start, *played, speech.sample_rate, Instant::now(), start))
                    }
                };
                match queued {
                    Ok((start, end, clock_rate, queued_at, clock_then)) => {
                        let spoken = Spoken { turn, what, text, speech: Arc::new(speech), start, end, clock_rate, queued_at, clock_then, synth_ms };
                        let _ = events.send(VoiceEvent::Spoken(spoken));
                    }
                    Err(message) => {
                        let _ = events.send(VoiceEvent::Failed { turn, message });
                    }
                }
            }
        }
    }
    match output {
        Output::Memory { samples, .. } => samples,
        Output::Null { .. } => Vec::new(),
        Output::Speaker(p) => {
            p.wait_until_heard(Duration::from_secs(30));
            Vec::new()
        }
    }
}
