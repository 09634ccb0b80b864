//! `hiwar say`: the voice from the command line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use hiwar_speech::voice::{PiperVoice, Speech};
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
    text.chars().any(|c| matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}'))
}

/// Loads the English voice (config, else the cache's en_US-joe-medium) with ONNX Runtime.
pub fn english_voice(config: &Config) -> anyhow::Result<PiperVoice> {
    let store = Store::open(config)?;
    let ort = store.file_of("onnxruntime", "libonnxruntime.so.1.32.0").context("no onnxruntime in the manifest")?;
    hiwar_speech::onnx::load(&ort)?;
    let model = if config.voice.english_voice.is_empty() {
        store.file_of("piper-en-joe", "en_US-joe-medium.onnx").context("no piper-en-joe in the manifest")?
    } else {
        config.voice.english_voice.clone().into()
    };
    Ok(PiperVoice::load(&model, "piper-en-joe")?)
}

/// The Arabic diacritiser (rawi v2) from the cache.
pub fn diacritizer(config: &Config) -> anyhow::Result<hiwar_speech::voice::Diacritizer> {
    let store = Store::open(config)?;
    let model = store.file_of("tashkeel", "rawi_v2.int8.onnx").context("no tashkeel in the manifest")?;
    let vocab = store.file_of("tashkeel", "rawi_v2.vocab.json").context("no tashkeel vocabulary in the manifest")?;
    Ok(hiwar_speech::voice::Diacritizer::load(&model, &vocab)?)
}

pub fn say(config: &Config, text: &str, lang: &str, out: Option<&Path>, timeline: Option<&Path>, clock_log: Option<&Path>) -> anyhow::Result<ExitCode> {
    let _ = lang;
    anyhow::ensure!(!text.trim().is_empty(), "nothing to say: the text is empty");
    let (text, dropped) = speakable(text);
    if !dropped.is_empty() {
        eprintln!("warning: skipped characters no voice here can speak: {dropped}");
    }
    let mut voice = english_voice(config)?;
    let mut diacritizer = if is_arabic(&text) { Some(diacritizer(config)?) } else { None };
    let speech = voice.speak(&text, diacritizer.as_mut())?;
    anyhow::ensure!(!speech.samples.is_empty(), "nothing to say: the text has no speakable words");
    match out {
        Some(path) => write_wav(path, &speech)?,
        None => play(config, &speech, clock_log)?,
    }
    if let Some(path) = timeline {
        let json = TimelineJson {
            sample_rate: speech.sample_rate,
            phonemes: speech.phonemes.iter().map(|p| PhonemeJson { ph: &p.phoneme, start: p.start, end: p.end }).collect(),
            words: speech.words.iter().map(|w| WordJson { word: &w.word, start: w.start, end: w.end }).collect(),
        };
        std::fs::write(path, serde_json::to_string_pretty(&json)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// Plays on the output device and returns when it has been heard.
fn play(config: &Config, speech: &Speech, clock_log: Option<&Path>) -> anyhow::Result<()> {
    let mut player = hiwar_speech::voice::Player::open(&config.audio.output_device)
        .context("no audio output to speak on (write to a file with --out FILE.wav)")?;
    let clock = player.clock();
    let started = std::time::Instant::now();
    let logger = clock_log.map(|_| {
        let (clock, stop) = (clock.clone(), std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut rows = String::from("wall_ms,position,latency_frames,rate\n");
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
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
        (stop, handle)
    });
    let begins = player.queue(&speech.samples, speech.sample_rate)?;
    let seconds = speech.samples.len() as f64 / f64::from(speech.sample_rate.max(1));
    let heard = player.wait_until_heard(std::time::Duration::from_secs_f64(seconds + 5.0));
    if let (Some((stop, handle)), Some(path)) = (logger, clock_log) {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rows = handle.join().map_err(|_| anyhow::anyhow!("clock logger failed"))?;
        std::fs::write(path, format!("# speech starts at frame {begins}\n{rows}"))?;
    }
    anyhow::ensure!(heard, "the output device {} stopped playing", player.device());
    Ok(())
}

fn write_wav(path: &Path, speech: &Speech) -> anyhow::Result<()> {
    let spec = hound::WavSpec { channels: 1, sample_rate: speech.sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("cannot write {}", path.display()))?;
    for s in &speech.samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}
