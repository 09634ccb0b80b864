//! The organisation's knowledge: Markdown and JSON Lines documents cut into passages, and a
//! BM25 index over Arabic-aware terms (tashkeel and tatweel stripped, alef/hamza forms, taa
//! marbuta and alef maqsura unified, Arabic-Indic digits made ASCII; then a light stemmer
//! takes off the article, attached conjunctions and prepositions, and common suffixes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hiwar_speech::text::normalize_for_matching;
use serde::Deserialize;

use hiwar_core::bus::Lang;

/// One passage: a titled piece of a document, in one language.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The topic: passages with the same id in different languages say the same thing.
    pub id: String,
    pub lang: Lang,
    pub title: String,
    pub text: String,
    /// File it came from (for operators).
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'k> {
    pub passage: &'k Passage,
    pub score: f32,
    /// The share of the question's weight (by IDF) that the passage covers, 0–1.
    pub coverage: f32,
}

/// The index: passages and their BM25 statistics.
#[derive(Debug, Default)]
pub struct Knowledge {
    pub passages: Vec<Passage>,
    /// term → (passage index, term frequency)
    postings: HashMap<String, Vec<(usize, u32)>>,
    lengths: Vec<u32>,
    average_length: f32,
    pub dir: PathBuf,
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Words too common to carry a question (after normalisation and stemming).
const STOP: &[&str] = &[
    // Arabic
    "في", "من", "علي", "الي", "عن", "ما", "ماذا", "هل", "كيف", "كم", "متي", "اين", "هو", "هي", "انا", "انت", "هذا", "هذه", "ذلك", "او", "ثم", "لا", "نعم", "مع",
    "كل", "اي", "التي", "الذي", "ان", "قد", "لو", "يا", "لي", "عند", "بد", "اريد", "ابغي", "ممكن", "سمحت", "ال", "عندي", "شو", "وين", "ايش",
    // English
    "the", "a", "an", "is", "are", "was", "to", "of", "in", "on", "at", "for", "and", "or", "i", "my", "me", "you", "your", "do", "does", "can", "what", "when",
    "where", "how", "much", "many", "it", "be", "with", "would", "like", "want", "need", "please", "there", "this", "that", "which", "from", "by", "about",
    "will", "should", "could",
];

/// Terms of `text` for the index and for queries.
pub fn terms(text: &str) -> Vec<String> {
    normalize_for_matching(text)
        .split(' ')
        .filter(|w| !w.is_empty() && !STOP.contains(w))
        .map(stem)
        .filter(|t| !t.is_empty() && !STOP.contains(&t.as_str()))
        .collect()
}

/// Question words that ask about a kind of fact, and the terms such facts are written with:
/// "how much" / "كم" asks for a fee in dirhams, "when" / "متى" for hours.
const ASKS: &[(&[&str], &[&str])] = &[
    (&["how much", "cost", "price", "pay", "كم", "بكم", "تكلف", "سعر", "رسوم"], &["fee", "dirham", "رسوم", "درهم"]),
    (&["when", "what time", "open", "متى", "الساعه", "يفتح", "دوام"], &["open", "hour", "مواعيد", "يفتح"]),
    (&["where", "location", "وين", "اين", "موقع", "مكان"], &["location", "street", "موقع", "شارع"]),
];

/// The terms of a question, with the terms of the kind of fact it asks for.
pub fn query_terms(question: &str) -> Vec<String> {
    let mut out = terms(question);
    let plain = format!(" {} ", normalize_for_matching(question));
    for (cues, adds) in ASKS {
        if cues.iter().any(|c| plain.contains(&format!(" {} ", normalize_for_matching(c))) || plain.contains(&format!(" {}", normalize_for_matching(c)))) {
            out.extend(adds.iter().flat_map(|a| terms(a)));
        }
    }
    out
}

/// A light stemmer: Arabic prefixes (وال, بال, كال, فال, لل, ال, و) and suffixes (ها, ان, ات,
/// ون, ين, يه, ه, ي) as in Larkey's Light10, keeping at least two letters; English plurals.
fn stem(word: &str) -> String {
    if word.chars().any(hiwar_speech::text::is_arabic_letter) {
        let mut w: Vec<char> = word.chars().collect();
        for prefix in ["وال", "بال", "كال", "فال", "لل", "ال"] {
            let p: Vec<char> = prefix.chars().collect();
            if w.len() >= p.len() + 2 && w.starts_with(&p) {
                w.drain(..p.len());
                break;
            }
        }
        if w.len() >= 4 && w[0] == 'و' {
            w.remove(0);
        }
        for suffix in ["ها", "ان", "ات", "ون", "ين", "يه", "ه", "ي"] {
            let s: Vec<char> = suffix.chars().collect();
            if w.len() >= s.len() + 2 && w.ends_with(&s) {
                w.truncate(w.len() - s.len());
            }
        }
        // Verb forms onto their root, so "أجدد" (I renew) finds "تجديد" (renewal): the
        // imperfect's prefix on a four-letter word, and the taf'īl noun pattern.
        if w.len() == 4 && matches!(w[0], 'ا' | 'ي' | 'ت' | 'ن') {
            w.remove(0);
        } else if w.len() == 5 && w[0] == 'ت' && w[3] == 'ي' {
            w = vec![w[1], w[2], w[4]];
        }
        return w.into_iter().collect();
    }
    let mut w = word.to_string();
    if w.len() > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..w.len() - 3]);
    }
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    // renewing, renewal, renewed → renew
    for suffix in ["ing", "al", "ed"] {
        if w.len() >= suffix.len() + 4 && w.ends_with(suffix) {
            w.truncate(w.len() - suffix.len());
            break;
        }
    }
    w
}

/// The language most of `text`'s letters are in (Arabic when tied).
pub fn lang_of(text: &str) -> Lang {
    let arabic = text.chars().filter(|c| hiwar_speech::text::is_arabic_letter(*c)).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    if latin > arabic * 2 { Lang::En } else { Lang::Ar }
}

#[derive(Deserialize)]
struct JsonPassage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    lang: String,
    title: String,
    text: String,
}

impl Knowledge {
    /// Loads every `.md` and `.jsonl` under `dir` (sorted, so the index is reproducible).
    pub fn load(dir: &Path) -> anyhow::Result<Knowledge> {
        let mut files = Vec::new();
        collect(dir, &mut files).with_context(|| format!("cannot read the knowledge folder {}", dir.display()))?;
        files.sort();
        let mut passages = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            if text.lines().next().is_some_and(|l| l.contains("hiwar:skip")) {
                continue;
            }
            let source = file.strip_prefix(dir).unwrap_or(file).display().to_string();
            match file.extension().and_then(|e| e.to_str()) {
                Some("md") => passages.extend(markdown(&text, &source)),
                Some("jsonl") => passages.extend(jsonl(&text, &source)?),
                _ => {}
            }
        }
        anyhow::ensure!(!passages.is_empty(), "the knowledge folder {} has no passages (.md with ## headings, or .jsonl)", dir.display());
        let mut k = Knowledge::from_passages(passages);
        k.dir = dir.to_path_buf();
        Ok(k)
    }

    pub fn from_passages(passages: Vec<Passage>) -> Knowledge {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(passages.len());
        for (i, p) in passages.iter().enumerate() {
            // The title counts twice: it names the topic.
            let all = format!("{} {} {}", p.title, p.title, p.text);
            let ts = terms(&all);
            lengths.push(ts.len() as u32);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for t in ts {
                *counts.entry(t).or_default() += 1;
            }
            for (t, n) in counts {
                postings.entry(t).or_default().push((i, n));
            }
        }
        let average_length = lengths.iter().sum::<u32>() as f32 / lengths.len().max(1) as f32;
        Knowledge { passages, postings, lengths, average_length, dir: PathBuf::new() }
    }

    fn idf(&self, term: &str) -> f32 {
        let n = self.passages.len() as f32;
        let df = self.postings.get(term).map_or(0, Vec::len) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The best `k` passages for `query`, best first; passages that share no term are left out.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit<'_>> {
        let mut q = query_terms(query);
        q.sort();
        q.dedup();
        // Coverage counts the question's own words, not the terms its question word adds.
        let own: std::collections::HashSet<String> = terms(query).into_iter().collect();
        let total: f32 = own.iter().map(|t| self.idf(t)).sum();
        let mut scores: HashMap<usize, (f32, f32)> = HashMap::new();
        for t in &q {
            let idf = self.idf(t);
            for &(i, tf) in self.postings.get(t).map_or(&[][..], Vec::as_slice) {
                let len = self.lengths[i] as f32;
                let tf = tf as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.average_length.max(1.0)));
                let e = scores.entry(i).or_default();
                e.0 += s;
                if own.contains(t) {
                    e.1 += idf;
                }
            }
        }
        let mut hits: Vec<Hit<'_>> = scores
            .into_iter()
            .map(|(i, (score, covered))| Hit { passage: &self.passages[i], score, coverage: if total > 0.0 { covered / total } else { 0.0 } })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.passage.title.cmp(&b.passage.title)));
        hits.truncate(k);
        hits
    }

    /// The organisation's own words per language, for the recogniser's prompt, most useful
    /// first: every passage's title, then the names in its text — runs of capitalised words
    /// in English (not a sentence's first word), and Latin-script names written inside Arabic
    /// («… (Emirates ID)»), which go to both languages, since people say them in both.
    pub fn vocabulary(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        let mut add = |lang: Lang, term: &str| {
            let term = term.trim().trim_matches(|c: char| c.is_ascii_punctuation() && c != '-').trim();
            let list = out.entry(lang.code().to_string()).or_default();
            if term.chars().count() > 1 && !list.iter().any(|t| t == term) {
                list.push(term.to_string());
            }
        };
        for p in &self.passages {
            // A parenthesised part of a title is a name of its own, added below.
            add(p.lang, p.title.split('(').next().unwrap_or_default());
        }
        for p in &self.passages {
            for name in capitalised_names(&p.text) {
                add(p.lang, &name);
            }
            if p.lang == Lang::Ar {
                for name in latin_runs(&format!("{} {}", p.title, p.text)) {
                    add(Lang::Ar, &name);
                    add(Lang::En, &name);
                }
            }
        }
        out
    }

    /// The same topic in `lang`, if the knowledge has it.
    pub fn in_lang<'a>(&'a self, passage: &'a Passage, lang: Lang) -> Option<&'a Passage> {
        if passage.lang == lang {
            return Some(passage);
        }
        if passage.id.is_empty() {
            return None;
        }
        self.passages.iter().find(|p| p.id == passage.id && p.lang == lang)
    }
}

/// Runs of capitalised words that do not start a sentence ("… on Amman Street opposite Al
/// Nahda Park" → "Amman Street", "Al Nahda Park"); "I" alone is not a name.
fn capitalised_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let mut sentence_start = true;
    let flush = |run: &mut Vec<&str>, out: &mut Vec<String>| {
        if !run.is_empty() && run != &["I"] {
            out.push(run.join(" "));
        }
        run.clear();
    };
    for word in text.split_whitespace() {
        if word.starts_with('(') {
            flush(&mut run, &mut out);
        }
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        let capital = bare.chars().next().is_some_and(char::is_uppercase) && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if capital && !sentence_start {
            run.push(bare);
        } else {
            flush(&mut run, &mut out);
        }
        // A name ends at punctuation; a sentence at its full stop.
        if word.ends_with([',', ';', ':', ')', '(']) {
            flush(&mut run, &mut out);
        }
        sentence_start = word.ends_with(['.', '!', '?']);
        if sentence_start {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Latin-script runs inside text ("تجديد بطاقة الهوية (Emirates ID)" → "Emirates ID").
fn latin_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && bare.chars().any(|c| c.is_ascii_alphabetic()) {
            run.push(bare);
            if word.ends_with([',', ')', ';', ':', '.']) {
                out.push(run.join(" "));
                run.clear();
            }
        } else if !run.is_empty() {
            out.push(run.join(" "));
            run.clear();
        }
    }
    if !run.is_empty() {
        out.push(run.join(" "));
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("md" | "jsonl")) {
            out.push(path);
        }
    }
    Ok(())
}

/// `## Heading {#id}` starts a passage; text before the first `##` is not a passage.
fn markdown(text: &str, source: &str) -> Vec<Passage> {
    let mut out: Vec<Passage> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let (title, id) = match heading.rsplit_once("{#") {
                Some((t, rest)) => (t.trim().to_string(), rest.trim_end_matches('}').trim().to_string()),
                None => (heading.trim().to_string(), String::new()),
            };
            out.push(Passage { id, lang: lang_of(&title), title, text: String::new(), source: source.to_string() });
        } else if line.starts_with("# ") {
            continue;
        } else if let Some(p) = out.last_mut() {
            let line = line.trim().trim_start_matches(['-', '*']).trim();
            if !line.is_empty() {
                if !p.text.is_empty() {
                    p.text.push(' ');
                }
                p.text.push_str(line);
            }
        }
    }
    out.retain(|p| !p.text.is_empty());
    for p in &mut out {
        p.lang = lang_of(&format!("{} {}", p.title, p.text));
    }
    out
}

fn jsonl(text: &str, source: &str) -> anyhow::Result<Vec<Passage>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: JsonPassage =
            serde_json::from_str(line).with_context(|| format!("{source} line {}: expected {{\"title\", \"text\", \"id\"?, \"lang\"?}}", n + 1))?;
        let lang = match p.lang.as_str() {
            "ar" => Lang::Ar,
            "en" => Lang::En,
            _ => lang_of(&p.text),
        };
        out.push(Passage { id: p.id, lang, title: p.title, text: p.text, source: source.to_string() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Knowledge {
        Knowledge::load(&hiwar_core::assets::assets_dir().join("knowledge")).expect("bundled knowledge")
    }

    fn best(k: &Knowledge, q: &str) -> String {
        k.search(q, 1).first().map(|h| format!("{}/{:?}", h.passage.id, h.passage.lang)).unwrap_or_default()
    }

    #[test]
    fn arabic_with_and_without_diacritics_and_spelling_variants_finds_the_same_passage() {
        let k = bundled();
        for q in [
            "متى يفتح المركز؟ ما هي مواعيد العمل",
            "مَتَى يَفْتَحُ المَرْكَزُ؟ مَا هِيَ مَوَاعِيدُ العَمَلِ",
            "متي يفتح المركز؟ ما هى مواعيد العمل",
            "مـتـى يفتح المركز مواعيد العمل",
        ] {
            assert_eq!(best(&k, q), "hours/Ar", "{q}");
        }
        for q in ["أريد تجديد الهوية الإماراتية", "اريد تجديد الهويه الاماراتيه", "إريد تَجْديد الهوية الإماراتيّة"]
        {
            assert_eq!(best(&k, q), "emirates-id-renewal/Ar", "{q}");
        }
        assert_eq!(best(&k, "كم رسوم تجديد جواز السفر؟"), "passport-renewal/Ar");
        assert_eq!(best(&k, "وين المواقف؟ ابغى اعرف الموقع"), "locations/Ar");
        assert_eq!(best(&k, "هل تقبلون الدفع نقداً"), "payment/Ar");
        assert_eq!(best(&k, "فقدت بطاقة الهوية"), "emirates-id-lost/Ar");
        assert_eq!(best(&k, "رسوم شهادة الراتب ٥٠"), "certificate/Ar", "Arabic-Indic digits and JSONL");
    }

    #[test]
    fn english_and_mixed_questions_find_their_passages() {
        let k = bundled();
        assert_eq!(best(&k, "What are your opening hours on Friday?"), "hours/En");
        assert_eq!(best(&k, "How much does it cost to renew my passport?"), "passport-renewal/En");
        assert_eq!(best(&k, "How much is a passport renewal?"), "passport-renewal/En");
        assert_eq!(best(&k, "Where can I park?"), "locations/En");
        assert_eq!(best(&k, "Where is the nearest office?"), "locations/En");
        assert_eq!(best(&k, "Do you accept cash payments"), "payment/En");
        assert_eq!(best(&k, "I lost my Emirates ID"), "emirates-id-lost/En");
        // Mixed: Arabic with an English name; either language's passage is the right topic.
        assert!(best(&k, "أبغى أجدد الـ Emirates ID").starts_with("emirates-id-renewal/"), "{}", best(&k, "أبغى أجدد الـ Emirates ID"));
    }

    #[test]
    fn a_topic_is_found_in_the_other_language_and_nonsense_matches_little() {
        let k = bundled();
        let hit = k.search("opening hours", 1)[0];
        let ar = k.in_lang(hit.passage, Lang::Ar).expect("Arabic version");
        assert!(ar.title.contains("مواعيد"), "{}", ar.title);
        let weak = k.search("quantum chromodynamics lattice", 1);
        assert!(weak.is_empty(), "{weak:?}");
        let partial = k.search("opening hours of the moon base", 1)[0];
        assert!(partial.coverage < 0.8, "{partial:?}");
    }

    #[test]
    fn markdown_and_jsonl_are_cut_into_titled_passages() {
        let md = "# Doc\nintro\n## مواعيد العمل {#hours}\nمن السابعة\n\nحتى الثالثة\n## Parking\n- free\n";
        let ps = markdown(md, "a.md");
        assert_eq!(ps.len(), 2);
        assert_eq!((ps[0].id.as_str(), ps[0].lang, ps[0].text.as_str()), ("hours", Lang::Ar, "من السابعة حتى الثالثة"));
        assert_eq!((ps[1].title.as_str(), ps[1].lang, ps[1].text.as_str()), ("Parking", Lang::En, "free"));
        let err = jsonl("{\"title\": 1}\n", "b.jsonl").expect_err("bad line");
        assert!(format!("{err:#}").contains("b.jsonl line 1"), "{err:#}");
    }

    #[test]
    fn the_vocabulary_holds_titles_then_names_per_language() {
        let v = bundled().vocabulary();
        let (ar, en) = (&v["ar"], &v["en"]);
        assert_eq!(ar[0], "مواعيد العمل", "titles first, in file order");
        assert!(ar.iter().any(|t| t == "تجديد بطاقة الهوية الإماراتية"), "a title without its parenthesis: {ar:?}");
        assert!(ar.iter().any(|t| t == "تجديد جواز السفر"), "{ar:?}");
        assert!(ar.iter().any(|t| t == "Emirates ID"), "Latin names inside Arabic: {ar:?}");
        for name in ["Renewing a passport", "Amman Street", "Al Nahda Park", "Abu Dhabi", "Al Khalidiya", "Apple Pay", "Green Line", "Nahda-Visitors"] {
            assert!(en.iter().any(|t| t == name), "{name} in {en:?}");
        }
        assert_eq!(
            capitalised_names("Free Wi-Fi on Al Nahda Park (Nahda-Visitors) and (Emirates ID) here."),
            ["Wi-Fi", "Al Nahda Park", "Nahda-Visitors", "Emirates ID"]
        );
        for not_a_name in ["The", "I", "Citizens", "Fees"] {
            assert!(!en.iter().any(|t| t == not_a_name), "{not_a_name} in {en:?}");
        }
    }
}
