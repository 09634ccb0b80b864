//! hiwar-animation: the face as a pure function of a phoneme timeline.
//!
//! No I/O, no threads, no bevy: the voice produces a [`Timeline`] (phonemes with sample
//! positions on the audio clock, plus word spans), and this crate turns it into mouth shapes,
//! adds the life of an idle face, and maps the result onto an avatar's morph targets.
//!
//! - [`viseme`]: phoneme → viseme tables (Arabic and English, emphatics).
//! - [`lipsync`]: dominance-blended coarticulation with bilabial closure → [`Mouth`].
//! - [`audio`]: the same from audio alone, for speech without timing.
//! - [`idle`]: blinks, saccades, breathing, head motion, listening/thinking poses, smiles.
//! - [`expression`]: moods (warmth, concern) and clause-end nods from what is said.
//! - [`rig`]: mouth + idle → ARKit 52 → the avatar's own targets (ARKit, Oculus, VRM, jaw).

pub mod audio;
pub mod expression;
pub mod idle;
pub mod lipsync;
pub mod rig;
pub mod viseme;

pub use audio::AudioLipSync;
pub use expression::{Expression, ExpressionFrame, Mood};
pub use idle::{Activity, IdleFrame, IdleLife};
pub use lipsync::{LipSync, Mouth};
pub use rig::{ARKIT, Composer, FaceFrame, Rig, RigKind, Vrm};
pub use viseme::{Viseme, classify};

/// A position on the audio output clock, in samples at the timeline's sample rate.
pub type SamplePos = u64;

/// One phoneme as spoken: an IPA symbol and the samples it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedPhoneme {
    pub phoneme: String,
    pub start: SamplePos,
    pub end: SamplePos,
}

/// One written word and the samples it occupies (for caption highlighting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedWord {
    pub text: String,
    pub start: SamplePos,
    pub end: SamplePos,
}

/// What the voice hands to the face for one chunk of speech.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    pub sample_rate: u32,
    pub phonemes: Vec<TimedPhoneme>,
    pub words: Vec<TimedWord>,
}

impl Timeline {
    /// The phoneme sounding at `pos`, if any.
    pub fn phoneme_at(&self, pos: SamplePos) -> Option<&TimedPhoneme> {
        let i = self.phonemes.partition_point(|p| p.end <= pos);
        self.phonemes.get(i).filter(|p| p.start <= pos)
    }

    /// The end of the last phoneme, or 0 for an empty timeline.
    pub fn end(&self) -> SamplePos {
        self.phonemes.last().map_or(0, |p| p.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ph(p: &str, start: u64, end: u64) -> TimedPhoneme {
        TimedPhoneme { phoneme: p.into(), start, end }
    }

    #[test]
    fn phoneme_lookup_respects_half_open_spans() {
        let t = Timeline { sample_rate: 22_050, phonemes: vec![ph("m", 0, 100), ph("a", 100, 300), ph("r", 400, 450)], words: vec![] };
        assert_eq!(t.phoneme_at(0).map(|p| p.phoneme.as_str()), Some("m"));
        assert_eq!(t.phoneme_at(100).map(|p| p.phoneme.as_str()), Some("a"));
        assert_eq!(t.phoneme_at(350), None, "gap between phonemes");
        assert_eq!(t.phoneme_at(450), None, "past the end");
        assert_eq!(t.end(), 450);
    }
}
