//! Turning per-window speech probabilities into utterances: hysteresis, a minimum speech
//! length, a pre-roll, and an end-of-utterance silence. Pure logic; positions are 16 kHz
//! sample indices from the start of the stream.
//!
//! Terms: *end of speech* is the last voiced sample; the *end-pointing decision* comes one
//! silence window (`end_silence`) later — or, with a semantic end of turn ([`TurnWaits`]),
//! as soon as a short pause is judged the end of the turn, and only after a long one when it
//! is judged a pause mid-sentence.

use super::vad::WINDOW;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// Probability at or above which a window starts speech.
    pub start_threshold: f32,
    /// Probability below which a window counts as silence once speech has started.
    pub end_threshold: f32,
    /// Voiced time needed before speech is declared (shorter blips are ignored).
    pub min_speech_ms: u32,
    /// The same while the answer plays (see [`Segmenter::set_playing`]): a voice over the
    /// echo canceller's output comes through in fragments, so a shorter run of it is enough.
    pub min_speech_playing_ms: u32,
    /// Silence after the last voiced sample that ends an utterance.
    pub end_silence_ms: u32,
    /// Audio kept before the detected onset (VAD onsets are late by a window or two).
    pub pre_roll_ms: u32,
    /// An utterance this long is cut even if the person keeps talking (whisper's window).
    pub max_utterance_ms: u32,
    /// Semantic end of turn: a pause is judged (Smart Turn) instead of timed alone.
    pub turn: Option<TurnWaits>,
}

/// The waits of a semantic end of turn: after `probe_ms` of silence the listener asks whether
/// the turn is complete; "complete" ends it at once, "incomplete" waits until `incomplete_ms`
/// of silence — asking again every `reprobe_ms` of further silence if that is not 0. Were no
/// answer to come (the model failed), `end_silence_ms` ends it as before.
///
/// An answer at `probe_ms` that is not sure (under `sure`) is checked: the model is asked again
/// when the silence reaches `confirm_ms`, and that answer decides. So a turn the model is sure
/// of ends after a short silence, and one it doubts is judged as it would be after the longer
/// one. 0 (or not after `probe_ms`): the first answer decides.
///
/// The model takes tens of milliseconds, so it is asked `early_ms` before `probe_ms`: its
/// answer is ready when the silence reaches `probe_ms`, and is dropped if the voice comes back
/// before then. 0 asks at `probe_ms` and decides when the model has answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnWaits {
    pub probe_ms: u32,
    pub early_ms: u32,
    pub reprobe_ms: u32,
    pub incomplete_ms: u32,
    /// Probability of "complete" at or above which the turn ends.
    pub threshold: f32,
    /// Probability of "complete" at or above which the turn ends at once. Between `threshold`
    /// and this, Smart Turn is not sure: the turn ends once the silence reaches `unsure_ms`,
    /// unless the voice comes back first. The int8 model's answers near 0.5 are a coin toss
    /// (±0.03 for inputs 1e-5 apart); live, "I would like [a 150 ms closure] to book…" was
    /// judged 0.28 to 0.62 and cut there at 0.50.
    pub sure: f32,
    /// Silence that ends a turn judged complete but not surely.
    pub unsure_ms: u32,
    /// Silence at which a first answer that was not sure is asked again (see above).
    pub confirm_ms: u32,
    /// Silence that ends a turn judged unfinished whose words, as whisper heard them up to
    /// the pause, are a finished question ([`Segmenter::heard_question`]): the model hears
    /// the voice, not the words, and doubts a question said flat («ومتى يفتح غدًا؟» p 0.40).
    /// 0: the words do not count, and an unfinished turn waits `incomplete_ms`.
    pub question_ms: u32,
}

impl TurnWaits {
    /// Whether a first answer that is not sure is asked again (`confirm_ms` after `probe_ms`).
    pub fn confirms(&self) -> bool {
        self.confirm_ms > self.probe_ms
    }

    /// The silence at which an answer is applied: `probe_ms`, or `confirm_ms` for the second.
    fn applied_at(&self, second: bool) -> u32 {
        if second { self.confirm_ms } else { self.probe_ms }
    }
}

impl Default for TurnWaits {
    fn default() -> Self {
        TurnWaits { probe_ms: 200, early_ms: 0, reprobe_ms: 0, incomplete_ms: 1500, threshold: 0.5, sure: 0.7, unsure_ms: 350, confirm_ms: 0, question_ms: 0 }
    }
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            start_threshold: 0.5,
            end_threshold: 0.35,
            min_speech_ms: 250,
            min_speech_playing_ms: 150,
            end_silence_ms: 500,
            pre_roll_ms: 200,
            max_utterance_ms: 28_000,
            turn: None,
        }
    }
}

/// What one window changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Boundary {
    /// Speech confirmed; the utterance starts at `start` (onset minus pre-roll).
    Started { start: u64 },
    /// Speech paused: the last voiced sample so far is `last_voiced` (a chance to decode early).
    Paused { last_voiced: u64 },
    /// Speech resumed after a pause that was not long enough to end it.
    Resumed,
    /// The pause has lasted `TurnWaits::probe_ms`: is the turn complete? The answer goes to
    /// [`Segmenter::verdict`] (the utterance so far started at `start`).
    Probe { start: u64, last_voiced: u64 },
    /// The utterance ended: speech ran to `last_voiced`; the decision was taken at `decided_at`;
    /// `turn` is the semantic end of turn's probability of "complete" when one was asked.
    Ended { start: u64, last_voiced: u64, decided_at: u64, turn: Option<f32> },
}

/// Where a pause stands with the semantic end of turn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Judged {
    /// Not asked yet.
    No,
    /// Asked, no answer (the model failed): the silence alone decides. `second`: asked again
    /// at `confirm_ms`.
    Asked { second: bool },
    /// Asked early (see [`TurnWaits::early_ms`]): the answer, applied at `probe_ms` (at
    /// `confirm_ms` when `second`).
    Early { p: f32, second: bool },
    /// The first answer was not sure: ask again at `confirm_ms`.
    Confirm,
    /// Judged incomplete with this probability of "complete": wait the long silence, asking
    /// again once the silence reaches `again` samples.
    Incomplete { p: f32, again: u64 },
    /// Judged complete, but not surely (see [`TurnWaits::sure`]): ends at `unsure_ms`.
    Unsure { p: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Silence,
    /// Voiced windows seen since `onset`, not yet long enough.
    Onset {
        onset: u64,
        voiced: u64,
    },
    Speech {
        start: u64,
        last_voiced: u64,
        paused: bool,
        judged: Judged,
    },
}

#[derive(Debug, Clone)]
pub struct Segmenter {
    config: SegmenterConfig,
    state: State,
    /// Samples processed so far.
    pos: u64,
    /// The answer is playing (see [`Segmenter::set_playing`]).
    playing: bool,
    /// The echo canceller is still learning the room (see [`Segmenter::set_settling`]).
    settling: bool,
    /// The last voiced sample of the pause whose words were heard as a finished question
    /// (see [`Segmenter::heard_question`]).
    question: Option<u64>,
}

fn ms(ms: u32) -> u64 {
    u64::from(ms) * 16
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Segmenter {
        Segmenter { config, state: State::Silence, pos: 0, playing: false, settling: false, question: None }
    }

    /// Whether the answer is playing (the echo canceller's reference carries sound): speech
    /// then needs `min_speech_playing_ms`, not `min_speech_ms`.
    pub fn set_playing(&mut self, playing: bool) {
        self.playing = playing;
    }

    /// Whether the answer plays through an echo canceller that has not yet learnt the room:
    /// its echo then comes through, so no speech starts (a person who talks on is heard once
    /// it has learnt it).
    pub fn set_settling(&mut self, settling: bool) {
        self.settling = settling;
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The words said up to the pause after `last_voiced` are a finished question (whisper's
    /// decode of them ends "?" or «؟»): a turn judged unfinished there ends once the silence
    /// reaches `question_ms` instead of `incomplete_ms`. Words of another pause (the speech
    /// went on since) are ignored. Whenever they come, before the judgement or after it.
    pub fn heard_question(&mut self, last_voiced: u64) {
        if matches!(self.state, State::Speech { last_voiced: v, paused: true, .. } if v == last_voiced) {
            self.question = Some(last_voiced);
        }
    }

    /// The pause judged unfinished that the words could end sooner, as (start, last voiced
    /// sample), while they have not been heard as a finished question (`question_ms` not 0).
    pub fn awaits_words(&self) -> Option<(u64, u64)> {
        match (self.state, self.config.turn) {
            (State::Speech { start, last_voiced, paused: true, judged: Judged::Incomplete { .. } }, Some(t))
                if t.question_ms > 0 && self.question != Some(last_voiced) =>
            {
                Some((start, last_voiced))
            }
            _ => None,
        }
    }

    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// In speech and not in a pause that may be its end.
    pub fn voiced(&self) -> bool {
        matches!(self.state, State::Speech { paused: false, .. })
    }

    /// How long the voice of the utterance in progress has gone on, from its onset to its last
    /// voiced window, in samples (0 outside speech): the sample clock's measure of "still
    /// talking", whatever the threads' timing.
    pub fn voiced_span(&self) -> u64 {
        match self.state {
            State::Speech { start, last_voiced, .. } => last_voiced.saturating_sub(start + ms(self.config.pre_roll_ms)),
            State::Onset { voiced, .. } => voiced,
            State::Silence => 0,
        }
    }

    /// Feeds the probability of the next 512-sample window.
    pub fn push(&mut self, p: f32) -> Option<Boundary> {
        let (begin, end) = (self.pos, self.pos + WINDOW as u64);
        self.pos = end;
        let c = self.config;
        match self.state {
            State::Silence => {
                if p >= c.start_threshold && !self.settling {
                    self.state = State::Onset { onset: begin, voiced: WINDOW as u64 };
                    return self.confirm();
                }
                None
            }
            State::Onset { onset, voiced } => {
                if p >= c.end_threshold && !self.settling {
                    self.state = State::Onset { onset, voiced: voiced + WINDOW as u64 };
                    self.confirm()
                } else {
                    self.state = State::Silence;
                    None
                }
            }
            State::Speech { start, last_voiced, paused, judged } => {
                if p >= c.end_threshold {
                    self.state = State::Speech { start, last_voiced: end, paused: false, judged: Judged::No };
                    if end - start >= ms(c.max_utterance_ms) {
                        self.state = State::Silence;
                        return Some(Boundary::Ended { start, last_voiced: end, decided_at: end, turn: None });
                    }
                    return paused.then_some(Boundary::Resumed);
                }
                let silence = end - last_voiced;
                let ended = |turn| Some(Boundary::Ended { start, last_voiced, decided_at: end, turn });
                match (c.turn, judged) {
                    (Some(t), Judged::No) if silence >= ms(t.probe_ms.saturating_sub(t.early_ms)) => {
                        self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Asked { second: false } };
                        return Some(Boundary::Probe { start, last_voiced });
                    }
                    (Some(t), Judged::Confirm) if silence >= ms(t.confirm_ms.saturating_sub(t.early_ms)) => {
                        self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Asked { second: true } };
                        return Some(Boundary::Probe { start, last_voiced });
                    }
                    (Some(t), Judged::Early { p, second }) if silence >= ms(t.applied_at(second)) => return self.decide(start, last_voiced, p, second),
                    (Some(t), Judged::Incomplete { p, .. })
                        if silence >= ms(t.incomplete_ms) || (t.question_ms > 0 && self.question == Some(last_voiced) && silence >= ms(t.question_ms)) =>
                    {
                        self.state = State::Silence;
                        return ended(Some(p));
                    }
                    (Some(t), Judged::Unsure { p }) if silence >= ms(t.unsure_ms) => {
                        self.state = State::Silence;
                        return ended(Some(p));
                    }
                    (Some(_), Judged::Incomplete { again, .. }) if silence >= again => {
                        self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Asked { second: true } };
                        return Some(Boundary::Probe { start, last_voiced });
                    }
                    (Some(_), Judged::Incomplete { .. } | Judged::Unsure { .. } | Judged::Early { .. } | Judged::Confirm | Judged::No) => {}
                    (None, _) | (Some(_), Judged::Asked { .. }) => {
                        if silence >= ms(c.end_silence_ms) {
                            self.state = State::Silence;
                            return ended(None);
                        }
                    }
                }
                if !paused {
                    self.state = State::Speech { start, last_voiced, paused: true, judged };
                    return Some(Boundary::Paused { last_voiced });
                }
                None
            }
        }
    }

    /// The semantic end of turn's answer to a [`Boundary::Probe`]: the probability that the
    /// turn is complete, or `None` when it could not say. Ends the utterance now when complete.
    pub fn verdict(&mut self, complete: Option<f32>) -> Option<Boundary> {
        let (State::Speech { start, last_voiced, paused, judged: Judged::Asked { second } }, Some(t), Some(p)) = (self.state, self.config.turn, complete)
        else {
            return None;
        };
        if self.pos - last_voiced < ms(t.applied_at(second)) {
            self.state = State::Speech { start, last_voiced, paused, judged: Judged::Early { p, second } };
            return None;
        }
        self.decide(start, last_voiced, p, second)
    }

    /// Applies a judgement once the silence has reached `probe_ms` (`confirm_ms` for the
    /// `second`): ends the utterance when surely complete; a first answer not sure is asked
    /// again at `confirm_ms` where that is later; else waits `unsure_ms` when complete but not
    /// surely, or the long silence.
    fn decide(&mut self, start: u64, last_voiced: u64, p: f32, second: bool) -> Option<Boundary> {
        let t = self.config.turn?;
        if p >= t.threshold.max(t.sure) {
            self.state = State::Silence;
            return Some(Boundary::Ended { start, last_voiced, decided_at: self.pos, turn: Some(p) });
        }
        if !second && t.confirms() {
            self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Confirm };
            return None;
        }
        if p >= t.threshold {
            self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Unsure { p } };
            return None;
        }
        let again = if t.reprobe_ms == 0 { u64::MAX } else { self.pos - last_voiced + ms(t.reprobe_ms) };
        self.state = State::Speech { start, last_voiced, paused: true, judged: Judged::Incomplete { p, again } };
        None
    }

    /// Ends the stream: an utterance in progress ends at the last voiced sample.
    pub fn finish(&mut self) -> Option<Boundary> {
        let state = std::mem::replace(&mut self.state, State::Silence);
        match state {
            State::Speech { start, last_voiced, .. } => Some(Boundary::Ended { start, last_voiced, decided_at: self.pos, turn: None }),
            _ => None,
        }
    }

    fn confirm(&mut self) -> Option<Boundary> {
        let State::Onset { onset, voiced } = self.state else { return None };
        let needed = if self.playing { self.config.min_speech_playing_ms } else { self.config.min_speech_ms };
        if voiced < ms(needed) {
            return None;
        }
        let start = onset.saturating_sub(ms(self.config.pre_roll_ms));
        self.state = State::Speech { start, last_voiced: self.pos, paused: false, judged: Judged::No };
        Some(Boundary::Started { start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a probability per window and lists the boundaries with their window index.
    fn run(probs: &[f32]) -> Vec<(usize, Boundary)> {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out: Vec<_> = probs.iter().enumerate().filter_map(|(i, p)| s.push(*p).map(|b| (i, b))).collect();
        out.extend(s.finish().map(|b| (probs.len(), b)));
        out
    }

    fn windows(ms: u32) -> usize {
        (ms as usize * 16).div_ceil(WINDOW)
    }

    #[test]
    fn an_utterance_has_onset_pre_roll_and_a_decision_one_silence_later() {
        let mut probs = vec![0.0; 20];
        probs.extend(vec![0.9; 40]); // 1.28 s of speech from window 20
        probs.extend(vec![0.05; 30]);
        let b = run(&probs);
        let w = WINDOW as u64;
        let confirm = 20 + windows(250) - 1;
        assert_eq!(b[0], (confirm, Boundary::Started { start: 20 * w - 200 * 16 }));
        assert_eq!(b[1], (60, Boundary::Paused { last_voiced: 60 * w }));
        let decided = 60 + windows(500) - 1;
        assert_eq!(b[2], (decided, Boundary::Ended { start: 20 * w - 3200, last_voiced: 60 * w, decided_at: (decided as u64 + 1) * w, turn: None }));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn blips_shorter_than_the_minimum_are_not_speech() {
        let mut probs = vec![0.0; 10];
        probs.extend(vec![0.95; windows(250) - 1]);
        probs.extend(vec![0.0; 40]);
        assert_eq!(run(&probs), vec![]);
    }

    #[test]
    fn while_the_answer_plays_a_shorter_run_of_voice_is_speech() {
        let mut probs = vec![0.0; 10];
        probs.extend(vec![0.95; windows(150)]);
        probs.extend(vec![0.0; 40]);
        assert_eq!(run(&probs), vec![], "150 ms is a blip when nothing plays");
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.set_playing(true);
        let started: Vec<_> = probs.iter().enumerate().filter_map(|(i, p)| s.push(*p).map(|b| (i, b))).collect();
        let confirm = 10 + windows(150) - 1;
        assert!(matches!(started.first(), Some((i, Boundary::Started { .. })) if *i == confirm), "{started:?}");
        // Once it has stopped, the usual minimum again.
        s.set_playing(false);
        let quiet: Vec<_> = [vec![0.95; windows(150)], vec![0.0; 40]].concat().into_iter().filter_map(|p| s.push(p)).collect();
        assert!(!quiet.iter().any(|b| matches!(b, Boundary::Started { .. })), "{quiet:?}");
    }

    #[test]
    fn nothing_starts_while_the_canceller_learns_the_room_and_a_voice_that_goes_on_starts_after() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.set_playing(true);
        s.set_settling(true);
        // A second of voice (the echo, or a person) while it learns: nothing.
        let during: Vec<_> = (0..windows(1000)).filter_map(|_| s.push(0.95)).collect();
        assert_eq!(during, vec![]);
        // Learnt: the voice that goes on needs its own 150 ms from now, not the second before.
        s.set_settling(false);
        let after: Vec<_> = (0..windows(400)).filter_map(|i| s.push(0.95).map(|b| (i, b))).collect();
        assert!(matches!(after.first(), Some((i, Boundary::Started { .. })) if *i == windows(150) - 1), "{after:?}");
    }

    #[test]
    fn hysteresis_keeps_speech_through_middling_probabilities_and_short_pauses() {
        let mut probs = vec![0.9; 10];
        probs.extend(vec![0.4; 10]); // below start, above end threshold: still speech
        probs.extend(vec![0.1; windows(400)]); // a pause shorter than the end silence
        probs.extend(vec![0.8; 10]);
        probs.extend(vec![0.0; 30]);
        let kinds: Vec<_> = run(&probs).into_iter().map(|(_, b)| std::mem::discriminant(&b)).collect();
        let expect = [
            Boundary::Started { start: 0 },
            Boundary::Paused { last_voiced: 0 },
            Boundary::Resumed,
            Boundary::Paused { last_voiced: 0 },
            Boundary::Ended { start: 0, last_voiced: 0, decided_at: 0, turn: None },
        ]
        .map(|b| std::mem::discriminant(&b));
        assert_eq!(kinds, expect);
    }

    #[test]
    fn a_monologue_is_cut_at_the_maximum_length() {
        let probs = vec![0.9; windows(60_000)];
        let ends = run(&probs).into_iter().filter(|(_, b)| matches!(b, Boundary::Ended { .. })).count();
        assert!(ends >= 2, "{ends}");
    }

    #[test]
    fn speech_running_into_the_end_of_a_file_still_ends() {
        let b = run(&[0.9; 30]);
        assert!(matches!(b.last(), Some((30, Boundary::Ended { .. }))), "{b:?}");
    }

    /// Feeds `probs`, answering every probe with the next of `verdicts` (asking again every
    /// 400 ms after an "incomplete").
    fn judged(probs: &[f32], verdicts: Vec<Option<f32>>) -> Vec<(usize, Boundary)> {
        judged_with(TurnWaits { reprobe_ms: 400, ..TurnWaits::default() }, probs, verdicts)
    }

    fn judged_with(turn: TurnWaits, probs: &[f32], mut verdicts: Vec<Option<f32>>) -> Vec<(usize, Boundary)> {
        let mut s = Segmenter::new(SegmenterConfig { turn: Some(turn), ..SegmenterConfig::default() });
        verdicts.reverse();
        let mut out = Vec::new();
        for (i, p) in probs.iter().enumerate() {
            if let Some(b) = s.push(*p) {
                out.push((i, b));
                if matches!(b, Boundary::Probe { .. }) {
                    out.extend(s.verdict(verdicts.pop().expect("a verdict for every probe")).map(|b| (i, b)));
                }
            }
        }
        out
    }

    fn speech_then_silence(silence_ms: u32) -> Vec<f32> {
        let mut probs = vec![0.9; 40];
        probs.extend(vec![0.0; windows(silence_ms)]);
        probs
    }

    #[test]
    fn a_pause_judged_complete_ends_the_turn_at_the_probe() {
        let b = judged(&speech_then_silence(3000), vec![Some(0.8)]);
        let probe = 40 + windows(200) - 1;
        assert!(matches!(b[1], (40, Boundary::Paused { .. })), "{b:?}");
        assert!(matches!(b[2], (i, Boundary::Probe { .. }) if i == probe), "{b:?}");
        assert!(
            matches!(b[3], (i, Boundary::Ended { turn: Some(p), decided_at, .. }) if i == probe && p == 0.8 && decided_at == (probe as u64 + 1) * WINDOW as u64),
            "{b:?}"
        );
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn a_pause_judged_complete_but_not_surely_waits_a_little_longer_and_the_voice_may_come_back() {
        // 0.6: complete, not surely. Nothing at the probe; ended at unsure_ms (350 ms).
        let b = judged(&speech_then_silence(3000), vec![Some(0.6)]);
        let probe = 40 + windows(200) - 1;
        assert!(matches!(b[2], (i, Boundary::Probe { .. }) if i == probe), "{b:?}");
        let end = 40 + windows(350) - 1;
        assert!(matches!(b[3], (i, Boundary::Ended { turn: Some(p), .. }) if i == end && p == 0.6), "{b:?}");
        assert_eq!(b.len(), 4, "{b:?}");
        // The voice back at 250 ms of silence: one utterance goes on, judged again at its end.
        let mut probs = vec![0.9; 40];
        probs.extend(vec![0.0; windows(250)]);
        probs.extend(speech_then_silence(1000));
        let b = judged(&probs, vec![Some(0.6), Some(0.9)]);
        let ends: Vec<usize> = b.iter().filter(|(_, b)| matches!(b, Boundary::Ended { .. })).map(|(i, _)| *i).collect();
        let second_probe = 40 + windows(250) + 40 + windows(200) - 1;
        assert_eq!(ends, vec![second_probe], "{b:?}");
        assert!(b.iter().any(|(_, b)| matches!(b, Boundary::Resumed)), "{b:?}");
        // Sure at 0.7 and over, as before.
        let b = judged(&speech_then_silence(3000), vec![Some(0.7)]);
        assert!(matches!(b[3], (i, Boundary::Ended { .. }) if i == probe), "{b:?}");
    }

    #[test]
    fn a_pause_judged_incomplete_waits_the_long_silence() {
        // Asked at 200 ms, again at ~600, ~1000 and ~1400 ms; still unfinished: ended at 1.5 s.
        let b = judged(&speech_then_silence(3000), vec![Some(0.2), Some(0.3), Some(0.1), Some(0.25)]);
        let probes = b.iter().filter(|(_, b)| matches!(b, Boundary::Probe { .. })).count();
        assert_eq!(probes, 4, "{b:?}");
        let end = 40 + windows(1500) - 1;
        assert!(matches!(b.last(), Some((i, Boundary::Ended { turn: Some(p), .. })) if *i == end && *p == 0.25), "{b:?}");
    }

    #[test]
    fn without_asking_again_an_incomplete_pause_waits_the_long_silence() {
        let mut s = Segmenter::new(SegmenterConfig { turn: Some(TurnWaits::default()), ..SegmenterConfig::default() });
        let mut out = Vec::new();
        for (i, p) in speech_then_silence(3000).iter().enumerate() {
            if let Some(b) = s.push(*p) {
                out.push((i, b));
                if matches!(b, Boundary::Probe { .. }) {
                    out.extend(s.verdict(Some(0.3)).map(|b| (i, b)));
                }
            }
        }
        assert_eq!(out.iter().filter(|(_, b)| matches!(b, Boundary::Probe { .. })).count(), 1, "{out:?}");
        assert!(matches!(out.last(), Some((i, Boundary::Ended { .. })) if *i == 40 + windows(1500) - 1), "{out:?}");
    }

    #[test]
    fn a_pause_judged_complete_when_asked_again_ends_then() {
        let b = judged(&speech_then_silence(3000), vec![Some(0.2), Some(0.9)]);
        let second = 40 + windows(200) - 1 + windows(400);
        assert!(matches!(b.last(), Some((i, Boundary::Ended { turn: Some(p), .. })) if (*i as i64 - second as i64).abs() <= 1 && *p == 0.9), "{b:?}");
    }

    #[test]
    fn speech_after_an_incomplete_pause_continues_the_turn_and_the_next_pause_is_judged_again() {
        let mut probs = speech_then_silence(700); // judged incomplete: not ended at 700 ms
        probs.extend(vec![0.9; 20]);
        probs.extend(vec![0.0; windows(1000)]);
        let b = judged(&probs, vec![Some(0.1), Some(0.1), Some(0.95)]);
        let ends: Vec<_> = b.iter().filter(|(_, b)| matches!(b, Boundary::Ended { .. })).collect();
        assert_eq!(ends.len(), 1, "{b:?}");
        assert!(b.iter().any(|(_, b)| matches!(b, Boundary::Resumed)), "{b:?}");
        assert!(matches!(ends[0].1, Boundary::Ended { start, turn: Some(_), .. } if start == 0), "{b:?}");
    }

    const EARLY: TurnWaits = TurnWaits {
        probe_ms: 200,
        early_ms: 100,
        reprobe_ms: 0,
        incomplete_ms: 1500,
        threshold: 0.5,
        sure: 0.7,
        unsure_ms: 350,
        confirm_ms: 0,
        question_ms: 0,
    };

    #[test]
    fn asked_early_the_answer_ends_the_turn_when_the_silence_reaches_the_probe() {
        let b = judged_with(EARLY, &speech_then_silence(3000), vec![Some(0.8)]);
        let asked = 40 + windows(100) - 1;
        let probe = 40 + windows(200) - 1;
        assert!(matches!(b[2], (i, Boundary::Probe { .. }) if i == asked), "{b:?}");
        assert!(
            matches!(b[3], (i, Boundary::Ended { turn: Some(p), decided_at, .. }) if i == probe && p == 0.8 && decided_at == (probe as u64 + 1) * WINDOW as u64),
            "decided at the same sample as when asked at the probe: {b:?}"
        );
        assert_eq!(b.len(), 4, "{b:?}");
        // Judged unfinished early: the long wait, as before.
        let b = judged_with(EARLY, &speech_then_silence(3000), vec![Some(0.2)]);
        assert!(matches!(b.last(), Some((i, Boundary::Ended { turn: Some(p), .. })) if *i == 40 + windows(1500) - 1 && *p == 0.2), "{b:?}");
    }

    #[test]
    fn an_early_answer_is_dropped_when_the_voice_comes_back_before_the_probe() {
        // 150 ms of silence (asked at 100 ms: "complete"), then more speech: the turn goes on.
        let mut probs = vec![0.9; 40];
        probs.extend(vec![0.0; windows(150)]);
        probs.extend(vec![0.9; 20]);
        probs.extend(vec![0.0; windows(1000)]);
        let b = judged_with(EARLY, &probs, vec![Some(0.9), Some(0.1)]);
        let ends: Vec<_> = b.iter().filter(|(_, b)| matches!(b, Boundary::Ended { .. })).collect();
        assert_eq!(ends.len(), 0, "the second pause, judged unfinished, has not lasted 1.5 s: {b:?}");
        assert!(b.iter().any(|(_, b)| matches!(b, Boundary::Resumed)), "{b:?}");
        assert_eq!(b.iter().filter(|(_, b)| matches!(b, Boundary::Probe { .. })).count(), 2, "{b:?}");
    }

    #[test]
    fn a_first_answer_not_sure_is_asked_again_at_confirm_ms_and_that_answer_decides() {
        let waits = TurnWaits { probe_ms: 120, early_ms: 30, confirm_ms: 180, ..TurnWaits::default() };
        let (first, second) = (40 + windows(90) - 1, 40 + windows(150) - 1);
        let ended_at = |b: &[(usize, Boundary)]| {
            b.iter().find_map(|(i, b)| match b {
                Boundary::Ended { turn: Some(p), decided_at, .. } => Some((*i, *p, *decided_at)),
                _ => None,
            })
        };
        let at = |ms: u32| (40 + windows(ms) - 1, (40 + windows(ms)) as u64 * WINDOW as u64);
        // Sure at the first: ends at probe_ms, asked once.
        let b = judged_with(waits, &speech_then_silence(3000), vec![Some(0.8)]);
        assert!(matches!(b[2], (i, Boundary::Probe { .. }) if i == first), "{b:?}");
        assert_eq!(ended_at(&b), Some((at(120).0, 0.8, at(120).1)), "{b:?}");
        assert_eq!(b.iter().filter(|(_, b)| matches!(b, Boundary::Probe { .. })).count(), 1, "{b:?}");
        // Not sure, then sure: asked again 30 ms before confirm_ms, ends at confirm_ms.
        let b = judged_with(waits, &speech_then_silence(3000), vec![Some(0.6), Some(0.9)]);
        let probes: Vec<_> = b.iter().filter(|(_, b)| matches!(b, Boundary::Probe { .. })).map(|(i, _)| *i).collect();
        assert_eq!(probes, vec![first, second], "{b:?}");
        assert_eq!(ended_at(&b), Some((at(180).0, 0.9, at(180).1)), "{b:?}");
        // Unfinished, then not sure: the second answer decides (unsure_ms).
        let b = judged_with(waits, &speech_then_silence(3000), vec![Some(0.2), Some(0.6)]);
        assert_eq!(ended_at(&b), Some((at(350).0, 0.6, at(350).1)), "{b:?}");
        // Not sure, then unfinished: the long wait.
        let b = judged_with(waits, &speech_then_silence(3000), vec![Some(0.6), Some(0.2)]);
        assert_eq!(ended_at(&b), Some((at(1500).0, 0.2, at(1500).1)), "{b:?}");
        // The voice comes back between the two: the turn goes on, and its next pause is asked
        // from the start.
        let mut probs = vec![0.9; 40];
        probs.extend(vec![0.0; 4]); // 128 ms: answered (not sure), not yet asked again
        probs.extend(vec![0.9; 20]);
        probs.extend(vec![0.0; windows(1000)]);
        let b = judged_with(waits, &probs, vec![Some(0.6), Some(0.9)]);
        assert!(b.iter().any(|(_, b)| matches!(b, Boundary::Resumed)), "{b:?}");
        assert!(matches!(ended_at(&b), Some((_, p, _)) if p == 0.9), "{b:?}");
    }

    #[test]
    fn a_pause_judged_unfinished_whose_words_are_a_question_ends_at_question_ms() {
        let waits = TurnWaits { question_ms: 500, ..TurnWaits::default() };
        let last_voiced = 40 * WINDOW as u64;
        let ended = |b: &[(usize, Boundary)]| b.iter().find_map(|(i, b)| matches!(b, Boundary::Ended { .. }).then_some(*i));
        // Feeds 3 s of silence after the speech, the words heard at window `heard` of it.
        let run = |heard: usize, of: u64, p: f32| {
            let mut s = Segmenter::new(SegmenterConfig { turn: Some(waits), ..SegmenterConfig::default() });
            let mut out = Vec::new();
            let mut awaited = Vec::new();
            for (i, prob) in speech_then_silence(3000).iter().enumerate() {
                if i == heard {
                    s.heard_question(of);
                }
                if let Some(b) = s.push(*prob) {
                    out.push((i, b));
                    if matches!(b, Boundary::Probe { .. }) {
                        out.extend(s.verdict(Some(p)).map(|b| (i, b)));
                    }
                }
                awaited.push(s.awaits_words());
            }
            (out, awaited)
        };
        // Heard after the judgement (the speculative decode is slower than Smart Turn).
        let (b, awaited) = run(40 + windows(300), last_voiced, 0.2);
        assert_eq!(ended(&b), Some(40 + windows(500) - 1), "{b:?}");
        let probe = 40 + windows(200) - 1;
        assert_eq!(awaited[probe], Some((0, last_voiced)), "an unfinished pause awaits the words");
        assert_eq!(awaited[probe - 1], None, "not before it is judged");
        assert_eq!(awaited[40 + windows(300)], None, "nor once they are heard");
        // Heard before it, and after the silence reached question_ms: at once.
        assert_eq!(ended(&run(41, last_voiced, 0.2).0), Some(40 + windows(500) - 1));
        assert_eq!(ended(&run(40 + windows(800), last_voiced, 0.2).0), Some(40 + windows(800)));
        // Words of another pause, or none: the long wait.
        assert_eq!(ended(&run(41, last_voiced - WINDOW as u64, 0.2).0), Some(40 + windows(1500) - 1));
        assert_eq!(ended(&run(usize::MAX, last_voiced, 0.2).0), Some(40 + windows(1500) - 1));
        // Judged complete: the words change nothing.
        assert_eq!(ended(&run(41, last_voiced, 0.9).0), Some(probe));
        assert_eq!(ended(&run(41, last_voiced, 0.6).0), Some(40 + windows(350) - 1));
        // Off (0): the long wait.
        let mut s = Segmenter::new(SegmenterConfig { turn: Some(TurnWaits::default()), ..SegmenterConfig::default() });
        let mut end = None;
        for (i, prob) in speech_then_silence(3000).iter().enumerate() {
            s.heard_question(last_voiced);
            match s.push(*prob) {
                Some(Boundary::Probe { .. }) => assert_eq!(s.verdict(Some(0.2)), None),
                Some(Boundary::Ended { .. }) => end = Some(i),
                _ => {}
            }
            assert_eq!(s.awaits_words(), None);
        }
        assert_eq!(end, Some(40 + windows(1500) - 1));
    }

    #[test]
    fn no_answer_from_the_model_falls_back_to_the_silence() {
        let b = judged(&speech_then_silence(3000), vec![None]);
        let end = 40 + windows(500) - 1;
        assert!(matches!(b.last(), Some((i, Boundary::Ended { turn: None, .. })) if *i == end), "{b:?}");
    }
}
