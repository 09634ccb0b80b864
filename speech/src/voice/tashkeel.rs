//! Arabic diacritisation on ONNX Runtime: the text2tashkeel models (Apache-2.0) — rawi v2,
//! the stitched rawi ensemble and the BiLSTM — with a domain lexicon before them and the
//! agreement of counted nouns after them.
//!
//! As each model's own front-end does (text2tashkeel's `_models.py`): rawi reads the NFD base
//! letters (hamza split off), the BiLSTM the NFC letters; one mark class per character comes
//! out. Unlike the front-end, hiwar keeps the input's own letters and marks: hamza and madda
//! are never taken from a model, a letter that carries a vowel keeps it (one with only a shadda
//! gets the model's vowel), and a lexicon's form (hiwar's own, then the knowledge base's,
//! which wins) is written into the input before the model fills what is still bare.

use std::collections::HashMap;
use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization as _;

use crate::text::is_arabic_letter;
use crate::{Error, Result};

const SHADDA: char = '\u{0651}';

/// Harakat, tanween, shadda, sukun and the dagger alef: what diacritisation adds.
pub fn is_tashkeel(c: char) -> bool {
    matches!(c, '\u{064B}'..='\u{0652}' | '\u{0670}')
}

fn is_combining(c: char) -> bool {
    matches!(c, '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}')
}

/// `text` without tashkeel and tatweel.
pub fn strip_tashkeel(text: &str) -> String {
    text.chars().filter(|c| !is_tashkeel(*c) && *c != '\u{0640}').collect()
}

/// The diacritisation models hiwar can run (all from the text2tashkeel wheel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TashkeelModel {
    /// rawi v2: a BiLSTM, 75 mark classes per NFD letter (~2.3 % DER published).
    RawiV2,
    /// rawi v2 deciding where a mark goes, rawi v3's value head which one, as one graph
    /// (the package's default, ~2.0 % DER published).
    RawiEnsemble,
    /// BiLSTM with attention, 15 classes per NFC letter.
    Bilstm,
}

impl TashkeelModel {
    pub const ALL: [TashkeelModel; 3] = [TashkeelModel::RawiV2, TashkeelModel::RawiEnsemble, TashkeelModel::Bilstm];

    pub fn name(self) -> &'static str {
        match self {
            TashkeelModel::RawiV2 => "rawi-v2",
            TashkeelModel::RawiEnsemble => "rawi-ensemble",
            TashkeelModel::Bilstm => "bilstm",
        }
    }

    /// The model file and its vocabulary in the `tashkeel` model set.
    pub fn files(self) -> (&'static str, Option<&'static str>) {
        match self {
            TashkeelModel::RawiV2 => ("rawi_v2.int8.onnx", Some("rawi_v2.vocab.json")),
            TashkeelModel::RawiEnsemble => ("rawi_ensemble.int8.onnx", Some("rawi_v2.vocab.json")),
            TashkeelModel::Bilstm => ("bilstm.int8.onnx", None),
        }
    }

    pub fn parse(name: &str) -> Option<TashkeelModel> {
        TashkeelModel::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Deserialize)]
struct Vocab {
    char_to_idx: HashMap<String, i64>,
    diac_to_idx: HashMap<String, i64>,
}

/// The BiLSTM's tokenizer and labels, as text2tashkeel inlines them (they are its training's).
const BILSTM_LETTERS: &str = "ءآأؤإئابةتثجحخدذرزسشصضطظعغـفقكلمنهوي";
const BILSTM_PUNCT: &str = " .,،؛:؟!()-\"'\n";
const BILSTM_LABELS: [&str; 15] = [
    "",
    "\u{064E}",
    "\u{064F}",
    "\u{0650}",
    "\u{0652}",
    "\u{0651}",
    "\u{064B}",
    "\u{064C}",
    "\u{064D}",
    "\u{0651}\u{064E}",
    "\u{0651}\u{064F}",
    "\u{0651}\u{0650}",
    "\u{0651}\u{064B}",
    "\u{0651}\u{064C}",
    "\u{0651}\u{064D}",
];

/// Words (or phrases of up to three words) in their diacritised form, found by their bare
/// letters. A form may leave letters bare (a case ending that depends on the sentence): the
/// model fills those.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    forms: HashMap<String, String>,
    longest: usize,
}

impl Lexicon {
    /// hiwar's own: service names, the kiosk's requests, numbers, days and months, and the
    /// words whose spelling does not show their vowels (هذا، ذلك).
    pub fn builtin() -> Lexicon {
        let mut l = Lexicon::default();
        l.add_text(include_str!("lexicon-ar.txt"));
        l
    }

    /// Adds the entries of a lexicon file's text (one form per line, `#` comments); later
    /// entries win over earlier ones with the same letters.
    pub fn add_text(&mut self, text: &str) -> usize {
        let mut n = 0;
        for line in text.lines() {
            let form = line.split('#').next().unwrap_or_default().trim();
            if form.is_empty() {
                continue;
            }
            let key = strip_tashkeel(form);
            self.longest = self.longest.max(key.split_whitespace().count());
            self.forms.insert(key, form.split_whitespace().collect::<Vec<_>>().join(" "));
            n += 1;
        }
        n
    }

    pub fn len(&self) -> usize {
        self.forms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every word (or phrase) the lexicon knows written in its form; a word that
    /// already carries marks is left as it is.
    fn apply(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_string();
        }
        // Words with their leading and trailing punctuation apart.
        let tokens: Vec<&str> = text.split(' ').collect();
        let core = |t: &str| -> (usize, usize) {
            let start = t.char_indices().find(|(_, c)| is_arabic_letter(*c)).map_or(t.len(), |(i, _)| i);
            let end = t.char_indices().rev().find(|(_, c)| is_arabic_letter(*c) || is_tashkeel(*c)).map_or(start, |(i, c)| i + c.len_utf8());
            (start, end.max(start))
        };
        let mut out: Vec<String> = Vec::with_capacity(tokens.len());
        let mut i = 0;
        'tokens: while i < tokens.len() {
            for n in (1..=self.longest.min(tokens.len() - i)).rev() {
                let words = &tokens[i..i + n];
                let cores: Vec<(usize, usize)> = words.iter().map(|w| core(w)).collect();
                // Inside a phrase only the last word may carry punctuation after it.
                if n > 1 && words[..n - 1].iter().zip(&cores).any(|(w, (s, e))| *s != 0 || *e != w.len()) {
                    continue;
                }
                let bare: Vec<&str> = words.iter().zip(&cores).map(|(w, (s, e))| &w[*s..*e]).collect();
                if bare.iter().any(|b| b.is_empty() || b.chars().any(is_tashkeel)) {
                    continue;
                }
                if let Some(form) = self.forms.get(&bare.join(" ")) {
                    let (s, _) = cores[0];
                    let (_, e) = cores[n - 1];
                    out.push(format!("{}{}{}", &words[0][..s], form, &words[n - 1][e..]));
                    i += n;
                    continue 'tokens;
                }
                // One prefix: و or ف (and), then the word as the lexicon knows it; or the word
                // in tanween fath (شباكًا from شُبَّاك).
                if n == 1 {
                    let b = bare[0];
                    if let Some(stem) = b.strip_suffix('ا')
                        && stem.chars().count() > 2
                        && let Some(form) = self.forms.get(stem)
                        && !form.ends_with(is_tashkeel)
                    {
                        let (s, e) = cores[0];
                        out.push(format!("{}{}\u{064B}ا{}", &words[0][..s], form, &words[0][e..]));
                        i += 1;
                        continue 'tokens;
                    }
                    for (p, marked) in [("و", "وَ"), ("ف", "فَ")] {
                        if let Some(rest) = b.strip_prefix(p)
                            && rest.chars().count() > 1
                            && let Some(form) = self.forms.get(rest)
                        {
                            let (s, e) = cores[0];
                            out.push(format!("{}{}{}{}", &words[0][..s], marked, form, &words[0][e..]));
                            i += 1;
                            continue 'tokens;
                        }
                    }
                }
            }
            out.push(tokens[i].to_string());
            i += 1;
        }
        out.join(" ")
    }
}

pub struct Diacritizer {
    session: Session,
    model: TashkeelModel,
    chars: HashMap<char, i64>,
    unknown: i64,
    marks: HashMap<i64, String>,
    lexicon: Lexicon,
    rules: bool,
    /// The answer whose chunks are being read (see [`Diacritizer::within`]), and whether an
    /// earlier chunk of it addressed a woman.
    answer: Option<u64>,
    woman: bool,
}

impl std::fmt::Debug for Diacritizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diacritizer").field("model", &self.model.name()).field("lexicon", &self.lexicon.len()).finish_non_exhaustive()
    }
}

impl Diacritizer {
    /// Loads one of the models (the BiLSTM needs no vocabulary file) with hiwar's lexicon and
    /// agreement rules; ONNX Runtime must be loaded first.
    pub fn load_model(model: TashkeelModel, path: &Path, vocab: Option<&Path>) -> Result<Diacritizer> {
        let (chars, unknown, marks) = match (model, vocab) {
            (TashkeelModel::Bilstm, _) => {
                let chars = BILSTM_LETTERS.chars().chain(BILSTM_PUNCT.chars()).enumerate().map(|(i, c)| (c, 4 + i as i64)).collect();
                let marks = BILSTM_LABELS.iter().enumerate().map(|(i, m)| (i as i64, (*m).to_string())).collect();
                (chars, 1, marks)
            }
            (_, Some(vocab)) => {
                let text = std::fs::read_to_string(vocab).map_err(Error::io(vocab))?;
                let v: Vocab = serde_json::from_str(&text).map_err(|e| Error::bad(vocab, "rawi vocabulary", e.to_string()))?;
                let chars: HashMap<char, i64> = v
                    .char_to_idx
                    .iter()
                    .filter_map(|(k, i)| {
                        let mut it = k.chars();
                        match (it.next(), it.next()) {
                            (Some(c), None) => Some((c, *i)),
                            _ => None,
                        }
                    })
                    .collect();
                let unknown = v.char_to_idx.get("<UNK>").copied().unwrap_or(1);
                (chars, unknown, v.diac_to_idx.into_iter().map(|(s, i)| (i, s)).collect())
            }
            (_, None) => return Err(Error::bad(path, "tashkeel model", format!("{} needs its vocabulary", model.name()))),
        };
        let session = crate::onnx::session(path, 1, "tashkeel")?;
        Ok(Diacritizer { session, model, chars, unknown, marks, lexicon: Lexicon::builtin(), rules: true, answer: None, woman: false })
    }

    pub fn model(&self) -> TashkeelModel {
        self.model
    }

    /// Adds a lexicon's entries (the knowledge base's): they win over hiwar's own.
    pub fn add_lexicon(&mut self, text: &str) -> usize {
        self.lexicon.add_text(text)
    }

    /// The model alone: no lexicon, no agreement rules (what `hiwar bench tashkeel` compares).
    pub fn bare(mut self) -> Diacritizer {
        self.lexicon = Lexicon::default();
        self.rules = false;
        self
    }

    /// The chunks that follow belong to `answer` (one visitor's, read in order): whom an earlier
    /// chunk addressed carries to the later ones («تَفَضَّلِي،» then «رَقْمُكِ عَلَى الشَّاشَةِ.»).
    /// `None`, or another answer, starts afresh: nothing of one answer reaches the next.
    pub fn within(&mut self, answer: Option<u64>) {
        if answer.is_none() || answer != self.answer {
            self.woman = false;
        }
        self.answer = answer;
    }

    /// Fully diacritises `text`, keeping its letters and any marks it already has.
    pub fn diacritize(&mut self, text: &str) -> Result<String> {
        // Words the caller marked itself (an LLM's full diacritics, a knowledge base's form):
        // the clause rules leave them as they came.
        let given: Vec<bool> = text.split(' ').map(|w| w.chars().any(is_tashkeel)).collect();
        let text = self.lexicon.apply(text);
        // Base characters with the combining marks that followed each in the input. rawi reads
        // NFD (hamza split from its seat), the BiLSTM NFC.
        let mut bases: Vec<(char, String)> = Vec::new();
        let decomposed: Box<dyn Iterator<Item = char>> = match self.model {
            TashkeelModel::Bilstm => Box::new(text.nfc()),
            _ => Box::new(text.nfd()),
        };
        for c in decomposed {
            if is_combining(c) {
                match bases.last_mut() {
                    Some((_, marks)) => marks.push(c),
                    None => bases.push((c, String::new())),
                }
            } else {
                bases.push((c, String::new()));
            }
        }
        if !bases.iter().any(|(c, _)| is_arabic_letter(*c)) {
            return Ok(text);
        }
        let ids: Vec<i64> = bases.iter().map(|(c, _)| self.chars.get(c).copied().unwrap_or(self.unknown)).collect();
        let classes = self.classes(ids)?;
        let mut out = String::with_capacity(text.len() * 2);
        for ((base, own), class) in bases.iter().zip(classes) {
            out.push(*base);
            // The input's own non-tashkeel marks (hamza, madda) always stay.
            out.extend(own.chars().filter(|c| !is_tashkeel(*c)));
            let own_marks: String = own.chars().filter(|c| is_tashkeel(*c)).collect();
            out.push_str(&own_marks);
            if !is_arabic_letter(*base) || own_marks.chars().any(|c| c != SHADDA) {
                continue;
            }
            // A bare letter takes the model's marks; one with only a shadda, its vowel.
            if let Some(marks) = self.marks.get(&class) {
                out.extend(marks.chars().filter(|c| is_tashkeel(*c) && !(*c == SHADDA && own_marks.contains(SHADDA))));
            }
        }
        let out: String = out.nfc().collect();
        if !self.rules {
            return Ok(out);
        }
        let (out, woman) = addressed_as_a_woman(&clause_rules(&out, &given), &given, self.woman);
        self.woman = woman && self.answer.is_some();
        Ok(agree_after_numbers(&connected_speech(&out)))
    }

    /// One mark class per input position.
    fn classes(&mut self, ids: Vec<i64>) -> Result<Vec<i64>> {
        let n = ids.len();
        let onnx = |e: ort::Error| Error::Onnx(format!("tashkeel: {e}"));
        let input = Tensor::from_array(([1usize, n], ids)).map_err(onnx)?;
        // The class with the highest score at each position of a [1, n, classes] output.
        let argmax = |outputs: &ort::session::SessionOutputs<'_>, name: &str| -> Result<Vec<i64>> {
            let (shape, scores) = outputs[name].try_extract_tensor::<f32>().map_err(onnx)?;
            let k = *shape.last().unwrap_or(&0) as usize;
            if k == 0 || scores.len() != n * k {
                return Err(Error::Onnx("tashkeel: unexpected output shape".into()));
            }
            Ok(scores.chunks(k).map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(c, _)| c as i64)).collect())
        };
        let classes = match self.model {
            TashkeelModel::RawiV2 => argmax(&self.session.run(ort::inputs!["input" => input]).map_err(onnx)?, "output")?,
            TashkeelModel::RawiEnsemble => {
                let outputs = self.session.run(ort::inputs!["input" => input]).map_err(onnx)?;
                let (_, cls) = outputs["gated_cls"].try_extract_tensor::<i64>().map_err(onnx)?;
                cls.to_vec()
            }
            TashkeelModel::Bilstm => argmax(&self.session.run(ort::inputs!["input_ids" => input]).map_err(onnx)?, "logits")?,
        };
        if classes.len() != n {
            return Err(Error::Onnx(format!("tashkeel: {} classes for {n} characters", classes.len())));
        }
        Ok(classes)
    }
}

/// Rules of MSA that a character model misses, applied to its output:
/// - the article's lam before a moon letter carries sukun (الْعَمَلِ, not العَمَلِ);
/// - a word ending in sukun before hamzat al-wasl takes a helping vowel: kasra (هَلِ الْمَرْكَزُ،
///   عَنِ الْخِدْمَةِ), fatha for مِنَ, damma for the plural mim (لَكُمُ الْ…);
/// - a present verb after أَنْ، لَنْ، كَيْ is subjunctive (fatha), after لَمْ jussive (sukun),
///   where the model left it indicative.
fn connected_speech(text: &str) -> String {
    let mut words: Vec<Vec<(char, String)>> = text.split(' ').map(split_marks).collect();
    const MOON: &str = "ءأإآبجحخعغفقكمهوي";
    for w in &mut words {
        // Alef carries no vowel (only tanween fath, by one convention): the wasl alef's vowel
        // is the reader's (hiwar's G2P), a long ā is the fatha before it. Madda needs none.
        for (c, m) in w.iter_mut() {
            match *c {
                'ا' => m.retain(|x| x == '\u{064B}'),
                'آ' => m.clear(),
                'إ' if !m.chars().any(|x| matches!(x, '\u{064E}'..='\u{0650}')) => m.push('\u{0650}'),
                _ => {}
            }
        }
        // A word-initial أ without a vowel before a sukun: the أَفْعَل / أَفْعَلُ pattern.
        if w.len() > 2 && w[0].0 == 'أ' && w[0].1.is_empty() && w[1].1 == SUKUN.to_string() {
            w[0].1 = "\u{064E}".into();
        }
        // An imperative from a wasl alef (انْتَظِرْ، اسْتَخْدِمْ، فَاحْجِزْ): a stem in i or u ends in
        // sukun, not the fatha of a past verb.
        let start = usize::from(w.len() > 1 && matches!(w[0].0, 'و' | 'ف') && w[0].1 == "\u{064E}");
        let n = w.len();
        if n >= start + 4
            && w[start].0 == 'ا'
            && w[start + 1].0 != 'ل'
            && w[start + 1].1 == SUKUN.to_string()
            && matches!(w[n - 2].1.as_str(), "\u{0650}" | "\u{064F}")
            && w[n - 1].1 == "\u{064E}"
            && is_arabic_letter(w[n - 1].0)
            // Not a noun with a pronoun suffix (اسْمُكَ).
            && !matches!(w[n - 1].0, 'ك' | 'ه')
        {
            w[n - 1].1 = SUKUN.to_string();
        }
        // The article, possibly after one prefix letter (و ف ب ك): a bare lam before a moon letter.
        for start in [0usize, 1] {
            if w.len() > start + 3
                && w[start].0 == 'ا'
                && w[start + 1].0 == 'ل'
                && w[start + 1].1.is_empty()
                && MOON.contains(w[start + 2].0)
                && (start == 0 || matches!(w[0].0, 'و' | 'ف' | 'ب' | 'ك'))
            {
                w[start + 1].1 = SUKUN.to_string();
            }
        }
    }
    for w in &mut words {
        // A feminine dual in -tayni (ساعتين، سنتين، نسختين): ـتَيْنِ, not a plural's -tiːna.
        let letters = letter_positions(w);
        let n = letters.len();
        if n >= 5 {
            let tail: String = letters[n - 3..].iter().map(|&k| w[k].0).collect();
            let whole: String = letters.iter().map(|&k| w[k].0).collect();
            if tail == "تين" && !whole.ends_with("ستين") {
                w[letters[n - 3]].1 = "\u{064E}".into();
                w[letters[n - 2]].1 = SUKUN.to_string();
                w[letters[n - 1]].1 = "\u{0650}".into();
            }
        }
    }
    for i in 0..words.len().saturating_sub(1) {
        let next_wasl = words[i + 1].first().is_some_and(|(c, m)| *c == 'ا' && m.is_empty()) && words[i + 1].len() > 2;
        let bare: String = words[i].iter().map(|(c, _)| *c).collect();
        let Some(last) = words[i].last() else { continue };
        if next_wasl && last.1 == SUKUN.to_string() && is_arabic_letter(last.0) {
            let helping = if bare == "من" {
                '\u{064E}'
            } else if last.0 == 'م' && words[i].len() >= 2 && words[i][words[i].len() - 2].1.contains('\u{064F}') {
                '\u{064F}'
            } else {
                '\u{0650}'
            };
            if let Some(l) = words[i].last_mut() {
                l.1 = helping.to_string();
            }
        }
        // Mood after a particle: the next word a present verb (أ ي ت ن) ending in damma.
        let particle: String = words[i].iter().flat_map(|(c, m)| std::iter::once(*c).chain(m.chars())).collect();
        let mood = match particle.as_str() {
            "أَنْ" | "لَنْ" | "كَيْ" | "لِكَيْ" => Some('\u{064E}'),
            "لَمْ" => Some(SUKUN),
            _ => None,
        };
        if let Some(mood) = mood
            && let Some(verb) = words.get_mut(i + 1)
            && verb.len() >= 3
            && matches!(verb[0].0, 'أ' | 'ي' | 'ت' | 'ن')
            && let Some(l) = verb.last_mut()
            && l.1 == "\u{064F}"
        {
            l.1 = mood.to_string();
        }
    }
    join_words(&words)
}

const SUKUN: char = '\u{0652}';
const FATHA: &str = "\u{064E}";
const DAMMA: &str = "\u{064F}";
const KASRA: &str = "\u{0650}";

/// Rules of the clause that a character model, which sees letters but not syntax, gets wrong
/// in a service centre's sentences (each applied only to a word the caller left bare):
/// - a verb from a wasl alef at the head of a clause (or after فَ، ثُمَّ) is an imperative, not
///   a past verb (so is one joined by وَ to an imperative of the same sentence):
///   اِسْتَخْدِمْ، اِنْعَطِفْ، اِحْتَفِظْ (forms VII, VIII, X: the stem's last vowel
///   kasra), اِطْبَعْ، اِصْعَدْ (form I: only its ending); a form V verb there too (تَوَجَّهْ،
///   تَأَكَّدْ) ends in sukun;
/// - a sentence's first word, a noun in ة, is its subject (مُدَّةُ الصَّلَاحِيَةِ، السَّاعَةُ الْآنَ):
///   damma, not the fatha of an adverb;
/// - بَعْدُ and قَبْلُ that end a sentence ("not yet") are built on damma;
/// - the noun after إِنَّ، أَنَّ، لَكِنَّ، لَعَلَّ is accusative (إِنَّ بِطَاقَةَ الْهُوِيَّةِ، لَعَلَّ بِطَاقَتَكَ).
fn clause_rules(text: &str, given: &[bool]) -> String {
    let mut words: Vec<Vec<(char, String)>> = text.split(' ').map(split_marks).collect();
    // The word's last mark of punctuation, through closing quotes and brackets («… بَعْدُ.)»).
    let closing = |c: char| matches!(c, ')' | ']' | '»' | '"' | '\'' | '”' | '’');
    let last_mark = |w: &[(char, String)]| w.iter().rev().map(|(c, _)| *c).find(|c| !closing(*c));
    let ends_clause = |w: &[(char, String)]| last_mark(w).is_some_and(|c| matches!(c, '.' | '،' | ',' | '؛' | ':' | '؟' | '?' | '!'));
    let ends_sentence = |w: &[(char, String)]| last_mark(w).is_some_and(|c| matches!(c, '.' | '؟' | '?' | '!'));
    let n = words.len();
    // An imperative said in this sentence: one joined to it by وَ is one too (ادْفَعِ الرُّسُومَ
    // وَاحْتَفِظْ بِالْإِيصَالِ).
    let mut ordering = false;
    for i in 0..n {
        let sentence_head = i == 0 || ends_sentence(&words[i - 1]);
        // A sentence that opens with وَ goes on from the one before (ادْفَعِ الرُّسُومَ.
        // وَاحْتَفِظْ بِالْإِيصَالِ.).
        if sentence_head && words[i].first().is_none_or(|(c, _)| *c != 'و') {
            ordering = false;
        }
        if given.get(i).copied().unwrap_or(false) {
            continue;
        }
        let clause_head = i == 0 || ends_clause(&words[i - 1]) || bare_letters(&words[i - 1]) == "ثم";
        let last_word = i + 1 == n || ends_sentence(&words[i]);
        // The letters, and where they are in `words[i]`.
        let at = letter_positions(&words[i]);
        let letters: Vec<char> = at.iter().map(|&k| words[i][k].0).collect();
        // A subject after the verb (اسْتَقْبَلَ الْمَرْكَزُ، انْتَقَلَ طَلَبُكَ، تَعَذَّرَ إِتْمَامُ): a past
        // verb, not an imperative, which is hardly ever followed by a nominative.
        let subject_next = words.get(i + 1).is_some_and(|next| nominative(next));
        let (next_bare, next_ending) = words.get(i + 1).map_or((String::new(), String::new()), |next| {
            (bare_letters(next), next.iter().rev().find(|(c, _)| is_arabic_letter(*c)).map(|(_, m)| m.clone()).unwrap_or_default())
        });
        let w = &mut words[i];
        // فَ (then) before an imperative; وَ after one.
        let fa = letters.len() > 4 && (letters[0] == 'ف' || (letters[0] == 'و' && ordering)) && w[at[0]].1 == FATHA && matches!(letters[1], 'ا' | 'ت');
        let skip = usize::from(fa);
        let stem = &letters[skip..];
        let m = stem.len();
        let mark = |w: &Vec<(char, String)>, k: usize| w[at[skip + k]].1.clone();
        if (clause_head || fa) && m >= 4 && !subject_next {
            let no_shadda = !w.iter().any(|(_, ms)| ms.contains(SHADDA));
            // Not a weak verb, and not a noun with a pronoun suffix (ابْنَكَ، اسْمَهُ).
            let weak_end = weak(stem[m - 1]) || matches!(stem[m - 1], 'ك' | 'ه');
            let long_inside = stem[1..m - 1].iter().any(|c| matches!(c, 'ا' | 'و' | 'ي'));
            let past = mark(w, m - 2) == FATHA && matches!(mark(w, m - 1).as_str(), FATHA | DAMMA);
            // An elative whose hamza was written bare (افضل وقتٍ، اقرب فرعٍ) is followed by an
            // indefinite genitive; an imperative is not.
            let wasl = stem[0] == 'ا' && !next_ending.contains('\u{064D}');
            if wasl && no_shadda && !weak_end && !long_inside && stem[m - 1] != stem[m - 2] && past {
                let derived =
                    (m == 5 && stem[1] != 'ل' && (stem[1] == 'ن' || matches!(stem[2], 'ت' | 'ط' | 'د'))) || (m == 6 && stem[1] == 'س' && stem[2] == 'ت');
                if derived && mark(w, 1) == SUKUN.to_string() {
                    w[at[skip + m - 2]].1 = KASRA.into();
                    w[at[skip + m - 1]].1 = SUKUN.to_string();
                } else if m == 4 && stem[1] != 'ل' && mark(w, 1) == SUKUN.to_string() {
                    w[at[skip + m - 1]].1 = SUKUN.to_string();
                }
            }
            // Form V: تَفَعَّلَ.
            if m == 4 && stem[0] == 'ت' && mark(w, 0) == FATHA && mark(w, 2).contains(SHADDA) && mark(w, m - 1) == FATHA && !weak(stem[m - 1]) {
                w[at[skip + m - 1]].1 = SUKUN.to_string();
            }
            if matches!(stem[0], 'ا' | 'ت') && w[at[skip + m - 1]].1 == SUKUN.to_string() && !weak_end {
                ordering = true;
            }
        }
        // Not ثَمَّةَ (built on fatha), nor an adverb of time with its adjective (السَّاعَةَ
        // الثَّامِنَةَ صَبَاحًا).
        let adverb = next_bare.starts_with("ال") && next_bare != "الآن" && next_ending.contains(FATHA);
        let word: String = letters.iter().collect();
        if sentence_head && word != "ثمة" && !adverb && letters.len() >= 3 && letters[letters.len() - 1] == 'ة' && w[at[letters.len() - 1]].1 == FATHA {
            w[at[letters.len() - 1]].1 = DAMMA.into();
        }
        // بَعْدُ with its sukun (not the verb قُبِلَ).
        if last_word && matches!(word.as_str(), "بعد" | "قبل") && i > 0 && w[at[1]].1 == SUKUN.to_string() {
            w[at[2]].1 = DAMMA.into();
        }
    }
    // The noun after إِنَّ and her sisters.
    for i in 0..n.saturating_sub(1) {
        let sister = matches!(bare_letters(&words[i]).as_str(), "إن" | "أن" | "لكن" | "لعل" | "فإن" | "وإن" | "ولكن" | "بأن" | "لأن" | "كأن")
            && words[i].last().is_some_and(|(c, m)| is_arabic_letter(*c) && m.contains(SHADDA));
        if !sister || given.get(i + 1).copied().unwrap_or(false) {
            continue;
        }
        let w = &mut words[i + 1];
        let at = letter_positions(w);
        let letters = bare_letters(w);
        if at.len() < 3 || is_particle(&letters) || matches!(letters.as_str(), "هذا" | "هذه" | "هناك" | "هنا" | "لدينا" | "لديك" | "لدي" | "عندنا")
        {
            continue;
        }
        // A verb (a past in -تُ) is not her noun; a preposition's phrase before it (إِنَّ لِلْمَرْكَزِ
        // فُرُوعًا، أَنَّ بِالطَّابَقِ مَكْتَبًا، إِنَّ بِإِمْكَانِكَ) keeps its genitive (بِطَاقَة is a noun).
        if letters.ends_with("ت") && w[at[at.len() - 1]].1 == DAMMA {
            continue;
        }
        let preposition = matches!(w[at[0]].0, 'ب' | 'ل') && w[at[0]].1 == KASRA && matches!(w[at[1]].0, 'ا' | 'إ' | 'أ');
        if preposition || letters.starts_with("لل") || letters.starts_with("كال") {
            continue;
        }
        let c = &mut w[at[case_carrier(&letters)]].1;
        if c == DAMMA || c == KASRA {
            *c = FATHA.into();
        }
    }
    join_words(&words)
}

/// A woman addressed: when the text speaks to her in words whose letters say so (تَفَضَّلِي،
/// انْتَظِرِي، أَنْ تُعِيدِي، تَجِدِينَ، خُذِي), the words it left bare that address someone take her
/// form: ـكَ → ـكِ (مَوْعِدُكِ، يُمْكِنُكِ، لَكِ), and a past verb's ـتَ after إِذَا، هَلْ، إِنْ، لَوْ، قَدْ
/// → ـتِ (إِذَا احْتَجْتِ). A character model cannot see this: the suffix's letters are the same,
/// and it reads most of them as a man's. Nothing changes when the text addresses a man in
/// marks of its own (a ـكَ the caller wrote).
/// `known`: an earlier chunk of the same answer said so. Returns the text and whether it
/// addresses her.
fn addressed_as_a_woman(text: &str, given: &[bool], known: bool) -> (String, bool) {
    let mut words: Vec<Vec<(char, String)>> = text.split(' ').map(split_marks).collect();
    let letters_of = |w: &[(char, String)]| -> Vec<(usize, char)> { letter_positions(w).into_iter().map(|k| (k, w[k].0)).collect() };
    // Each word's letters (the second pass changes marks only).
    let bares: Vec<String> = words.iter().map(|w| bare_letters(w)).collect();
    let prev_of = |i: usize| if i > 0 { bares[i - 1].as_str() } else { "" };
    let mark = |w: &[(char, String)], k: usize| -> String { w[k].1.chars().filter(|c| *c != SHADDA).collect() };
    let n = words.len();
    let mut woman = known;
    for i in 0..n {
        let w = &words[i];
        let at = letters_of(w);
        let (b, prev) = (&bares[i], prev_of(i));
        // A man addressed in the caller's own marks: leave every suffix as the model read it.
        if given.get(i).copied().unwrap_or(false) && at.len() >= 2 {
            let (k, c) = at[at.len() - 1];
            if c == 'ك' && mark(w, k) == FATHA && !b.starts_with("ال") && !DEMONSTRATIVES.contains(&b.as_str()) {
                return (text.to_string(), false);
            }
        }
        // The clitic فَ or وَ before the verb.
        let stem: String = if b.chars().count() > 4 && (b.starts_with('ف') || b.starts_with('و')) && at.first().is_some_and(|(k, _)| mark(w, *k) == FATHA) {
            b.chars().skip(1).collect()
        } else {
            b.clone()
        };
        let m = stem.chars().count();
        let inner_alef = stem.chars().skip(1).take(m.saturating_sub(2)).any(|c| c == 'ا');
        let shadda = w.iter().any(|(_, ms)| ms.contains(SHADDA));
        // انْتَظِرِي، احْضُرِي، اسْتَخْدِمِي (not اسْمِي، اقْتِرَاحِي: a noun of four letters, or with a long ا inside).
        let imperative = m >= 5 && stem.starts_with('ا') && !stem.starts_with("ال") && stem.ends_with('ي') && !inner_alef;
        // تَفَضَّلِي، تَوَجَّهِي (form V; not the noun تَوَقُّعِي).
        let form_v = m == 5 && stem.starts_with('ت') && stem.ends_with('ي') && shadda && at.get(2).is_some_and(|(k, _)| mark(w, *k) == FATHA);
        // تَجِدِينَ، تَحْتَاجِينَ; أَنْ تُعِيدِي، لَا تَقْلَقِي (not a weak verb's own ي with its
        // fatha: أَنْ تَأْتِيَ is a man, or a woman spoken of).
        let own_ya = at.last().is_some_and(|(k, c)| *c == 'ي' && mark(w, *k) == FATHA);
        let present = m >= 4
            && stem.starts_with('ت')
            && (stem.ends_with("ين") || (stem.ends_with('ي') && !own_ya && matches!(prev, "أن" | "لن" | "لم" | "لا" | "كي" | "لكي" | "حتى")));
        if imperative || form_v || present || matches!(stem.as_str(), "خذي" | "كلي" | "قولي" | "كوني" | "ضعي" | "تعالي" | "هاتي") {
            woman = true;
        }
    }
    if !woman {
        return (text.to_string(), false);
    }
    for i in 0..n {
        if given.get(i).copied().unwrap_or(false) {
            continue;
        }
        let (b, prev) = (&bares[i], prev_of(i));
        let w = &mut words[i];
        let at = letters_of(w);
        let Some(&(k, last)) = at.last() else { continue };
        if at.len() < 2 || b.starts_with("ال") || w[k].1 != FATHA {
            continue;
        }
        let suffix = last == 'ك' && !DEMONSTRATIVES.contains(&b.as_str()) && !ROOT_KAF.contains(&b.as_str());
        // A past verb's ـتَ (a sukun before it) after a word that asks or supposes.
        let past = last == 'ت'
            && at.len() >= 4
            && w[at[at.len() - 2].0].1 == SUKUN.to_string()
            && matches!(prev, "إذا" | "اذا" | "إن" | "لو" | "هل" | "قد" | "لقد" | "كلما" | "عندما" | "لما" | "متى");
        if suffix || past {
            w[k].1 = KASRA.into();
        }
    }
    (join_words(&words), true)
}

/// Words in ـك whose ك is not a pronoun.
const DEMONSTRATIVES: [&str; 9] = ["ذلك", "لذلك", "كذلك", "بذلك", "هناك", "هنالك", "تلك", "أولئك", "ذاك"];
const ROOT_KAF: [&str; 8] = ["شباك", "بنك", "اشتراك", "مشترك", "مبارك", "شريك", "ملك", "سمك"];

/// Which letter of a word (`letters`, its letters alone) carries its case: the last, or the one before a
/// pronoun suffix (ـكَ ـهُ; ـهَا ـهُمْ ـكُمْ ـنَا). A definite word takes no suffix (الْمَالِكَ، الْحُكْمَ).
fn case_carrier(letters: &str) -> usize {
    let k = letters.chars().count();
    if letters.starts_with("ال") || k < 4 {
        k - 1
    } else if letters.ends_with("ها") || letters.ends_with("هم") || letters.ends_with("كم") || letters.ends_with("نا") {
        k - 3
    } else if letters.ends_with('ك') || letters.ends_with('ه') {
        k - 2
    } else {
        k - 1
    }
}

/// Whether a word is in the nominative by the model's marks: damma or dammatan on the letter
/// that carries its case.
fn nominative(word: &[(char, String)]) -> bool {
    let at = letter_positions(word);
    if at.len() < 2 {
        return false;
    }
    let case = &word[at[case_carrier(&bare_letters(word))]].1;
    case.contains(DAMMA) || case.contains('\u{064C}')
}

/// A letter a verb's sound imperative cannot end in: a long vowel, a weak letter, ة or hamza.
fn weak(c: char) -> bool {
    matches!(c, 'ا' | 'ى' | 'ي' | 'و' | 'ة' | 'ء')
}

/// Where the letters are in a word split by [`split_marks`] (not its punctuation).
fn letter_positions(word: &[(char, String)]) -> Vec<usize> {
    (0..word.len()).filter(|&k| is_arabic_letter(word[k].0)).collect()
}

/// A word's letters alone, without marks or punctuation.
fn bare_letters(word: &[(char, String)]) -> String {
    word.iter().map(|(c, _)| *c).filter(|c| is_arabic_letter(*c)).collect()
}

/// Words split by [`split_marks`], joined again.
fn join_words(words: &[Vec<(char, String)>]) -> String {
    words.iter().map(|w| w.iter().flat_map(|(c, m)| std::iter::once(*c).chain(m.chars())).collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// A word's characters with the tashkeel after each.
fn split_marks(word: &str) -> Vec<(char, String)> {
    let mut out: Vec<(char, String)> = Vec::new();
    for c in word.chars() {
        match out.last_mut() {
            Some((_, m)) if is_tashkeel(c) => m.push(c),
            _ => out.push((c, String::new())),
        }
    }
    out
}

/// What a number word asks of the noun it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// 3–10, and مئة/ألف/مليون (and their duals and compounds): genitive (خمسةُ كتبٍ، مئةُ درهمٍ).
    Genitive,
    /// 11–99: accusative singular (خمسةَ عشرَ يومًا، عشرون درهمًا).
    Accusative,
    /// 3–10 with the noun in construct (ثلاثةُ أيامِ عملٍ): genitive without tanween.
    Construct,
}

fn counted_by(bare: &str) -> Option<Counted> {
    const GENITIVE: [&str; 30] = [
        "ثلاثة",
        "ثلاث",
        "أربعة",
        "أربع",
        "خمسة",
        "خمس",
        "ستة",
        "ست",
        "سبعة",
        "سبع",
        "ثمانية",
        "ثماني",
        "تسعة",
        "تسع",
        "عشرة",
        "مئة",
        "مائة",
        "ألف",
        "آلاف",
        "مليون",
        "ملايين",
        "ثلاثمئة",
        "أربعمئة",
        "خمسمئة",
        "ستمئة",
        "سبعمئة",
        "ثمانمئة",
        "تسعمئة",
        "مئتا",
        "مئتي",
    ];
    const TENS: [&str; 16] =
        ["عشرون", "عشرين", "ثلاثون", "ثلاثين", "أربعون", "أربعين", "خمسون", "خمسين", "ستون", "ستين", "سبعون", "سبعين", "ثمانون", "ثمانين", "تسعون", "تسعين"];
    let w = bare.strip_prefix('و').filter(|w| TENS.contains(w) || GENITIVE.contains(w)).unwrap_or(bare);
    if TENS.contains(&w) {
        Some(Counted::Accusative)
    } else if GENITIVE.contains(&w) {
        Some(Counted::Genitive)
    } else {
        None
    }
}

/// Particles and prepositions that follow a number without being what it counts.
fn is_particle(bare: &str) -> bool {
    matches!(
        bare,
        "من" | "في"
            | "إلى"
            | "على"
            | "عن"
            | "مع"
            | "أو"
            | "ثم"
            | "أن"
            | "إن"
            | "لا"
            | "ما"
            | "هي"
            | "هو"
            | "فقط"
            | "تقريبا"
            | "أيضا"
            | "عشر"
            | "عشرة"
            | "صباحا"
            | "مساء"
            | "ظهرا"
            | "عصرا"
            | "ليلا"
            | "بعد"
            | "قبل"
            | "خلال"
    )
}

/// The counted noun after a number takes its case: genitive after 3–10 and the hundreds
/// (kasratan, or fatha for a diptote plural such as دراهم، دقائق), accusative singular after
/// 11–99 (fathatan). Only an indefinite noun is counted (الخمسة الأولى is not).
fn agree_after_numbers(text: &str) -> String {
    let mut words: Vec<String> = text.split(' ').map(String::from).collect();
    for i in 1..words.len() {
        let prev = strip_tashkeel(&words[i - 1]);
        // The number ends at a word boundary without punctuation between it and the noun.
        if prev.chars().last().is_none_or(|c| !is_arabic_letter(c)) {
            continue;
        }
        // عشر / عشرة: a teen's second half after a unit (accusative), else ten (genitive).
        let rule = if matches!(prev.as_str(), "عشر" | "عشرة") {
            let before = if i >= 2 { strip_tashkeel(&words[i - 2]) } else { String::new() };
            if before.starts_with("ال") {
                // الحادية عشرة، الثانية عشرة: an ordinal, nothing counted.
                continue;
            }
            let teen = counted_by(&before).is_some() || matches!(before.as_str(), "أحد" | "إحدى" | "اثنا" | "اثنتا" | "اثني" | "اثنتي");
            Some(if teen { Counted::Accusative } else { Counted::Genitive })
        } else {
            counted_by(&prev)
        };
        let Some(rule) = rule else { continue };
        let bare = strip_tashkeel(&words[i]);
        let letters: Vec<char> = bare.chars().take_while(|c| is_arabic_letter(*c)).collect();
        if letters.len() < 2 || bare.starts_with("ال") || is_particle(&letters.iter().collect::<String>()) {
            continue;
        }
        // A number after a number (مئة وسبعون، ثلاثة آلاف) is part of it, and a sound masculine
        // plural (متعاملين) shows its case in its letters.
        let word: String = letters.iter().collect();
        let number_word = counted_by(&word).is_some()
            || matches!(
                word.trim_start_matches('و'),
                "واحد"
                    | "اثنان"
                    | "اثنين"
                    | "اثنا"
                    | "اثني"
                    | "إحدى"
                    | "أحد"
                    | "عشر"
                    | "ألفا"
                    | "ألفان"
                    | "ألفين"
                    | "مئتان"
                    | "مئتين"
            );
        if number_word || (letters.len() > 4 && (word.ends_with("ين") || word.ends_with("ون"))) {
            continue;
        }
        // An adverb in tanween fath (صباحًا، ظهرًا) after a time is not counted.
        if rule == Counted::Genitive && letters.last() == Some(&'ا') {
            continue;
        }
        // «ثلاثة أيامِ عملٍ»: the counted noun in construct with the next takes no tanween.
        let construct = words.get(i + 1).is_some_and(|w| matches!(strip_tashkeel(w).trim_end_matches(|c: char| !is_arabic_letter(c)), "عمل" | "العمل"));
        let rule = if construct && rule == Counted::Genitive { Counted::Construct } else { rule };
        words[i] = set_ending(&words[i], rule, &letters);
    }
    words.join(" ")
}

/// `word` with the case ending `rule` asks for on its last letter (an alef of tanween fath
/// takes the mark on the letter before it).
fn set_ending(word: &str, rule: Counted, letters: &[char]) -> String {
    let n = letters.len();
    // The letter that carries the ending: the last, or the one before a final alef.
    let carrier = if letters[n - 1] == 'ا' && n >= 2 { n - 2 } else { n - 1 };
    // A diptote broken plural (مفاعل / مفاعيل: دراهم، دقائق، أسابيع) takes fatha, no tanween.
    let diptote = n >= 5 && letters[2] == 'ا' && letters[n - 1] != 'ة' && !bare_ends(letters, "ات");
    let ending = match rule {
        Counted::Genitive | Counted::Construct if diptote => "\u{064E}",
        Counted::Genitive => "\u{064D}",
        Counted::Construct => "\u{0650}",
        Counted::Accusative => "\u{064B}",
    };
    let mut out = String::with_capacity(word.len() + 4);
    let mut k = 0; // letters seen
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if is_tashkeel(c) {
            out.push(c);
            continue;
        }
        out.push(c);
        if is_arabic_letter(c) {
            if k == carrier {
                // Keep a shadda; replace the vowel.
                let mut shadda = false;
                while let Some(m) = chars.peek().copied().filter(|m| is_tashkeel(*m)) {
                    shadda |= m == SHADDA;
                    chars.next();
                }
                if shadda {
                    out.push(SHADDA);
                }
                out.push_str(ending);
            }
            k += 1;
        }
    }
    out
}

fn bare_ends(letters: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    letters.ends_with(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexicon_writes_its_forms_and_leaves_marked_words_alone() {
        let mut l = Lexicon::default();
        l.add_text("# comment\nرَقْم\nالْهُوِيَّة\nبِطَاقَة الْهُوِيَّة  # a phrase\nمَوْعِدكَ\n");
        assert_eq!(l.apply("ما رقم الهوية؟"), "ما رَقْم الْهُوِيَّة؟");
        assert_eq!(l.apply("بطاقة الهوية، وموعدك"), "بِطَاقَة الْهُوِيَّة، وَمَوْعِدكَ");
        assert_eq!(l.apply("رَقَمَ"), "رَقَمَ", "a word with marks keeps them");
        let mut kb = l.clone();
        kb.add_text("رَقِم");
        assert_eq!(kb.apply("رقم"), "رَقِم", "a later entry (the knowledge base's) wins");
    }

    #[test]
    fn connected_speech_rules() {
        let cases = [
            ("انْتَظِرَ قَلِيلًا", "انْتَظِرْ قَلِيلًا"),
            ("اسْمُكَ مُحَمَّدٌ", "اسْمُكَ مُحَمَّدٌ"),
            ("هَلْ الْمَرْكَزُ", "هَلِ الْمَرْكَزُ"),
            ("مِنْ الْمَرْكَزِ", "مِنَ الْمَرْكَزِ"),
            ("أُرِيدُ أَنْ أَدْفَعُ", "أُرِيدُ أَنْ أَدْفَعَ"),
            ("لَمْ يَصِلُ", "لَمْ يَصِلْ"),
            ("العَمَلُ", "الْعَمَلُ"),
            ("اَدْخُلْ", "ادْخُلْ"),
        ];
        for (input, expected) in cases {
            assert_eq!(connected_speech(input), expected, "{input}");
        }
    }

    #[test]
    fn clause_rules_mend_what_a_character_model_cannot_see() {
        let cases = [
            ("ثُمَّ احْتَفَظَ بِالْإِيصَالِ.", "ثُمَّ احْتَفِظْ بِالْإِيصَالِ."),
            ("اسْتَخْدَمَ الْمَدْخَلَ الثَّانِيَ.", "اسْتَخْدِمْ الْمَدْخَلَ الثَّانِيَ."),
            ("إِذَا لَمْ تَجِدْ مَوْقِفًا فَاسْتَخْدَمَ الْمِتْرُو.", "إِذَا لَمْ تَجِدْ مَوْقِفًا فَاسْتَخْدِمْ الْمِتْرُو."),
            ("اطْبَعَ سِتَّ نُسَخٍ.", "اطْبَعْ سِتَّ نُسَخٍ."),
            ("ابْنَكَ فِي الْمَرْكَزِ.", "ابْنَكَ فِي الْمَرْكَزِ."),
            ("تَوَجَّهَ إِلَى الشُّبَّاكِ.", "تَوَجَّهْ إِلَى الشُّبَّاكِ."),
            ("اسْتَقْبَلَ الْمَرْكَزُ أَلْفَ مُتَعَامِلٍ.", "اسْتَقْبَلَ الْمَرْكَزُ أَلْفَ مُتَعَامِلٍ."),
            ("انْتَظَرْتُ سَاعَةً.", "انْتَظَرْتُ سَاعَةً."),
            ("مُدَّةَ الصَّلَاحِيَةِ عَشْرُ سَنَوَاتٍ.", "مُدَّةُ الصَّلَاحِيَةِ عَشْرُ سَنَوَاتٍ."),
            ("لَمْ تَصِلْنِي بِطَاقَتِي بَعْدَ.", "لَمْ تَصِلْنِي بِطَاقَتِي بَعْدُ."),
            ("جِئْتُ بَعْدَ الظُّهْرِ.", "جِئْتُ بَعْدَ الظُّهْرِ."),
            ("لَعَلَّ بِطَاقَتِكَ الْجَدِيدَةَ جَاهِزَةٌ.", "لَعَلَّ بِطَاقَتَكَ الْجَدِيدَةَ جَاهِزَةٌ."),
            ("إِنَّ بِطَاقَةِ الْهُوِيَّةِ جَاهِزَةٌ.", "إِنَّ بِطَاقَةَ الْهُوِيَّةِ جَاهِزَةٌ."),
            ("إِنَّ فِي الْمَرْكَزِ مَوَاقِفَ.", "إِنَّ فِي الْمَرْكَزِ مَوَاقِفَ."),
            ("انْتَقَلَ طَلَبُكَ إِلَى مَرْحَلَةِ الدَّفْعِ.", "انْتَقَلَ طَلَبُكَ إِلَى مَرْحَلَةِ الدَّفْعِ."),
            ("تَعَذَّرَ إِتْمَامُ الْعَمَلِيَّةِ.", "تَعَذَّرَ إِتْمَامُ الْعَمَلِيَّةِ."),
            ("اكْتَمَلَ الْمَلَفُّ.", "اكْتَمَلَ الْمَلَفُّ."),
            ("اَفْضَلَ وَقْتٍ لِلزِّيَارَةِ الصَّبَاحُ.", "اَفْضَلَ وَقْتٍ لِلزِّيَارَةِ الصَّبَاحُ."),
            ("فَتَوَجَّهَ إِلَى الشُّبَّاكِ.", "فَتَوَجَّهْ إِلَى الشُّبَّاكِ."),
            ("ثَمَّةَ رُسُومٌ إِضَافِيَّةٌ.", "ثَمَّةَ رُسُومٌ إِضَافِيَّةٌ."),
            ("السَّاعَةَ الثَّامِنَةَ صَبَاحًا.", "السَّاعَةَ الثَّامِنَةَ صَبَاحًا."),
            ("السَّاعَةَ الْآنَ الْعَاشِرَةُ.", "السَّاعَةُ الْآنَ الْعَاشِرَةُ."),
            ("فَاتُورَةَ الرُّسُومِ جَاهِزَةٌ.", "فَاتُورَةُ الرُّسُومِ جَاهِزَةٌ."),
            ("طَلَبُكَ قُبِلَ.", "طَلَبُكَ قُبِلَ."),
            ("إِنَّ لِلْمَرْكَزِ فُرُوعًا.", "إِنَّ لِلْمَرْكَزِ فُرُوعًا."),
            ("تَأَكَّدْ مِنْ أَنَّ الْمَالِكِ الْجَدِيدَ حَاضِرٌ.", "تَأَكَّدْ مِنْ أَنَّ الْمَالِكَ الْجَدِيدَ حَاضِرٌ."),
            ("لِأَنَّ الْحُكْمُ نِهَائِيٌّ.", "لِأَنَّ الْحُكْمَ نِهَائِيٌّ."),
            ("ادْفَعَ الرُّسُومَ وَاحْتَفَظَ بِالْإِيصَالِ.", "ادْفَعْ الرُّسُومَ وَاحْتَفِظْ بِالْإِيصَالِ."),
            ("وَصَلَ الْمُوَظَّفُ وَاسْتَقْبَلَ الزُّوَّارَ.", "وَصَلَ الْمُوَظَّفُ وَاسْتَقْبَلَ الزُّوَّارَ."),
            ("ادْفَعَ الرُّسُومَ. وَاحْتَفَظَ بِالْإِيصَالِ.", "ادْفَعْ الرُّسُومَ. وَاحْتَفِظْ بِالْإِيصَالِ."),
            ("وَصَلَ الْمُوَظَّفُ. وَاسْتَقْبَلَ الزُّوَّارَ.", "وَصَلَ الْمُوَظَّفُ. وَاسْتَقْبَلَ الزُّوَّارَ."),
            ("(لَمْ تَصِلْنِي بِطَاقَتِي بَعْدَ.) اسْتَخْدَمَ الْمَدْخَلَ الثَّانِيَ.", "(لَمْ تَصِلْنِي بِطَاقَتِي بَعْدُ.) اسْتَخْدِمْ الْمَدْخَلَ الثَّانِيَ."),
            ("«مُدَّةَ الصَّلَاحِيَةِ عَشْرُ سَنَوَاتٍ.» ثُمَّ احْتَفَظَ بِالْإِيصَالِ.", "«مُدَّةُ الصَّلَاحِيَةِ عَشْرُ سَنَوَاتٍ.» ثُمَّ احْتَفِظْ بِالْإِيصَالِ."),
        ];
        for (input, expected) in cases {
            let given = vec![false; input.split(' ').count()];
            assert_eq!(clause_rules(input, &given), expected, "{input}");
        }
        // A word the caller marked itself is left as it came.
        let input = "احْتَفَظَ بِالْإِيصَالِ.";
        assert_eq!(clause_rules(input, &[true, false]), input);
    }

    #[test]
    fn a_woman_addressed_in_letters_is_addressed_so_in_every_bare_suffix() {
        let cases = [
            ("مَسَاءُ النُّورِ، تَفَضَّلِي، كَيْفَ أَسْتَطِيعُ أَنْ أَخْدُمَكَ؟", "مَسَاءُ النُّورِ، تَفَضَّلِي، كَيْفَ أَسْتَطِيعُ أَنْ أَخْدُمَكِ؟"),
            ("انْتَظِرِي حَتَّى يَظْهَرَ رَقْمُكَ.", "انْتَظِرِي حَتَّى يَظْهَرَ رَقْمُكِ."),
            ("هَلْ يُمْكِنُكَ أَنْ تُعِيدِي سُؤَالَكَ؟", "هَلْ يُمْكِنُكِ أَنْ تُعِيدِي سُؤَالَكِ؟"),
            ("تَجِدِينَ مَوَاعِيدَكَ فِي الصَّفْحَةِ.", "تَجِدِينَ مَوَاعِيدَكِ فِي الصَّفْحَةِ."),
            ("إِذَا احْتَجْتَ شَيْئًا فَتَوَجَّهِي إِلَى الشُّبَّاكِ.", "إِذَا احْتَجْتِ شَيْئًا فَتَوَجَّهِي إِلَى الشُّبَّاكِ."),
            ("تَفَضَّلِي، ذَلِكَ مَكْتَبُكَ.", "تَفَضَّلِي، ذَلِكَ مَكْتَبُكِ."),
            // No word says who is addressed: as the model read it.
            ("يُمْكِنُكَ حَجْزُ مَوْعِدٍ.", "يُمْكِنُكَ حَجْزُ مَوْعِدٍ."),
            // Nouns with "my" look like her verbs, and are not (اسْمِي، اقْتِرَاحِي، تَوَقُّعِي).
            ("اسْمِي أَحْمَدُ، كَيْفَ حَالُكَ؟", "اسْمِي أَحْمَدُ، كَيْفَ حَالُكَ؟"),
            ("اقْتِرَاحِي لَكَ أَنْ تَحْضُرَ مُبَكِّرًا.", "اقْتِرَاحِي لَكَ أَنْ تَحْضُرَ مُبَكِّرًا."),
            ("تَوَقُّعِي أَنَّ طَلَبَكَ جَاهِزٌ.", "تَوَقُّعِي أَنَّ طَلَبَكَ جَاهِزٌ."),
            // A weak verb's own ي (أَنْ تَأْتِيَ: you, a man, or she) says nothing.
            ("يَجِبُ أَنْ تَأْتِيَ وَمَعَكَ جَوَازُكَ.", "يَجِبُ أَنْ تَأْتِيَ وَمَعَكَ جَوَازُكَ."),
            // The first person's past stays (هَلْ وَصَلْتُ).
            ("خُذِي رَقْمًا، هَلْ وَصَلْتُ مُتَأَخِّرًا؟", "خُذِي رَقْمًا، هَلْ وَصَلْتُ مُتَأَخِّرًا؟"),
        ];
        for (input, expected) in cases {
            let given = vec![false; input.split(' ').count()];
            assert_eq!(addressed_as_a_woman(input, &given, false).0, expected, "{input}");
        }
        // The caller addressed a man in its own marks: nothing is changed.
        let input = "تَفَضَّلِي، هَذَا لَكَ وَهَذَا مَوْعِدُكَ.";
        assert_eq!(addressed_as_a_woman(input, &[false, false, true, false, false], false), (input.to_string(), false));
        // A later chunk of an answer that addressed her: her form with no word of hers in it.
        let (out, woman) = addressed_as_a_woman("رَقْمُكَ عَلَى الشَّاشَةِ.", &[false, false, false], true);
        assert_eq!((out.as_str(), woman), ("رَقْمُكِ عَلَى الشَّاشَةِ.", true));
        assert!(!addressed_as_a_woman("رَقْمُكَ عَلَى الشَّاشَةِ.", &[false, false, false], false).1);
    }

    #[test]
    fn counted_nouns_take_their_case() {
        let cases = [
            ("خَمْسَةُ كُتُبَ", "خَمْسَةُ كُتُبٍ"),
            ("ثَلَاثُ سَيَّارَاتُ", "ثَلَاثُ سَيَّارَاتٍ"),
            ("عَشْرُ دَقَائِقٍ", "عَشْرُ دَقَائِقَ"),
            ("خَمْسَةُ دَرَاهِمٍ", "خَمْسَةُ دَرَاهِمَ"),
            ("عِشْرُونَ دِرْهَمٌ", "عِشْرُونَ دِرْهَمً"),
            ("سَبْعُونَ دِرْهَمًا", "سَبْعُونَ دِرْهَمًا"),
            ("خَمْسَةَ عَشَرَ يَوْمٌ", "خَمْسَةَ عَشَرَ يَوْمً"),
            ("مِئَةُ دِرْهَمٌ", "مِئَةُ دِرْهَمٍ"),
            ("ثَلَاثَةُ أَيَّامُ", "ثَلَاثَةُ أَيَّامٍ"),
            ("سِتُّ مُحَطَّاتٌ", "سِتُّ مُحَطَّاتٍ"),
            ("خَمْسَةُ الْأَيَّامِ", "خَمْسَةُ الْأَيَّامِ"),
            ("ثَلَاثَةٌ مِنْ", "ثَلَاثَةٌ مِنْ"),
            ("خَمْسَةٌ، كُتُبٌ", "خَمْسَةٌ، كُتُبٌ"),
        ];
        for (input, expected) in cases {
            assert_eq!(agree_after_numbers(input), expected, "{input}");
        }
    }
}

/// Diacritisation errors of one sentence against its golden form, counted per Arabic letter
/// (Fadel et al.'s DER, "including letters without marks"), and per word (a word is wrong
/// when any of its letters is). "Without case endings" leaves out each word's last letter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub letters: usize,
    pub letter_errors: usize,
    pub letters_no_ending: usize,
    pub letter_errors_no_ending: usize,
    pub words: usize,
    pub word_errors: usize,
    pub word_errors_no_ending: usize,
}

impl Score {
    pub fn add(&mut self, o: Score) {
        self.letters += o.letters;
        self.letter_errors += o.letter_errors;
        self.letters_no_ending += o.letters_no_ending;
        self.letter_errors_no_ending += o.letter_errors_no_ending;
        self.words += o.words;
        self.word_errors += o.word_errors;
        self.word_errors_no_ending += o.word_errors_no_ending;
    }

    fn rate(a: usize, b: usize) -> f64 {
        if b == 0 { 0.0 } else { a as f64 / b as f64 }
    }

    pub fn der(&self) -> f64 {
        Score::rate(self.letter_errors, self.letters)
    }
    pub fn der_no_ending(&self) -> f64 {
        Score::rate(self.letter_errors_no_ending, self.letters_no_ending)
    }
    pub fn wer(&self) -> f64 {
        Score::rate(self.word_errors, self.words)
    }
    pub fn wer_no_ending(&self) -> f64 {
        Score::rate(self.word_errors_no_ending, self.words)
    }
}

/// Letters with their tashkeel, normalised for comparing: NFC, the dagger alef dropped, the
/// marks in a fixed order; a sukun on a long-vowel letter (ا ى, و after damma, ي after kasra)
/// counts as no mark (conventions differ there, the sound does not).
fn marked_letters(text: &str) -> Vec<(char, String)> {
    let mut out: Vec<(char, String)> = Vec::new();
    for c in text.nfc() {
        if is_tashkeel(c) {
            if c != '\u{0670}'
                && let Some((_, m)) = out.last_mut()
            {
                m.push(c);
            }
        } else if c != '\u{0640}' {
            out.push((c, String::new()));
        }
    }
    for i in 0..out.len() {
        let mut m: Vec<char> = out[i].1.chars().collect();
        m.sort_unstable();
        m.dedup();
        let prev = if i > 0 { out[i - 1].1.clone() } else { String::new() };
        let long = match out[i].0 {
            'ا' | 'ى' => true,
            'و' => prev.contains('\u{064F}'),
            'ي' => prev.contains('\u{0650}'),
            _ => false,
        };
        if long && m == ['\u{0652}'] {
            m.clear();
        }
        out[i].1 = m.into_iter().collect();
    }
    out
}

/// Scores `predicted` against `golden` (the same letters). None when the letters differ.
pub fn score(golden: &str, predicted: &str) -> Option<Score> {
    let g = marked_letters(golden);
    let p = marked_letters(predicted);
    if g.len() != p.len() || g.iter().zip(&p).any(|(a, b)| a.0 != b.0) {
        return None;
    }
    let mut s = Score::default();
    let mut i = 0;
    while i < g.len() {
        if !is_arabic_letter(g[i].0) {
            i += 1;
            continue;
        }
        // One word: a run of Arabic letters.
        let start = i;
        while i < g.len() && is_arabic_letter(g[i].0) {
            i += 1;
        }
        let (mut wrong, mut wrong_inner) = (false, false);
        for k in start..i {
            let bad = g[k].1 != p[k].1;
            s.letters += 1;
            s.letter_errors += usize::from(bad);
            wrong |= bad;
            if k + 1 < i {
                s.letters_no_ending += 1;
                s.letter_errors_no_ending += usize::from(bad);
                wrong_inner |= bad;
            }
        }
        s.words += 1;
        s.word_errors += usize::from(wrong);
        s.word_errors_no_ending += usize::from(wrong_inner);
    }
    Some(s)
}

#[cfg(test)]
mod score_tests {
    use super::*;

    #[test]
    fn errors_are_counted_per_letter_and_word() {
        let g = "خَمْسَةُ كُتُبٍ";
        assert_eq!(score(g, g).map(|s| (s.letters, s.letter_errors, s.words)), Some((7, 0, 2)));
        let s = score(g, "خَمْسَةُ كَتَبَ").expect("same letters");
        assert_eq!((s.letter_errors, s.letter_errors_no_ending, s.word_errors, s.word_errors_no_ending), (3, 2, 1, 1));
        // A sukun on a long vowel is no error; a different letter is no score.
        assert_eq!(score("كِتَابٌ", "كِتَاْبٌ").map(|s| s.letter_errors), Some(0));
        assert_eq!(score("كتاب", "كتب"), None);
    }
}
