//! The voice: text → phonemes → Piper/VITS on ONNX Runtime → audio with a per-phoneme
//! timeline (the face's input).
//!
//! Built so far: the English path (espeak-ng phonemes, the registry's en_US-joe-medium voice)
//! with exact phoneme timing from the model's own duration predictor. The Arabic front-end
//! (diacritisation, rule-based G2P), text normalisation, streaming and playback follow.

pub mod arabic;
mod chunker;
mod normalize;
mod onnx_patch;
mod piper;
mod player;
mod tashkeel;

pub use onnx_patch::{add_graph_output, duration_output};
pub use piper::{PiperVoice, Speech, TimedPhoneme, TimedWord, VoiceConfig, split_clauses};
pub use chunker::Chunker;
pub use normalize::{cardinal, normalize_for_speech};
pub use player::{PlayClock, Player};
pub use tashkeel::{Diacritizer, is_tashkeel};

/// The voices hiwar speaks with: one for English (and everything when there is no other),
/// optionally one for Arabic; one output rate and one timeline whichever speaks.
#[derive(Debug)]
pub struct Voices {
    pub english: PiperVoice,
    pub arabic: Option<PiperVoice>,
    pub diacritizer: Option<Diacritizer>,
}

impl Voices {
    /// The rate all speech comes out at (the English voice's).
    pub fn sample_rate(&self) -> u32 {
        self.english.config.sample_rate
    }

    /// Speaks mixed text: Arabic spans with the Arabic voice when there is one.
    pub fn speak(&mut self, text: &str) -> crate::Result<Speech> {
        let Some(arabic_voice) = self.arabic.as_mut() else {
            return self.english.speak(text, self.diacritizer.as_mut());
        };
        let rate = self.english.config.sample_rate;
        let mut all = Speech { sample_rate: rate, ..Speech::default() };
        let text = normalize_for_speech(text);
        for (k, (clause, punct)) in split_clauses(&text).into_iter().enumerate() {
            let spans = piper::script_spans(&clause);
            let n = spans.len();
            for (j, (arabic, span)) in spans.into_iter().enumerate() {
                let end = if j + 1 == n { punct } else { None };
                let speech = if arabic {
                    let marked = match self.diacritizer.as_mut() {
                        Some(d) => d.diacritize(&span)?,
                        None => span.clone(),
                    };
                    let ipa = arabic::clause_to_ipa(&marked, k == 0 && j == 0);
                    arabic_voice.synthesize(&span, &ipa, end)?
                } else {
                    let ipa = self.english.phonemize(&span)?;
                    self.english.synthesize(&span, &ipa, end)?
                };
                all.append(speech.resampled(rate)?);
            }
        }
        Ok(all)
    }
}
