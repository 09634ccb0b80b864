//! Utterance → text: whisper with language restriction, no-speech gating and a filter for
//! the phrases whisper invents on silence and noise.

use std::path::Path;

use super::listener::Listener;
use super::segmenter::Boundary;
use super::{HearingConfig, Utterance};
use crate::text::normalize_for_matching;
use crate::whisper::{DecodeOptions, Language, Segment, WhisperModel};
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

/// A whisper model with the hearing settings applied.
#[derive(Debug)]
pub struct Transcriber {
    model: WhisperModel,
    languages: Vec<String>,
    forced: Option<String>,
    prompt: String,
    no_speech_threshold: f32,
    short_window: bool,
    temperature_fallback: bool,
    threads: usize,
}

impl Transcriber {
    pub fn load(config: &HearingConfig) -> Result<Transcriber> {
        Ok(Transcriber {
            model: WhisperModel::load(&config.whisper_model)?,
            languages: config.languages.clone(),
            forced: config.forced_language.clone(),
            prompt: config.initial_prompt.clone(),
            no_speech_threshold: config.no_speech_threshold,
            short_window: config.short_window,
            temperature_fallback: config.temperature_fallback,
            threads: config.threads,
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

    /// Decodes one utterance whose first sample is stream sample `start`; `None` if it held
    /// no words worth passing on.
    pub fn transcribe(&self, id: u64, samples: &[f32], start: u64, end: u64) -> Result<Option<Utterance>> {
        self.transcribe_with(id, samples, start, end, None)
    }

    /// As [`Transcriber::transcribe`], with a language already detected for this utterance
    /// (`hint`, used unless a language is forced).
    pub fn transcribe_with(&self, id: u64, samples: &[f32], start: u64, end: u64, hint: Option<&str>) -> Result<Option<Utterance>> {
        let allowed: Vec<&str> = self.languages.iter().map(String::as_str).collect();
        let language = match (&self.forced, hint) {
            (Some(lang), _) => Language::Fixed(lang),
            (None, Some(lang)) => Language::Fixed(lang),
            (None, None) => Language::Among(&allowed),
        };
        let options = DecodeOptions {
            language,
            initial_prompt: Some(self.prompt.as_str()),
            no_speech_threshold: self.no_speech_threshold,
            short_window: self.short_window,
            temperature_fallback: self.temperature_fallback,
            threads: self.threads,
        };
        let transcript = self.model.decode(samples, &options)?;
        let confidence = transcript.confidence();
        let offset = start as f32 / 16_000.0;
        let segments: Vec<Segment> = transcript
            .segments
            .into_iter()
            .filter(|s| !is_phantom(&s.text, confidence, s.no_speech_probability))
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
        Ok(Some(Utterance { id, start, end, lang: transcript.lang, text, confidence, segments }))
    }
}

/// Transcribes a whole audio file, streaming: decode → 16 kHz → VAD → one whisper call per
/// utterance. Memory stays bounded by the longest utterance, not the file.
pub fn transcribe_file(path: &Path, config: &HearingConfig, transcriber: &Transcriber) -> Result<Vec<Utterance>> {
    let mut source = super::file::open_audio_file(path)?;
    let mut resampler = super::resample::Resampler::new(source.sample_rate())?;
    let vad = super::vad::SileroVad::load(&config.vad_model)?;
    let mut listener = Listener::new(vad, config.segmenter);
    let mut out = Vec::new();
    let mut failure: Option<Error> = None;
    let mut next_id = 0u64;
    let mut on = |l: &Listener, b: Boundary| {
        if let Boundary::Ended { start, last_voiced, .. } = b {
            if failure.is_some() {
                return;
            }
            let audio = l.audio(start, last_voiced + TAIL_SAMPLES);
            match transcriber.transcribe(next_id, audio, start, last_voiced) {
                Ok(Some(u)) => out.push(u),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
            next_id += 1;
        }
    };
    while let Some(block) = source.next_block()? {
        let resampled = resampler.push(block)?;
        listener.push(resampled, &mut on)?;
    }
    let tail = resampler.finish()?.to_vec();
    listener.push(&tail, &mut on)?;
    listener.finish(&mut on)?;
    source.warn_if_damaged();
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::is_phantom;

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
