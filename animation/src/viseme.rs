//! Phoneme → viseme: what the lips and jaw do for each sound the voices emit.
//!
//! The input symbols are the voice timeline's: IPA in espeak-ng conventions, one sound per
//! entry, stress marks (ˈ ˌ) and the length mark (ː) already joined to their vowel, and
//! pauses as `_`, a space or punctuation. The Arabic rows follow ../shared/ARABIC.md.

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
    pub const COUNT: usize = 15;

    pub const ALL: [Viseme; Viseme::COUNT] = [
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

    /// Position in [`Viseme::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

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

    /// How far the jaw opens for this viseme at full strength, 0–1.
    pub fn jaw(self) -> f32 {
        match self {
            Viseme::Sil | Viseme::PP => 0.0,
            Viseme::FF | Viseme::SS => 0.08,
            Viseme::TH | Viseme::CH => 0.15,
            Viseme::DD | Viseme::Nn => 0.2,
            Viseme::Kk | Viseme::RR => 0.25,
            Viseme::I | Viseme::U => 0.3,
            Viseme::E => 0.45,
            Viseme::O => 0.5,
            Viseme::Aa => 0.75,
        }
    }
}

/// What kind of sound a timeline entry is, as far as the face cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pause, padding or punctuation: the mouth rests.
    Pause,
    Vowel,
    Consonant,
    /// ħ ʕ h: not visible at the lips; the mouth keeps the neighbouring vowel's shape, with
    /// the jaw a little more open.
    Pharyngeal,
    /// ʔ: a brief glottal closure; the mouth keeps its shape, a little less open.
    Glottal,
    /// A modifier standing alone (ˤ, ʰ, ʲ, a tie bar): it belongs to the sound before it.
    Modifier,
}

/// A timeline entry, classified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sound {
    pub kind: Kind,
    pub viseme: Viseme,
    /// Pharyngealised (ص ض ط ظ): backs and rounds neighbouring vowels a little.
    pub emphatic: bool,
    /// A long vowel (ː): full amplitude; short vowels are smaller.
    pub long: bool,
}

/// Characters that modify the sound they are attached to and carry no shape of their own.
fn is_modifier(c: char) -> bool {
    matches!(c, 'ˈ' | 'ˌ' | 'ː' | 'ˑ' | 'ˤ' | 'ʰ' | 'ʲ' | 'ʷ' | '\u{0361}' | '\u{035C}' | '\u{0303}' | '\u{0329}' | '\u{032F}')
        || ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Classifies one timeline entry, or `None` for a symbol the tables do not know (the
/// lip-sync treats those as a neutral, slightly open mouth; a test enumerates every symbol
/// the voices can emit so that this stays unreachable in practice).
pub fn classify(phoneme: &str) -> Option<Sound> {
    let emphatic = phoneme.contains('ˤ');
    let long = phoneme.contains('ː');
    let base: String = phoneme.chars().filter(|&c| !is_modifier(c)).collect();
    let sound = |kind, viseme| Some(Sound { kind, viseme, emphatic, long });
    if base.is_empty() {
        return if phoneme.is_empty() { sound(Kind::Pause, Viseme::Sil) } else { sound(Kind::Modifier, Viseme::Sil) };
    }
    // A multi-letter entry (an affricate, a diphthong) takes the shape of its first sound,
    // except that affricates ending in a postalveolar are CH.
    if base.ends_with('ʃ') || base.ends_with('ʒ') {
        return sound(Kind::Consonant, Viseme::CH);
    }
    let Some(first) = base.chars().next() else { return sound(Kind::Pause, Viseme::Sil) };
    use Kind::{Consonant as C, Vowel as V};
    match first {
        '_' | ' ' | '^' | '$' | '.' | ',' | ';' | ':' | '!' | '?' | '،' | '؛' | '؟' | '…' | '-' | '—' | '–' | '"' | '\'' | '(' | ')' | '\n' | '\t' | '«'
        | '»' => sound(Kind::Pause, Viseme::Sil),
        'p' | 'b' | 'm' | 'ɱ' | 'β' => sound(C, Viseme::PP),
        'f' | 'v' | 'ʋ' => sound(C, Viseme::FF),
        'θ' | 'ð' => sound(C, Viseme::TH),
        't' | 'd' | 'ɾ' | 'ʈ' | 'ɖ' => sound(C, Viseme::DD),
        's' | 'z' => sound(C, Viseme::SS),
        'ʃ' | 'ʒ' | 'ç' | 'ʝ' | 'ɕ' | 'ʑ' => sound(C, Viseme::CH),
        'k' | 'g' | 'ɡ' | 'q' | 'ɣ' | 'x' | 'ŋ' | 'χ' | 'ʁ' | 'ɢ' => sound(C, Viseme::Kk),
        'n' | 'l' | 'ɫ' | 'ɲ' | 'ɬ' | 'ɭ' | 'ɳ' | 'ʎ' => sound(C, Viseme::Nn),
        'r' | 'ɹ' | 'ɻ' | 'ʀ' | 'ɚ' | 'ɝ' => sound(if first == 'ɚ' || first == 'ɝ' { V } else { C }, Viseme::RR),
        'w' => sound(C, Viseme::U),
        'j' => sound(C, Viseme::I),
        'h' | 'ħ' | 'ʕ' | 'ɦ' | 'ʜ' | 'ʢ' => sound(Kind::Pharyngeal, Viseme::Sil),
        'ʔ' => sound(Kind::Glottal, Viseme::Sil),
        'a' | 'ɑ' | 'ɐ' | 'æ' | 'ʌ' | 'ä' | 'ɶ' => sound(V, Viseme::Aa),
        'e' | 'ɛ' | 'ə' | 'ɜ' | 'œ' | 'ø' | 'ɘ' => sound(V, Viseme::E),
        'i' | 'ɪ' | 'y' | 'ʏ' | 'ᵻ' | 'ɨ' | 'ɯ' => sound(V, Viseme::I),
        'o' | 'ɔ' | 'ɒ' | 'ɤ' => sound(V, Viseme::O),
        'u' | 'ʊ' | 'ɵ' | 'ʉ' => sound(V, Viseme::U),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vis(p: &str) -> Viseme {
        classify(p).map(|s| s.viseme).unwrap_or_else(|| panic!("{p} unclassified"))
    }

    #[test]
    fn arabic_rows_of_the_table() {
        // ../shared/ARABIC.md, "Phoneme → viseme".
        for (p, v) in [
            ("b", Viseme::PP),
            ("m", Viseme::PP),
            ("f", Viseme::FF),
            ("θ", Viseme::TH),
            ("ð", Viseme::TH),
            ("ðˤ", Viseme::TH),
            ("t", Viseme::DD),
            ("dˤ", Viseme::DD),
            ("tˤ", Viseme::DD),
            ("sˤ", Viseme::SS),
            ("z", Viseme::SS),
            ("ʃ", Viseme::CH),
            ("dʒ", Viseme::CH),
            ("q", Viseme::Kk),
            ("ɣ", Viseme::Kk),
            ("x", Viseme::Kk),
            ("n", Viseme::Nn),
            ("l", Viseme::Nn),
            ("r", Viseme::RR),
            ("w", Viseme::U),
            ("uː", Viseme::U),
            ("j", Viseme::I),
            ("iː", Viseme::I),
            ("aː", Viseme::Aa),
            ("ɑː", Viseme::Aa),
        ] {
            assert_eq!(vis(p), v, "{p}");
        }
        assert_eq!(classify("ħ").map(|s| s.kind), Some(Kind::Pharyngeal));
        assert_eq!(classify("ʕ").map(|s| s.kind), Some(Kind::Pharyngeal));
        assert_eq!(classify("ʔ").map(|s| s.kind), Some(Kind::Glottal));
        assert!(classify("sˤ").is_some_and(|s| s.emphatic));
        assert!(classify("aː").is_some_and(|s| s.long) && classify("a").is_some_and(|s| !s.long));
    }

    #[test]
    fn stress_and_standalone_modifiers() {
        assert_eq!(vis("ˈɛ"), Viseme::E);
        assert_eq!(vis("ˌeɪ"), Viseme::E);
        assert_eq!(classify("ˤ").map(|s| s.kind), Some(Kind::Modifier));
        assert_eq!(classify("_").map(|s| s.kind), Some(Kind::Pause));
        assert_eq!(classify("،").map(|s| s.kind), Some(Kind::Pause));
        assert_eq!(classify("ɫ").map(|s| s.viseme), Some(Viseme::Nn));
    }
}
