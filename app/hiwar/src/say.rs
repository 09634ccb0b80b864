//! `hiwar say`: the voice from the command line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hiwar_core::bus::Said;
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use hiwar_speech::voice::{Chunker, Player, TimedPhoneme, TimedWord};
use serde::Serialize;

use hiwar_core::config::Config;

fn is_arabic(text: &str) -> bool {
    text.chars().any(hiwar_speech::text::is_arabic)
}

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
    /// As written in the text ("250" where `word` is «مئتان»).
    written: &'a str,
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

    fn options(&self, config: &Config) -> anyhow::Result<(hiwar_stage::StageOptions, u32)> {
        let mut options = hiwar_stage::StageOptions::from_config(config);
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
        words: Vec<hiwar_stage::captions::CaptionWord>,
        beats: Vec<hiwar_stage::headless::Beat>,
    ) -> anyhow::Result<()> {
        let (options, fps) = self.options(config)?;
        let rec = hiwar_stage::headless::Recording { samples, rate, timeline, words, fps, tail: 0.5, beats };
        let outputs = hiwar_stage::headless::Outputs { video: self.video.clone(), frames: self.frames.clone() };
        let report = hiwar_stage::headless::render(&options, &rec, &outputs)?;
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
    let voices = hiwar_core::build::voices(config, is_arabic(&text))?;
    let rate = voices.sample_rate();
    // The wav is written beside its destination and moved into place only when the whole text
    // has been spoken: a failure part-way leaves no half-written file (nor overwrites one).
    let part = out.map(|path| PartFile(hiwar_core::models::part_path(path)));
    let mut wav = match &part {
        Some(part) => Some(hound::WavWriter::create(&part.0, wav_spec(rate)).with_context(|| format!("cannot write {}", part.0.display()))?),
        None => None,
    };
    let output = if wav.is_some() || video.wanted() {
        Output::Null { played: 0 }
    } else {
        Output::Speaker(Player::open(&config.audio.output_device).context("no audio output to speak on (write to a file with --out FILE.wav)")?)
    };
    let speaker = matches!(output, Output::Speaker(_));
    let (voice, mut events) = VoiceOut::start(voices, output, None);
    let log = clock_log.zip(voice.clock.clone()).map(|(path, clock)| ClockLog::start(path, clock));
    // Chunk by chunk, as an LLM's answer will arrive: the first (short) chunk is heard while
    // the next is synthesised, and a long text never sits in memory as audio.
    let mut chunker = Chunker::new();
    for chunk in chunker.push(&text).into_iter().chain(chunker.finish()) {
        voice.say(1, Said::Answer, &chunk);
    }
    voice.end(1);
    // A video keeps the audio for muxing.
    let mut kept: Vec<f32> = Vec::new();
    let (mut phonemes, mut words, mut offset, mut begins) = (Vec::new(), Vec::new(), 0u64, None);
    let end = loop {
        match events.blocking_recv() {
            Some(VoiceEvent::Spoken(s)) => {
                begins.get_or_insert(s.start);
                if let Some(w) = wav.as_mut() {
                    for x in &s.speech.samples {
                        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)?;
                    }
                }
                if video.wanted() {
                    kept.extend_from_slice(&s.speech.samples);
                }
                phonemes.extend(s.speech.phonemes.iter().map(|p| TimedPhoneme { start: p.start + offset, end: p.end + offset, ..p.clone() }));
                words.extend(s.speech.words.iter().map(|w| TimedWord { start: w.start + offset, end: w.end + offset, ..w.clone() }));
                offset += s.speech.samples.len() as u64;
            }
            Some(VoiceEvent::TurnEnd { end, .. }) => break end,
            Some(VoiceEvent::Failed { message, .. }) => anyhow::bail!("{message}"),
            None => anyhow::bail!("the voice stopped"),
        }
    };
    anyhow::ensure!(offset > 0, "nothing to say: the text has no speakable words");
    if speaker && let Some(clock) = voice.clock.clone() {
        // Everything is heard before hiwar exits (or the device is named as stuck).
        let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(offset as f64 / f64::from(rate) + 5.0);
        while clock.position() < end && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::ensure!(clock.position() >= end, "the output device stopped playing");
    }
    voice.finish();
    if let Some(log) = log {
        log.finish(begins.unwrap_or(0))?;
    }
    if let (Some(w), Some(dest), Some(part)) = (wav, out, part) {
        w.finalize()?;
        part.keep_as(dest)?;
    }
    if let Some(path) = timeline {
        let json = TimelineJson {
            sample_rate: rate,
            phonemes: phonemes.iter().map(|p| PhonemeJson { ph: &p.phoneme, start: p.start, end: p.end }).collect(),
            words: words.iter().map(|w| WordJson { word: &w.word, start: w.start, end: w.end, written: &w.written }).collect(),
        };
        std::fs::write(path, serde_json::to_string_pretty(&json)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if video.wanted() {
        let tl = hiwar_stage::timeline_of(rate, &phonemes, 0);
        let spoken = hiwar_speech::voice::Speech { words, ..Default::default() };
        let words = spoken.written_words(true).into_iter().map(|w| hiwar_stage::captions::CaptionWord { text: w.text, start: w.start, end: w.end }).collect();
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

fn wav_spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// A log of the speaker's played-sample clock every 10 ms (`--clock-log`).
struct ClockLog {
    path: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<String>,
}

impl ClockLog {
    fn start(path: &Path, clock: Arc<hiwar_speech::voice::PlayClock>) -> ClockLog {
        let stop = Arc::new(AtomicBool::new(false));
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
        ClockLog { path: path.to_path_buf(), stop, handle }
    }

    fn finish(self, begins: u64) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let rows = self.handle.join().map_err(|_| anyhow::anyhow!("clock logger failed"))?;
        std::fs::write(&self.path, format!("# speech starts at frame {begins}\n{rows}")).with_context(|| format!("cannot write {}", self.path.display()))?;
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
