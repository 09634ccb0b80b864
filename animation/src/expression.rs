//! Expression from the conversation: what the face does because of what is being said.
//!
//! The dialogue already knows what it says and why (an answer, a fallback, a greeting); this
//! module turns that into a [`Mood`] for the span the speech plays, and small nods where its
//! clauses end, on the same audio clock as the lip-sync. The listening and thinking poses
//! (eye contact, gaze aversion) are the idle life's ([`crate::idle`]); this adds to them.
//!
//! Everything is a pure function of the schedule and the sample position, so golden tests pin
//! the weights and headless renders repeat.

use crate::SamplePos;
use crate::idle::IdleFrame;

/// The feeling an utterance carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mood {
    #[default]
    Neutral,
    /// A greeting, thanks, "you're welcome": a warm smile.
    Warm,
    /// An apology, a refusal or a fallback: concern (inner brows up, the mouth's corners
    /// down a little), never a smile.
    Concern,
}

/// Words that make an utterance warm or concerned, matched at the start of a word after
/// [`fold`] (so «شكراً» and «وشكرا» both match «شكرا», "thanks" matches "thank").
const CONCERN: [&str; 13] = ["اسف", "عذرا", "للاسف", "مع الاسف", "اعتذر", "نعتذر", "معذره", "sorry", "unfortunately", "apolog", "afraid", "regret", "i'm afraid"];
const WARM: [&str; 20] = [
    "مرحبا",
    "اهلا",
    "السلام",
    "حياك",
    "حياكم",
    "شكرا",
    "تشرفنا",
    "بكل سرور",
    "العفو",
    "عفوا",
    "يسعدني",
    "hello",
    "hi",
    "welcome",
    "thank",
    "glad",
    "pleasure",
    "good morning",
    "good afternoon",
    "good evening",
];

/// Lower case, without Arabic diacritics or tatweel, with the alef forms as one and ة as ه, so
/// the word lists match what people and models write.
fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{064B}'..='\u{0652}' | '\u{0670}' | '\u{0640}'))
        .map(|c| match c {
            'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
            'ة' => 'ه',
            'ى' => 'ي',
            '’' => '\'',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether `entry` (one word, or several) starts at a word of `words` (each possibly behind
/// the Arabic conjunction و or ف).
fn has(words: &[&str], entry: &str) -> bool {
    let parts: Vec<&str> = entry.split(' ').collect();
    (0..words.len()).any(|i| {
        parts.iter().enumerate().all(|(k, p)| {
            let Some(w) = words.get(i + k) else { return false };
            let bare = if k == 0 && !p.is_ascii() { w.strip_prefix(['و', 'ف']).filter(|b| b.starts_with(p)).unwrap_or(w) } else { w };
            // Short English entries ("hi") must be the whole word; the rest may be a stem.
            if p.len() <= 2 { bare == *p } else { bare.starts_with(p) }
        })
    })
}

/// The mood of what is said: concern for a fallback or an apology (it wins over a polite
/// greeting in the same breath), warmth for greetings and thanks, else neutral.
pub fn mood_of(text: &str, fallback: bool) -> Mood {
    if fallback {
        return Mood::Concern;
    }
    let folded = fold(text);
    let words: Vec<&str> = folded.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()).collect();
    if CONCERN.iter().any(|e| has(&words, e)) {
        Mood::Concern
    } else if WARM.iter().any(|e| has(&words, e)) {
        Mood::Warm
    } else {
        Mood::Neutral
    }
}

/// Where the clauses of a spoken text end: the end of each word written with a clause mark
/// after it (Arabic and Latin punctuation), the last word excepted (the answer's end is a rest,
/// not a nod). `words` are (written text, start, end) in samples.
pub fn clause_ends<'a>(words: impl IntoIterator<Item = (&'a str, SamplePos, SamplePos)>) -> Vec<SamplePos> {
    let words: Vec<_> = words.into_iter().collect();
    let n = words.len();
    words
        .into_iter()
        .enumerate()
        .filter(|&(i, (text, _, _))| i + 1 < n && text.trim_end().ends_with([',', '.', ';', ':', '?', '!', '،', '؛', '؟', '…']))
        .map(|(_, (_, _, end))| end)
        .collect()
}

/// The expression's part of the face at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExpressionFrame {
    pub smile: f32,
    pub concern: f32,
    /// Head pitch added by a nod (negative: down), radians.
    pub nod: f32,
}

impl ExpressionFrame {
    /// Adds this to the idle life's frame (the smile is the larger of the two; concern lifts
    /// the inner brows and pulls the mouth's corners down).
    pub fn apply(&self, idle: &mut IdleFrame) {
        idle.smile = idle.smile.max(self.smile);
        idle.brow_inner_up = (idle.brow_inner_up + 0.55 * self.concern).min(1.0);
        idle.frown = (idle.frown + self.concern).min(1.0);
        idle.head[0] += self.nod;
    }
}

/// How a mood comes and goes, seconds.
const RISE: f64 = 0.3;
const FALL: f64 = 0.6;
/// A greeting's smile is held this long at most while speaking, then eases to a softer one.
const WARM_PEAK: f64 = 2.0;
/// A nod: down and back, seconds, and how far, radians.
const NOD: f64 = 0.5;
const NOD_DEPTH: f32 = 0.055;

/// The moods and nods of the speech queued on the clock.
#[derive(Debug, Clone, Default)]
pub struct Expression {
    rate: u32,
    spans: Vec<(Mood, SamplePos, SamplePos)>,
    nods: Vec<SamplePos>,
}

impl Expression {
    pub fn new(rate: u32) -> Expression {
        Expression { rate: rate.max(1), spans: Vec::new(), nods: Vec::new() }
    }

    /// Samples a second on its clock.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// `mood` while the speech from `start` to `end` plays (clock samples). Spans that are over
    /// by more than a second are forgotten.
    pub fn mood(&mut self, mood: Mood, start: SamplePos, end: SamplePos) {
        let keep = u64::from(self.rate);
        self.spans.retain(|&(_, _, e)| e + keep > start);
        if mood != Mood::Neutral {
            self.spans.push((mood, start, end.max(start)));
        }
    }

    /// A small nod starting at `at` (a clause's end).
    pub fn nod(&mut self, at: SamplePos) {
        let keep = u64::from(self.rate);
        self.nods.retain(|&n| n + keep > at);
        self.nods.push(at);
    }

    /// What the face does for speech of these written words (text, start, end on the clock):
    /// the mood of what they say over their span (concern for a fallback), a nod at each
    /// clause's end.
    pub fn speak<'a>(&mut self, words: impl IntoIterator<Item = (&'a str, SamplePos, SamplePos)>, fallback: bool) {
        let words: Vec<_> = words.into_iter().collect();
        let (Some(first), Some(last)) = (words.first(), words.last()) else { return };
        let text = words.iter().map(|w| w.0).collect::<Vec<_>>().join(" ");
        self.mood(mood_of(&text, fallback), first.1, last.2);
        for at in clause_ends(words) {
            self.nod(at);
        }
    }

    /// Forgets everything (an interruption, the session's end).
    pub fn clear(&mut self) {
        self.spans.clear();
        self.nods.clear();
    }

    pub fn sample(&self, pos: SamplePos) -> ExpressionFrame {
        let secs = |from: SamplePos| (pos as f64 - from as f64) / f64::from(self.rate);
        let mut frame = ExpressionFrame::default();
        for &(mood, start, end) in &self.spans {
            let (since, after) = (secs(start), secs(end));
            if since < 0.0 || after > FALL {
                continue;
            }
            let rise = smoothstep((since / RISE) as f32);
            let fall = 1.0 - smoothstep((after / FALL) as f32);
            match mood {
                Mood::Warm => {
                    // A full smile for the greeting, then a softer one for the rest of it.
                    let held = 0.35 + 0.35 * (1.0 - smoothstep(((since - WARM_PEAK) / 0.6) as f32));
                    frame.smile = frame.smile.max(held * rise * fall);
                }
                Mood::Concern => frame.concern = frame.concern.max(0.6 * rise * fall),
                Mood::Neutral => {}
            }
        }
        for &at in &self.nods {
            let t = secs(at);
            if (0.0..NOD).contains(&t) {
                // Down quickly, back slowly: a raised cosine skewed towards the start.
                let phase = (t / NOD).powf(0.7);
                frame.nod -= NOD_DEPTH * (0.5 - 0.5 * (std::f64::consts::TAU * phase).cos()) as f32;
            }
        }
        frame
    }
}

fn smoothstep(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Composer, Mouth};
    use expect_test::expect;

    #[test]
    fn moods_from_what_is_said() {
        let cases = [
            ("أهلاً وسهلاً، كيف أقدر أساعدك؟", false, Mood::Warm),
            ("مرحباً بك في مركز الخدمة", false, Mood::Warm),
            ("وشكراً لك على صبرك", false, Mood::Warm),
            ("Hello! How can I help you today?", false, Mood::Warm),
            ("Thanks for waiting.", false, Mood::Warm),
            ("عذراً، لا أستطيع الإجابة على ذلك الآن", false, Mood::Concern),
            ("للأسف، الخدمة متوقفة اليوم", false, Mood::Concern),
            ("Sorry, I can't help with that right now.", false, Mood::Concern),
            ("Welcome! Unfortunately we are closed today.", false, Mood::Concern),
            ("الرسوم مئتان وخمسون درهماً", false, Mood::Neutral),
            ("The fee is 250 dirhams.", false, Mood::Neutral),
            // "hi" is a word, not the start of "his" or "high".
            ("His card is ready; the fee is high.", false, Mood::Neutral),
            ("الرسوم مئتان وخمسون درهماً", true, Mood::Concern),
        ];
        for (text, fallback, mood) in cases {
            assert_eq!(mood_of(text, fallback), mood, "{text}");
        }
    }

    #[test]
    fn clauses_end_at_their_marks_but_not_at_the_last_word() {
        let words = [("أهلاً،", 0, 10), ("الرسوم", 10, 20), ("250.", 20, 30), ("Thanks!", 30, 40)];
        assert_eq!(clause_ends(words), vec![10, 30]);
        assert!(clause_ends([("one", 0, 5)]).is_empty());
    }

    /// The face's non-zero ARKit weights for an expression at `pos`, rest mouth, still idle.
    fn golden(e: &Expression, pos: SamplePos) -> String {
        let mut idle = IdleFrame::default();
        e.sample(pos).apply(&mut idle);
        let face = Composer::new().compose(&Mouth::REST, &idle);
        let mut out: Vec<String> = crate::ARKIT.iter().zip(face.arkit).filter(|(_, w)| *w > 0.0005).map(|(n, w)| format!("{n} {w:.3}")).collect();
        out.push(format!("head pitch {:.3}", face.head[0]));
        out.join(", ")
    }

    #[test]
    fn golden_weights() {
        let rate = 1000;
        let mut e = Expression::new(rate);
        e.mood(Mood::Warm, 1000, 5000);
        // Rising, full, softer later in a long greeting, gone 0.6 s after it.
        expect!["mouthSmileLeft 0.350, mouthSmileRight 0.350, cheekSquintLeft 0.140, cheekSquintRight 0.140, head pitch 0.000"].assert_eq(&golden(&e, 1150));
        expect!["mouthSmileLeft 0.700, mouthSmileRight 0.700, cheekSquintLeft 0.280, cheekSquintRight 0.280, head pitch 0.000"].assert_eq(&golden(&e, 2000));
        expect!["mouthSmileLeft 0.350, mouthSmileRight 0.350, cheekSquintLeft 0.140, cheekSquintRight 0.140, head pitch 0.000"].assert_eq(&golden(&e, 4500));
        expect!["head pitch 0.000"].assert_eq(&golden(&e, 5600));

        let mut e = Expression::new(rate);
        e.mood(Mood::Concern, 0, 2000);
        e.nod(1000);
        expect!["mouthFrownLeft 0.180, mouthFrownRight 0.180, browInnerUp 0.330, head pitch -0.055"].assert_eq(&golden(&e, 1000 + 186));
        expect!["mouthFrownLeft 0.180, mouthFrownRight 0.180, browInnerUp 0.330, head pitch 0.000"].assert_eq(&golden(&e, 1600));
        // A fallback never smiles, and an interruption clears the face at once.
        assert_eq!(e.sample(500).smile, 0.0);
        e.clear();
        expect!["head pitch 0.000"].assert_eq(&golden(&e, 1100));
    }

    #[test]
    fn stays_in_range_and_forgets_old_spans() {
        let mut e = Expression::new(100);
        for k in 0..1000u64 {
            e.mood(if k % 2 == 0 { Mood::Warm } else { Mood::Concern }, k * 100, k * 100 + 80);
            e.nod(k * 100 + 40);
        }
        assert!(e.spans.len() <= 3 && e.nods.len() <= 3, "{} spans, {} nods kept", e.spans.len(), e.nods.len());
        for pos in 99_000..100_200 {
            let f = e.sample(pos);
            assert!((0.0..=1.0).contains(&f.smile) && (0.0..=1.0).contains(&f.concern) && (-0.2..=0.0).contains(&f.nod), "{f:?}");
        }
    }
}
