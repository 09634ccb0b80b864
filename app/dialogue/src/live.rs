//! The live loop: turns taken between the person and hiwar.
//!
//! States idle → listening → thinking → speaking, published on the bus. One turn: the final
//! transcript goes to the mind; its answer is cut into chunks as it streams and spoken by the
//! voice worker onto the speaker; if nothing has been sent to the voice `holding_after` after
//! the person stopped, a holding phrase is said. Barge-in: speech while hiwar speaks (louder
//! than the echo of its own voice by a margin) cancels the turn — the LLM connection is
//! dropped, the voice worker stops queueing, the player fades out — and listening starts.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hiwar_core::bus::{Bus, Event, EventKind, Lang, Said, State, TurnId};
use hiwar_core::speaking::{VoiceEvent, VoiceOut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::input::{BargeRecord, LoopInput};
use crate::mind::Mind;
use crate::turn::{TurnReport, TurnTimes, answer_turn, publish_spoken, reply_lang};

/// What a run of the live loop did.
#[derive(Debug, Default)]
pub struct LoopOutcome {
    pub turns: Vec<TurnReport>,
    pub barge_ins: Vec<BargeRecord>,
}

/// The live loop's settings.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Quiet that ends a session (the conversation memory is wiped).
    pub session_ends_after: Duration,
    pub barge_in: bool,
    pub margin_db: f32,
    /// Whether the microphone reaches the loop through the echo canceller (its echo is then a
    /// residual with bursts, not the answer itself: see [`echo_level`]).
    pub cancelled: bool,
    pub holding_after: Duration,
    /// Set when a session ends: hearing wipes the audio it keeps between utterances.
    pub wipe_audio: Arc<std::sync::atomic::AtomicBool>,
    /// Beaten every tick, for the watchdog.
    pub health: Option<Arc<crate::kiosk::watchdog::Health>>,
    /// When the voice counts as stuck, and how restarts add up to out of service.
    pub watchdog: hiwar_core::config::WatchdogConfig,
    /// The recogniser's vocabulary, rebuilt from the knowledge base on reload.
    pub vocabulary: Option<hiwar_speech::hearing::Vocabulary>,
    /// How long after the end of speech a question whose words stop mid-sentence ("I would
    /// like to…", «أبغى…») waits for the rest before it is answered as it is.
    pub unfinished_wait: Duration,
    /// How long speech over the answer must last, from its onset on the input's sample clock,
    /// to stop it (0: at once).
    pub interruption: Duration,
}

impl LoopSettings {
    pub fn from_config(config: &hiwar_core::config::Config) -> LoopSettings {
        let d = &config.dialogue;
        LoopSettings {
            session_ends_after: Duration::from_secs(d.session_ends_after_secs),
            barge_in: d.barge_in,
            margin_db: d.barge_in_margin_db,
            cancelled: config.hearing.echo_cancellation,
            holding_after: Duration::from_millis(d.holding_after_ms),
            wipe_audio: Arc::default(),
            health: None,
            watchdog: config.watchdog.clone(),
            vocabulary: None,
            unfinished_wait: Duration::from_millis(u64::from(config.hearing.turn_incomplete_ms)),
            interruption: Duration::from_millis(d.interruption_ms),
        }
    }
}

/// The turn in progress.
struct Active {
    id: u64,
    cancel: CancellationToken,
    speaking_since: Option<Instant>,
    /// Clock position where its speech ends, once all of it is queued.
    audio_end: Option<u64>,
    /// The question it answers, and each part of the answer queued so far: where it starts on
    /// the output clock (at the clock's rate) and its timed words. An interruption keeps in the
    /// conversation only the words played before it.
    asked: Question,
    played: Vec<(u64, u32, Arc<hiwar_speech::voice::Speech>)>,
}

/// The words of `played` that reached the listener before clock position `cut` (a word counts
/// once it has begun), as written, in order.
fn words_heard(played: &[(u64, u32, Arc<hiwar_speech::voice::Speech>)], cut: u64) -> String {
    let mut out: Vec<String> = Vec::new();
    for (start, clock_rate, speech) in played {
        let to_clock = |p: u64| start + p * u64::from(*clock_rate) / u64::from(speech.sample_rate.max(1));
        out.extend(speech.written_words(true).into_iter().filter(|w| to_clock(w.start) < cut).map(|w| w.text));
    }
    out.join(" ")
}

/// How long before the VAD reports a voice it began: its onset is not echo.
const ONSET: Duration = Duration::from_millis(700);

/// The echo of our own voice as the microphone hears it: the input's level while we spoke
/// (from `since`), up to [`ONSET`] before `at` — the interrupting voice itself began about
/// that long before the VAD reported it, and must not count as echo. Nor do the `voices`
/// already heard over the answer (from their onset to their end, or on if not ended): a
/// person's voice split in two by a pause is not the echo the second half must beat.
///
/// `quantile` 1 takes the loudest level: the echo itself, without a canceller. Behind the
/// canceller the echo is mostly gone (−90 dBFS and below here) but leaks in bursts of tens of
/// milliseconds, up to −23 dBFS: the loudest of those is no measure of what a voice must beat,
/// and a person at −27 dBFS was ignored for it (the echo test, 1 run in 6).
///
/// Returns the level at `quantile` and the loudest (−100 dBFS when nothing was heard).
pub fn echo_level(levels: &VecDeque<(Instant, f32)>, since: Instant, at: Instant, voices: &[(Instant, Option<Instant>)], quantile: f32) -> (f32, f32) {
    let a_voice = |t: Instant| voices.iter().any(|(start, end)| t + ONSET >= *start && end.is_none_or(|e| t <= e));
    let mut heard: Vec<f32> = levels.iter().filter(|(t, _)| *t >= since && *t + ONSET <= at && !a_voice(*t)).map(|(_, l)| *l).collect();
    heard.sort_by(f32::total_cmp);
    match heard.last() {
        None => (-100.0, -100.0),
        Some(&loudest) => (heard[((heard.len() - 1) as f32 * quantile.clamp(0.0, 1.0)).round() as usize], loudest),
    }
}

/// Behind the echo canceller, the level [`echo_level`] takes for the echo: all but the
/// loudest tenth.
const CANCELLED_ECHO_QUANTILE: f32 = 0.9;

/// The bus events of the voices over the answer not yet judged (see `run_loop`'s `held`).
#[derive(Default)]
struct Held {
    utterances: HashSet<u64>,
    events: Vec<Event>,
}

impl Held {
    /// Publishes `e`, or keeps it if it tells of an utterance being judged (not the
    /// microphone's or hearing's own state, whatever turn number they carry).
    fn publish(&mut self, bus: &Bus, e: Event) {
        let of_the_voice =
            matches!(e.kind, EventKind::State(State::Listening) | EventKind::SpeechStarted | EventKind::SpeechEnded | EventKind::Transcript { .. });
        if of_the_voice && self.utterances.contains(&e.turn.0) {
            self.events.push(e);
        } else {
            bus.publish(e);
        }
    }

    /// A voice took the turn: what was heard of it goes out, in order.
    fn release(&mut self, bus: &Bus) {
        self.utterances.clear();
        for e in self.events.drain(..) {
            bus.publish(e);
        }
    }

    fn drop_all(&mut self) {
        self.utterances.clear();
        self.events.clear();
    }
}

/// The voices over the answer not yet judged. A pause can split one voice into several
/// utterances ("Where is the | nearest office?"): each is held until the last is in, then all
/// they said is judged together.
#[derive(Default)]
struct OverAnswer {
    open: HashSet<u64>,
    /// What the transcribed ones said so far (the first one's utterance, and the words).
    said: Option<(u64, Question)>,
}

/// What a final over the answer decides.
#[derive(Debug)]
enum Verdict {
    /// Not a voice over the answer.
    NotOver,
    /// A later part is still to come.
    Wait,
    /// "mm", «ايوه», a cough: the answer goes on.
    Backchannel,
    /// A question, a command, three words or more: the words (with the utterance they began in).
    TakesTurn(u64, Question),
}

impl OverAnswer {
    fn heard(&mut self, utterance: u64) {
        self.open.insert(utterance);
    }

    /// The final of utterance `id`: its words (`None`: nothing but noise).
    fn judge(&mut self, id: u64, words: Option<Question>) -> Verdict {
        if !self.open.remove(&id) {
            return Verdict::NotOver;
        }
        let said = match (self.said.take(), words) {
            (Some((first, before)), Some(q)) => Some((first, after_pending(Some(before), q))),
            (None, Some(q)) => Some((id, q)),
            (before, None) => before,
        };
        if self.open.iter().any(|o| *o > id) {
            self.said = said;
            return Verdict::Wait;
        }
        match said {
            Some((first, q)) if hiwar_speech::text::takes_the_turn(&q.text) => Verdict::TakesTurn(first, q),
            _ => Verdict::Backchannel,
        }
    }

    /// The voice went on long enough to interrupt whatever it says: nothing more to judge;
    /// what it said before a pause is the start of the question.
    fn interrupted(&mut self) -> Option<(u64, Question)> {
        self.open.clear();
        self.said.take()
    }

    /// The latest voice over the answer still being judged.
    fn latest(&self) -> Option<u64> {
        self.open.iter().max().copied()
    }

    fn waiting(&self) -> bool {
        self.said.is_some()
    }
}

/// A question ready to answer.
#[derive(Debug, Clone)]
struct Question {
    text: String,
    lang: Lang,
    speech_end: Instant,
    decided: Option<Instant>,
    ready: Instant,
    /// Its last voiced sample on the input's sample clock (a typed question has none).
    last_voiced: Option<u64>,
}

/// `asked`, after the question still waiting before it (if any): one question.
fn after_pending(pending: Option<Question>, asked: Question) -> Question {
    match pending {
        Some(p) => Question { text: format!("{} {}", p.text, asked.text), ..asked },
        None => asked,
    }
}

/// Runs the live dialogue until `inputs` close (and the last answer is heard) or `stop` fires.
/// `level` is the microphone's loudness for the echo estimate.
#[allow(clippy::too_many_arguments, reason = "the loop's parts, wired by `hiwar run` and the benchmark")]
pub async fn live_loop(
    mut mind: Arc<Mind>,
    voice: Arc<VoiceOut>,
    bus: Bus,
    mut settings: LoopSettings,
    level: Arc<hiwar_speech::hearing::InputLevel>,
    mut inputs: mpsc::UnboundedReceiver<LoopInput>,
    loop_tx: mpsc::UnboundedSender<LoopInput>,
    stop: CancellationToken,
) -> LoopOutcome {
    use hiwar_speech::hearing::HearingEvent as H;
    let publish = |turn: u64, kind| bus.publish(Event { turn: TurnId(turn), clock: None, kind });
    let mut active: Option<Active> = None;
    let mut ignored: HashSet<u64> = HashSet::new();
    // When the last utterance ended (its last voiced sample), on the wall clock for the holding
    // phrase's deadline and on the input's sample clock; and how soon after it speech goes on
    // with that question (hearing's long wait, as hearing judges a continuation).
    let mut ended_at: Option<(u64, Instant, u64)> = None;
    let continues_within = |s: &LoopSettings| s.unfinished_wait.as_millis() as u64 * 16;
    // The utterance being spoken now, and a question waiting for the rest of the sentence.
    let mut in_progress: Option<u64> = None;
    let mut pending: Option<Question> = None;
    // A pending question whose words stop mid-sentence is answered at this time if no more
    // speech has come.
    let mut pending_until: Option<Instant> = None;
    // The voices over the answer being judged (the answer ducked meanwhile); the latest is
    // an interruption, whatever it says, once it has lasted long enough.
    let mut over = OverAnswer::default();
    // When each voice over the answer was heard (its onset, its end): not echo.
    let mut voices: Vec<(Instant, Option<Instant>)> = Vec::new();
    // The bus events of the voices over the answer being judged: published when one takes the
    // turn, dropped when they are a backchannel, a cough, or the answer's own echo leaking
    // through the canceller (no words, or its own): the answer goes on, and so does `speaking`.
    let mut held = Held::default();
    // An utterance that has ended and whose transcript is not in yet: the visitor is waiting.
    let mut transcribing: Option<u64> = None;
    let mut levels: VecDeque<(Instant, f32)> = VecDeque::new();
    let mut outcome = LoopOutcome::default();
    let mut times: std::collections::HashMap<u64, TurnTimes> = std::collections::HashMap::new();
    let mut decision: Option<(u64, Instant)> = None;
    let mut hearing_open = true;
    let mut last_activity = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut next_turn = 1u64;
    // The voice's watchdog: recent restarts, and whether it has spoken since the last one.
    let mut voice_restarts: VecDeque<Instant> = VecDeque::new();
    let mut spoke_since_restart = true;
    // The visitor's session in progress (its number), and how many there have been.
    let mut session: Option<u64> = None;
    let mut sessions = 0u64;
    publish(0, EventKind::State(State::Idle));
    // (The operator's log of sessions is the bus's Session events: `hiwar run` logs them.)
    let begin_session = |session: &mut Option<u64>, sessions: &mut u64| {
        if session.is_none() {
            *sessions += 1;
            *session = Some(*sessions);
            publish(*sessions, EventKind::Session { started: true });
        }
    };
    // The mind and the holding delay are arguments: a config reload replaces them.
    let start_turn = |q: Question,
                      mind: &Arc<Mind>,
                      holding: Duration,
                      active: &mut Option<Active>,
                      times: &mut std::collections::HashMap<u64, TurnTimes>,
                      next_turn: &mut u64| {
        if let Some(old) = active.take() {
            old.cancel.cancel();
            voice.cancel(old.id);
        }
        if let Some(c) = &voice.clock {
            c.duck(false);
        }
        let turn = *next_turn;
        *next_turn += 1;
        times.insert(turn, TurnTimes { speech_end: Some(q.speech_end), decided: q.decided, final_ready: Some(q.ready), ..TurnTimes::default() });
        let cancel = CancellationToken::new();
        *active = Some(Active { id: turn, cancel: cancel.clone(), speaking_since: None, audio_end: None, asked: q.clone(), played: Vec::new() });
        let (mind, voice, bus, tx, holding) = (Arc::clone(mind), Arc::clone(&voice), bus.clone(), loop_tx.clone(), holding);
        tokio::spawn(async move {
            let report = answer_turn(&mind, voice.as_ref(), &bus, turn, &q.text, q.lang, q.speech_end, holding, cancel).await;
            let _ = tx.send(LoopInput::TurnDone(Box::new(report)));
        });
    };
    loop {
        let input = tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => None,
            i = inputs.recv() => match i { Some(i) => Some(i), None => break },
        };
        let speaking = active.as_ref().and_then(|a| a.speaking_since);
        match input {
            None => {
                // The echo estimate leaves out what a canceller still learning the room let
                // through (no speech starts then; once learnt, its residual is the echo).
                if let Some(since) = speaking
                    && !level.settling()
                {
                    levels.push_back((Instant::now(), level.db()));
                    while levels.front().is_some_and(|(t, _)| *t < since) {
                        levels.pop_front();
                    }
                }
                // The answer has been heard in full: back to idle.
                if let Some(a) = &active
                    && let Some(end) = a.audio_end
                    && voice.clock.as_ref().is_none_or(|c| c.position() >= end)
                {
                    publish(a.id, EventKind::State(State::Idle));
                    // A voice still being judged is no longer over an answer: the person talks.
                    held.release(&bus);
                    active = None;
                    levels.clear();
                    voices.clear();
                    if let Some(c) = &voice.clock {
                        c.duck(false);
                    }
                }
                if let Some(h) = &settings.health {
                    h.beat_dialogue();
                }
                // The voice over the answer went on: an interruption.
                // Counted on the input's sample clock, from the voice's onset: a 0.5 s "okay"
                // never reaches it, however late the loop sees its report.
                if let Some(u) = over.latest()
                    && in_progress == Some(u)
                    && level.voiced_for() >= settings.interruption
                {
                    tracing::info!("barge-in: the voice over the answer went on");
                    interrupt(&voice, &bus, &mind, &mut active, &loop_tx);
                    held.release(&bus);
                    if let Some((id, q)) = over.interrupted() {
                        publish(id, EventKind::Transcript { text: q.text.clone(), lang: q.lang, is_final: true, confidence: None });
                        pending = Some(q);
                    }
                }
                // The rest of an unfinished question did not come: answer what was said.
                if pending_until.is_some_and(|t| Instant::now() >= t) && in_progress.is_none() && transcribing.is_none() {
                    pending_until = None;
                    if let Some(q) = pending.take() {
                        tracing::debug!(target: "hiwar::hearing", "no more speech after an unfinished question: answering it");
                        start_turn(q, &mind, settings.holding_after, &mut active, &mut times, &mut next_turn);
                    }
                }
                watch_voice(&voice, &bus, &settings, &mut voice_restarts, &mut spoke_since_restart);
                if active.is_some() || in_progress.is_some() || pending.is_some() || transcribing.is_some() || over.waiting() {
                    last_activity = Instant::now();
                } else if let Some(n) = session.filter(|_| last_activity.elapsed() >= settings.session_ends_after) {
                    // The visitor has gone: nothing of theirs may reach the next one.
                    session = None;
                    mind.forget();
                    settings.wipe_audio.store(true, Ordering::Relaxed);
                    (ended_at, decision, over) = (None, None, OverAnswer::default());
                    ignored.clear();
                    levels.clear();
                    voices.clear();
                    times.clear();
                    for r in &mut outcome.turns {
                        hiwar_core::runtime::wipe(&mut r.question);
                        hiwar_core::runtime::wipe(&mut r.answer);
                    }
                    publish(n, EventKind::Session { started: false });
                }
                if !hearing_open && active.is_none() {
                    break;
                }
            }
            Some(LoopInput::Touch) => {
                last_activity = Instant::now();
                begin_session(&mut session, &mut sessions);
            }
            Some(LoopInput::Typed(text)) => {
                last_activity = Instant::now();
                begin_session(&mut session, &mut sessions);
                let lang = reply_lang("", &text);
                let now = Instant::now();
                bus.publish(Event {
                    turn: TurnId(next_turn),
                    clock: None,
                    kind: EventKind::Transcript { text: text.clone(), lang, is_final: true, confidence: None },
                });
                // A question typed while a turn is pending or in progress replaces it.
                pending = None;
                pending_until = None;
                start_turn(
                    Question { text, lang, speech_end: now, decided: None, ready: now, last_voiced: None },
                    &mind,
                    settings.holding_after,
                    &mut active,
                    &mut times,
                    &mut next_turn,
                );
            }
            Some(LoopInput::Reload(new)) => {
                let new = *new;
                mind = Arc::new(new.mind.continuing(&mind));
                voice.replace_voices(new.voices, new.config.clone());
                if let Some(v) = &settings.vocabulary {
                    crate::mind::set_vocabulary(v, &mind.knowledge, &new.config);
                }
                // The loop keeps its own wipe flag, watchdog handle and vocabulary, and hearing
                // its canceller (or none); the rest is the new config's.
                settings = LoopSettings {
                    wipe_audio: Arc::clone(&settings.wipe_audio),
                    cancelled: settings.cancelled,
                    health: settings.health.clone(),
                    vocabulary: settings.vocabulary.clone(),
                    ..LoopSettings::from_config(&new.config)
                };
                tracing::warn!(target: "hiwar::ops", "config reloaded from {}", new.config.source.as_ref().map_or_else(|| "built-in defaults".into(), |p| p.display().to_string()));
            }
            Some(LoopInput::HearingRestarted) => {
                // The new hearing numbers its utterances from the start.
                (in_progress, pending, pending_until, ended_at, decision, transcribing) = (None, None, None, None, None, None);
                over = OverAnswer::default();
                held.drop_all();
                ignored.clear();
            }
            Some(LoopInput::Hearing(event)) => match event {
                H::SpeechStarted { utterance, start, at, level_db } => {
                    in_progress = Some(utterance);
                    last_activity = Instant::now();
                    begin_session(&mut session, &mut sessions);
                    if let Some(since) = speaking {
                        // The echo: what the microphone heard while we spoke, before this
                        // voice could have begun (its loudest, or behind the canceller its
                        // residual, with the loudest burst for the log).
                        let quantile = if settings.cancelled { CANCELLED_ECHO_QUANTILE } else { 1.0 };
                        let (echo, loudest) = echo_level(&levels, since, at, &voices, quantile);
                        let loudest = if settings.cancelled { format!(" (its loudest {loudest:.0} dBFS)") } else { String::new() };
                        // Speech that starts within the long wait of the question's last word
                        // goes on with that question (a pause mid-sentence taken for its end):
                        // its answer had only begun. One question, as hearing judged one turn.
                        let over_echo = settings.barge_in && level_db - echo >= settings.margin_db;
                        let goes_on = active
                            .as_ref()
                            .filter(|a| over_echo && a.asked.last_voiced.is_some_and(|lv| start.saturating_sub(lv) <= continues_within(&settings)))
                            .map(|a| a.asked.clone());
                        if let Some(asked) = goes_on {
                            tracing::info!("utterance {utterance} goes on with the question being answered: the answer stops, one question");
                            interrupt(&voice, &bus, &mind, &mut active, &loop_tx);
                            pending = Some(after_pending(pending.take(), asked));
                            pending_until = None;
                        } else if over_echo {
                            voices.push((at, None));
                            if settings.interruption.is_zero() {
                                interrupt(&voice, &bus, &mind, &mut active, &loop_tx);
                            } else {
                                // Maybe "mm" or "okay": the answer steps back while it is judged.
                                if let Some(c) = &voice.clock {
                                    c.duck(true);
                                }
                                over.heard(utterance);
                                held.utterances.insert(utterance);
                            }
                            tracing::info!("a voice over the answer: speech {level_db:.0} dBFS, echo {echo:.0} dBFS{loudest}");
                        } else {
                            tracing::info!(
                                "speech while speaking ignored ({}): {level_db:.0} dBFS vs echo {echo:.0} dBFS{loudest}",
                                if settings.barge_in { "below the echo margin" } else { "half-duplex" }
                            );
                            ignored.insert(utterance);
                            continue;
                        }
                    } else if let Some(a) = active.take() {
                        // Still thinking: the person goes on talking, so the question changes.
                        // What they said before is its beginning ("أبغى أجدد… الإقامة", cut at
                        // the pause): answered with the rest, not dropped. Nothing of the answer
                        // was heard, and the conversation remembers just that.
                        a.cancel.cancel();
                        voice.cancel(a.id);
                        mind.heard_only(&a.asked.text, "");
                        tracing::debug!(target: "hiwar::hearing", "utterance {utterance} goes on from the question being answered: one question");
                        pending = Some(after_pending(pending.take(), a.asked));
                        pending_until = None;
                    }
                    for e in hiwar_core::bus::from_hearing(&H::SpeechStarted { utterance, start: 0, at, level_db }) {
                        held.publish(&bus, Event { clock: None, ..e });
                    }
                }
                H::SpeechEnded { utterance, last_voiced, decided_at, decided, turn } => {
                    let silence_ms = decided_at.saturating_sub(last_voiced) / 16;
                    match turn {
                        Some(p) => {
                            tracing::debug!(target: "hiwar::hearing", "utterance {utterance}: turn ended after {silence_ms} ms of silence, Smart Turn's p(complete) {p:.2}")
                        }
                        None => tracing::debug!(target: "hiwar::hearing", "utterance {utterance}: turn ended after {silence_ms} ms of silence"),
                    }
                    if in_progress == Some(utterance) {
                        in_progress = None;
                    }
                    if ignored.contains(&utterance) {
                        continue;
                    }
                    if let Some(v) = voices.last_mut().filter(|v| v.1.is_none()) {
                        v.1 = Some(Instant::now());
                    }
                    let back = Duration::from_secs_f64(decided_at.saturating_sub(last_voiced) as f64 / 16_000.0);
                    ended_at = Some((utterance, decided.checked_sub(back).unwrap_or(decided), last_voiced));
                    decision = Some((utterance, decided));
                    transcribing = Some(utterance);
                    held.publish(&bus, Event { turn: TurnId(utterance), clock: None, kind: EventKind::SpeechEnded });
                }
                H::Final { utterance: Some(u), id, ready, .. } if !ignored.contains(&id) => {
                    transcribing = transcribing.filter(|t| *t != id);
                    let ended = ended_at.filter(|(i, ..)| *i == id);
                    let speech_end = ended.map_or_else(Instant::now, |(_, t, _)| t);
                    let decided = decision.filter(|(i, _)| *i == id).map(|(_, t)| t);
                    // A voice over the answer is judged on all it said, across its pauses.
                    let last_voiced = ended.map(|(.., s)| s);
                    let q = Question { lang: reply_lang(&u.lang, &u.text), text: u.text.clone(), speech_end, decided, ready, last_voiced };
                    let text = match over.judge(id, Some(q)) {
                        Verdict::NotOver => u.text.clone(),
                        Verdict::Wait => continue,
                        Verdict::Backchannel => {
                            tracing::info!("a backchannel over the answer: it goes on");
                            if let Some(c) = &voice.clock {
                                c.duck(false);
                            }
                            held.drop_all();
                            continue;
                        }
                        Verdict::TakesTurn(_, q) => {
                            tracing::info!("barge-in: the words over the answer take the turn (a question, a command, or three words or more)");
                            interrupt(&voice, &bus, &mind, &mut active, &loop_tx);
                            q.text
                        }
                    };
                    held.release(&bus);
                    tracing::info!(target: "hiwar::hearing", "utterance {id}: language {}", u.language.summary(&u.lang));
                    let lang = reply_lang(&u.lang, &text);
                    bus.publish(Event {
                        turn: TurnId(id),
                        clock: None,
                        kind: EventKind::Transcript { text: text.clone(), lang, is_final: true, confidence: Some(u.confidence) },
                    });
                    // A pause split the sentence: the two halves are one question.
                    let mut question = after_pending(pending.take(), Question { text, lang, speech_end, decided, ready, last_voiced });
                    question.lang = reply_lang(&u.lang, &question.text);
                    pending_until = None;
                    if in_progress.is_some_and(|i| i > id) {
                        // The person is already saying more: wait for the rest.
                        pending = Some(question);
                        continue;
                    }
                    if hiwar_speech::text::ends_unfinished(&question.text) {
                        // "I would like to…": the rest is likely coming; wait for it a while.
                        let until = question.speech_end + settings.unfinished_wait;
                        if Instant::now() < until {
                            tracing::debug!(target: "hiwar::hearing", "utterance {id} stops mid-sentence: waiting for the rest");
                            pending = Some(question);
                            pending_until = Some(until);
                            continue;
                        }
                    }
                    start_turn(question, &mind, settings.holding_after, &mut active, &mut times, &mut next_turn);
                }
                H::Final { id, .. } => {
                    transcribing = transcribing.filter(|t| *t != id);
                    ignored.remove(&id);
                    match over.judge(id, None) {
                        Verdict::NotOver | Verdict::Wait => {}
                        // A cough or a noise over the answer: it goes on at full level.
                        Verdict::Backchannel => {
                            tracing::info!("a noise with no words over the answer: it goes on");
                            if let Some(c) = &voice.clock {
                                c.duck(false);
                            }
                            held.drop_all();
                        }
                        // Words before a pause, then a noise: judged on the words.
                        Verdict::TakesTurn(first, q) => {
                            tracing::info!("barge-in: the words over the answer take the turn (a question, a command, or three words or more)");
                            interrupt(&voice, &bus, &mind, &mut active, &loop_tx);
                            held.release(&bus);
                            publish(first, EventKind::Transcript { text: q.text.clone(), lang: q.lang, is_final: true, confidence: None });
                            pending = Some(q);
                        }
                    }
                    match pending.take() {
                        // What followed the question was only noise: answer it now.
                        Some(q) if in_progress.is_none_or(|i| i <= id) => start_turn(q, &mind, settings.holding_after, &mut active, &mut times, &mut next_turn),
                        other => pending = other,
                    }
                    if active.is_none() && pending.is_none() {
                        publish(id, EventKind::State(State::Idle));
                    }
                }
                other => {
                    for e in hiwar_core::bus::from_hearing(&other) {
                        held.publish(&bus, Event { clock: None, ..e });
                    }
                }
            },
            Some(LoopInput::HearingClosed) => hearing_open = false,
            Some(LoopInput::Voice(VoiceEvent::Spoken(s))) => {
                spoke_since_restart = true;
                if let Some(t) = times.get_mut(&s.turn) {
                    let heard = s.heard_at();
                    match s.what {
                        Said::Answer if t.answer_heard.is_none() => {
                            t.answer_heard = Some(heard);
                            t.first_synth_ms = s.synth_ms;
                            t.first_device_ms = (heard - s.queued_at).as_secs_f64() * 1e3;
                        }
                        Said::Holding => {
                            t.holding_heard.get_or_insert(heard);
                        }
                        Said::Fallback => {
                            t.fallback_heard.get_or_insert(heard);
                        }
                        _ => {}
                    }
                }
                if let Some(a) = active.as_mut().filter(|a| a.id == s.turn) {
                    if s.what == Said::Answer {
                        a.played.push((s.start, s.clock_rate, Arc::clone(&s.speech)));
                    }
                    if a.speaking_since.is_none() {
                        a.speaking_since = Some(s.heard_at());
                        publish(a.id, EventKind::State(State::Speaking));
                    }
                    publish_spoken(&bus, &s);
                }
            }
            Some(LoopInput::Voice(VoiceEvent::TurnEnd { turn, end })) => {
                if let Some(a) = active.as_mut().filter(|a| a.id == turn) {
                    a.audio_end = Some(end);
                }
            }
            Some(LoopInput::Voice(VoiceEvent::Failed { turn, message })) => {
                tracing::error!("voice: {message}");
                publish(turn, EventKind::Error { message: format!("voice: {message}"), for_person: None });
            }
            Some(LoopInput::TurnDone(report)) => outcome.turns.push(*report),
            Some(LoopInput::BargeMeasured(b)) => outcome.barge_ins.push(b),
        }
    }
    for r in &mut outcome.turns {
        if let Some(t) = times.remove(&r.turn) {
            r.times = t;
        }
    }
    outcome
}

/// The voice's watchdog, run every tick: a synthesis running past `voice_stall_secs` has the
/// voice restarted (see [`VoiceOut::restart`]); `max_restarts` within the window put the kiosk
/// out of service until the voice has spoken again and stayed well for `healthy_after_secs`.
fn watch_voice(voice: &VoiceOut, bus: &Bus, settings: &LoopSettings, restarts: &mut VecDeque<Instant>, spoke: &mut bool) {
    let w = &settings.watchdog;
    let window = Duration::from_secs(w.restart_window_secs);
    if let Some(stuck) = voice.synthesizing_for().filter(|d| *d > Duration::from_secs(w.voice_stall_secs)) {
        let now = Instant::now();
        restarts.push_back(now);
        while restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
            restarts.pop_front();
        }
        let why = format!("one synthesis has run for {} s", stuck.as_secs());
        let restarted = voice.restart();
        tracing::error!(target: "hiwar::ops", "watchdog: {} the voice ({} in {} min): {why}", if restarted { "restarting" } else { "cannot restart" }, restarts.len(), w.restart_window_secs / 60);
        bus.publish(Event { turn: TurnId(0), clock: None, kind: EventKind::Error { message: format!("the voice was restarted: {why}"), for_person: None } });
        *spoke = false;
        if let Some(h) = settings.health.as_ref().filter(|_| restarts.len() >= w.max_restarts || !restarted) {
            h.out_of_service("voice", format!("{} restarts in {} min, the last: {why}", restarts.len(), w.restart_window_secs / 60));
        }
    } else if *spoke
        && let Some(h) = &settings.health
        && restarts.back().is_some_and(|t| t.elapsed() > Duration::from_secs(w.healthy_after_secs))
    {
        h.recovered("voice");
    }
}

/// Stops the turn now: the LLM stream (its connection dropped), the voice and the player; then
/// measures how much of the answer still reached the device, and when it fell silent.
/// Interrupts the answer in progress, if any: it stops (see [`barge_in`]) and the conversation
/// keeps only what the person heard of it — the next answer must not assume the rest was said.
fn interrupt(voice: &Arc<VoiceOut>, bus: &Bus, mind: &Mind, active: &mut Option<Active>, loop_tx: &mpsc::UnboundedSender<LoopInput>) {
    let Some(a) = active.take() else { return };
    let cut = voice.clock.as_ref().map(|c| c.position());
    barge_in(voice, bus, &a, loop_tx);
    if let Some(cut) = cut {
        mind.heard_only(&a.asked.text, &words_heard(&a.played, cut));
    }
}

fn barge_in(voice: &Arc<VoiceOut>, bus: &Bus, a: &Active, loop_tx: &mpsc::UnboundedSender<LoopInput>) {
    let decided = Instant::now();
    let before = voice.clock.as_ref().map(|c| c.audible_frames());
    a.cancel.cancel();
    voice.cancel(a.id);
    let (bus, turn, tx) = (bus.clone(), a.id, loop_tx.clone());
    bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::State(State::Listening) });
    if let (Some(before), Some(clock)) = (before, voice.clock.clone()) {
        tokio::spawn(async move {
            // Watch the frames handed to the device until they stop growing.
            let (mut last, mut changed) = (clock.audible_frames(), Instant::now());
            while changed.elapsed() < Duration::from_millis(60) && decided.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let now = clock.audible_frames();
                if now != last {
                    (last, changed) = (now, Instant::now());
                }
            }
            let rate = f64::from(clock.sample_rate().max(1));
            let silent_at = changed + Duration::from_secs_f64(clock.latency_frames() as f64 / rate);
            let audible_after = last - before;
            let limit = hiwar_speech::voice::fade_frames(clock.sample_rate()) + clock.buffer_frames();
            bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::BargeIn { audible_after, limit } });
            let _ = tx.send(LoopInput::BargeMeasured(BargeRecord { turn, decided, silent_at, audible_after, limit }));
        });
    }
}

/// Hearing's and the voice's events into the loop (hearing's channel is a std one). Needs a
/// tokio runtime.
pub fn forward(hearing: hiwar_speech::hearing::Hearing, voice_events: mpsc::UnboundedReceiver<VoiceEvent>, tx: &mpsc::UnboundedSender<LoopInput>) {
    let h = tx.clone();
    std::thread::Builder::new()
        .name("hearing-loop".into())
        .spawn(move || {
            let hearing = hearing;
            for e in hearing.events.iter() {
                if let hiwar_speech::hearing::HearingEvent::Failed { reason } = &e {
                    tracing::error!("hearing: {reason}");
                }
                if h.send(LoopInput::Hearing(e)).is_err() {
                    return;
                }
            }
            let _ = h.send(LoopInput::HearingClosed);
        })
        .expect("spawn the hearing forwarder");
    forward_voice(voice_events, tx);
}

/// The voice's events into the loop. Needs a tokio runtime.
pub fn forward_voice(mut voice_events: mpsc::UnboundedReceiver<VoiceEvent>, tx: &mpsc::UnboundedSender<LoopInput>) {
    let v = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = voice_events.recv().await {
            if v.send(LoopInput::Voice(e)).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_is_what_the_microphone_heard_while_we_spoke_before_the_voice_began() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Our voice comes back at about −30 dBFS; someone starts talking at 2.0 s (−12 dBFS),
        // and the VAD reports it at 2.4 s.
        let levels: VecDeque<(Instant, f32)> = (0..60u64).map(|i| (at(i * 50), if i >= 40 { -12.0 } else { -30.0 - (i % 3) as f32 })).collect();
        let echo = echo_level(&levels, at(0), at(2_400), &[], 1.0).0;
        assert_eq!(echo, -30.0, "the voice's own onset is not echo");
        assert!(-12.0 - echo >= 10.0, "a voice 18 dB over the echo interrupts");
        // The echo alone, reported as speech, does not.
        assert!(-29.0 - echo < 10.0);
        // Nothing heard yet while speaking (or a separate microphone): anything interrupts.
        assert_eq!(echo_level(&VecDeque::new(), at(0), at(500), &[], 1.0).0, -100.0);
    }

    #[test]
    fn behind_the_canceller_the_echo_is_its_residual_not_its_bursts() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The echo test's failing runs: behind the canceller the answer is at −94 dBFS every
        // 20 ms tick, but leaks for 60 ms at −23 dBFS; a person at −27 dBFS is reported at 4 s.
        let level = |ms: u64| if (1_500..1_560).contains(&ms) { -23.0 } else { -94.0 };
        let levels: VecDeque<(Instant, f32)> = (0..200u64).map(|i| (at(i * 20), level(i * 20))).collect();
        assert_eq!(echo_level(&levels, at(0), at(4_000), &[], 1.0).0, -23.0, "the loudest burst: the person, 4 dB under it, was ignored");
        let (echo, loudest) = echo_level(&levels, at(0), at(4_000), &[], CANCELLED_ECHO_QUANTILE);
        assert_eq!((echo, loudest), (-94.0, -23.0), "the residual, and the burst for the log");
        assert!(-27.0 - echo >= 10.0);
        // A leak that goes on (the canceller lost the room) is the echo a voice must beat.
        let leaking = |ms: u64| if (1_000..2_000).contains(&ms) { -30.0 } else { -94.0 };
        let levels: VecDeque<(Instant, f32)> = (0..200u64).map(|i| (at(i * 20), leaking(i * 20))).collect();
        assert_eq!(echo_level(&levels, at(0), at(4_000), &[], CANCELLED_ECHO_QUANTILE).0, -30.0);
    }

    #[tokio::test]
    async fn a_voice_judged_over_the_answer_reaches_the_bus_only_if_it_takes_the_turn() {
        let bus = Bus::new(64);
        let mut rx = bus.subscribe();
        let ev = |turn: u64, kind| Event { turn: TurnId(turn), clock: None, kind };
        let mut held = Held::default();
        // Utterance 0 after hearing restarted: a voice over the answer, being judged.
        held.utterances.insert(0);
        held.publish(&bus, ev(0, EventKind::State(State::Listening)));
        held.publish(&bus, ev(0, EventKind::SpeechStarted));
        // The microphone's state goes out at once, though it carries turn 0.
        held.publish(&bus, ev(0, EventKind::Microphone { ready: false, detail: "gone".into() }));
        held.publish(&bus, ev(0, EventKind::SpeechEnded));
        assert!(matches!(rx.try_recv().map(|e| e.kind), Ok(EventKind::Microphone { .. })), "the microphone's state waited");
        assert!(rx.try_recv().is_err(), "the voice's events wait");
        // A backchannel: dropped.
        held.drop_all();
        held.publish(&bus, ev(1, EventKind::SpeechStarted));
        assert_eq!(rx.recv().await.expect("event").kind, EventKind::SpeechStarted, "a voice not judged goes out");
        // A voice that takes the turn: all of it, in order.
        held.utterances.insert(2);
        held.publish(&bus, ev(2, EventKind::SpeechStarted));
        held.publish(&bus, ev(2, EventKind::SpeechEnded));
        assert!(rx.try_recv().is_err());
        held.release(&bus);
        assert_eq!(rx.recv().await.expect("event").kind, EventKind::SpeechStarted);
        assert_eq!(rx.recv().await.expect("event").kind, EventKind::SpeechEnded);
        assert!(rx.try_recv().is_err());
    }

    fn said(text: &str) -> Option<Question> {
        let now = Instant::now();
        Some(Question { text: text.into(), lang: Lang::En, speech_end: now, decided: None, ready: now, last_voiced: None })
    }

    fn verdict(v: Verdict) -> String {
        match v {
            Verdict::NotOver => "not over".into(),
            Verdict::Wait => "wait".into(),
            Verdict::Backchannel => "backchannel".into(),
            Verdict::TakesTurn(first, q) => format!("turn {first}: {}", q.text),
        }
    }

    #[test]
    fn a_voice_over_the_answer_is_judged_on_all_it_said_across_its_pauses() {
        // One voice alone.
        let mut over = OverAnswer::default();
        over.heard(3);
        assert_eq!(verdict(over.judge(3, said("Okay."))), "backchannel");
        over.heard(4);
        assert_eq!(verdict(over.judge(4, said("Stop."))), "turn 4: Stop.");
        // Split by a pause into two short parts, neither a turn alone.
        let mut over = OverAnswer::default();
        over.heard(1);
        over.heard(2);
        assert_eq!(over.latest(), Some(2));
        assert_eq!(verdict(over.judge(1, said("Where is"))), "wait");
        assert!(over.waiting());
        assert_eq!(over.latest(), Some(2), "the part still going is the one that can interrupt by its length");
        assert_eq!(verdict(over.judge(2, said("the office"))), "turn 1: Where is the office");
        assert!(!over.waiting());
        assert_eq!(over.latest(), None);
        // Words, then a noise with no words: judged on the words.
        let mut over = OverAnswer::default();
        over.heard(5);
        over.heard(6);
        assert_eq!(verdict(over.judge(5, said("When do you close"))), "wait");
        assert_eq!(verdict(over.judge(6, None)), "turn 5: When do you close");
        // "mm", then a cough: a backchannel; an utterance not over the answer is not judged.
        over.heard(7);
        over.heard(8);
        assert_eq!(verdict(over.judge(7, said("Mm."))), "wait");
        assert_eq!(verdict(over.judge(8, None)), "backchannel");
        assert_eq!(verdict(over.judge(9, said("Hello, where is the office?"))), "not over");
        // Interrupted by its length while a part was held: the held words start the question.
        over.heard(10);
        over.heard(11);
        assert_eq!(verdict(over.judge(10, said("Excuse me"))), "wait");
        assert_eq!(over.interrupted().map(|(first, q)| (first, q.text)), Some((10, "Excuse me".to_string())));
        assert_eq!(over.latest(), None);
        assert_eq!(verdict(over.judge(11, said("when do you open?"))), "not over");
    }

    #[test]
    fn a_voice_already_heard_over_the_answer_is_not_echo_for_the_next() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The echo at −60 dBFS (a canceller); a person at −20 dBFS from 2.0 s to 2.6 s (reported
        // at 2.3 s, ended at 2.8 s), a pause, and on again from 3.0 s (reported at 3.3 s).
        let level = |ms: u64| if (2_000..2_600).contains(&ms) || ms >= 3_000 { -20.0 } else { -60.0 };
        let levels: VecDeque<(Instant, f32)> = (0..80u64).map(|i| (at(i * 50), level(i * 50))).collect();
        assert_eq!(echo_level(&levels, at(0), at(3_300), &[], 1.0).0, -20.0, "without the first voice's span, the person is their own echo");
        assert_eq!(echo_level(&levels, at(0), at(3_300), &[(at(2_300), Some(at(2_800)))], 1.0).0, -60.0);
        // A voice not ended yet is left out to the end.
        assert_eq!(echo_level(&levels, at(0), at(3_900), &[(at(2_300), None)], 1.0).0, -60.0);
    }
}
