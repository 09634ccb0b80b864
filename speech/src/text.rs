//! Text normalisation for matching (search, comparing transcripts), Arabic first:
//! tashkeel and tatweel removed, alef/hamza forms, taa marbuta and alef maqsura unified,
//! Arabic-Indic and Eastern digits made ASCII, Latin lower-cased, punctuation dropped.

/// Whether `c` is in the Arabic script's Unicode blocks (letters, marks, digits, punctuation,
/// presentation forms).
pub fn is_arabic(c: char) -> bool {
    matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

/// Whether `c` is an Arabic letter (hamza to yeh, and the extended letters such as ٱ).
pub fn is_arabic_letter(c: char) -> bool {
    ('\u{0621}'..='\u{064A}').contains(&c) || matches!(c, '\u{0671}'..='\u{06D3}')
}

/// Normalises `text` for matching. Words are separated by single spaces.
pub fn normalize_for_matching(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mapped = match c {
            '\u{064B}'..='\u{0652}' | '\u{0670}' | '\u{0640}' => continue, // tashkeel, dagger alef, tatweel
            'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
            'ى' => 'ي',
            'ة' => 'ه',
            'ؤ' => 'و',
            'ئ' => 'ي',
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            c if c.is_alphanumeric() => c,
            _ => ' ',
        };
        out.extend(mapped.to_lowercase());
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words after which no sentence ends: articles, prepositions, conjunctions, auxiliaries and
/// the first-person requests that need an object ("I want…", «أبغى…»), in the form
/// [`normalize_for_matching`] gives them (alef, hamza, taa marbuta and yeh unified).
const UNFINISHED_EN: &[&str] = &[
    "a", "an", "the", "my", "your", "his", "her", "our", "their", "its", "to", "for", "of", "and", "or", "but", "with", "from", "by", "about", "into", "than",
    "because", "if", "so", "i", "we", "can", "could", "would", "should", "will", "um", "uh", "er",
];
const UNFINISHED_AR: &[&str] = &[
    "ان",
    "في",
    "من",
    "الي",
    "علي",
    "عن",
    "مع",
    "و",
    "او",
    "ثم",
    "لكن",
    "لان",
    "حتي",
    "عند",
    "بعد",
    "قبل",
    "كي",
    "لكي",
    "هل",
    "لو",
    "اذا",
    "اريد",
    "احتاج",
    "ابغي",
    "بدي",
    "يعني",
    "عشان",
    "لاجل",
    "بين",
    "حول",
    "مثل",
    "ل",
    "ب",
    "ك",
    "ف",
    "يا",
];

/// Whether a transcript plainly stops mid-sentence: it trails off ("…", "...") or its last
/// word is one no sentence ends on (see [`UNFINISHED_EN`], [`UNFINISHED_AR`]). A question that
/// ends so is better waited on than answered.
pub fn ends_unfinished(text: &str) -> bool {
    let trimmed = text.trim_end();
    if trimmed.ends_with("...") || trimmed.ends_with('…') || trimmed.ends_with(',') || trimmed.ends_with('،') {
        return true;
    }
    let normal = normalize_for_matching(trimmed);
    let Some(last) = normal.split(' ').next_back().filter(|w| !w.is_empty()) else { return false };
    UNFINISHED_EN.contains(&last) || UNFINISHED_AR.contains(&last)
}

/// Whether a transcript is a finished question: it ends with a question mark ("?", «؟»), and
/// not on a word no sentence ends on ("Where can I?" is not one). Whisper writes the mark from
/// the words and the voice together, so it hears «ومتى يفتح غدًا؟» as a question when the
/// semantic end of turn, hearing the voice alone, doubts it.
pub fn is_question(text: &str) -> bool {
    let trimmed = text.trim_end();
    let Some(words) = trimmed.strip_suffix(['?', '؟', '？']) else { return false };
    !words.trim_end().is_empty() && !ends_unfinished(words)
}

/// What a listener says to show they are listening, not to take the turn: "mm", "okay",
/// «اها», «ايوه», «طيب» (normalised as [`normalize_for_matching`] gives them).
const BACKCHANNELS: &[&str] = &[
    "mm", "mhm", "hmm", "hm", "mmhmm", "uh", "huh", "ah", "oh", "okay", "ok", "yeah", "yes", "yep", "right", "sure", "i", "see", "alright", "uhhuh", "aha",
    "اها", "اه", "ايوه", "ايوا", "ايه", "طيب", "تمام", "نعم", "صح", "اوكي", "اي", "ها", "امم", "مم", "اكيد", "زين",
];

/// Whether `text` is only a backchannel ("mm-hmm", "okay", «ايوه طيب»): at most three words,
/// every one of them a listener's token. Empty text is not one.
pub fn is_backchannel(text: &str) -> bool {
    let words = spoken_words(text);
    !words.is_empty() && words.len() <= 3 && words.iter().all(|w| BACKCHANNELS.contains(&w.as_str()))
}

/// A short utterance's words as the lists above hold them: normalised for matching, hyphens
/// joined ("mm-hmm" → "mmhmm").
fn spoken_words(text: &str) -> Vec<String> {
    normalize_for_matching(&text.replace('-', "")).split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// Short words that take the turn even alone: a command to stop or wait, a refusal, a question
/// word ("stop", "no", "why", «لا», «لحظة», «ليش», «كم»), normalised as [`normalize_for_matching`]
/// gives them.
const TURN_TAKERS: &[&str] = &[
    "stop",
    "wait",
    "no",
    "nope",
    "not",
    "sorry",
    "excuse",
    "hold",
    "hang",
    "pause",
    "repeat",
    "again",
    "what",
    "why",
    "how",
    "where",
    "when",
    "who",
    "which",
    "لا",
    "لحظه",
    "وقف",
    "قف",
    "استنى",
    "انتظر",
    "بس",
    "عفوا",
    "اسمع",
    "اعد",
    "كرر",
    "ليش",
    "لماذا",
    "ليه",
    "كيف",
    "وين",
    "اين",
    "متى",
    "كم",
    "شو",
    "ايش",
    "ماذا",
    "مين",
    "من",
    "هل",
];

/// Whether a short voice over the answer (it stopped before `dialogue.interruption_ms`) takes
/// the turn, from its transcript: yes for a question, a command or a refusal, or three words
/// or more; no for a listener's tokens, and no for one or two other words — a person who wants
/// the turn says more than that or says one of the words above, while a backchannel the
/// recogniser could not read (whisper base hears espeak's «اها» as «أفع») is one or two
/// words of something. Empty text (a cough, noise) does not take it.
pub fn takes_the_turn(text: &str) -> bool {
    if text.contains('?') || text.contains('؟') {
        return true;
    }
    let words = spoken_words(text);
    if words.iter().any(|w| TURN_TAKERS.contains(&w.as_str())) {
        return true;
    }
    !words.iter().all(|w| BACKCHANNELS.contains(&w.as_str())) && words.len() >= 3
}

/// Character error rate of `hypothesis` against `reference`, both normalised for matching
/// (spaces count as characters, as is usual for Arabic CER).
pub fn character_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<char> = normalize_for_matching(reference).chars().collect();
    let h: Vec<char> = normalize_for_matching(hypothesis).chars().collect();
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

/// Word error rate of `hypothesis` against `reference`, both normalised for matching.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize_for_matching(reference);
    let h = normalize_for_matching(hypothesis);
    let r: Vec<&str> = r.split(' ').filter(|w| !w.is_empty()).collect();
    let h: Vec<&str> = h.split(' ').filter(|w| !w.is_empty()).collect();
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

fn edit_distance<T: PartialEq>(r: &[T], h: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hc) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rc != hc)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_is_normalised_per_the_house_rules() {
        let cases = [
            ("مَرْحَبًا بِكُمْ", "مرحبا بكم"),
            ("أحمد وإبراهيم وآمنة", "احمد وابراهيم وامنه"),
            ("مستشفى", "مستشفي"),
            ("مسؤول رئيس", "مسوول رييس"),
            ("الـــخدمة", "الخدمه"),
            ("رقم ٣٠٥ و۴۲", "رقم 305 و42"),
            ("أبغى أجدد الـ Emirates ID!", "ابغي اجدد ال emirates id"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_for_matching(input), expected, "{input}");
        }
    }

    #[test]
    fn error_rates() {
        assert_eq!(word_error_rate("Welcome to the centre.", "welcome to the centre"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        assert_eq!(character_error_rate("مَرْحَبًا", "مرحبا"), 0.0);
        assert!((character_error_rate("abcd", "abce") - 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_transcript_that_stops_mid_sentence_is_unfinished() {
        for t in [
            "I would like to",
            "Where can I",
            "I need a certificate for...",
            "My son needs a",
            "أريد أن",
            "أبغى",
            "أبغى…",
            "أريد أن أدفع عن",
            "متى تفتحون في",
            "I want to pay,",
        ] {
            assert!(ends_unfinished(t), "{t}");
        }
        for t in [
            "I would like to renew my Emirates ID.",
            "Thank you.",
            "What time do you close on Friday?",
            "شكرا",
            "أين فرع الخالدية؟",
            "أُرِيدُ تَجْدِيدَ الْإِقَامَةِ",
            "",
            "Can I pay with Apple Pay",
        ] {
            assert!(!ends_unfinished(t), "{t}");
        }
    }

    #[test]
    fn a_transcript_ending_with_a_question_mark_is_a_finished_question_unless_it_stops_mid_sentence() {
        for t in ["When do you close on Friday?", "ومتى يفتح غدًا؟", "أين أقرب مكتب؟ ", "Can I pay with Apple Pay？", "كم الرسوم ؟"]
        {
            assert!(is_question(t), "{t}");
        }
        for t in ["Where can I?", "هل يمكنني أن؟", "I would like to renew my passport.", "When do you close", "?", "", "What about the...?"] {
            assert!(!is_question(t), "{t}");
        }
    }

    #[test]
    fn backchannels_are_only_listeners_tokens() {
        for t in ["Mm-hmm.", "Okay.", "okay okay", "Yeah, right.", "اها", "إيوه", "طيب", "آه تمام", "I see."] {
            assert!(is_backchannel(t), "{t}");
        }
        for t in ["", "Okay, what about the fee?", "طيب كم الرسوم؟", "No", "Stop", "wait", "لا", "yes I want to renew my passport"] {
            assert!(!is_backchannel(t), "{t}");
        }
    }

    #[test]
    fn a_short_voice_takes_the_turn_only_with_a_question_a_command_or_more_words() {
        // What whisper base made of espeak-ng's backchannels over an answer (bench loop).
        for t in ["Mm-hmm.", "Okay.", "I see.", "I c", "اها", "أفع", "إيوه", "دائم", "شمام", "لعب يم", "", "آه تمام"] {
            assert!(!takes_the_turn(t), "{t}");
        }
        for t in [
            "Stop",
            "wait",
            "No.",
            "Why?",
            "How much?",
            "لا",
            "لحظة",
            "ليش؟",
            "كم الرسوم",
            "Okay, what about the fee?",
            "طيب كم الرسوم؟",
            "I want the fee",
            "the office hours please",
        ] {
            assert!(takes_the_turn(t), "{t}");
        }
    }
}
