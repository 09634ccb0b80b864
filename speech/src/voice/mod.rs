//! The voice: text → phonemes → Piper/VITS on ONNX Runtime → audio with a per-phoneme
//! timeline (the face's input).
//!
//! Text is normalised for speech (numbers, times, dates, currency, per language) and cut into
//! clauses and script spans. Arabic spans are diacritised (rawi v2 on ONNX Runtime, the
//! input's own marks kept) and phonemised by hiwar's own rules ([`arabic`]); other spans by a
//! long-lived espeak-ng process. One Piper voice (or an Arabic and an English one) speaks the
//! phonemes, with exact phoneme timing from the model's own duration predictor (a load-time
//! graph patch); [`Chunker`] streams an LLM's answer clause by clause, and [`Player`] plays it
//! on the device, publishing the played-sample clock.

mod accent;
pub mod arabic;
mod chunker;
mod normalize;
mod onnx_patch;
mod piper;
mod player;
mod tashkeel;

pub use accent::Accent;
pub use chunker::Chunker;
pub use normalize::{Normalized, cardinal, normalize, normalize_for_speech};
pub use onnx_patch::{add_graph_output, duration_output};
pub use piper::{PiperVoice, Speech, TimedPhoneme, TimedWord, VoiceConfig, WrittenWord, attach_written, split_clauses};
pub use player::{PlayClock, Player, Stopper, fade_frames};
pub use tashkeel::{Diacritizer, Lexicon, Score, TashkeelModel, is_tashkeel, score, strip_tashkeel};

/// espeak-ng's own voice, run as a process (GPL-3.0: never linked), for languages without a
/// neural voice. It reports no phoneme timing: the face falls back to the audio.
#[derive(Debug, Clone)]
pub struct EspeakVoice {
    pub voice: String,
    /// Words per minute.
    pub speed: u32,
}

impl EspeakVoice {
    /// Speaks `text` (Arabic should be diacritised first: espeak-ng reads bare Arabic badly).
    pub fn synthesize(&self, text: &str) -> crate::Result<Speech> {
        self.run(text, false)
    }

    /// Speaks SSML (`<speak>…<break time="600ms"/>…</speak>`): a pause inside one sentence.
    pub fn synthesize_ssml(&self, ssml: &str) -> crate::Result<Speech> {
        self.run(ssml, true)
    }

    fn run(&self, text: &str, ssml: bool) -> crate::Result<Speech> {
        use std::io::Write as _;
        let speed = self.speed.to_string();
        let mut args = vec!["-v", self.voice.as_str(), "-s", speed.as_str(), "--stdout", "--stdin"];
        if ssml {
            args.push("-m");
        }
        let mut child = std::process::Command::new("espeak-ng")
            .args(args)
            .env("PULSE_SERVER", crate::espeak::NO_SOUND_SERVER)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| crate::Error::Espeak(format!("cannot run espeak-ng ({e}); install it: apt-get install espeak-ng")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).map_err(|e| crate::Error::Espeak(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| crate::Error::Espeak(e.to_string()))?;
        let mut reader = hound::WavReader::new(std::io::Cursor::new(out.stdout)).map_err(|e| crate::Error::Espeak(format!("no audio from espeak-ng: {e}")))?;
        let sample_rate = reader.spec().sample_rate;
        // espeak-ng streams its WAV with an unknown length (0xFFFFFFFF): stop at the first sample that
        // cannot be read (the end), or the reader yields errors for ever.
        let samples = reader.samples::<i16>().map_while(Result::ok).map(|s| f32::from(s) / 32768.0).collect();
        Ok(Speech { sample_rate, samples, ..Speech::default() })
    }
}

/// The voices hiwar speaks with: one for English (and everything when there is no other),
/// optionally one for Arabic; one output rate and one timeline whichever speaks.
#[derive(Debug)]
pub struct Voices {
    pub english: PiperVoice,
    pub arabic: Option<PiperVoice>,
    pub diacritizer: Option<Diacritizer>,
}

impl Voices {
    /// The rate all speech comes out at (the English voice's).
    pub fn sample_rate(&self) -> u32 {
        self.english.config.sample_rate
    }

    /// Handles on the helper processes the voices use (espeak-ng), so a watchdog can end them
    /// when synthesis is stuck waiting on one.
    pub fn helpers(&self) -> Vec<crate::espeak::Helper> {
        std::iter::once(&self.english).chain(self.arabic.as_ref()).map(PiperVoice::helper).collect()
    }

    /// The chunks spoken next belong to `answer` (see [`Diacritizer::within`]); `None` when
    /// they are not one visitor's answer read in order (a server's pool of voices).
    pub fn within(&mut self, answer: Option<u64>) {
        if let Some(d) = self.diacritizer.as_mut() {
            d.within(answer);
        }
    }

    /// Speaks mixed text: Arabic spans with the Arabic voice when there is one.
    pub fn speak(&mut self, text: &str) -> crate::Result<Speech> {
        let Some(arabic_voice) = self.arabic.as_mut() else {
            return self.english.speak(text, self.diacritizer.as_mut());
        };
        let rate = self.english.config.sample_rate;
        let mut all = Speech { sample_rate: rate, ..Speech::default() };
        let normalized = normalize(text);
        let marked = arabic::marked_spans(&normalized.text, self.diacritizer.as_mut())?;
        for (k, (clause, punct)) in split_clauses(&normalized.text).into_iter().enumerate() {
            let spans = piper::script_spans(&clause);
            let n = spans.len();
            for (j, (arabic, span)) in spans.into_iter().enumerate() {
                let end = if j + 1 == n { punct } else { None };
                let speech = if arabic {
                    let ipa = arabic::clause_span_to_ipa(marked.as_ref(), (k, j), &span, self.diacritizer.as_mut(), k == 0 && j == 0)?;
                    arabic_voice.synthesize(&span, &ipa, end)?
                } else {
                    let ipa = self.english.phonemize(&span)?;
                    self.english.synthesize(&span, &ipa, end)?
                };
                all.append(speech.resampled(rate)?);
            }
        }
        attach_written(&mut all.words, &normalized);
        // One level for the whole chunk, as the English voice's own `speak` gives it.
        piper::raise_quiet(&mut all.samples, rate);
        Ok(all)
    }
}
