//! hiwar-animation: the face as a pure function of a phoneme timeline.
//!
//! No I/O, no threads, no bevy: the voice produces a [`Timeline`] (phonemes with sample
//! positions on the audio clock, plus word spans), and this crate turns it into mouth shapes.
//! The lip-sync engine itself arrives with the face issue; the data contract is settled here.

/// The Oculus/Meta 15-viseme set, which maps onto ARKit 52 blendshapes and VRM expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Viseme {
    Sil,
    PP,
    FF,
    TH,
    DD,
    Kk,
    CH,
    SS,
    Nn,
    RR,
    Aa,
    E,
    I,
    O,
    U,
}

impl Viseme {
    pub const ALL: [Viseme; 15] = [
        Viseme::Sil,
        Viseme::PP,
        Viseme::FF,
        Viseme::TH,
        Viseme::DD,
        Viseme::Kk,
        Viseme::CH,
        Viseme::SS,
        Viseme::Nn,
        Viseme::RR,
        Viseme::Aa,
        Viseme::E,
        Viseme::I,
        Viseme::O,
        Viseme::U,
    ];

    /// The morph-target name Oculus-rigged avatars use (`viseme_aa`, `viseme_PP`, …).
    pub fn oculus_name(self) -> &'static str {
        match self {
            Viseme::Sil => "viseme_sil",
            Viseme::PP => "viseme_PP",
            Viseme::FF => "viseme_FF",
            Viseme::TH => "viseme_TH",
            Viseme::DD => "viseme_DD",
            Viseme::Kk => "viseme_kk",
            Viseme::CH => "viseme_CH",
            Viseme::SS => "viseme_SS",
            Viseme::Nn => "viseme_nn",
            Viseme::RR => "viseme_RR",
            Viseme::Aa => "viseme_aa",
            Viseme::E => "viseme_E",
            Viseme::I => "viseme_I",
            Viseme::O => "viseme_O",
            Viseme::U => "viseme_U",
        }
    }
}

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
        let t = Timeline {
            sample_rate: 22_050,
            phonemes: vec![ph("m", 0, 100), ph("a", 100, 300), ph("r", 400, 450)],
            words: vec![],
        };
        assert_eq!(t.phoneme_at(0).map(|p| p.phoneme.as_str()), Some("m"));
        assert_eq!(t.phoneme_at(100).map(|p| p.phoneme.as_str()), Some("a"));
        assert_eq!(t.phoneme_at(350), None, "gap between phonemes");
        assert_eq!(t.phoneme_at(450), None, "past the end");
        assert_eq!(t.end(), 450);
    }

    #[test]
    fn oculus_names_are_distinct() {
        let mut names: Vec<_> = Viseme::ALL.iter().map(|v| v.oculus_name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 15);
    }
}
