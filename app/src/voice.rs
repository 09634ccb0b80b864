//! `hiwar say`: the voice from the command line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hiwar_speech::voice::{Chunker, PiperVoice, Player, Speech, TimedPhoneme, TimedWord, Voices};
use serde::Serialize;

use crate::config::Config;
use crate::models::Store;

#[derive(Serialize)]
struct TimelineJson<'a> {
    sample_rate: u32,
    phonemes: Vec<PhonemeJson<'a>>,
    words: Vec<WordJson<'a>>,
}

#[derive(Serialize)]
struct PhonemeJson<'a> {
    ph: &'a str,
    start: u64,
    end: u64,
}

#[derive(Serialize)]
struct WordJson<'a> {
    word: &'a str,
    start: u64,
    end: u64,
}

fn is_arabic(text: &str) -> bool {
    text.chars().any(hiwar_speech::text::is_arabic)
}

/// Loads the English voice (config, else the cache's en_US-joe-medium) with ONNX Runtime.
pub fn english_voice(config: &Config) -> anyhow::Result<PiperVoice> {
    let store = Store::open(config)?;
    hiwar_speech::onnx::set_device(match config.voice.device.as_str() {
        "cpu" => hiwar_speech::onnx::Device::Cpu,
        "cuda" => hiwar_speech::onnx::Device::Cuda,
        "auto" => hiwar_speech::onnx::Device::Auto,
        other => anyhow::bail!("voice.device = {other:?}: use auto, cpu or cuda"),
    });
    store.load_onnx_runtime()?;
    let model = if config.voice.english_voice.is_empty() {
        store.verified_file("piper-en-joe", "en_US-joe-medium.onnx.json")?;
        store.verified_file("piper-en-joe", "en_US-joe-medium.onnx")?
    } else {
        let path = std::path::PathBuf::from(&config.voice.english_voice);
        store.check_configured(&path).context("voice.english_voice")?;
        path
    };
    let mut voice = PiperVoice::load(&model, "piper-en-joe").with_context(|| format!("voice.english_voice = {}", model.display()))?;
    if config.voice.deterministic {
        voice.config.noise_scale = 0.0;
        voice.config.noise_w = 0.0;
    }
    Ok(voice)
}

/// The voices to speak with: English always; an Arabic Piper voice when voice.arabic_voice
/// names one; the diacritiser when the text has Arabic.
pub fn voices(config: &Config, arabic_text: bool) -> anyhow::Result<Voices> {
    let english = english_voice(config)?;
    let arabic = if config.voice.arabic_voice.is_empty() {
        None
    } else {
        let path = std::path::PathBuf::from(&config.voice.arabic_voice);
        Store::open(config)?.check_configured(&path).context("voice.arabic_voice")?;
        Some(PiperVoice::load(&path, "piper-ar-kareem-medium").with_context(|| format!("voice.arabic_voice = {}", path.display()))?)
    };
    let diacritizer = if arabic_text { Some(diacritizer(config)?) } else { None };
    Ok(Voices { english, arabic, diacritizer })
}

/// The voices, each of which has just spoken a word: for services that must not start (or
/// reload) with a voice whose model loads but makes noise or nothing (a model damaged inside,
/// an operator's file that is not a voice). The check costs one short synthesis per voice.
pub fn speaking_voices(config: &Config) -> anyhow::Result<Voices> {
    let mut voices = voices(config, true)?;
    voices.speak("مرحبا").map_err(|e| anyhow::anyhow!("the Arabic voice does not speak: {e}"))?;
    voices.speak("Hello").map_err(|e| anyhow::anyhow!("the English voice does not speak: {e}"))?;
    Ok(voices)
}

/// The Arabic diacritiser (rawi v2) from the cache.
pub fn diacritizer(config: &Config) -> anyhow::Result<hiwar_speech::voice::Diacritizer> {
    let store = Store::open(config)?;
    let model = store.verified_file("tashkeel", "rawi_v2.int8.onnx")?;
    let vocab = store.verified_file("tashkeel", "rawi_v2.vocab.json")?;
    Ok(hiwar_speech::voice::Diacritizer::load(&model, &vocab)?)
}

/// `hiwar say --video/--frames`: render the avatar instead of (or besides) playing.
#[derive(Debug, Default)]
pub struct VideoArgs {
    pub video: Option<std::path::PathBuf>,
    pub frames: Option<std::path::PathBuf>,
    pub size: Option<(u32, u32)>,
    pub fps: Option<u32>,
}

impl VideoArgs {
    fn wanted(&self) -> bool {
        self.video.is_some() || self.frames.is_some()
    }

    fn options(&self, config: &Config) -> anyhow::Result<(crate::stage::StageOptions, u32)> {
        let mut options = crate::stage::StageOptions::from_config(config);
        if let Some((w, h)) = self.size {
            options.width = w;
            options.height = h;
        }
        Ok((options, self.fps.unwrap_or(config.stage.fps)))
    }

    /// Renders the speech (with its timeline, or from the audio alone).
    pub fn render(
        &self,
        config: &Config,
        samples: &[f32],
        rate: u32,
        timeline: Option<hiwar_animation::Timeline>,
        words: Vec<crate::stage::captions::CaptionWord>,
        beats: Vec<crate::stage::headless::Beat>,
    ) -> anyhow::Result<()> {
        let (options, fps) = self.options(config)?;
        let rec = crate::stage::headless::Recording { samples, rate, timeline, words, fps, tail: 0.5, beats };
        let outputs = crate::stage::headless::Outputs { video: self.video.clone(), frames: self.frames.clone() };
        let report = crate::stage::headless::render(&options, &rec, &outputs)?;
        let wrote: Vec<String> = [self.video.as_ref().map(|v| v.display().to_string()), self.frames.as_ref().map(|d| format!("{}/frame-*.png", d.display()))]
            .into_iter()
            .flatten()
            .collect();
        eprintln!(
            "rendered {} frames ({}×{} at {fps} fps, {:.1} s of audio) in {:.1} s → {}",
            report.frames,
            options.width,
            options.height,
            samples.len() as f64 / f64::from(rate),
            report.seconds,
            wrote.join(", ")
        );
        Ok(())
    }
}

/// `hiwar say --audio FILE --video OUT`: the face lip-syncs a recording from its audio alone.
pub fn lip_sync_recording(config: &Config, audio: &Path, video: &VideoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(video.wanted(), "--audio needs --video FILE.mp4 or --frames DIR (there is nothing to speak)");
    let decoded = hiwar_speech::hearing::open_audio_file(audio)?.read_all()?;
    anyhow::ensure!(!decoded.samples.is_empty(), "{} has no audio", audio.display());
    video.render(config, &decoded.samples, decoded.sample_rate, None, Vec::new(), Vec::new())?;
    Ok(ExitCode::SUCCESS)
}

pub fn say(
    config: &Config,
    text: &str,
    lang: &str,
    out: Option<&Path>,
    timeline: Option<&Path>,
    clock_log: Option<&Path>,
    video: &VideoArgs,
) -> anyhow::Result<ExitCode> {
    let _ = lang;
    anyhow::ensure!(!text.trim().is_empty(), "nothing to say: the text is empty");
    let (text, dropped) = speakable(text);
    if !dropped.is_empty() {
        eprintln!("warning: skipped characters no voice here can speak: {dropped}");
    }
    let mut voices = voices(config, is_arabic(&text))?;
    // Chunk by chunk, as an LLM's answer will arrive: the first (short) chunk is heard while
    // the next is synthesised, and a long text never sits in memory as audio.
    let mut chunker = Chunker::new();
    let mut chunks = chunker.push(&text);
    chunks.extend(chunker.finish());
    // The wav is written beside its destination and moved into place only when the whole text
    // has been spoken: a failure part-way leaves no half-written file (nor overwrites one).
    let part = out.map(|path| PartFile(crate::models::part_path(path)));
    let mut sink = match &part {
        Some(part) => {
            Sink::File(hound::WavWriter::create(&part.0, wav_spec(voices.sample_rate())).with_context(|| format!("cannot write {}", part.0.display()))?)
        }
        None if video.wanted() => Sink::Memory(Vec::new()),
        None => Sink::Speaker(Speaker::open(config, clock_log)?),
    };
    // A video keeps the audio for muxing even when it is also written to a file.
    let mut kept: Vec<f32> = Vec::new();
    let (mut phonemes, mut words, mut offset) = (Vec::new(), Vec::new(), 0u64);
    for chunk in &chunks {
        let speech = voices.speak(chunk)?;
        match &mut sink {
            Sink::File(w) => {
                for s in &speech.samples {
                    w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
                }
            }
            Sink::Speaker(speaker) => speaker.queue(&speech)?,
            Sink::Memory(m) => m.extend_from_slice(&speech.samples),
        }
        if video.wanted() && !matches!(sink, Sink::Memory(_)) {
            kept.extend_from_slice(&speech.samples);
        }
        phonemes.extend(speech.phonemes.into_iter().map(|p| TimedPhoneme { start: p.start + offset, end: p.end + offset, ..p }));
        words.extend(speech.words.into_iter().map(|w| TimedWord { start: w.start + offset, end: w.end + offset, ..w }));
        offset += speech.samples.len() as u64;
    }
    anyhow::ensure!(offset > 0, "nothing to say: the text has no speakable words");
    match sink {
        Sink::File(w) => {
            w.finalize()?;
            if let (Some(dest), Some(part)) = (out, part) {
                part.keep_as(dest)?;
            }
        }
        Sink::Speaker(speaker) => speaker.finish(offset as f64 / f64::from(voices.sample_rate()))?,
        Sink::Memory(m) => kept = m,
    }
    if let Some(path) = timeline {
        let json = TimelineJson {
            sample_rate: voices.sample_rate(),
            phonemes: phonemes.iter().map(|p| PhonemeJson { ph: &p.phoneme, start: p.start, end: p.end }).collect(),
            words: words.iter().map(|w| WordJson { word: &w.word, start: w.start, end: w.end }).collect(),
        };
        std::fs::write(path, serde_json::to_string_pretty(&json)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if video.wanted() {
        let rate = voices.sample_rate();
        let tl = crate::stage::timeline_of(rate, &phonemes, 0);
        let words = words.iter().map(|w| crate::stage::captions::CaptionWord { text: w.word.clone(), start: w.start, end: w.end }).collect();
        video.render(config, &kept, rate, Some(tl), words, Vec::new())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A file being written, removed unless it is kept.
struct PartFile(std::path::PathBuf);

impl PartFile {
    fn keep_as(self, dest: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.0, dest).with_context(|| format!("cannot move {} into place", dest.display()))?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

enum Sink {
    File(hound::WavWriter<std::io::BufWriter<std::fs::File>>),
    Speaker(Speaker),
    /// Kept for a video render.
    Memory(Vec<f32>),
}

fn wav_spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// The output device, with an optional log of its played-sample clock.
struct Speaker {
    player: Player,
    log: Option<(std::path::PathBuf, Arc<AtomicBool>, std::thread::JoinHandle<String>)>,
    begins: Option<u64>,
}

impl Speaker {
    fn open(config: &Config, clock_log: Option<&Path>) -> anyhow::Result<Speaker> {
        let player = Player::open(&config.audio.output_device).context("no audio output to speak on (write to a file with --out FILE.wav)")?;
        let log = clock_log.map(|path| {
            let (clock, stop) = (player.clock(), Arc::new(AtomicBool::new(false)));
            let flag = Arc::clone(&stop);
            let started = std::time::Instant::now();
            let handle = std::thread::spawn(move || {
                let mut rows = String::from("wall_ms,position,latency_frames,rate\n");
                while !flag.load(Ordering::Relaxed) {
                    rows.push_str(&format!(
                        "{:.1},{},{},{}\n",
                        started.elapsed().as_secs_f64() * 1e3,
                        clock.position(),
                        clock.latency_frames(),
                        clock.sample_rate()
                    ));
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                rows
            });
            (path.to_path_buf(), stop, handle)
        });
        Ok(Speaker { player, log, begins: None })
    }

    fn queue(&mut self, speech: &Speech) -> anyhow::Result<()> {
        let at = self.player.queue(&speech.samples, speech.sample_rate)?;
        self.begins.get_or_insert(at);
        Ok(())
    }

    /// Waits until everything has been heard, then writes the clock log.
    fn finish(self, seconds: f64) -> anyhow::Result<()> {
        let heard = self.player.wait_until_heard(std::time::Duration::from_secs_f64(seconds + 5.0));
        if let Some((path, stop, handle)) = self.log {
            stop.store(true, Ordering::Relaxed);
            let rows = handle.join().map_err(|_| anyhow::anyhow!("clock logger failed"))?;
            std::fs::write(&path, format!("# speech starts at frame {}\n{rows}", self.begins.unwrap_or(0)))?;
        }
        anyhow::ensure!(heard, "the output device {} stopped playing", self.player.device());
        Ok(())
    }
}

/// Keeps Latin and Arabic letters, digits, punctuation and spaces; control characters and
/// other scripts (e.g. Chinese) are dropped and returned, so the rest is still spoken.
fn speakable(text: &str) -> (String, String) {
    let (mut keep, mut dropped) = (String::with_capacity(text.len()), String::new());
    for c in text.chars() {
        let ok = c.is_ascii()
            || is_arabic(c.encode_utf8(&mut [0; 4]))
            || ('\u{00C0}'..='\u{024F}').contains(&c)
            || matches!(c, '’' | '‘' | '“' | '”' | '—' | '–' | '…');
        match (ok, c.is_control()) {
            (true, false) => keep.push(c),
            (_, true) => keep.push(' '),
            (false, false) => {
                dropped.push(c);
                keep.push(' ');
            }
        }
    }
    (keep, dropped)
}
