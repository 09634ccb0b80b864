//! Utterance → text: whisper with language restriction, no-speech gating and a filter for
//! the phrases whisper invents on silence and noise.

use std::path::Path;

use super::listener::Listener;
use super::segmenter::Boundary;
use super::{HearingConfig, Utterance};
use crate::text::normalize_for_matching;
use crate::whisper::{DecodeOptions, Interrupt, Language, Segment, Transcript, WhisperModel};
use crate::{Error, Result};

/// Audio kept after the last voiced sample when decoding (word endings are soft).
pub const TAIL_SAMPLES: u64 = 16 * 150;

/// Phrases whisper is known to produce on silence, music and noise (its training subtitles).
/// Always dropped.
const PHANTOMS: &[&str] = &[
    "اشتركوا في القناة",
    "اشترك في القناة",
    "لا تنسوا الاشتراك في القناة",
    "شكرا للمشاهدة",
    "شكرا على المشاهدة",
    "ترجمة نانسي قنقر",
    "نانسي قنقر",
    "المترجم للقناة",
    "موسيقى",
    "thanks for watching",
    "thank you for watching",
    "please subscribe",
    "subtitles by the amara org community",
    "music",
];

/// Phrases a person might really say, but which whisper also invents on silence: dropped
/// only when whisper itself is unsure.
const DOUBTFUL: &[&str] = &["you", "thank you", "bye", "شكرا", "شكرا لكم"];

/// Whether `text` (with whisper's confidence) is a phantom to drop.
pub fn is_phantom(text: &str, confidence: f32, no_speech: f32) -> bool {
    let n = normalize_for_matching(text);
    if n.is_empty() {
        return true;
    }
    let matches = |list: &[&str]| list.iter().any(|p| normalize_for_matching(p) == n);
    matches(PHANTOMS) || (matches(DOUBTFUL) && (confidence < 0.6 || no_speech > 0.2))
}

/// How one utterance's language was chosen; carried on the [`Utterance`] so that the logs
/// can say why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LanguageChoice {
    /// Whisper's detection among the configured languages (normalised over them).
    pub detected: Vec<(String, f32)>,
    /// Each language decoded: its mean token log-probability, the share of its letters in
    /// that language's script, and the score compared.
    pub decoded: Vec<LanguageScore>,
    /// What decided: "forced", "settled" (an earlier partial of the same utterance),
    /// "detected" (detection alone: sure, or a partial too short to decide on), "decoded" (the
    /// better-scoring decode), "continued" (too close to call, or no words either way: the
    /// language of the conversation, the final before within 10 s), "primary" (the same,
    /// with no conversation: the primary language; or the other language's decode won but
    /// whisper itself would reject it, see [`choose`]).
    pub how: &'static str,
    /// Whether the choice was clear (false: a tie broken by the conversation's or the primary
    /// language, or detection alone that was not sure).
    pub sure: bool,
    /// A language other than the primary, chosen on a decode whisper itself rejects
    /// ([`LanguageScore::rejected`]) while the primary's decode is in the primary's script: see
    /// [`LanguageChoice::settles`].
    pub doubtful: bool,
}

impl LanguageChoice {
    /// One line for the logs: "decoded: ar (ar −0.41 script 1.00 → −0.41; en −0.90 script 1.00 →
    /// −0.90); detection ar 0.55 en 0.45". Holds no words of what was said.
    pub fn summary(&self, chosen: &str) -> String {
        let mut out = format!("{}: {chosen}", if self.how.is_empty() { "?" } else { self.how });
        if !self.decoded.is_empty() {
            let scores: Vec<String> = self
                .decoded
                .iter()
                .map(|d| {
                    let looped = if d.looped { " looped" } else { "" };
                    format!("{} {:.2} script {:.2} tpw {:.1}{looped} → {:.2}", d.lang, d.avg_logprob, d.script, d.tokens_per_word, d.score)
                })
                .collect();
            out.push_str(&format!(" ({})", scores.join("; ")));
        }
        if !self.detected.is_empty() {
            let detected: Vec<String> = self.detected.iter().map(|(l, p)| format!("{l} {p:.2}")).collect();
            out.push_str(&format!("; detection {}", detected.join(" ")));
        }
        out
    }

    /// Whether the choice may stand for the rest of the utterance: not a language other than
    /// the primary chosen on a decode whisper rejects while the primary's own decode came out
    /// in its script (live, ar-passport's first 1.5 s after two English questions: both
    /// decodes looped, English by the conversation's tie, and the whole question was then
    /// heard in English). Such a choice is made again on more audio. When the primary's
    /// decode is in the other's letters (en-office's first 2 s, forced into Arabic: Latin, and
    /// looped), the other language stands.
    pub fn settles(&self) -> bool {
        !self.doubtful
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LanguageScore {
    pub lang: String,
    pub avg_logprob: f32,
    pub script: f32,
    /// Whisper tokens per written word: real words of a language are mostly whole tokens of
    /// its vocabulary; a transliteration of another language breaks into pieces.
    pub tokens_per_word: f32,
    /// The decode ran away (a loop collapsed, or the token budget reached).
    pub looped: bool,
    pub score: f32,
}

impl LanguageScore {
    /// A decode whisper itself would reject: the reference fallback's two tests, a mean token
    /// log-probability under [`FAILED_DECODE`], or a run-away (its compression-ratio test).
    pub fn rejected(&self) -> bool {
        self.looped || self.avg_logprob < FAILED_DECODE
    }
}

/// How the language of one decode is to be chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decide<'a> {
    /// Already settled for this utterance (forced, or by an earlier partial).
    Settled(&'a str),
    /// Whisper's detection only: one decode (partials, which come every half second).
    Detect,
    /// Detection, and when it is not sure, decode as each candidate and keep the better.
    Full,
}

/// Detection of the primary language, when it is also the favoured one (the conversation's,
/// else the primary), at or above this probability (normalised over the configured
/// languages) is taken without decoding the others. Detection of any other language is always
/// checked by decoding: whisper base labels Arabic as English with p ≥ 0.99 on 12 of the clip
/// set's 16 Arabic clips (docs/benchmarks.md).
pub const SURE_DETECTION: f32 = 0.97;
/// Decodes whose scores differ by less than this are a tie, broken by the conversation's
/// language, else the primary.
pub const TIE_MARGIN: f32 = 0.1;
/// Weight of script consistency in a decode's score (log-probability units per unit share):
/// a decode forced into one language that comes out in another's script says which language
/// was spoken.
const SCRIPT_WEIGHT: f32 = 1.0;
/// Weight of tokens per word beyond what the language's real words take: whisper forced into
/// English on Arabic speech often transliterates ("Aya-ra-ramu-mak-tami…", 30 tokens a word),
/// which its log-probability alone does not show (−0.08 there).
const LEXICAL_WEIGHT: f32 = 1.0;
/// What a runaway decode (a collapsed repetition loop, or the token budget reached) loses in
/// the decision: whisper base forced into the wrong language on noisy speech loops over an
/// invented clause ("We will not be able to touch the limit," three times) at a log-probability
/// better than the right language's.
const LOOP_PENALTY: f32 = 1.0;

/// Whisper tokens a written word of `lang` takes at most, typically (English words are mostly
/// one token; Arabic words two to six in whisper's byte-level vocabulary, more with clitics:
/// only an absurd count counts against Arabic).
fn typical_tokens_per_word(lang: &str) -> f32 {
    match lang {
        "en" => 1.5,
        "ar" => 8.0,
        _ => 2.0,
    }
}

/// A decode's score for the language decision: its mean token log-probability, less what its
/// script and its word shapes say against it.
pub fn decode_score(lang: &str, avg_logprob: f32, script: f32, tokens_per_word: f32, looped: bool) -> f32 {
    avg_logprob + SCRIPT_WEIGHT * (script - 1.0)
        - LEXICAL_WEIGHT * (tokens_per_word - typical_tokens_per_word(lang)).max(0.0)
        - if looped { LOOP_PENALTY } else { 0.0 }
}

/// A decode whose mean token log-probability is under this is one whisper itself rejects (the
/// reference's test for a failed decode, the fallback's −1.0).
pub const FAILED_DECODE: f32 = -1.0;

/// Which of two decodes (the two likeliest languages) wins, and how it was decided: the
/// better score by [`TIE_MARGIN`] or more ("decoded"); else the favoured language (the
/// conversation's: "continued", or the primary: "primary").
///
/// A language other than the primary does not win on a decode whisper itself rejects
/// ([`FAILED_DECODE`]) while the primary's decode has words, mostly in its own script, and did
/// not run away: the better of two failed decodes is no evidence that the person did not speak
/// the primary language (whisper base, forced into English on noisy Arabic, invents fluent
/// English at −1.3: "I know that the moon will look at the sea"), and neither is a tie the
/// conversation's language would break (live, ar-passport after two English questions: English
/// −1.29 against Arabic −1.38). Evidence against the primary still counts: forced into Arabic,
/// whisper writing Latin letters ("m rate ID") or looping. On part of an utterance, a loop in
/// the other language's decode does not hand the primary the choice (en-passport's first 1.5 s
/// loops in English and is English); it keeps the choice from settling the utterance
/// ([`LanguageChoice::settles`]). On the `whole` utterance, where no later decode will decide
/// again, it does (live, ar-passport after two English questions: English looped at −0.38,
/// tied with Arabic at −1.38, was kept, then resampled for 3.8 s).
pub fn choose(decoded: &[LanguageScore], favoured: &str, primary: &str, continued: bool, whole: bool) -> (usize, &'static str) {
    let (a, b) = (&decoded[0], &decoded[1]);
    let position = |lang: &str| decoded.iter().position(|d| d.lang == lang);
    let (pick, how) = if (a.score.is_finite() || b.score.is_finite()) && (a.score - b.score).abs() >= TIE_MARGIN {
        (usize::from(b.score > a.score), "decoded")
    } else {
        (position(favoured).unwrap_or(0), if continued { "continued" } else { "primary" })
    };
    let other = &decoded[pick];
    let failed = other.lang != primary && if whole { other.rejected() } else { other.avg_logprob < FAILED_DECODE };
    // The primary's own decode, unless it says something against the primary.
    let standing = position(primary).filter(|&p| decoded[p].score.is_finite() && decoded[p].script >= 0.5 && !decoded[p].looped);
    match standing {
        Some(p) if failed => (p, "primary"),
        _ => (pick, how),
    }
}

/// Whether `text` repeats the prompt rather than the speech (a term: what lies between its
/// commas, of two words or more, or one word of five letters or more): one term twice, or
/// two terms the prompt lists one after the other said one after the other (at most one word
/// between), as whisper copies a prompt. Terms a person named apart ("to Amman Street from
/// Stadium") are what the prompt is for.
pub fn echoes_prompt(text: &str, prompt: &str) -> bool {
    let text = normalize_for_matching(text);
    let said: Vec<&str> = text.split_whitespace().collect();
    let terms: Vec<String> = prompt
        .split([',', '،', '.', '؛', ';'])
        .map(normalize_for_matching)
        .filter(|t| {
            let n = t.split_whitespace().count();
            n > 1 || (n == 1 && t.trim().chars().count() >= 5)
        })
        .collect();
    // Where each term was said: (first word, past its last word, the term's place in the prompt).
    let mut hits: Vec<(usize, usize, usize)> = Vec::new();
    for (k, term) in terms.iter().enumerate() {
        let words: Vec<&str> = term.split_whitespace().collect();
        let at: Vec<usize> = said.windows(words.len()).enumerate().filter(|(_, w)| *w == words.as_slice()).map(|(i, _)| i).collect();
        if at.len() >= 2 {
            return true;
        }
        hits.extend(at.into_iter().map(|i| (i, i + words.len(), k)));
    }
    hits.sort_unstable();
    hits.windows(2).any(|h| h[1].0 >= h[0].1 && h[1].0 - h[0].1 <= 1 && h[1].2 == h[0].2 + 1)
}

/// The share of `text`'s letters written in `lang`'s script (Arabic for `ar`, Latin
/// otherwise); 0 when it has no letters.
pub fn script_share(text: &str, lang: &str) -> f32 {
    // Letters only: Arabic's vowel marks are "alphabetic" to Unicode, and a fully vowelled
    // Arabic decode would otherwise count as half foreign.
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic() && !('\u{064B}'..='\u{065F}').contains(c) && *c != '\u{0670}').collect();
    if letters.is_empty() {
        return 0.0;
    }
    let ours = letters.iter().filter(|c| if lang == "ar" { crate::text::is_arabic_letter(**c) } else { c.is_ascii_alphabetic() }).count();
    ours as f32 / letters.len() as f32
}

/// `text` without the letters of scripts neither Arabic nor Latin, for a decode in Arabic or
/// English (None when it has none, or the language is another): whisper base now and then
/// puts a token of another script in an Arabic decode (a katakana "ラ" among the words),
/// which nobody said and no caption or LLM should get. Both of our scripts stay, since people
/// mix the two languages in one sentence.
pub fn without_stray_script(text: &str, lang: &str) -> Option<String> {
    if !text.chars().any(|c| is_stray_letter(c, lang)) {
        return None;
    }
    let kept: String = text.chars().filter(|c| !is_stray_letter(*c, lang)).collect();
    Some(kept.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A letter of neither Arabic nor Latin script, in a decode in Arabic or English.
fn is_stray_letter(c: char, lang: &str) -> bool {
    let latin = c.is_ascii_alphabetic() || matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}');
    matches!(lang, "ar" | "en") && c.is_alphabetic() && !latin && !crate::text::is_arabic(c)
}

/// The organisation's own words per language (titles of its knowledge, names of its
/// services and places), most important first: they become whisper's prompt, ahead of the
/// operator's `initial_prompt`. Shared with whoever rebuilds it on reload.
pub type Vocabulary = std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, Vec<String>>>>;

/// Tokens of whisper's prompt the vocabulary and `initial_prompt` may fill together, unless
/// configured (whisper itself keeps at most 223; a longer prompt costs decode time on every
/// final and invites whisper to copy it).
pub const PROMPT_TOKENS: usize = 100;

/// How one decode runs: with the temperature fallback or greedy only, and whether it may be
/// abandoned.
#[derive(Debug, Clone, Copy)]
struct Pass<'a> {
    fallback: bool,
    /// With the language's prompt (the knowledge base's words and `initial_prompt`); the
    /// decodes that decide the language run without it, since a prompt in one language makes
    /// whisper's decode in that language fluent whatever was said.
    prompt: bool,
    interrupt: Option<Interrupt<'a>>,
    /// Detection has encoded this audio: decode on that encoding
    /// ([`WhisperModel::decode_encoded`]) instead of encoding it again.
    encoded: bool,
    /// The utterance's whole audio (a final, or the speculative decode of one): no later decode
    /// will make its language decision again.
    whole: bool,
}

/// A whisper model with the hearing settings applied.
#[derive(Debug)]
pub struct Transcriber {
    model: WhisperModel,
    languages: Vec<String>,
    forced: Option<String>,
    prompt: String,
    vocabulary: Vocabulary,
    prompt_tokens: usize,
    no_speech_threshold: f32,
    short_window: bool,
    temperature_fallback: bool,
    draft: bool,
    fallback_logprob: f32,
    beam_size: usize,
    threads: usize,
    /// The language of the last utterance and the stream sample it ended at: people keep to
    /// one language within a conversation.
    conversation: std::cell::RefCell<Option<(String, u64)>>,
}

/// An utterance that starts within this many samples (10 s) of the last one's end continues
/// its conversation.
pub const CONVERSATION_GAP: u64 = 16_000 * 10;

impl Transcriber {
    pub fn load(config: &HearingConfig) -> Result<Transcriber> {
        Ok(Transcriber {
            model: WhisperModel::load(&config.whisper_model)?,
            languages: config.languages.clone(),
            forced: config.forced_language.clone(),
            prompt: config.initial_prompt.clone(),
            vocabulary: config.vocabulary.clone(),
            prompt_tokens: config.prompt_tokens,
            no_speech_threshold: config.no_speech_threshold,
            short_window: config.short_window,
            temperature_fallback: config.temperature_fallback,
            draft: config.draft,
            fallback_logprob: config.fallback_logprob,
            beam_size: config.beam_size,
            threads: config.threads,
            conversation: std::cell::RefCell::new(None),
        })
    }

    /// Decode in `lang` only (`None`: detect among the configured languages).
    pub fn set_forced_language(&mut self, lang: Option<String>) {
        self.forced = lang;
    }

    /// Encode only the frames an utterance needs (`true`) or whisper's full 30 s window.
    pub fn set_short_window(&mut self, short: bool) {
        self.short_window = short;
    }

    pub fn set_beam_size(&mut self, beam: usize) {
        self.beam_size = beam.max(1);
    }

    pub fn set_temperature_fallback(&mut self, on: bool) {
        self.temperature_fallback = on;
    }

    /// The fallback's log-probability test (see [`HearingConfig::fallback_logprob`]).
    pub fn set_fallback_logprob(&mut self, threshold: f32) {
        self.fallback_logprob = threshold;
    }

    /// The prompt whisper gets when decoding in `lang`: as many of that language's vocabulary
    /// terms as fit in the prompt's tokens (`HearingConfig::prompt_tokens`) beside the
    /// operator's own prompt, which is always kept.
    pub fn prompt_for(&self, lang: &str) -> String {
        let terms = self.vocabulary.read().map(|v| v.get(lang).cloned().unwrap_or_default()).unwrap_or_default();
        let own = self.prompt.trim();
        let budget = self.prompt_tokens.saturating_sub(self.model.token_count(own));
        let separator = if lang == "ar" { "، " } else { ", " };
        let mut words = String::new();
        for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let longer = if words.is_empty() { term.to_string() } else { format!("{words}{separator}{term}") };
            // With the full stop it will end with.
            if self.model.token_count(&format!("{longer}.")) > budget {
                break;
            }
            words = longer;
        }
        if !words.is_empty() {
            words.push('.');
        }
        [words.as_str(), own].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ")
    }

    /// How many of whisper's tokens `text` makes.
    pub fn token_count(&self, text: &str) -> usize {
        self.model.token_count(text)
    }

    /// The primary language: the first configured.
    pub fn primary(&self) -> &str {
        self.languages.first().map_or("ar", String::as_str)
    }

    /// Decodes one utterance whose first sample is stream sample `start`, choosing its
    /// language fully; `None` if it held no words worth passing on.
    pub fn transcribe(&self, id: u64, samples: &[f32], start: u64, end: u64) -> Result<Option<Utterance>> {
        self.transcribe_with(id, samples, start, end, Decide::Full)
    }

    /// As [`Transcriber::transcribe`], with the language decided as `decide` says (a forced
    /// language always wins).
    pub fn transcribe_with(&self, id: u64, samples: &[f32], start: u64, end: u64, decide: Decide<'_>) -> Result<Option<Utterance>> {
        self.transcribe_inner(id, samples, start, end, decide, self.whole(None))
    }

    /// As [`Transcriber::transcribe_with`], abandoned ([`crate::Error::Interrupted`]) between
    /// two of whisper's compute steps once `interrupt` says so: the speculative decode of a
    /// pause, which the speech going on makes stale.
    pub fn transcribe_speculative(
        &self,
        id: u64,
        samples: &[f32],
        start: u64,
        end: u64,
        decide: Decide<'_>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Utterance>> {
        self.transcribe_inner(id, samples, start, end, decide, self.whole(Some(interrupt)))
    }

    /// The pass of a decode of an utterance's whole audio: with the fallback and the prompt.
    fn whole<'a>(&self, interrupt: Option<Interrupt<'a>>) -> Pass<'a> {
        Pass { fallback: self.temperature_fallback, prompt: true, interrupt, encoded: false, whole: true }
    }

    /// As [`Transcriber::transcribe_with`], greedy and without the prompt: for partials, which
    /// are provisional and come every half second (the fallback's resampling and the prompt's
    /// hundred tokens would hold up the final behind them).
    /// `interrupt`, asked between the decoder's steps, abandons the partial
    /// ([`crate::Error::Interrupted`]) when the final is wanted instead.
    pub fn transcribe_partial(
        &self,
        id: u64,
        samples: &[f32],
        start: u64,
        end: u64,
        decide: Decide<'_>,
        interrupt: Option<Interrupt<'_>>,
    ) -> Result<Option<Utterance>> {
        self.transcribe_inner(id, samples, start, end, decide, Pass { fallback: false, prompt: false, interrupt, encoded: false, whole: false })
    }

    fn transcribe_inner(&self, id: u64, samples: &[f32], start: u64, end: u64, decide: Decide<'_>, pass: Pass<'_>) -> Result<Option<Utterance>> {
        let (transcript, choice) = self.decode_choosing(samples, decide, start, pass)?;
        let confidence = transcript.confidence();
        let offset = start as f32 / 16_000.0;
        let lang = transcript.lang.clone();
        let segments: Vec<Segment> = transcript
            .segments
            .into_iter()
            .map(|mut s| {
                if let Some(kept) = without_stray_script(&s.text, &lang) {
                    s.text = kept;
                    for w in &mut s.words {
                        w.text.retain(|c| !is_stray_letter(c, &lang));
                    }
                    s.words.retain(|w| !w.text.trim().is_empty());
                }
                s
            })
            .filter(|s| !s.text.trim().is_empty() && !is_phantom(&s.text, confidence, s.no_speech_probability))
            .map(|mut s| {
                s.start += offset;
                s.end += offset;
                for w in &mut s.words {
                    w.start += offset;
                    w.end += offset;
                }
                s
            })
            .collect();
        if segments.is_empty() {
            return Ok(None);
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        Ok(Some(Utterance { id, start, end, lang: transcript.lang, text, confidence, segments, language: choice }))
    }

    /// `lang`'s prompt if `pass` decodes with one, else none.
    fn prompt_of(&self, lang: &str, pass: Pass<'_>) -> String {
        if pass.prompt { self.prompt_for(lang) } else { String::new() }
    }

    /// Decodes in `lang`, with that language's prompt if `pass.prompt` (and the fallback if
    /// `pass.fallback`).
    fn decode_with(&self, samples: &[f32], lang: &str, pass: Pass<'_>) -> Result<Transcript> {
        let prompt = self.prompt_of(lang, pass);
        self.decode_prompted(samples, lang, &prompt, pass, None)
    }

    /// Decodes in `lang` with `prompt`. With a prompt the decode is greedy: a prompt invites
    /// whisper to copy it or say the utterance again on short audio, and the fallback would
    /// then resample five times with it (seconds, live). A repeat cut out of a prompted decode
    /// leaves its words standing; one that echoes the prompt ([`echoes_prompt`]), reaches the
    /// token budget or fails the fallback's log-probability test gives way to a decode without
    /// it: `unprompted`, if that greedy decode was made already, else a new one, with the
    /// fallback as `pass` says.
    fn decode_prompted(&self, samples: &[f32], lang: &str, prompt: &str, pass: Pass<'_>, unprompted: Option<Transcript>) -> Result<Transcript> {
        let options = DecodeOptions {
            language: Language::Fixed(lang),
            initial_prompt: Some(prompt),
            no_speech_threshold: self.no_speech_threshold,
            short_window: self.short_window,
            temperature_fallback: pass.fallback,
            fallback_logprob: self.fallback_logprob,
            beam_size: self.beam_size,
            threads: self.threads,
            interrupt: pass.interrupt,
            draft: self.draft,
        };
        let decode = |options: &DecodeOptions<'_>| if pass.encoded { self.model.decode_encoded(samples, options) } else { self.model.decode(samples, options) };
        if !prompt.is_empty() {
            let t = decode(&DecodeOptions { temperature_fallback: false, ..options })?;
            if !t.exhausted && t.avg_logprob.is_finite() && t.avg_logprob >= self.fallback_logprob && !echoes_prompt(&t.text(), prompt) {
                return Ok(t);
            }
            tracing::debug!(target: "hiwar::hearing", "the {lang} decode with the prompt echoed it or ran away: taken without it");
        }
        match unprompted {
            Some(t) if !(t.degenerate && pass.fallback) => Ok(t),
            _ => decode(&DecodeOptions { initial_prompt: None, ..options }),
        }
    }

    /// Forgets the conversation's language (a new stream or file, a new visitor).
    pub fn forget_conversation(&self) {
        *self.conversation.borrow_mut() = None;
    }

    /// Forgets everything heard (a visitor's session ended): the conversation's language, and
    /// what whisper keeps of the last utterance ([`crate::whisper::WhisperModel::forget`]).
    pub fn forget(&self) {
        self.forget_conversation();
        self.model.forget();
    }

    /// Records a final utterance's language: the next utterance within [`CONVERSATION_GAP`]
    /// continues its conversation. Only finals with words are remembered (a partial or a
    /// speculative decode may yet change).
    pub fn remember(&self, utterance: &Utterance) {
        *self.conversation.borrow_mut() = Some((utterance.lang.clone(), utterance.end));
    }

    /// The language of the conversation an utterance starting at `start` continues, if any
    /// (the pre-roll may start it a little before the last one's end).
    fn ongoing(&self, start: u64) -> Option<String> {
        let last = self.conversation.borrow();
        let (lang, end) = last.as_ref()?;
        (start.saturating_sub(*end) <= CONVERSATION_GAP && self.languages.contains(lang)).then(|| lang.clone())
    }

    /// Chooses the language and decodes in it.
    fn decode_choosing(&self, samples: &[f32], decide: Decide<'_>, start: u64, pass: Pass<'_>) -> Result<(Transcript, LanguageChoice)> {
        if let Some(lang) = &self.forced {
            return Ok((self.decode_with(samples, lang, pass)?, LanguageChoice { how: "forced", sure: true, ..LanguageChoice::default() }));
        }
        let decide = match decide {
            Decide::Settled(lang) if self.languages.iter().any(|l| l == lang) => {
                // On hiwar's decoder, which stops a prompted decode that begins the utterance
                // again, and checks the utterance's last decode as a draft (whisper_full takes
                // the same steps, but one decoder call per token).
                let prompt = self.prompt_of(lang, pass);
                let pass = Pass { encoded: true, ..pass };
                let t = self.decode_prompted(samples, lang, &prompt, pass, None)?;
                return Ok((t, LanguageChoice { how: "settled", sure: true, ..LanguageChoice::default() }));
            }
            Decide::Settled(_) => Decide::Full,
            other => other,
        };
        if samples.is_empty() {
            return Ok((self.decode_with(samples, self.primary(), pass)?, LanguageChoice { how: "primary", ..LanguageChoice::default() }));
        }
        let allowed: Vec<&str> = self.languages.iter().map(String::as_str).collect();
        let width = if self.short_window && samples.len() < 29 * 16_000 { crate::whisper::audio_ctx_for(samples.len()) } else { 0 };
        let raw = self.model.detect_interruptible(samples, &allowed, width, self.threads, pass.interrupt)?;
        // Every decode below reuses detection's encoding of this audio.
        let pass = Pass { encoded: true, ..pass };
        let total: f32 = raw.iter().map(|(_, p)| p).sum();
        let mut detected: Vec<(String, f32)> = raw.iter().map(|(l, p)| (l.to_string(), if total > 0.0 { p / total } else { 0.0 })).collect();
        detected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let Some((top, top_p)) = detected.first().cloned() else {
            return Err(Error::Whisper(format!("none of {allowed:?} is a whisper language")));
        };
        let mut choice = LanguageChoice { detected, ..LanguageChoice::default() };
        // The language that breaks ties: the conversation's, else the primary.
        let ongoing = self.ongoing(start);
        let favoured = ongoing.clone().unwrap_or_else(|| self.primary().to_string());
        // Only a sure call of the primary language is taken on its own: whisper base calls
        // Arabic English with p ≥ 0.99 (12 of the clip set's 16 Arabic clips), so an English
        // call, even in an English conversation, is checked by decoding.
        let sure = top_p >= SURE_DETECTION && top == favoured && top == self.primary();
        if decide == Decide::Detect || sure || choice.detected.len() < 2 {
            let mut t = self.decode_with(samples, &top, pass)?;
            t.lang_probability = top_p;
            choice.how = "detected";
            choice.sure = sure;
            return Ok((t, choice));
        }
        // Not sure: decode as each of the two likeliest, greedily (a degenerate decode is
        // evidence against its language, and the fallback's resampling would cost seconds on
        // the wrong one), keep the better-scoring; the fallback then runs on the winner if its
        // greedy decode was degenerate.
        let mut decodes = Vec::new();
        for (lang, p) in choice.detected.iter().take(2) {
            let mut t = self.decode_with(samples, lang, Pass { fallback: false, prompt: false, ..pass })?;
            t.lang_probability = *p;
            let text = t.text();
            let script = script_share(&text, lang);
            // A decode whose every segment is a phantom has no words: it must not win.
            let confidence = t.confidence();
            let words = t.segments.iter().any(|s| !is_phantom(&s.text, confidence, s.no_speech_probability));
            let n_words = text.split_whitespace().count().max(1);
            let tokens_per_word = t.tokens as f32 / n_words as f32;
            let score = if words { decode_score(lang, t.avg_logprob, script, tokens_per_word, t.looped) } else { f32::NEG_INFINITY };
            choice.decoded.push(LanguageScore { lang: lang.clone(), avg_logprob: t.avg_logprob, script, tokens_per_word, looped: t.looped, score });
            decodes.push(t);
        }
        let (winner, how) = choose(&choice.decoded, &favoured, self.primary(), ongoing.is_some(), pass.whole);
        // Another language on a decode whisper rejects, while the primary's decode came out in
        // the primary's script (one in the other's letters is evidence for the other): a
        // partial leaves the choice to more audio.
        let primary_script = choice.decoded.iter().any(|d| d.lang == self.primary() && d.script >= 0.5);
        choice.doubtful = choice.decoded[winner].lang != self.primary() && choice.decoded[winner].rejected() && primary_script;
        choice.how = how;
        choice.sure = how == "decoded";
        tracing::debug!(target: "hiwar::hearing", "{:.1} s of audio at {:.1} s: {}", samples.len() as f32 / 16_000.0, start as f32 / 16_000.0, choice.summary(&choice.decoded[winner].lang));
        let mut transcript = decodes.swap_remove(winner);
        // The winner again with its language's prompt, if it has one (the decision ran without),
        // or with the fallback if its greedy decode ran away.
        let lang = &choice.decoded[winner].lang;
        let prompt = self.prompt_of(lang, pass);
        if !prompt.is_empty() || (transcript.degenerate && pass.fallback) {
            let p = transcript.lang_probability;
            transcript = self.decode_prompted(samples, lang, &prompt, pass, Some(transcript))?;
            transcript.lang_probability = p;
        }
        Ok((transcript, choice))
    }
}

/// Transcribes a whole audio file, streaming: decode → 16 kHz → VAD → one whisper call per
/// utterance. Memory stays bounded by the longest utterance, not the file.
pub fn transcribe_file(path: &Path, config: &HearingConfig, transcriber: &Transcriber) -> Result<Vec<Utterance>> {
    let mut source = super::file::open_audio_file(path)?;
    let mut resampler = super::resample::Resampler::new(source.sample_rate())?;
    transcriber.forget_conversation();
    let mut utterances = Utterances::new(config, transcriber)?;
    while let Some(block) = source.next_block()? {
        let resampled = resampler.push(block)?;
        utterances.push(resampled)?;
    }
    let tail = resampler.finish()?.to_vec();
    utterances.push(&tail)?;
    source.warn_if_damaged();
    utterances.finish()
}

/// As [`transcribe_file`], for 16 kHz samples already in memory.
pub fn transcribe_samples(samples: &[f32], config: &HearingConfig, transcriber: &Transcriber) -> Result<Vec<Utterance>> {
    transcriber.forget_conversation();
    let mut utterances = Utterances::new(config, transcriber)?;
    for block in samples.chunks(16_000) {
        utterances.push(block)?;
    }
    utterances.finish()
}

/// Keeps an ended utterance's audio (with its tail), start and last voiced sample.
fn keep_ended(l: &Listener, b: Boundary, out: &mut Vec<(Vec<f32>, u64, u64)>) {
    if let Boundary::Ended { start, last_voiced, .. } = b {
        out.push((l.audio(start, last_voiced + TAIL_SAMPLES).to_vec(), start, last_voiced));
    }
}

/// VAD → one whisper call per utterance, over 16 kHz blocks.
struct Utterances<'t> {
    listener: Listener,
    transcriber: &'t Transcriber,
    out: Vec<Utterance>,
    failure: Option<Error>,
    next_id: u64,
}

impl<'t> Utterances<'t> {
    fn new(config: &HearingConfig, transcriber: &'t Transcriber) -> Result<Utterances<'t>> {
        let vad = super::vad::SileroVad::load(&config.vad_model)?;
        Ok(Utterances { listener: Listener::new(vad, config.segmenter), transcriber, out: Vec::new(), failure: None, next_id: 0 })
    }

    fn decode(&mut self, (audio, start, last_voiced): (Vec<f32>, u64, u64)) {
        if self.failure.is_some() {
            return;
        }
        match self.transcriber.transcribe(self.next_id, &audio, start, last_voiced) {
            Ok(Some(u)) => {
                self.transcriber.remember(&u);
                self.out.push(u);
            }
            Ok(None) => {}
            Err(e) => self.failure = Some(e),
        }
        self.next_id += 1;
    }

    fn push(&mut self, block: &[f32]) -> Result<()> {
        let mut ended = Vec::new();
        self.listener.push(block, |l: &Listener, b: Boundary| keep_ended(l, b, &mut ended))?;
        for e in ended {
            self.decode(e);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Utterance>> {
        let mut ended = Vec::new();
        self.listener.finish(|l: &Listener, b: Boundary| keep_ended(l, b, &mut ended))?;
        for e in ended {
            self.decode(e);
        }
        match self.failure {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{echoes_prompt, is_phantom};

    #[test]
    fn script_share_counts_letters_not_vowel_marks() {
        assert_eq!(super::script_share("مَتَى يُغْلَقُ المَرْكَزُ", "ar"), 1.0);
        assert_eq!(super::script_share("Where can I pay?", "en"), 1.0);
        assert_eq!(super::script_share("أبغى أجدد Emirates ID", "ar"), 8.0 / 18.0);
        assert_eq!(super::script_share("", "ar"), 0.0);
    }

    #[test]
    fn the_decision_prefers_the_decode_whose_words_are_words() {
        use super::decode_score;
        // Recorded from whisper base on the clip set (ar-office.wav, espeak-ng Arabic): forced
        // into English it transliterates at a better log-probability than the Arabic decode.
        let english = decode_score("en", -0.08, 1.0, 30.0, false);
        let arabic = decode_score("ar", -0.89, 0.96, 3.4, false);
        assert!(arabic > english, "{arabic} vs {english}");
        // en-office.wav: the Arabic decode came out in Latin letters.
        assert!(decode_score("en", -0.12, 1.0, 1.2, false) > decode_score("ar", -0.18, 0.02, 1.1, false));
        // Noisy Arabic, forced into English: an invented clause three times over, at a better
        // log-probability than the Arabic decode (ar-emirates-id-renewal at 20 dB SNR).
        assert!(decode_score("ar", -0.95, 1.0, 3.0, false) > decode_score("en", -0.45, 1.0, 1.1, true));
    }

    /// A decode's scores as the decision records them.
    fn scored(lang: &str, avg_logprob: f32, script: f32, tokens_per_word: f32, looped: bool) -> super::LanguageScore {
        let score = super::decode_score(lang, avg_logprob, script, tokens_per_word, looped);
        super::LanguageScore { lang: lang.into(), avg_logprob, script, tokens_per_word, looped, score }
    }

    #[test]
    fn another_language_does_not_win_on_a_decode_whisper_rejects() {
        use super::choose;
        // Recorded from whisper base on the clip set. ar-traffic-fine at 20 dB SNR: the English
        // decode ("I know that the moon will look at the sea…") scored better, at −1.32.
        let invented = [scored("en", -1.32, 1.0, 1.0, false), scored("ar", -1.44, 1.0, 3.7, false)];
        assert_eq!(choose(&invented, "ar", "ar", false, true), (1, "primary"));
        // …also within an English conversation: the primary is Arabic.
        assert_eq!(choose(&invented, "en", "ar", true, true), (1, "primary"));
        // en-traffic-fine at 20 dB: English heard plainly wins as before.
        let english = [scored("en", -0.46, 1.0, 1.0, false), scored("ar", -1.50, 1.0, 3.2, false)];
        assert_eq!(choose(&english, "ar", "ar", false, true), (0, "decoded"));
        // mixed-emirates-id's English tail: forced into Arabic, whisper wrote Latin letters.
        let latin = [scored("en", -1.31, 1.0, 1.0, false), scored("ar", -1.56, 0.0, 1.0, false)];
        assert_eq!(choose(&latin, "ar", "ar", false, true), (0, "decoded"));
        // mixed-apple-pay at 20 dB: the Arabic decode looped.
        let looped = [scored("en", -1.17, 1.0, 1.0, false), scored("ar", -0.38, 1.0, 2.7, true)];
        assert_eq!(choose(&looped, "ar", "ar", false, true), (0, "decoded"));
        // An Arabic win on a failed decode stands (the rule protects the primary only).
        let arabic = [scored("en", -1.68, 1.0, 2.2, false), scored("ar", -1.34, 1.0, 4.2, false)];
        assert_eq!(choose(&arabic, "en", "ar", true, true), (1, "decoded"));
        // Too close to call: the conversation's language, else the primary.
        let close = [scored("en", -0.70, 1.0, 1.0, false), scored("ar", -0.75, 1.0, 3.0, false)];
        assert_eq!(choose(&close, "en", "ar", true, true), (0, "continued"));
        assert_eq!(choose(&close, "ar", "ar", false, true), (1, "primary"));
        // …unless the conversation's language decoded as whisper rejects: live, ar-passport after
        // two English questions (English −1.29, Arabic −1.38) was answered in English.
        let tied = [scored("en", -1.29, 1.0, 1.0, false), scored("ar", -1.38, 1.0, 3.2, false)];
        assert_eq!(choose(&tied, "en", "ar", true, true), (1, "primary"));
        // A tie the primary's decode cannot stand in (Latin letters) stays the conversation's.
        let latin_tie = [scored("en", -1.29, 1.0, 1.0, false), scored("ar", -0.30, 0.0, 1.0, false)];
        assert_eq!(choose(&latin_tie, "en", "ar", true, true), (0, "continued"));
    }

    #[test]
    fn a_choice_of_another_language_on_a_rejected_decode_does_not_settle_the_utterance() {
        use super::{LanguageChoice, choose};
        // Recorded from whisper base. A loop in English is not, alone, Arabic: en-passport's
        // first 1.5 s loops in English, and it is English. ar-passport's first 1.8 s loops in
        // English too ("I don't touch it, I don't want to"), and live, its first 1.5 s looped
        // in both: English is chosen for that decode, but it must not settle the utterance.
        let looped = [scored("en", -0.49, 1.0, 1.0, true), scored("ar", -1.45, 1.0, 5.0, false)];
        assert_eq!(choose(&looped, "en", "ar", true, false), (0, "continued"));
        let both = [scored("en", -0.38, 1.0, 1.5, true), scored("ar", -0.45, 1.0, 3.7, true)];
        assert_eq!(choose(&both, "en", "ar", true, false), (0, "continued"));
        assert!(both[0].rejected() && looped[0].rejected() && !looped[1].looped);
        // On the whole utterance, nothing decides after it: the standing primary is taken.
        assert_eq!(choose(&looped, "en", "ar", true, true), (1, "primary"));
        assert_eq!(choose(&both, "en", "ar", true, true), (0, "continued"), "the primary's decode looped too");
        assert!(LanguageChoice::default().settles(), "detection alone, or a forced or settled language, stands");
    }

    #[test]
    fn a_decode_that_repeats_the_prompt_is_an_echo() {
        let prompt = "Opening hours and times, Renewing an Emirates ID, Amman Street, Al Nahda Park, Stadium, Green Line.";
        assert!(echoes_prompt("Al Nahda Park, Stadium, Green Line,", prompt));
        assert!(echoes_prompt("Amman Street, Amman Street.", prompt), "one term twice");
        assert!(echoes_prompt("Opening hours and times and renewing an Emirates ID", prompt), "the prompt's next term, one word between");
        assert!(!echoes_prompt("How do I get to Amman Street from Stadium metro station?", prompt), "a real question naming two terms");
        assert!(!echoes_prompt("Stadium, Amman Street", prompt), "two terms, not in the prompt's order");
        assert!(!echoes_prompt("I want to renew my Emirates ID on Amman Street", prompt), "one term is what the prompt is for");
        let ar = "مواعيد العمل، تجديد بطاقة الهوية الإماراتية (Emirates ID)، تجديد جواز السفر.";
        assert!(echoes_prompt("تجديد جواز السفر، تجديد جواز السفر", ar));
        assert!(!echoes_prompt("أريد تجديد جواز السفر", ar));
    }

    #[test]
    fn letters_of_a_third_script_leave_an_arabic_or_english_decode() {
        use super::without_stray_script;
        assert_eq!(without_stray_script("أبغى أجدد ラ الجواز", "ar").as_deref(), Some("أبغى أجدد الجواز"));
        assert_eq!(without_stray_script("مكتبラ البلدية", "ar").as_deref(), Some("مكتب البلدية"));
        assert_eq!(without_stray_script("Где my passport", "en").as_deref(), Some("my passport"));
        // Both of our scripts, digits, punctuation and vowel marks stay untouched.
        assert_eq!(without_stray_script("أبغى أجدد الـ Emirates ID حقي، 0501234567؟", "ar"), None);
        assert_eq!(without_stray_script("مَدْرَسَةٌ café", "ar"), None);
        // Another configured language keeps its own script.
        assert_eq!(without_stray_script("Где паспорт", "ru"), None);
        assert_eq!(without_stray_script("ラ", "ar").as_deref(), Some(""));
    }

    #[test]
    fn phantoms_are_dropped_and_real_short_answers_kept() {
        assert!(is_phantom("اشتركوا في القناة", 0.9, 0.0));
        assert!(is_phantom(" Thanks for watching!", 0.95, 0.0));
        assert!(is_phantom("", 0.9, 0.0));
        assert!(is_phantom(" you", 0.3, 0.0), "unsure 'you' on silence");
        assert!(!is_phantom(" Thank you.", 0.9, 0.01), "a confident thank-you is real");
        assert!(!is_phantom("أبغى أجدد الـ Emirates ID", 0.5, 0.1));
    }
}
