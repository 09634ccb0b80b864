//! The VAD side of hearing: 16 kHz samples in, utterance boundaries out, with the audio of
//! the current utterance kept (and nothing else beyond the pre-roll, so memory stays bounded
//! however long the stream).

use std::time::{Duration, Instant};

use super::segmenter::{Boundary, Segmenter, SegmenterConfig};
use super::turn::SmartTurn;
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
        }
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
            match self.segmenter.push(p) {
                Some(Boundary::Probe { start, .. }) => {
                    let judged = self.judge(start);
                    if let Some(boundary) = self.segmenter.verdict(judged) {
                        on(self, boundary);
                    }
                }
                Some(boundary) => on(self, boundary),
                None => {}
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
            on(self, boundary);
        }
        Ok(())
    }

    /// Asks the semantic end of turn about the utterance from `start` to now.
    fn judge(&mut self, start: u64) -> Option<f32> {
        let begun = Instant::now();
        let from = start.saturating_sub(self.base).min(self.audio.len() as u64) as usize;
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
        self.audio.fill(0.0);
        self.audio.clear();
        self.audio.shrink_to_fit();
    }

    /// Gives the models back (to reuse them for a new stream).
    pub fn into_models(mut self) -> (SileroVad, Option<SmartTurn>) {
        self.vad.reset();
        (self.vad, self.turn)
    }

    /// Drops audio older than the pre-roll (only between utterances).
    fn trim(&mut self) {
        let keep = self.keep_before as usize;
        if self.audio.len() > keep * 4 {
            let drop = self.audio.len() - keep;
            self.audio.drain(..drop);
            self.base += drop as u64;
        }
    }
}
