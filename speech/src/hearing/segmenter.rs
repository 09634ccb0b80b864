//! Turning per-window speech probabilities into utterances: hysteresis, a minimum speech
//! length, a pre-roll, and an end-of-utterance silence. Pure logic; positions are 16 kHz
//! sample indices from the start of the stream.
//!
//! Terms: *end of speech* is the last voiced sample; the *end-pointing decision* comes one
//! silence window (`end_silence`) later.

use super::vad::WINDOW;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// Probability at or above which a window starts speech.
    pub start_threshold: f32,
    /// Probability below which a window counts as silence once speech has started.
    pub end_threshold: f32,
    /// Voiced time needed before speech is declared (shorter blips are ignored).
    pub min_speech_ms: u32,
    /// Silence after the last voiced sample that ends an utterance.
    pub end_silence_ms: u32,
    /// Audio kept before the detected onset (VAD onsets are late by a window or two).
    pub pre_roll_ms: u32,
    /// An utterance this long is cut even if the person keeps talking (whisper's window).
    pub max_utterance_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig { start_threshold: 0.5, end_threshold: 0.35, min_speech_ms: 250, end_silence_ms: 500, pre_roll_ms: 200, max_utterance_ms: 28_000 }
    }
}

/// What one window changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Speech confirmed; the utterance starts at `start` (onset minus pre-roll).
    Started { start: u64 },
    /// Speech paused: the last voiced sample so far is `last_voiced` (a chance to decode early).
    Paused { last_voiced: u64 },
    /// Speech resumed after a pause that was not long enough to end it.
    Resumed,
    /// The utterance ended: speech ran to `last_voiced`; the decision was taken at `decided_at`.
    Ended { start: u64, last_voiced: u64, decided_at: u64 },
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
    },
}

#[derive(Debug, Clone)]
pub struct Segmenter {
    config: SegmenterConfig,
    state: State,
    /// Samples processed so far.
    pos: u64,
}

fn ms(ms: u32) -> u64 {
    u64::from(ms) * 16
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Segmenter {
        Segmenter { config, state: State::Silence, pos: 0 }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// In speech and not in a pause that may be its end.
    pub fn voiced(&self) -> bool {
        matches!(self.state, State::Speech { paused: false, .. })
    }

    /// Feeds the probability of the next 512-sample window.
    pub fn push(&mut self, p: f32) -> Option<Boundary> {
        let (begin, end) = (self.pos, self.pos + WINDOW as u64);
        self.pos = end;
        let c = self.config;
        match self.state {
            State::Silence => {
                if p >= c.start_threshold {
                    self.state = State::Onset { onset: begin, voiced: WINDOW as u64 };
                    return self.confirm();
                }
                None
            }
            State::Onset { onset, voiced } => {
                if p >= c.end_threshold {
                    self.state = State::Onset { onset, voiced: voiced + WINDOW as u64 };
                    self.confirm()
                } else {
                    self.state = State::Silence;
                    None
                }
            }
            State::Speech { start, last_voiced, paused } => {
                if p >= c.end_threshold {
                    self.state = State::Speech { start, last_voiced: end, paused: false };
                    if end - start >= ms(c.max_utterance_ms) {
                        self.state = State::Silence;
                        return Some(Boundary::Ended { start, last_voiced: end, decided_at: end });
                    }
                    return paused.then_some(Boundary::Resumed);
                }
                if end - last_voiced >= ms(c.end_silence_ms) {
                    self.state = State::Silence;
                    return Some(Boundary::Ended { start, last_voiced, decided_at: end });
                }
                if !paused {
                    self.state = State::Speech { start, last_voiced, paused: true };
                    return Some(Boundary::Paused { last_voiced });
                }
                None
            }
        }
    }

    /// Ends the stream: an utterance in progress ends at the last voiced sample.
    pub fn finish(&mut self) -> Option<Boundary> {
        let state = std::mem::replace(&mut self.state, State::Silence);
        match state {
            State::Speech { start, last_voiced, .. } => Some(Boundary::Ended { start, last_voiced, decided_at: self.pos }),
            _ => None,
        }
    }

    fn confirm(&mut self) -> Option<Boundary> {
        let State::Onset { onset, voiced } = self.state else { return None };
        if voiced < ms(self.config.min_speech_ms) {
            return None;
        }
        let start = onset.saturating_sub(ms(self.config.pre_roll_ms));
        self.state = State::Speech { start, last_voiced: self.pos, paused: false };
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
        assert_eq!(b[2], (decided, Boundary::Ended { start: 20 * w - 3200, last_voiced: 60 * w, decided_at: (decided as u64 + 1) * w }));
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
            Boundary::Ended { start: 0, last_voiced: 0, decided_at: 0 },
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
}
