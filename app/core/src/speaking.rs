//! The voice worker: text in, speech out, in the order it was asked for, cancelled by turn —
//! the one synthesis path of the live loop, the window, `hiwar say` and the server.
//!
//! A synthesis thread owns the voices and turns each piece of text into speech. In a
//! [`VoiceOut`] it hands the speech to an output thread that owns the output (the speaker,
//! memory, a wall clock, nowhere) and queues it there, in order; in a [`VoicePool`] several
//! synthesis threads share one queue and hand each piece back to whoever asked (a WebSocket
//! session streams it itself). A synthesis that hangs (a wedged espeak-ng, a stuck inference)
//! is seen from outside ([`VoiceOut::synthesizing_for`]) and the watchdog restarts the
//! synthesis thread alone ([`VoiceOut::restart`]): the stuck one is abandoned (its helper
//! processes killed, so it gets an error and ends), a new one loads the voices again and takes
//! over the same queue, the piece that hung is tried once more, and the output — the speaker,
//! its clock, what is already queued — carries on untouched.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hiwar_speech::voice::{PlayClock, Player, Speech, Stopper, Voices};
use tokio::sync::{mpsc, oneshot};

use crate::bus::Said;
use crate::config::Config;

/// A piece of text to say for a turn.
#[derive(Debug, Clone)]
struct Piece {
    turn: u64,
    what: Said,
    text: String,
    /// Already tried once by a synthesis thread that hung on it.
    retried: bool,
    /// When whoever asked needs it (a [`VoicePool`]'s caller: when its listener's playback
    /// runs out). Pieces with one are taken earliest first; `None` keeps the order asked.
    due: Option<Instant>,
}

/// Where a piece's speech goes once synthesised.
enum Reply {
    /// To the worker's output thread (a [`VoiceOut`]).
    Output,
    /// Back to whoever asked (a [`VoicePool`]).
    Once(oneshot::Sender<Result<Speech, String>>),
}

/// What a synthesis thread is asked to do, in order.
enum VoiceCmd {
    Say(Piece, Reply),
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
    pub what: Said,
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

/// Where speech goes.
pub enum Output {
    /// The speaker: the clock is its played-sample clock.
    Speaker(Player),
    /// Kept in memory (demo videos, `chat --speak`); the clock is the count of samples kept.
    Memory { samples: Vec<f32> },
    /// Counted, not kept (benchmarks of many turns, `hiwar say --out`, which writes each
    /// piece as it comes).
    Null { played: u64 },
    /// No speaker, but a person watching (the window without a sound device): speech is timed
    /// on the wall clock from `started`, at `rate` — the mouth and captions move, nothing is heard.
    Wall { started: Instant, rate: u32, free_from: u64 },
}

/// The commands waiting for synthesis, shared by the synthesis threads and any that replaces one.
#[derive(Default)]
struct Queue {
    items: Mutex<(VecDeque<VoiceCmd>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, cmd: VoiceCmd, front: bool) {
        let mut q = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if front {
            q.0.push_front(cmd);
        } else {
            q.0.push_back(cmd);
        }
        self.ready.notify_all();
    }

    /// The next command; `None` once closed and drained, or when `abandoned`. When the first
    /// waiting command is a piece with a due time, the piece due earliest goes first (earliest
    /// deadline first: a listener whose playback runs out soonest is served first, one with
    /// seconds of speech buffered waits); otherwise the first asked.
    fn pop(&self, abandoned: &AtomicBool) -> Option<VoiceCmd> {
        let mut q = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if abandoned.load(Ordering::Acquire) {
                return None;
            }
            let due = |c: &VoiceCmd| match c {
                VoiceCmd::Say(p, _) => p.due,
                _ => None,
            };
            if q.0.front().and_then(due).is_some() {
                // min_by_key keeps the first of equals: pieces due together go in order asked.
                let first = q.0.iter().enumerate().filter_map(|(i, c)| Some((i, due(c)?))).min_by_key(|&(_, d)| d).map(|(i, _)| i);
                if let Some(cmd) = first.and_then(|i| q.0.remove(i)) {
                    return Some(cmd);
                }
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
    Queue { turn: u64, what: Said, text: String, speech: Speech, synth_ms: f64 },
    End { turn: u64 },
    Close,
}

/// One synthesis thread, as its owner sees it from outside.
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

/// What a synthesis thread shares with its owner.
#[derive(Clone)]
struct Shared {
    queue: Arc<Queue>,
    cancelled: Arc<AtomicU64>,
    /// The output thread's channel (a [`VoiceOut`]; none in a pool).
    out: Option<std::sync::mpsc::Sender<OutCmd>>,
    events: Option<mpsc::UnboundedSender<VoiceEvent>>,
    epoch: Instant,
}

impl Shared {
    fn failed(&self, turn: u64, message: String) {
        match &self.events {
            Some(events) => {
                let _ = events.send(VoiceEvent::Failed { turn, message });
            }
            None => tracing::error!("voice: {message}"),
        }
    }
}

/// Whether `turn` is still wanted.
fn live(cancelled: &AtomicU64, turn: u64) -> bool {
    cancelled.load(Ordering::Acquire) < turn
}

/// The voice worker for one output. See the module's documentation.
pub struct VoiceOut {
    shared: Shared,
    stopper: Option<Stopper>,
    pub clock: Option<Arc<PlayClock>>,
    synth: Mutex<Synth>,
    /// New voices for a restarted synthesis thread come from this config (the latest reload's).
    config: Mutex<Option<Config>>,
    out_tx: std::sync::mpsc::Sender<OutCmd>,
    output: Option<std::thread::JoinHandle<Vec<f32>>>,
}

impl std::fmt::Debug for VoiceOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceOut").finish_non_exhaustive()
    }
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
            _ => (None, None),
        };
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let output = {
            let (cancelled, events) = (Arc::clone(&cancelled), events.clone());
            std::thread::Builder::new()
                .name("voice-out".into())
                .spawn(move || output_loop(output, &out_rx, &cancelled, &events))
                .expect("spawn the voice output thread")
        };
        let shared = Shared { queue: Arc::new(Queue::default()), cancelled, out: Some(out_tx.clone()), events: Some(events), epoch: Instant::now() };
        let synth = spawn_synth(Ok(voices), shared.clone(), "voice");
        let worker = VoiceOut { shared, stopper, clock, synth: Mutex::new(synth), config: Mutex::new(config), out_tx, output: Some(output) };
        (worker, events_rx)
    }

    /// Says `text` for `turn` after everything asked before it.
    pub fn say(&self, turn: u64, what: Said, text: &str) {
        if !text.trim().is_empty() {
            self.shared.queue.push(VoiceCmd::Say(Piece { turn, what, text: text.to_string(), retried: false, due: None }, Reply::Output), false);
        }
    }

    /// Everything for `turn` has been asked for: a [`VoiceEvent::TurnEnd`] follows its speech.
    pub fn end(&self, turn: u64) {
        self.shared.queue.push(VoiceCmd::End { turn }, false);
    }

    /// Speaks with `voices` from the next piece on (the operator reloaded the config); a
    /// restart after this loads its voices from `config`.
    pub fn replace_voices(&self, voices: Voices, config: Config) {
        if let Ok(mut c) = self.config.lock() {
            *c = Some(config);
        }
        self.shared.queue.push(VoiceCmd::Replace(Box::new(voices)), false);
    }

    /// Stops `turn`'s speech at once: nothing more is queued and the player fades out.
    pub fn cancel(&self, turn: u64) {
        self.shared.cancelled.fetch_max(turn, Ordering::AcqRel);
        if let Some(s) = &self.stopper {
            s.stop();
        }
    }

    /// How long the synthesis in progress has run, if one is.
    pub fn synthesizing_for(&self) -> Option<Duration> {
        let synth = self.synth.lock().ok()?;
        match synth.since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(self.shared.epoch.elapsed().saturating_sub(Duration::from_millis(since - 1))),
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
        match stuck {
            Some(p) if !p.retried && live(&self.shared.cancelled, p.turn) => {
                self.shared.queue.push(VoiceCmd::Say(Piece { retried: true, ..p }, Reply::Output), true);
            }
            Some(p) => self.shared.failed(p.turn, format!("synthesis hung twice on {:?}: dropped", p.text.chars().take(60).collect::<String>())),
            None => {}
        }
        let load = Box::new(move || crate::build::speaking_voices(&config));
        let old = std::mem::replace(&mut *synth, spawn_synth(Err(load), self.shared.clone(), "voice"));
        // The stuck thread is not joined: it ends by itself once its helper is gone.
        drop(old.handle);
        true
    }

    /// Waits for everything sent to be spoken; returns the audio kept in memory (if any).
    pub fn finish(mut self) -> Vec<f32> {
        self.shared.queue.close();
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
        self.shared.queue.close();
        if let Ok(s) = self.synth.lock() {
            s.abandoned.store(true, Ordering::Release);
        }
        let _ = self.out_tx.send(OutCmd::Close);
    }
}

/// Synthesis threads shared by many callers (the WebSocket sessions): each owns its voices;
/// a piece goes to whichever is free, and its speech comes back to the caller.
pub struct VoicePool {
    shared: Shared,
    threads: Vec<Synth>,
    rate: u32,
}

impl std::fmt::Debug for VoicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoicePool").field("threads", &self.threads.len()).finish()
    }
}

impl VoicePool {
    /// `threads` synthesis threads, each with voices that have just spoken a word.
    pub fn start(config: &Config, threads: usize) -> anyhow::Result<VoicePool> {
        let shared = Shared { queue: Arc::new(Queue::default()), cancelled: Arc::new(AtomicU64::new(0)), out: None, events: None, epoch: Instant::now() };
        let mut rate = 22_050;
        let mut spawned = Vec::new();
        for i in 0..threads.max(1) {
            let voices = crate::build::speaking_voices(config)?;
            rate = voices.sample_rate();
            spawned.push(spawn_synth(Ok(voices), shared.clone(), &format!("synth-{i}")));
        }
        Ok(VoicePool { shared, threads: spawned, rate })
    }

    /// The rate its speech comes out at.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// How many synthesis threads it runs.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Synthesises `text` on the first free thread; of the pieces waiting, the one `due`
    /// earliest is taken first (when its listener's playback would run out; now, for a turn's
    /// first piece).
    pub async fn speak(&self, text: String, due: Instant) -> Result<Speech, String> {
        let (reply, rx) = oneshot::channel();
        self.shared.queue.push(VoiceCmd::Say(Piece { turn: u64::MAX, what: Said::Answer, text, retried: false, due: Some(due) }, Reply::Once(reply)), false);
        rx.await.map_err(|_| "the voice threads stopped".to_string())?
    }
}

impl Drop for VoicePool {
    fn drop(&mut self) {
        self.shared.queue.close();
        for t in &self.threads {
            t.abandoned.store(true, Ordering::Release);
        }
    }
}

type LoadVoices = Box<dyn FnOnce() -> anyhow::Result<Voices> + Send>;

/// Starts a synthesis thread with `voices` (or loads them on the thread itself) that serves the
/// queue.
fn spawn_synth(voices: Result<Voices, LoadVoices>, shared: Shared, name: &str) -> Synth {
    let since = Arc::new(AtomicU64::new(0));
    let current = Arc::new(Mutex::new(None));
    let helpers = Arc::new(Mutex::new(Vec::new()));
    let abandoned = Arc::new(AtomicBool::new(false));
    let state = (Arc::clone(&since), Arc::clone(&current), Arc::clone(&helpers), Arc::clone(&abandoned));
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let (since, current, helpers, abandoned) = state;
            let mut voices = match voices {
                Ok(v) => v,
                Err(load) => match load() {
                    Ok(v) => v,
                    Err(e) => return shared.failed(0, format!("the voices did not load again after a restart: {e:#}")),
                },
            };
            if let Ok(mut h) = helpers.lock() {
                *h = voices.helpers();
            }
            while let Some(cmd) = shared.queue.pop(&abandoned) {
                let (piece, reply) = match cmd {
                    VoiceCmd::End { turn } => {
                        if let Some(out) = &shared.out {
                            let _ = out.send(OutCmd::End { turn });
                        }
                        continue;
                    }
                    VoiceCmd::Replace(new) => {
                        voices = *new;
                        if let Ok(mut h) = helpers.lock() {
                            *h = voices.helpers();
                        }
                        continue;
                    }
                    VoiceCmd::Say(piece, reply) => (piece, reply),
                };
                if !live(&shared.cancelled, piece.turn) {
                    continue;
                }
                if let Ok(mut c) = current.lock() {
                    *c = Some(piece.clone());
                }
                since.store(shared.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                let started = Instant::now();
                // The live loop's answers come in order, one visitor's at a time: whom an
                // earlier chunk addressed carries to the next; a pool's pieces start afresh.
                voices.within(matches!(reply, Reply::Output).then_some(piece.turn));
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
                match (reply, result) {
                    (Reply::Once(tx), result) => {
                        let _ = tx.send(result.map_err(|e| e.to_string()));
                    }
                    (Reply::Output, Ok(speech)) if !speech.samples.is_empty() => {
                        let synth_ms = started.elapsed().as_secs_f64() * 1e3;
                        if let Some(out) = &shared.out {
                            let _ = out.send(OutCmd::Queue { turn, what, text, speech, synth_ms });
                        }
                    }
                    (Reply::Output, Ok(_)) => {}
                    (Reply::Output, Err(e)) => shared.failed(turn, e.to_string()),
                }
            }
        })
        .expect("spawn a voice thread");
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
                    Output::Wall { free_from, .. } => *free_from,
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
                        let rate = p.sample_rate();
                        // Reported as soon as its place on the clock is known: a piece longer
                        // than the player's ring starts playing while the rest of it waits.
                        let speech = Arc::new(speech);
                        let shown = Arc::clone(&speech);
                        let announce = move |start: u64, end: u64| {
                            let spoken = Spoken { turn, what, text, speech: shown, start, end, clock_rate: rate, queued_at, clock_then, synth_ms };
                            let _ = events.send(VoiceEvent::Spoken(spoken));
                        };
                        match p.queue_announced(&speech.samples, speech.sample_rate, announce, || live(cancelled, turn)) {
                            Ok(_) if !live(cancelled, turn) => p.stop(), // cancelled while queueing: drop what got in
                            Ok(_) => {}
                            Err(e) => {
                                let _ = events.send(VoiceEvent::Failed { turn, message: e.to_string() });
                            }
                        }
                        continue;
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
                    Output::Wall { started, rate, free_from } => {
                        let now = (started.elapsed().as_secs_f64() * f64::from(*rate)) as u64;
                        let start = (*free_from).max(now);
                        *free_from = start + speech.samples.len() as u64 * u64::from(*rate) / u64::from(speech.sample_rate.max(1));
                        Ok((start, *free_from, *rate, Instant::now(), now))
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
        Output::Speaker(p) => {
            p.wait_until_heard(Duration::from_secs(30));
            Vec::new()
        }
        Output::Null { .. } | Output::Wall { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, due: Option<Instant>) -> VoiceCmd {
        VoiceCmd::Say(Piece { turn: 1, what: Said::Answer, text: text.into(), retried: false, due }, Reply::Output)
    }

    fn popped(q: &Queue) -> String {
        match q.pop(&AtomicBool::new(false)) {
            Some(VoiceCmd::Say(p, _)) => p.text,
            Some(VoiceCmd::End { turn }) => format!("end {turn}"),
            Some(VoiceCmd::Replace(_)) => "replace".into(),
            None => "none".into(),
        }
    }

    #[test]
    fn pieces_with_due_times_go_earliest_first_and_others_in_order() {
        let now = Instant::now();
        let q = Queue::default();
        q.push(piece("b in 2 s", Some(now + Duration::from_secs(2))), false);
        q.push(piece("a now", Some(now)), false);
        q.push(piece("c in 2 s, asked later", Some(now + Duration::from_secs(2))), false);
        q.push(piece("d in 1 s", Some(now + Duration::from_secs(1))), false);
        let order: Vec<String> = (0..4).map(|_| popped(&q)).collect();
        assert_eq!(order, ["a now", "d in 1 s", "b in 2 s", "c in 2 s, asked later"]);
        // A speaker's worker (no due times): strictly the order asked, commands included.
        q.push(piece("one", None), false);
        q.push(VoiceCmd::End { turn: 1 }, false);
        q.push(piece("two", None), false);
        q.close();
        let order: Vec<String> = (0..4).map(|_| popped(&q)).collect();
        assert_eq!(order, ["one", "end 1", "two", "none"]);
    }
}
