//! The VAD side of hearing: 16 kHz samples in, utterance boundaries out, with the audio of
//! the current utterance kept (and nothing else beyond the pre-roll, so memory stays bounded
//! however long the stream).

use std::time::{Duration, Instant};

use super::segmenter::{Boundary, Segmenter, SegmenterConfig};
use super::turn::{SmartTurn, TURN_SAMPLES};
use super::vad::{SileroVad, WINDOW};
use crate::Result;

/// One semantic end-of-turn judgement: its probability of "complete" (`None`: the model
/// failed) and how long the model took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnJudgement {
    pub complete: Option<f32>,
    pub took: Duration,
}

#[derive(Debug)]
pub struct Listener {
    vad: SileroVad,
    /// Judges pauses when the segmenter asks (its config's `turn` is cleared without one).
    turn: Option<SmartTurn>,
    /// The judgements made so far (read and cleared by whoever reports them).
    judgements: Vec<TurnJudgement>,
    segmenter: Segmenter,
    /// Samples not yet a whole VAD window.
    partial: Vec<f32>,
    /// Recent audio: `audio[0]` is stream sample `base`.
    audio: Vec<f32>,
    base: u64,
    keep_before: u64,
    /// Where the turn the current utterance continues began: an utterance that starts soon
    /// after the last one ended (within the semantic end of turn's long wait) is judged with
    /// that one's audio in front — see [`Listener::judge`].
    turn_start: u64,
    /// The last utterance: where its turn began and its last voiced sample.
    last: Option<(u64, u64)>,
    /// How soon after the last utterance speech continues its turn, in samples.
    continues_within: u64,
}

impl Listener {
    /// A listener that ends utterances on silence alone.
    pub fn new(vad: SileroVad, config: SegmenterConfig) -> Listener {
        Listener::with_turn(vad, None, config)
    }

    /// A listener whose pauses `turn` judges, where the config asks for it.
    pub fn with_turn(vad: SileroVad, turn: Option<SmartTurn>, mut config: SegmenterConfig) -> Listener {
        if turn.is_none() {
            config.turn = None;
        }
        Listener {
            vad,
            turn,
            judgements: Vec::new(),
            segmenter: Segmenter::new(config),
            partial: Vec::with_capacity(WINDOW),
            audio: Vec::new(),
            base: 0,
            keep_before: u64::from(config.pre_roll_ms) * 16 + WINDOW as u64 * 2,
            turn_start: 0,
            last: None,
            continues_within: config.turn.map_or(0, |t| u64::from(t.incomplete_ms) * 16),
        }
    }

    /// Whether the answer is playing now: a voice over it needs less voiced time to count
    /// (`SegmenterConfig::min_speech_playing_ms`).
    pub fn set_playing(&mut self, playing: bool) {
        self.segmenter.set_playing(playing);
    }

    /// Whether the answer plays through an echo canceller still learning the room: no speech
    /// starts (`Segmenter::set_settling`).
    pub fn set_settling(&mut self, settling: bool) {
        self.segmenter.set_settling(settling);
    }

    /// Samples heard so far (the stream position).
    pub fn position(&self) -> u64 {
        self.base + self.audio.len() as u64
    }

    pub fn in_speech(&self) -> bool {
        self.segmenter.in_speech()
    }

    /// In speech and not pausing (a pause may be the end of the utterance).
    pub fn voiced(&self) -> bool {
        self.segmenter.voiced()
    }

    /// The words up to the pause after `last_voiced` are a finished question
    /// ([`Segmenter::heard_question`]): a pause judged unfinished ends sooner.
    pub fn heard_question(&mut self, last_voiced: u64) {
        self.segmenter.heard_question(last_voiced);
    }

    /// The pause judged unfinished whose words could end it sooner, as (start, last voiced
    /// sample), until they are heard as a finished question ([`Segmenter::awaits_words`]).
    pub fn awaits_words(&self) -> Option<(u64, u64)> {
        self.segmenter.awaits_words()
    }

    /// How long the voice in progress has gone on, in samples (see [`Segmenter::voiced_span`]).
    pub fn voiced_span(&self) -> u64 {
        self.segmenter.voiced_span()
    }

    /// Feeds 16 kHz samples; calls `on` for each boundary, in order, with this listener so the
    /// audio can be read.
    pub fn push(&mut self, mut samples: &[f32], mut on: impl FnMut(&Listener, Boundary)) -> Result<()> {
        while !samples.is_empty() {
            let take = (WINDOW - self.partial.len()).min(samples.len());
            self.partial.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.partial.len() < WINDOW {
                break;
            }
            let p = self.vad.probability(&self.partial)?;
            self.audio.extend_from_slice(&self.partial);
            self.partial.clear();
            let boundary = match self.segmenter.push(p) {
                Some(Boundary::Probe { .. }) => {
                    let judged = self.judge();
                    self.segmenter.verdict(judged)
                }
                other => other,
            };
            if let Some(boundary) = boundary {
                self.follow(boundary);
                on(self, boundary);
            }
            if !self.segmenter.in_speech() {
                self.trim();
            }
        }
        Ok(())
    }

    /// Ends the stream: pads the last partial window with silence and closes any utterance.
    pub fn finish(&mut self, mut on: impl FnMut(&Listener, Boundary)) -> Result<()> {
        if !self.partial.is_empty() {
            let pad = vec![0.0; WINDOW - self.partial.len()];
            self.push(&pad, &mut on)?;
        }
        if let Some(boundary) = self.segmenter.finish() {
            self.follow(boundary);
            on(self, boundary);
        }
        Ok(())
    }

    /// Keeps track of where turns begin and end.
    fn follow(&mut self, boundary: Boundary) {
        match boundary {
            Boundary::Started { start } => {
                self.turn_start = match self.last {
                    Some((turn_start, last_voiced)) if start.saturating_sub(last_voiced) <= self.continues_within => turn_start,
                    _ => start,
                };
            }
            Boundary::Ended { last_voiced, .. } => self.last = Some((self.turn_start, last_voiced)),
            _ => {}
        }
    }

    /// Asks the semantic end of turn about the turn so far: the current utterance, and in
    /// front of it those it continues. A person who stopped, was judged finished, and went
    /// on within the long wait was still talking: judged on "what your country can do for
    /// you" alone, JFK's sentence is finished (p ≈ 0.2, and over 0.5 live at times); judged
    /// with "ask not" and the pause before it, it is not (0.04). The model hears the last 8 s.
    fn judge(&mut self) -> Option<f32> {
        let begun = Instant::now();
        let from = self.turn_start.saturating_sub(self.base).min(self.audio.len() as u64) as usize;
        let complete = match self.turn.as_mut().map(|t| t.probability(&self.audio[from..])) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                tracing::warn!("semantic end of turn failed, this pause is timed by silence alone: {e}");
                None
            }
            None => None,
        };
        let took = begun.elapsed();
        tracing::debug!(?complete, took_ms = took.as_secs_f64() * 1e3, "end of turn judged");
        if self.judgements.len() >= 4096 {
            self.judgements.remove(0); // nobody is reading them: keep memory bounded
        }
        self.judgements.push(TurnJudgement { complete, took });
        complete
    }

    /// The end-of-turn judgements made since the last call.
    pub fn take_judgements(&mut self) -> Vec<TurnJudgement> {
        std::mem::take(&mut self.judgements)
    }

    /// The audio from stream sample `start` to `end` (clamped to what is kept).
    pub fn audio(&self, start: u64, end: u64) -> &[f32] {
        let from = start.saturating_sub(self.base).min(self.audio.len() as u64) as usize;
        let to = end.saturating_sub(self.base).min(self.audio.len() as u64) as usize;
        &self.audio[from..to.max(from)]
    }

    /// Forgets the audio kept between utterances (a visitor's session ended): zeroed, then
    /// dropped; the stream position goes on.
    pub fn forget(&mut self) {
        if self.segmenter.in_speech() {
            return;
        }
        self.base += self.audio.len() as u64;
        self.last = None;
        self.audio.fill(0.0);
        self.audio.clear();
        self.audio.shrink_to_fit();
    }

    /// Gives the models back (to reuse them for a new stream).
    pub fn into_models(mut self) -> (SileroVad, Option<SmartTurn>) {
        self.vad.reset();
        (self.vad, self.turn)
    }

    /// Drops audio older than the pre-roll (only between utterances), or while the next
    /// utterance could still continue the last one's turn, older than that turn's last 8 s.
    fn trim(&mut self) {
        let continuing = self.last.is_some_and(|(_, last_voiced)| self.position().saturating_sub(last_voiced) <= self.continues_within);
        let keep = if continuing { self.keep_before as usize + TURN_SAMPLES } else { self.keep_before as usize };
        if self.audio.len() > keep * 4 {
            let drop = self.audio.len() - keep;
            self.audio.drain(..drop);
            self.base += drop as u64;
        }
    }
}
