//! Arabic grapheme-to-phoneme rules for fully diacritised text, in the IPA symbols of
//! espeak-ng's conventions (what Piper voices were trained on).
//!
//! Covered: short and long vowels, shadda (gemination), sukun, tanween (dropped or kept at a
//! pause as in reading MSA aloud), the article with sun-letter assimilation, hamzat al-wasl
//! (pronounced only at the start of speech), hamza on any seat, taa marbuta (-a at a pause,
//! -t- in construct), alef maqsura, the dagger alef, diphthongs, and emphatic backing of /a/
//! next to ص ض ط ظ ق.

const FATHA: char = '\u{064E}';
const DAMMA: char = '\u{064F}';
const KASRA: char = '\u{0650}';
const FATHATAN: char = '\u{064B}';
const DAMMATAN: char = '\u{064C}';
const KASRATAN: char = '\u{064D}';
const SHADDA: char = '\u{0651}';
const SUKUN: char = '\u{0652}';
const DAGGER_ALEF: char = '\u{0670}';

#[derive(Debug, Clone)]
struct Letter {
    ch: char,
    marks: Vec<char>,
}

impl Letter {
    fn has(&self, m: char) -> bool {
        self.marks.contains(&m)
    }
    fn vowel(&self) -> Option<char> {
        self.marks.iter().copied().find(|m| matches!(*m, FATHA | DAMMA | KASRA | FATHATAN | DAMMATAN | KASRATAN))
    }
}

fn letters(word: &str) -> Vec<Letter> {
    let mut out: Vec<Letter> = Vec::new();
    for c in word.chars() {
        match c {
            '\u{0640}' => {} // tatweel
            // Tanween fath written on the alef (لاً, an older convention) belongs to the letter
            // before it (لًا).
            FATHATAN if out.len() >= 2 && out.last().is_some_and(|l| l.ch == 'ا' && l.marks.is_empty()) => {
                let k = out.len() - 2;
                out[k].marks.retain(|m| !matches!(*m, FATHA | DAMMA | KASRA));
                out[k].marks.push(FATHATAN);
            }
            '\u{064B}'..='\u{0652}' | '\u{0670}' => {
                if let Some(l) = out.last_mut() {
                    l.marks.push(c);
                }
            }
            _ => out.push(Letter { ch: c, marks: Vec::new() }),
        }
    }
    out
}

fn consonant(c: char) -> Option<&'static str> {
    Some(match c {
        'ء' | 'أ' | 'إ' | 'ؤ' | 'ئ' => "ʔ",
        'ب' => "b",
        'ت' | 'ة' => "t",
        'ث' => "θ",
        'ج' => "dʒ",
        'ح' => "ħ",
        'خ' => "x",
        'د' => "d",
        'ذ' => "ð",
        'ر' => "r",
        'ز' => "z",
        'س' => "s",
        'ش' => "ʃ",
        'ص' => "sˤ",
        'ض' => "dˤ",
        'ط' => "tˤ",
        'ظ' => "ðˤ",
        'ع' => "ʕ",
        'غ' => "ɣ",
        'ف' => "f",
        'ق' => "q",
        'ك' => "k",
        'ل' => "l",
        'م' => "m",
        'ن' => "n",
        'ه' => "h",
        'و' => "w",
        'ي' => "j",
        _ => return None,
    })
}

fn is_sun(c: char) -> bool {
    "تثدذرزسشصضطظلن".contains(c)
}

fn is_emphatic(p: &str) -> bool {
    p.ends_with('ˤ') || p == "q"
}

/// Where a word stands in the utterance.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// Speech starts here (hamzat al-wasl is pronounced).
    pub first: bool,
    /// A pause follows (pausal forms: final short vowels and -un/-in drop, ة is -a).
    pub last: bool,
}

/// Words whose spelling hides a long vowel or writes a silent letter: (skeleton, letter that
/// takes a dagger alef, letter that is silent). A one-letter prefix (و ف ب ك ل) may come first.
const LEXICAL: [(&str, Option<usize>, Option<usize>); 16] = [
    ("هذا", Some(0), None),
    ("هذه", Some(0), None),
    ("هؤلاء", Some(0), None),
    ("هكذا", Some(0), None),
    ("ذلك", Some(0), None),
    ("ذلكم", Some(0), None),
    ("لكن", Some(0), None),
    ("لكنه", Some(0), None),
    ("لكنها", Some(0), None),
    ("كذلك", Some(1), None),
    ("الله", Some(2), None),
    ("لله", Some(1), None),
    ("الرحمن", Some(4), None),
    ("أولئك", Some(2), Some(1)),
    ("مائة", None, Some(1)),
    ("مائتان", None, Some(1)),
];

/// The word's letters respelled where [`LEXICAL`] knows it.
fn respell(mut ls: Vec<Letter>) -> Vec<Letter> {
    let skeleton: String = ls.iter().map(|l| l.ch).collect();
    let entry = LEXICAL.iter().find_map(|(w, dagger, silent)| {
        if skeleton == *w {
            return Some((0, *dagger, *silent));
        }
        let rest = skeleton.strip_prefix(['و', 'ف', 'ب', 'ك', 'ل'])?;
        (rest == *w && !w.starts_with("ال")).then_some((1, *dagger, *silent))
    });
    // مائتين too (the dual's other case).
    let entry = entry.or_else(|| (skeleton == "مائتين").then_some((0, None, Some(1))));
    if let Some((offset, dagger, silent)) = entry {
        if let Some(k) = dagger
            && let Some(l) = ls.get_mut(offset + k)
        {
            l.marks.retain(|m| *m != FATHA);
            if !l.marks.contains(&DAGGER_ALEF) {
                l.marks.push(DAGGER_ALEF);
            }
        }
        if let Some(k) = silent
            && offset + k < ls.len()
        {
            ls.remove(offset + k);
        }
    }
    ls
}

/// Phonemes of one fully diacritised word.
pub fn word_to_ipa(word: &str, pos: Position) -> String {
    let ls = respell(letters(word));
    let mut ph: Vec<String> = Vec::new();
    let mut i = 0;
    // A one-letter prefix (و ف ب ك) before the article or another hamzat al-wasl: the alef
    // is not pronounced ("وَالْقَمَر" walqamar, not waːlqamar; "فَاسْتَمِعْ" fastamiʕ).
    let prefixed = ls.len() > 3
        && matches!(ls[0].ch, 'و' | 'ف' | 'ب' | 'ك')
        && matches!(ls[0].vowel(), Some(FATHA | KASRA))
        && matches!(ls[1].ch, 'ا' | 'ٱ')
        && ls[1].vowel().is_none()
        && ((ls[2].ch == 'ل' && ls[2].vowel().is_none() && !ls[2].has(SHADDA)) || ls[2].has(SUKUN));
    if prefixed {
        ph.extend(consonant(ls[0].ch).map(String::from));
        ph.extend(ls[0].vowel().map(|v| vowel(v).to_string()));
        i = 2;
        if ls[2].ch == 'ل' {
            i = 3;
            if !is_sun(ls[3].ch) {
                ph.push("l".into());
            } else if !ls[3].has(SHADDA) {
                ph.extend(consonant(ls[3].ch).map(String::from));
            }
        }
    } else if matches!(ls.first().map(|l| l.ch), Some('ا' | 'ٱ')) && ls.len() > 1 {
        let article = ls[1].ch == 'ل' && ls[1].vowel().is_none() && ls.len() > 2;
        // الَّذِي، الَّتِي، اللَّه: the article's lam merged with a lam.
        let doubled_lam = ls[1].ch == 'ل' && ls[1].has(SHADDA);
        if pos.first {
            ph.push("ʔ".into());
            // A wasl vowel: a for the article; u when the verb's stem vowel is u (اُدْخُلْ).
            let stem_u = ls.get(2).is_some_and(|l| l.vowel() == Some(DAMMA)) && ls.get(3).is_some_and(|l| l.has(SUKUN));
            ph.push(if article || doubled_lam { "a" } else { ls[0].vowel().map_or(if stem_u { "u" } else { "i" }, vowel) }.into());
        }
        i = 1;
        if article {
            i = 2;
            if !is_sun(ls[2].ch) {
                ph.push("l".into());
            } else if !ls[2].has(SHADDA) {
                // Assimilated: the sun letter is doubled whether or not shadda is written.
                ph.extend(consonant(ls[2].ch).map(String::from));
            }
        }
    }
    let n = ls.len();
    while i < n {
        let l = &ls[i];
        let last_letter = i + 1 == n;
        let prev_vowel = ph.last().cloned().unwrap_or_default();
        match l.ch {
            'آ' => {
                ph.push("ʔ".into());
                ph.push("aː".into());
            }
            'ا' | 'ى' if l.vowel().is_none() => {
                // A long ā after fatha; the silent alef after tanween fath or final wāw.
                if prev_vowel == "a" {
                    lengthen(&mut ph);
                } else if prev_vowel == "an" || (last_letter && i > 0 && ls[i - 1].ch == 'و') {
                } else {
                    ph.push("aː".into());
                }
            }
            'و' | 'ي' if l.vowel().is_none() && !l.has(SHADDA) && !l.has(SUKUN) && matches!((l.ch, prev_vowel.as_str()), ('و', "u") | ('ي', "i")) => {
                lengthen(&mut ph);
            }
            'ة' if last_letter && pos.last => {
                // Pausal taa marbuta: the fatha before it is the ending.
            }
            'ل' if l.marks.is_empty() && ls.get(i + 1).is_some_and(|n| is_sun(n.ch) && n.has(SHADDA)) => {
                // The article's lam after لِ (لِلشَّرِكَةِ): assimilated to the sun letter.
            }
            c => {
                let Some(cons) = consonant(c) else {
                    i += 1;
                    continue;
                };
                ph.push(cons.into());
                if l.has(SHADDA) {
                    ph.push(cons.into());
                }
                let pausal = last_letter && pos.last;
                let dagger = l.has(DAGGER_ALEF);
                match l.vowel() {
                    // A dagger alef is the long ā itself (هٰذَا، ذَٰلِكَ).
                    None | Some(FATHA) if dagger => ph.push("aː".into()),
                    Some(FATHATAN) => ph.push("an".into()),
                    Some(DAMMATAN | KASRATAN) if pausal => {}
                    Some(DAMMATAN) => ph.push("un".into()),
                    Some(KASRATAN) => ph.push("in".into()),
                    Some(v) if pausal && !next_is_long(&ls, i) => {
                        let _ = v;
                    }
                    Some(v) => ph.push(vowel(v).into()),
                    None => {}
                }
                if dagger && !matches!(l.vowel(), None | Some(FATHA)) {
                    ph.push("aː".into());
                }
            }
        }
        i += 1;
    }
    // Emphatic backing: /a/ next to an emphatic consonant is [ɑ].
    let mut out = String::new();
    for k in 0..ph.len() {
        let near = (k > 0 && is_emphatic(&ph[k - 1])) || ph.get(k + 1).is_some_and(|p| is_emphatic(p));
        match ph[k].as_str() {
            "a" if near => out.push('ɑ'),
            "aː" if near => out.push_str("ɑː"),
            "an" if near => out.push_str("ɑn"),
            p => out.push_str(p),
        }
    }
    out
}

fn next_is_long(ls: &[Letter], i: usize) -> bool {
    ls.get(i + 1).is_some_and(|n| matches!(n.ch, 'ا' | 'ى' | 'و' | 'ي') && n.vowel().is_none())
}

fn vowel(v: char) -> &'static str {
    match v {
        FATHA | FATHATAN => "a",
        DAMMA | DAMMATAN => "u",
        _ => "i",
    }
}

fn lengthen(ph: &mut [String]) {
    if let Some(last) = ph.last_mut() {
        last.push('ː');
    }
}

/// Phonemes of a diacritised Arabic clause: words separated by spaces, the first word at
/// the start of speech and the last before a pause.
pub fn clause_to_ipa(clause: &str, starts_speech: bool) -> String {
    let words: Vec<&str> = clause.split_whitespace().collect();
    words
        .iter()
        .enumerate()
        .map(|(k, w)| word_to_ipa(w, Position { first: k == 0 && starts_speech, last: k + 1 == words.len() }))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Phonemes of an Arabic span: diacritised first when a diacritiser is given (text that
/// already carries its marks keeps them), then read by the rules.
pub fn span_to_ipa(span: &str, diacritizer: Option<&mut super::Diacritizer>, starts_speech: bool) -> crate::Result<String> {
    let marked = match diacritizer {
        Some(d) => d.diacritize(span)?,
        None => span.to_string(),
    };
    Ok(clause_to_ipa(&marked, starts_speech))
}

/// Each clause's script spans (Arabic or not, and the text).
pub type ClauseSpans = Vec<Vec<(bool, String)>>;

/// The spans of each clause of `text` (as `split_clauses` and `script_spans` cut them),
/// diacritised together: the diacritiser reads the whole chunk, as the golden set measures it,
/// where a clause alone would hide what its sentence says (her verb before a comma, إِنَّ before
/// its noun, the sentence's head). `None` without a diacritiser or Arabic, or when the marked
/// text does not cut the same way (then each span is diacritised alone, as before).
pub fn marked_spans(text: &str, diacritizer: Option<&mut super::Diacritizer>) -> crate::Result<Option<ClauseSpans>> {
    let Some(d) = diacritizer else { return Ok(None) };
    if !text.chars().any(crate::text::is_arabic) {
        return Ok(None);
    }
    let marked = d.diacritize(text)?;
    let cut = |t: &str| -> ClauseSpans { super::split_clauses(t).into_iter().map(|(c, _)| super::piper::script_spans(&c)).collect() };
    let (plain, marked) = (cut(text), cut(&marked));
    let same = plain.len() == marked.len() && plain.iter().zip(&marked).all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0));
    Ok(same.then_some(marked))
}

/// Phonemes of span `j` of clause `k` (`span`, as written): from the chunk's [`marked_spans`]
/// when there are any, else diacritised alone.
pub fn clause_span_to_ipa(
    marked: Option<&ClauseSpans>,
    (k, j): (usize, usize),
    span: &str,
    diacritizer: Option<&mut super::Diacritizer>,
    starts_speech: bool,
) -> crate::Result<String> {
    match marked {
        Some(m) => span_to_ipa(&m[k][j].1, None, starts_speech),
        None => span_to_ipa(span, diacritizer, starts_speech),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-checked against Modern Standard Arabic read aloud (pausal forms at a pause).
    #[test]
    fn rules_golden() {
        let mid = Position { first: false, last: false };
        let first = Position { first: true, last: false };
        let last = Position { first: false, last: true };
        let alone = Position { first: true, last: true };
        let cases = [
            ("مَرْحَبًا", alone, "marħaban"),
            ("بِكُمْ", mid, "bikum"),
            ("فِي", mid, "fiː"),
            ("مَرْكَزِ", mid, "markazi"),
            ("الْخِدْمَةِ", last, "lxidma"),
            ("الشَّمْسُ", alone, "ʔaʃʃams"),
            ("الشَمْسُ", first, "ʔaʃʃamsu"),
            ("الْقَمَرُ", alone, "ʔalqɑmar"),
            ("كِتَابٌ", last, "kitaːb"),
            ("كِتَابٌ", mid, "kitaːbun"),
            ("مَدْرَسَةٌ", mid, "madrasatun"),
            ("مَدْرَسَةٌ", last, "madrasa"),
            ("سُوق", last, "suːq"),
            ("يَوْمٌ", mid, "jawmun"),
            ("بَيْت", last, "bajt"),
            ("قَالَ", mid, "qɑːla"),
            ("قَالَ", last, "qɑːl"),
            ("أُرِيدُ", first, "ʔuriːdu"),
            ("مُسْتَشْفَى", last, "mustaʃfaː"),
            ("صَبَاح", last, "sˤɑbaːħ"),
            ("طَيِّب", last, "tˤɑjjib"),
            ("آمِنَة", last, "ʔaːmina"),
            ("مَسْؤُول", last, "masʔuːl"),
            ("شُكْرًا", last, "ʃukran"),
            ("كَتَبُوا", last, "katabuː"),
            ("هٰذَا", first, "haːðaː"),
            ("اسْمِي", first, "ʔismiː"),
            ("اسْمِي", mid, "smiː"),
            // Hamzat al-wasl after a one-letter prefix (issue 18): the alef is silent.
            ("وَالْقَمَرُ", last, "walqɑmar"),
            ("وَالشَّمْسُ", last, "waʃʃams"),
            ("فَالْمَرْكَزُ", last, "falmarkaz"),
            ("بِالْبِطَاقَةِ", last, "bilbitˤɑːqɑ"),
            ("فَاسْتَمِعْ", last, "fastamiʕ"),
            ("وَالِدٌ", last, "waːlid"),
            ("كَاتِبٌ", last, "kaːtib"),
            // Tanween fath on the alef, as older texts write it: the same word.
            ("وَسَهْلَاً", last, "wasahlan"),
            ("أَهْلاً", alone, "ʔahlan"),
        ];
        let mut failures = Vec::new();
        for (word, pos, expected) in cases {
            let got = word_to_ipa(word, pos);
            if got != expected {
                failures.push(format!("{word} {pos:?}: got {got}, expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    /// The golden set (speech/tests/data/g2p-golden.tsv: word, position, IPA, pitfall),
    /// every entry.
    #[test]
    fn golden_set_passes_in_full() {
        let text = include_str!("../../tests/data/g2p-golden.tsv");
        let mut failures = Vec::new();
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(cols.len() >= 3, "malformed line: {line}");
            let pos = match cols[1] {
                "mid" => Position { first: false, last: false },
                "first" => Position { first: true, last: false },
                "last" => Position { first: false, last: true },
                "alone" => Position { first: true, last: true },
                other => panic!("position {other} in {line}"),
            };
            n += 1;
            let got = word_to_ipa(cols[0], pos);
            if got != cols[2] {
                failures.push(format!("{}\t{}\tgot {got}\texpected {}\t{}", cols[0], cols[1], cols[2], cols.get(3).unwrap_or(&"")));
            }
        }
        assert!(n >= 150, "{n} entries");
        assert!(failures.is_empty(), "{} of {n} wrong:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn a_clause_reads_with_wasl_inside_and_a_pause_at_the_end() {
        assert_eq!(clause_to_ipa("مَرْحَبًا بِكُمْ فِي مَرْكَزِ الْخِدْمَةِ", true), "marħaban bikum fiː markazi lxidma");
    }
}
