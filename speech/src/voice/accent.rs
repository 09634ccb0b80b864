//! Arabic phonemes for a voice trained on English: the Arabic sounds it renders poorly are
//! said as English ones where that measured more intelligible (r as the English ɹ, q as k, x as
//! h, ɣ as ɡ, short a as ɐ), and each word gets the stress MSA gives it (English voices are
//! trained with stress marks; without them every syllable is flat). ħ, ʕ and the emphatics
//! stay: the voice's untrained renderings of them were heard better than any substitute.
//!
//! The default (`voice.english_accent = "measured"`; "none" says the IPA as it is). Its reduced
//! ɐ makes some sentences 2–3 dB quieter; the voice raises quiet chunks to its level.
//!
//! The substitutions were chosen one phoneme class at a time by round trip — synthesise,
//! transcribe with whisper, Arabic forced, character error rate — on sentences that are not the
//! ones the figures are reported on (docs/benchmarks.md, "Arabic voice"). A real Arabic voice
//! (voice.arabic_voice) is trained on these sounds and gets the IPA unchanged.

/// How an English voice says Arabic: phone substitutions and whether to mark stress.
#[derive(Debug, Clone, PartialEq)]
pub struct Accent {
    /// (Arabic phone, what to say instead), longest phones first when applied.
    pub map: Vec<(String, String)>,
    /// Mark the stressed syllable of each word (ˈ before its vowel).
    pub stress: bool,
    /// Speaking time relative to the voice's own (1.2: a fifth slower) for Arabic speech.
    pub pace: f32,
}

/// The phones an Arabic IPA string is made of (hiwar's G2P symbols).
const MULTI: [&str; 5] = ["dʒ", "sˤ", "dˤ", "tˤ", "ðˤ"];

impl Accent {
    /// The measured choice for Piper's en_US voices.
    pub fn english() -> Accent {
        Accent::parse(DEFAULT).expect("the built-in accent parses")
    }

    /// "ħ=h,ʕ=,q=k,+stress,pace=1.1": substitutions separated by commas (an empty right side
    /// drops the phone), `+stress` / `-stress` for stress marks, `pace=` for the tempo.
    pub fn parse(spec: &str) -> Result<Accent, String> {
        let mut map = Vec::new();
        let mut stress = false;
        let mut pace = 1.0;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "+stress" => stress = true,
                "-stress" => stress = false,
                _ => {
                    let (from, to) = item.split_once('=').ok_or_else(|| format!("`{item}`: expected phone=replacement"))?;
                    if from.trim() == "pace" {
                        pace = to.trim().parse::<f32>().ok().filter(|p| (0.5..=2.0).contains(p)).ok_or_else(|| format!("`{item}`: pace is 0.5–2.0"))?;
                    } else {
                        map.push((from.trim().to_string(), to.trim().to_string()));
                    }
                }
            }
        }
        Ok(Accent { map, stress, pace })
    }

    /// `ipa` (words separated by spaces, punctuation kept) as this voice should say it.
    pub fn render(&self, ipa: &str) -> String {
        let mut out = String::with_capacity(ipa.len() + 8);
        for (i, word) in ipa.split(' ').enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let phones = phones(word);
            let stressed = if self.stress { stressed_vowel(&phones) } else { None };
            for (k, p) in phones.iter().enumerate() {
                if Some(k) == stressed {
                    out.push('ˈ');
                }
                match self.map.iter().find(|(from, _)| from == p) {
                    Some((_, to)) => out.push_str(to),
                    None => out.push_str(p),
                }
            }
        }
        out
    }
}

/// Chosen on the 66 tuning sentences (speech/tests/data/round-trip-tuning.txt), one class at a
/// time, each kept only if it lowered the mean CER (per sentence capped at 1, so one whisper
/// hallucination does not decide): stress marks 0.607 → 0.597, a as ɐ → 0.582, r as the English
/// ɹ → 0.534, q as k → 0.509, x as h → 0.496, ɣ as ɡ → 0.493. Kept as they are (the change
/// measured worse): ħ, ʕ, the emphatics, ʔ, long ā, i, u, ð/θ, and a slower pace.
const DEFAULT: &str = "+stress,a=ɐ,r=ɹ,q=k,x=h,ɣ=ɡ";

fn is_vowel(p: &str) -> bool {
    p.starts_with(['a', 'i', 'u', 'ɑ'])
}

/// Splits one word's IPA into phones: vowels with their length mark, the multi-letter
/// consonants of [`MULTI`], anything else one character at a time.
fn phones(word: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().take(2).collect();
        if let Some(m) = MULTI.iter().find(|m| rest.starts_with(*m)) {
            out.push((*m).to_string());
            i += m.chars().count();
            continue;
        }
        let mut p = chars[i].to_string();
        if chars.get(i + 1) == Some(&'ː') {
            p.push('ː');
            i += 1;
        }
        out.push(p);
        i += 1;
    }
    out
}

/// The index (in `phones`) of the stressed vowel by MSA's rule: the last syllable when it is
/// superheavy (CVVC, CVCC: only at a pause), else the penultimate when heavy (CVV, CVC), else
/// the antepenultimate (or the first of a shorter word).
fn stressed_vowel(phones: &[String]) -> Option<usize> {
    let vowels: Vec<usize> = (0..phones.len()).filter(|&k| is_vowel(&phones[k])).collect();
    let n = vowels.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        return Some(vowels[0]);
    }
    // Consonants after each vowel before the next vowel (or the end).
    let coda = |s: usize| -> usize {
        let end = vowels.get(s + 1).copied().unwrap_or(phones.len());
        let between = end - vowels[s] - 1;
        // Inside a word, the consonant right before the next vowel is that syllable's onset.
        if s + 1 < n { between.saturating_sub(1) } else { between }
    };
    let long = |s: usize| phones[vowels[s]].ends_with('ː');
    let last = n - 1;
    if (long(last) && coda(last) >= 1) || coda(last) >= 2 {
        return Some(vowels[last]);
    }
    let penult = n - 2;
    if long(penult) || coda(penult) >= 1 || n == 2 {
        return Some(vowels[penult]);
    }
    Some(vowels[n - 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_stressed_by_msa_rules() {
        let a = Accent { map: Vec::new(), stress: true, pace: 1.0 };
        let cases = [
            ("kataba", "kˈataba"),
            ("kitaːb", "kitˈaːb"),
            ("madrasa", "mˈadrasa"),
            ("markazi", "mˈarkazi"),
            ("muʕallim", "muʕˈallim"),
            ("jawm", "jˈawm"),
            ("lxidma", "lxˈidma"),
            ("mustaʃfaː", "mustˈaʃfaː"),
            ("marħaban", "mˈarħaban"),
        ];
        for (ipa, expected) in cases {
            assert_eq!(a.render(ipa), expected, "{ipa}");
        }
    }

    #[test]
    fn untrained_sounds_become_english_ones() {
        let a = Accent::parse("ħ=h,ʕ=,sˤ=s,q=k").expect("parses");
        assert_eq!(a.render("ʕaħmad sˤɑbaːħ, qɑːl."), "ahmad sɑbaːh, kɑːl.");
        assert!(Accent::parse("nonsense").is_err());
        assert!(Accent::english().stress);
    }
}
