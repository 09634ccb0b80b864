//! Piper (VITS) voices on ONNX Runtime, with per-phoneme timing from the model's own
//! duration predictor (see `onnx_patch`).

use std::collections::HashMap;
use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use crate::espeak::Phonemizer;
use crate::{Error, Result};

/// Samples per duration frame in Piper voices (the vocoder's hop).
const HOP: u64 = 256;
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

#[derive(Debug, Deserialize)]
struct VoiceJson {
    audio: AudioJson,
    espeak: EspeakJson,
    inference: InferenceJson,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
}

#[derive(Debug, Deserialize)]
struct AudioJson {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakJson {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceJson {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// What a voice's `.onnx.json` says.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub sample_rate: u32,
    pub espeak_voice: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    ids: HashMap<char, Vec<i64>>,
}

impl VoiceConfig {
    pub fn read(path: &Path) -> Result<VoiceConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let json: VoiceJson = serde_json::from_str(&text).map_err(|e| Error::bad(path, "Piper voice config", e.to_string()))?;
        let mut ids = HashMap::new();
        for (symbol, id) in json.phoneme_id_map {
            let mut chars = symbol.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                ids.insert(c, id);
            }
        }
        for required in [BOS, EOS, PAD, ' '] {
            if !ids.contains_key(&required) {
                return Err(Error::bad(path, "Piper voice config", format!("phoneme_id_map lacks `{required}`")));
            }
        }
        Ok(VoiceConfig {
            sample_rate: json.audio.sample_rate,
            espeak_voice: json.espeak.voice,
            noise_scale: json.inference.noise_scale,
            length_scale: json.inference.length_scale,
            noise_w: json.inference.noise_w,
            num_speakers: json.num_speakers,
            ids,
        })
    }
}

/// One phoneme as spoken: its symbol and the output samples it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedPhoneme {
    pub phoneme: String,
    pub start: u64,
    pub end: u64,
}

/// One spoken word and the samples it occupies, with the word as the answer wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimedWord {
    /// As spoken (normalised: «مئتان», «ال»).
    pub word: String,
    pub start: u64,
    pub end: u64,
    /// As written in the answer ("250", «الـ»); spoken words that say one written word share it.
    pub written: String,
    /// This word says the same written word as the one before it (the caption shows it once).
    pub joined: bool,
}

/// A written word and the samples its spoken words occupy: what captions light.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenWord {
    pub text: String,
    pub start: u64,
    pub end: u64,
}

/// Synthesised speech and when each sound in it is heard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speech {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
    pub phonemes: Vec<TimedPhoneme>,
    pub words: Vec<TimedWord>,
}

impl Speech {
    /// The same speech at `rate`, its timeline converted to the new sample positions.
    pub fn resampled(self, rate: u32) -> Result<Speech> {
        if rate == self.sample_rate || self.sample_rate == 0 {
            return Ok(self);
        }
        let mut r = crate::hearing::Resampler::between(self.sample_rate, rate)?;
        let mut samples = r.push(&self.samples)?.to_vec();
        samples.extend_from_slice(r.finish()?);
        let at = |p: u64| p * u64::from(rate) / u64::from(self.sample_rate);
        Ok(Speech {
            sample_rate: rate,
            samples,
            phonemes: self.phonemes.into_iter().map(|p| TimedPhoneme { start: at(p.start), end: at(p.end), ..p }).collect(),
            words: self.words.into_iter().map(|w| TimedWord { start: at(w.start), end: at(w.end), ..w }).collect(),
        })
    }

    /// The written words with the time their spoken words take ("250" for «مئتان وخمسون»),
    /// tashkeel the voice did not need removed unless `marks`.
    pub fn written_words(&self, marks: bool) -> Vec<WrittenWord> {
        let mut out: Vec<WrittenWord> = Vec::new();
        for w in &self.words {
            let text = if w.written.is_empty() { &w.word } else { &w.written };
            match out.last_mut() {
                Some(last) if w.joined => last.end = w.end,
                _ => out.push(WrittenWord {
                    text: if marks { text.clone() } else { text.chars().filter(|c| !super::is_tashkeel(*c)).collect() },
                    start: w.start,
                    end: w.end,
                }),
            }
        }
        out
    }

    /// Appends `other` (at the same rate), shifting its timeline to follow this speech.
    pub fn append(&mut self, other: Speech) {
        let offset = self.samples.len() as u64;
        self.samples.extend(other.samples);
        self.phonemes.extend(other.phonemes.into_iter().map(|p| TimedPhoneme { start: p.start + offset, end: p.end + offset, ..p }));
        self.words.extend(other.words.into_iter().map(|w| TimedWord { start: w.start + offset, end: w.end + offset, ..w }));
    }
}

/// A loaded Piper voice with its espeak-ng phonemizer.
pub struct PiperVoice {
    session: Session,
    pub config: VoiceConfig,
    durations: Option<String>,
    phonemizer: Phonemizer,
    /// The model file, for errors.
    origin: std::path::PathBuf,
    /// How this voice says Arabic (see [`super::Accent`]; `voice.english_accent`); None says
    /// hiwar's IPA as it is, as a voice trained on Arabic needs.
    pub accent: Option<super::Accent>,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice").field("config", &self.config).field("durations", &self.durations).finish_non_exhaustive()
    }
}

impl PiperVoice {
    /// Loads `model` (with `model.json` beside it); ONNX Runtime must be loaded first.
    pub fn load(model: &Path, name: &str) -> Result<PiperVoice> {
        let json = {
            let mut p = model.as_os_str().to_owned();
            p.push(".json");
            std::path::PathBuf::from(p)
        };
        if !model.is_file() || !json.is_file() {
            let missing = if model.is_file() { json } else { model.to_path_buf() };
            return Err(Error::ModelMissing { name: name.into(), path: missing, fix: format!("hiwar models fetch {name}") });
        }
        let config = VoiceConfig::read(&json)?;
        let bytes = std::fs::read(model).map_err(Error::io(model))?;
        let durations = super::onnx_patch::duration_output(&bytes).map_err(|e| Error::bad(model, "Piper voice", e.to_string()))?;
        let bytes = match &durations {
            Some(output) => super::onnx_patch::add_graph_output(&bytes, output)?,
            None => bytes,
        };
        let session = crate::onnx::session_from_memory(&bytes, 2, model)?;
        let phonemizer = Phonemizer::new(&config.espeak_voice)?;
        Ok(PiperVoice { session, config, durations, phonemizer, origin: model.to_path_buf(), accent: None })
    }

    /// Speaks `text` in one synthesis (the streaming chunker keeps texts short; one call per
    /// chunk costs less than one per clause). Arabic spans are diacritised (when a
    /// diacritiser is given) and phonemised by hiwar's own rules; other spans by espeak-ng in
    /// the voice's language; the clauses' punctuation stays in the phonemes, where the voice
    /// makes its pauses; one timeline covers it all.
    pub fn speak(&mut self, text: &str, diacritizer: Option<&mut super::Diacritizer>) -> Result<Speech> {
        let normalized = super::normalize(text);
        let mut speech = self.speak_normalized(&normalized.text, diacritizer)?;
        attach_written(&mut speech.words, &normalized);
        raise_quiet(&mut speech.samples, speech.sample_rate);
        Ok(speech)
    }

    fn speak_normalized(&mut self, text: &str, mut diacritizer: Option<&mut super::Diacritizer>) -> Result<Speech> {
        let (mut all_text, mut all_ipa) = (Vec::new(), String::new());
        let mut has_arabic = false;
        let marked = super::arabic::marked_spans(text, diacritizer.as_deref_mut())?;
        for (k, (clause, punct)) in split_clauses(text).into_iter().enumerate() {
            let mut parts = Vec::new();
            for (j, (arabic, span)) in script_spans(&clause).into_iter().enumerate() {
                if arabic {
                    has_arabic = true;
                    let starts = k == 0 && parts.is_empty();
                    let ipa = super::arabic::clause_span_to_ipa(marked.as_ref(), (k, j), &span, diacritizer.as_deref_mut(), starts)?;
                    parts.push(match &self.accent {
                        Some(accent) => accent.render(&ipa),
                        None => ipa,
                    });
                } else {
                    parts.push(self.phonemizer.phonemize(&span)?);
                }
            }
            let ipa = parts.into_iter().filter(|p| !p.trim().is_empty()).collect::<Vec<_>>().join(" ");
            if ipa.trim().is_empty() {
                continue;
            }
            if !all_ipa.is_empty() {
                all_ipa.push(' ');
            }
            all_ipa.push_str(&ipa);
            all_ipa.extend(punct);
            all_text.push(clause);
        }
        if all_ipa.is_empty() {
            return Ok(Speech { sample_rate: self.config.sample_rate, ..Speech::default() });
        }
        // Arabic through an English voice is said at the accent's pace.
        let pace = self.accent.as_ref().filter(|_| has_arabic).map_or(1.0, |a| a.pace);
        let own = self.config.length_scale;
        self.config.length_scale = own * pace;
        let speech = self.synthesize(&all_text.join(" "), &all_ipa, None);
        self.config.length_scale = own;
        speech
    }

    /// Synthesises one clause from its IPA (words separated by spaces).
    pub fn synthesize(&mut self, clause: &str, ipa: &str, punct: Option<char>) -> Result<Speech> {
        let ids_of = |c: char| self.config.ids.get(&c).cloned().unwrap_or_default();
        let pad = ids_of(PAD);
        let mut symbols: Vec<char> = ipa.chars().filter(|c| self.config.ids.contains_key(c)).collect();
        if let Some(p) = punct.filter(|p| self.config.ids.contains_key(p)) {
            symbols.push(p);
        }
        let mut ids = ids_of(BOS);
        ids.extend(&pad);
        for &c in &symbols {
            ids.extend(ids_of(c));
            ids.extend(&pad);
        }
        ids.extend(ids_of(EOS));
        let n = ids.len();
        let onnx = |e: ort::Error| Error::Onnx(format!("voice: {e}"));
        let input = Tensor::from_array(([1usize, n], ids)).map_err(onnx)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(onnx)?;
        let c = &self.config;
        let scales = Tensor::from_array(([3usize], vec![c.noise_scale, c.length_scale, c.noise_w])).map_err(onnx)?;
        let outputs = if c.num_speakers > 1 {
            let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(onnx)?;
            self.session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales, "sid" => sid])
        } else {
            self.session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
        }
        .map_err(onnx)?;
        let (_, audio) = outputs["output"].try_extract_tensor::<f32>().map_err(onnx)?;
        let samples = audio.to_vec();
        // A model damaged inside still runs, and what it makes is noise: never play that.
        if let Some(why) = noise(&samples) {
            return Err(Error::bad(
                &self.origin,
                "Piper voice",
                format!("what it synthesised is noise, not speech ({why}): the model file is damaged; fetch it again"),
            ));
        }
        let frames: Option<Vec<f32>> = match &self.durations {
            Some(name) => Some(outputs[name.as_str()].try_extract_tensor::<f32>().map_err(onnx)?.1.to_vec()),
            None => None,
        };
        let mut speech = Speech { sample_rate: self.config.sample_rate, samples, ..Speech::default() };
        if let Some(frames) = frames.filter(|f| f.len() == n) {
            speech.phonemes = timeline(&symbols, &frames);
            snap_pauses(&mut speech.phonemes, &speech.samples, self.config.sample_rate);
            speech.words = words(clause, ipa, &speech.phonemes);
        }
        Ok(speech)
    }

    /// A handle on this voice's espeak-ng process (see [`crate::espeak::Helper`]).
    pub fn helper(&self) -> crate::espeak::Helper {
        self.phonemizer.helper()
    }

    /// IPA for non-Arabic text, from this voice's espeak-ng worker.
    pub fn phonemize(&mut self, text: &str) -> Result<String> {
        self.phonemizer.phonemize(text)
    }

    /// Whether this voice reports exact phoneme timing.
    pub fn has_timing(&self) -> bool {
        self.durations.is_some()
    }
}

/// Phoneme spans from per-id frame counts: each phoneme owns its own frames and the pad after
/// it; the leading BOS+pad and the trailing EOS are silence.
fn timeline(symbols: &[char], frames: &[f32]) -> Vec<TimedPhoneme> {
    let at = |i: usize| -> u64 { frames[..i].iter().map(|f| f.max(0.0) as u64).sum::<u64>() * HOP };
    let mut out = Vec::with_capacity(symbols.len() + 2);
    out.push(TimedPhoneme { phoneme: "_".into(), start: 0, end: at(2) });
    for (k, c) in symbols.iter().enumerate() {
        out.push(TimedPhoneme { phoneme: c.to_string(), start: at(2 + 2 * k), end: at(4 + 2 * k) });
    }
    let end = at(frames.len());
    let last = out.last().map_or(0, |p| p.end);
    out.push(TimedPhoneme { phoneme: "_".into(), start: last, end });
    merge_marks(out)
}

/// Whether a timeline entry is a pause (padding or punctuation) rather than a sound.
fn is_pause(p: &str) -> bool {
    p.chars().all(|c| c == '_' || c == ' ' || c.is_ascii_punctuation() || matches!(c, '،' | '؛' | '؟' | '…' | '—' | '–'))
}

/// The active level a chunk is raised to when it is quieter (dBFS; see
/// [`crate::audio::active_level`]): en_US-joe's own level on English sentences.
const LEVEL_DBFS: f64 = -24.0;
/// The most a chunk is raised (dB), and the peak it may not pass (dBFS).
const MAX_RAISE_DB: f64 = 6.0;
const PEAK_DBFS: f64 = -1.0;

/// Brings a quiet chunk up to [`LEVEL_DBFS`], so one answer does not fall and rise in loudness
/// from chunk to chunk: the English voice saying Arabic through the accent, whose reduced
/// vowels make some sentences 2–3 dB quieter than its English, is heard as loud. Never
/// lowers, raises by at most [`MAX_RAISE_DB`], never past a [`PEAK_DBFS`] peak.
pub(crate) fn raise_quiet(samples: &mut [f32], sample_rate: u32) {
    let level = crate::audio::active_level(samples, sample_rate);
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if level <= 0.0 || peak <= 0.0 {
        return;
    }
    let db = |x: f64| 10f64.powf(x / 20.0);
    let gain = (db(LEVEL_DBFS) / level).min(db(MAX_RAISE_DB)).min(db(PEAK_DBFS) / f64::from(peak));
    if gain > 1.0 {
        samples.iter_mut().for_each(|s| *s *= gain as f32);
    }
}

/// Why synthesised audio is not speech, if it is not: numbers that are not finite, or much of
/// it at full scale (a Piper voice's speech peaks well below it; 4 KB flipped inside
/// en_US-joe-medium.onnx made 58 % of the samples clip).
pub fn noise(samples: &[f32]) -> Option<String> {
    let non_finite = samples.iter().filter(|s| !s.is_finite()).count();
    if non_finite > 0 {
        return Some(format!("{non_finite} samples are not numbers"));
    }
    let clipped = samples.iter().filter(|s| s.abs() >= 0.99).count();
    let share = clipped as f64 / samples.len().max(1) as f64;
    (samples.len() >= 1_000 && share > 0.02).then(|| format!("{:.0} % of the samples at full scale", share * 100.0))
}

/// Moves the edges of each pause to where the audio really falls silent and starts again.
///
/// The model's durations put a phrase-final vowel's fading tail, and sometimes a little
/// silence, inside the vowel: the face would keep the mouth open after the sound has stopped.
/// An edge moves only through quiet audio (33 dB under the chunk's peak, in 5 ms steps: at
/// 30 dB the mouth closed up to 45 ms before the tail of a phrase had faded, measured from the
/// rendered video) and never past the middle of its neighbour, so sounds keep their order and
/// a length.
fn snap_pauses(phonemes: &mut [TimedPhoneme], samples: &[f32], rate: u32) {
    let hop = (rate as usize / 200).max(1);
    let energy: Vec<f32> = samples.chunks(hop).map(|c| c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).collect();
    let peak = energy.iter().copied().fold(0.0_f32, f32::max);
    if peak <= 0.0 {
        return;
    }
    let quiet = |f: usize| energy.get(f).is_none_or(|e| *e < peak * 10f32.powf(-3.3));
    let frame = |s: u64| (s as usize / hop).min(energy.len());
    let at = |f: usize| (f * hop) as u64;
    for k in 0..phonemes.len() {
        if !is_pause(&phonemes[k].phoneme) || phonemes[k].end <= phonemes[k].start {
            continue;
        }
        let (start, end) = (phonemes[k].start, phonemes[k].end);
        let mid = (start + end) / 2;
        // The left edge: back through quiet audio into the sound before, or on through sound
        // still ringing into the pause.
        if k > 0 {
            let prev_mid = (phonemes[k - 1].start + phonemes[k - 1].end) / 2;
            let mut f = frame(start);
            let new_start = if quiet(f) {
                while f > 0 && at(f - 1) > prev_mid && quiet(f - 1) {
                    f -= 1;
                }
                at(f)
            } else {
                while at(f) < mid && !quiet(f) {
                    f += 1;
                }
                if quiet(f) { at(f) } else { start }
            }
            .clamp(prev_mid + 1, mid.max(prev_mid + 1));
            phonemes[k].start = new_start;
            phonemes[k - 1].end = new_start;
        }
        // The right edge: on through quiet audio into the sound after, or back if it starts
        // early.
        if k + 1 < phonemes.len() {
            let next_mid = (phonemes[k + 1].start + phonemes[k + 1].end) / 2;
            let mut f = frame(end);
            let new_end = if quiet(f.saturating_sub(1)) {
                while at(f + 1) < next_mid && quiet(f) {
                    f += 1;
                }
                at(f)
            } else {
                while at(f) > mid && !quiet(f.saturating_sub(1)) {
                    f -= 1;
                }
                if quiet(f.saturating_sub(1)) { at(f) } else { end }
            }
            .clamp(phonemes[k].start.max(mid), next_mid.max(mid));
            phonemes[k].end = new_end;
            phonemes[k + 1].start = new_end;
        }
    }
}

/// Stress marks (ˈ ˌ) join the sound after them and the length mark (ː) the sound before:
/// they are not sounds of their own, and the face must not see them as such.
fn merge_marks(phonemes: Vec<TimedPhoneme>) -> Vec<TimedPhoneme> {
    let mut out: Vec<TimedPhoneme> = Vec::with_capacity(phonemes.len());
    let mut pending: Option<TimedPhoneme> = None;
    for p in phonemes {
        match p.phoneme.as_str() {
            "ˈ" | "ˌ" => {
                pending = Some(match pending.take() {
                    Some(prev) => TimedPhoneme { phoneme: prev.phoneme + &p.phoneme, start: prev.start, end: p.end },
                    None => p,
                });
            }
            "ː" if out.last().is_some_and(|l| l.phoneme != "_" && l.phoneme != " ") => {
                if let Some(last) = out.last_mut() {
                    last.phoneme.push('ː');
                    last.end = p.end;
                }
            }
            _ => {
                let p = match pending.take() {
                    Some(mark) => TimedPhoneme { phoneme: mark.phoneme + &p.phoneme, start: mark.start, end: p.end },
                    None => p,
                };
                out.push(p);
            }
        }
    }
    out.extend(pending);
    out
}

/// Gives each timed word the written word it says: the spoken words of `normalized` in order,
/// matched by their letters (a clause's words are the normalised text's, less punctuation).
pub fn attach_written(words: &mut [TimedWord], normalized: &super::Normalized) {
    let spoken = normalized.words();
    let key = |w: &str| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    let mut j = 0;
    let mut previous: Option<usize> = None;
    for w in words.iter_mut() {
        let k = key(&w.word);
        let found = spoken.get(j..).and_then(|rest| rest.iter().take(8).position(|(s, _)| key(s) == k));
        let Some(off) = found else {
            w.written = w.word.clone();
            previous = None;
            continue;
        };
        j += off;
        let source = spoken[j].1;
        w.written = source.map_or_else(|| w.word.clone(), |i| normalized.written[i].clone());
        w.joined = source.is_some() && source == previous;
        previous = source;
        j += 1;
    }
}

/// Word spans: the n-th word of the text spans the n-th word of the IPA.
fn words(clause: &str, ipa: &str, phonemes: &[TimedPhoneme]) -> Vec<TimedWord> {
    let text_words: Vec<&str> = clause.split_whitespace().collect();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    for p in phonemes.iter().skip(1) {
        if p.phoneme == " " || p.phoneme == "_" || p.phoneme.chars().all(|c| c.is_ascii_punctuation() || c == '—') {
            if let Some(span) = current.take() {
                spans.push(span);
            }
            continue;
        }
        current = Some(current.map_or((p.start, p.end), |(s, _)| (s, p.end)));
    }
    spans.extend(current);
    let _ = ipa;
    if spans.is_empty() || text_words.is_empty() {
        return Vec::new();
    }
    // espeak sometimes merges or splits words: spread the text's words over the spoken ones.
    text_words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let a = i * spans.len() / text_words.len();
            let b = ((i + 1) * spans.len()).div_ceil(text_words.len()).max(a + 1) - 1;
            TimedWord { word: (*w).to_string(), start: spans[a].0, end: spans[b.min(spans.len() - 1)].1, ..TimedWord::default() }
        })
        .collect()
}

/// Splits a clause into runs of Arabic and of other script, at word boundaries
/// ("أبغى أجدد الـ Emirates ID" → Arabic "أبغى أجدد الـ", other "Emirates ID").
pub fn script_spans(clause: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for word in clause.split_whitespace() {
        let arabic = word.chars().any(crate::text::is_arabic);
        match out.last_mut() {
            Some((a, span)) if *a == arabic => {
                span.push(' ');
                span.push_str(word);
            }
            _ => out.push((arabic, word.to_string())),
        }
    }
    out
}

/// Splits text into clauses at . , ! ? ; : ، ؛ ؟ and newlines (never inside a number such as
/// 3.5 or 1,250), with the punctuation that ended each (Arabic marks mapped to Latin, which
/// the voices know).
pub fn split_clauses(text: &str) -> Vec<(String, Option<char>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = |c: char| matches!(c, '.' | ',') && i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
        let punct = match c {
            '.' | ',' | '!' | '?' | ';' | ':' if !between_digits(c) => Some(c),
            '،' => Some(','),
            '؛' => Some(';'),
            '؟' => Some('?'),
            '\n' => Some('.'),
            _ => None,
        };
        match punct {
            Some(p) => {
                if !current.trim().is_empty() {
                    out.push((current.trim().to_string(), Some(p)));
                }
                current.clear();
            }
            None => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push((current.trim().to_string(), None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_split_at_punctuation_but_not_inside_numbers() {
        let got = split_clauses("The fee is 3.5 dinars, or 1,250 fils. مرحبا، كيف حالك؟ Fine");
        let expected = vec![
            ("The fee is 3.5 dinars".to_string(), Some(',')),
            ("or 1,250 fils".to_string(), Some('.')),
            ("مرحبا".to_string(), Some(',')),
            ("كيف حالك".to_string(), Some('?')),
            ("Fine".to_string(), None),
        ];
        assert_eq!(got, expected);
        assert!(split_clauses("  ...  ").is_empty());
    }

    #[test]
    fn a_quiet_chunk_is_raised_to_the_voices_level_and_a_loud_one_left_alone() {
        let level_db = |s: &[f32]| 20.0 * crate::audio::active_level(s, 22_050).log10();
        let tone = |amp: f32| -> Vec<f32> { (0..22_050).map(|i| (i as f32 * 0.2).sin() * amp).collect() };
        // 4 dB under the level: raised to it.
        let mut quiet = tone(10f32.powf(-28.0 / 20.0) * 2f32.sqrt());
        raise_quiet(&mut quiet, 22_050);
        assert!((level_db(&quiet) - LEVEL_DBFS).abs() < 0.1, "{}", level_db(&quiet));
        // Louder than the level: untouched.
        let loud = tone(0.3);
        let mut same = loud.clone();
        raise_quiet(&mut same, 22_050);
        assert_eq!(same, loud);
        // Far too quiet: raised by 6 dB at most.
        let mut faint = tone(0.001);
        raise_quiet(&mut faint, 22_050);
        assert!((faint.iter().fold(0.0f32, |m, s| m.max(s.abs())) - 0.001 * 2.0).abs() < 1e-4);
        // A quiet level under a loud click: the peak stays under −1 dBFS.
        let mut clicked = tone(0.02);
        clicked[100] = 0.85;
        raise_quiet(&mut clicked, 22_050);
        assert!(clicked.iter().all(|s| s.abs() <= 10f32.powf(-1.0 / 20.0) + 1e-6));
        assert!(clicked[100] > 0.85, "raised up to the peak's limit");
        // Silence stays silence.
        let mut silent = vec![0.0f32; 1000];
        raise_quiet(&mut silent, 22_050);
        assert!(silent.iter().all(|s| *s == 0.0));
    }

    #[test]
    fn mixed_clauses_split_into_script_spans() {
        assert_eq!(
            script_spans("أبغى أجدد الـ Emirates ID حقي"),
            vec![(true, "أبغى أجدد الـ".to_string()), (false, "Emirates ID".to_string()), (true, "حقي".to_string())]
        );
    }

    #[test]
    fn pauses_snap_to_the_silence_in_the_audio() {
        let rate = 22_050;
        // 100 ms of tone, then silence, but the timeline says the vowel lasts 150 ms.
        let mut samples: Vec<f32> = (0..2205).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
        samples.extend(vec![0.0; 4410]);
        samples.extend((0..2205).map(|i| (i as f32 * 0.1).sin() * 0.5));
        let ph = |p: &str, a: u64, b: u64| TimedPhoneme { phoneme: p.into(), start: a, end: b };
        let mut t = vec![ph("aː", 0, 3307), ph(".", 3307, 5000), ph("_", 5000, 6000), ph("a", 6000, 8820)];
        snap_pauses(&mut t, &samples, rate);
        assert!(t[0].end <= 2205 + 110 && t[0].end >= 2205 - 220, "vowel ends at the silence: {t:?}");
        assert!(t[3].start >= 6615 - 220 && t[3].start <= 6615 + 110, "next vowel starts with the sound: {t:?}");
        for w in t.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert!(w[0].start < w[0].end);
        }
        // Silence that is not a pause, and sound in a pause, leave the edges alone.
        let loud: Vec<f32> = (0..8820).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
        let mut t2 = vec![ph("a", 0, 3000), ph(",", 3000, 5000), ph("a", 5000, 8820)];
        snap_pauses(&mut t2, &loud, rate);
        assert_eq!((t2[1].start, t2[1].end), (3000, 5000));
    }

    #[test]
    fn timeline_covers_every_frame_in_order() {
        let symbols = ['h', 'a', 'ɪ'];
        // BOS, PAD, h, PAD, a, PAD, ɪ, PAD, EOS
        let frames = [2.0, 1.0, 3.0, 0.0, 5.0, 1.0, 4.0, 2.0, 3.0];
        let t = timeline(&symbols, &frames);
        assert_eq!(t.first().map(|p| (p.start, p.end)), Some((0, 3 * HOP)));
        assert_eq!(t[1], TimedPhoneme { phoneme: "h".into(), start: 3 * HOP, end: 6 * HOP });
        assert_eq!(t[2], TimedPhoneme { phoneme: "a".into(), start: 6 * HOP, end: 12 * HOP });
        assert_eq!(t.last().map(|p| p.end), Some(21 * HOP), "the whole audio");
        assert!(t.windows(2).all(|w| w[0].end == w[1].start), "contiguous");
    }

    #[test]
    fn stress_and_length_marks_join_their_sounds() {
        let symbols: Vec<char> = "sˈɜːv".chars().collect();
        let frames = vec![1.0; 2 * symbols.len() + 3];
        let t = timeline(&symbols, &frames);
        let names: Vec<&str> = t.iter().map(|p| p.phoneme.as_str()).collect();
        assert_eq!(names, vec!["_", "s", "ˈɜː", "v", "_"]);
        assert!(t.windows(2).all(|w| w[0].end == w[1].start), "still contiguous: {t:?}");
    }
}
