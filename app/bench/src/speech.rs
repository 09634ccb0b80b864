//! `hiwar bench tts` (and the clip set `hiwar bench asr` shares): figures for
//! docs/benchmarks.md, printed as Markdown.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};
use hiwar_speech::hearing::{self, Transcriber};
use hiwar_speech::text::character_error_rate;
use serde::Deserialize;

use hiwar_core::config::Config;

const REFERENCE_PIPER: &str = include_str!("../ref/piper_ref.py");

const TTS_ENGLISH: [&str; 3] = [
    "Welcome to the service centre, how can I help you today?",
    "Your appointment is confirmed for Tuesday morning at ten.",
    "Please bring your passport, two photographs, and the receipt for the fee.",
];
const TTS_ARABIC: [&str; 3] = [
    "مرحبا بكم في مركز الخدمة، كيف يمكنني مساعدتكم اليوم؟",
    "موعدك يوم الثلاثاء الساعة 10:30 صباحاً.",
    "يرجى إحضار جواز السفر، وصورتين شخصيتين، وإيصال دفع الرسوم.",
];

#[derive(Debug, Deserialize)]
struct PiperRow {
    sentence: usize,
    first_ms: f64,
    total_ms: f64,
    audio_s: f64,
}

/// `hiwar bench tts`: hiwar's voice against Python Piper, same voice, same sentences, same run.
pub fn tts(
    config: &Config,
    python: &str,
    reps: usize,
    only: &[String],
    accent: Option<&str>,
    sentences: Option<&Path>,
    espeak: bool,
) -> anyhow::Result<ExitCode> {
    let mut voice = hiwar_core::build::english_voice(config)?;
    let mut diacritizer = hiwar_core::build::diacritizer(config)?;
    if let Some(spec) = accent {
        voice.accent = if spec == "none" { None } else { Some(hiwar_speech::voice::Accent::parse(spec).map_err(anyhow::Error::msg)?) };
    }
    let part = |p: &str| only.is_empty() || only.iter().any(|o| o == p);
    if !part("speed") {
        let sentences = sentences.map(read_sentences).transpose()?;
        round_trip(config, &mut voice, &mut diacritizer, sentences, espeak)?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = hiwar_core::models::Store::open(config)?;
    let model = store.file_of("piper-en-joe", "en_US-joe-medium.onnx").context("piper-en-joe")?;
    println!("## hiwar bench tts\n");
    println!(
        "Voice en_US-joe-medium, {reps} repetitions per sentence; hiwar speaks the first chunk its streaming chunker cuts (a short clause), Piper its first sentence.\n"
    );
    // Warm up, as the reference does.
    voice.speak("Warm up.", None)?;
    let mut measure = |text: &str, arabic: bool| -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let (mut first, mut rtf) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let started = Instant::now();
            let mut chunker = hiwar_speech::voice::Chunker::new();
            let mut chunks = chunker.push(text);
            chunks.extend(chunker.finish());
            let mut audio = 0usize;
            let mut first_ms = None;
            for chunk in &chunks {
                let speech = voice.speak(chunk, if arabic { Some(&mut diacritizer) } else { None })?;
                first_ms.get_or_insert(started.elapsed().as_secs_f64() * 1e3);
                audio += speech.samples.len();
            }
            let total = started.elapsed().as_secs_f64();
            first.push(first_ms.unwrap_or(f64::NAN));
            rtf.push(total / (audio as f64 / 22_050.0));
        }
        Ok((first, rtf))
    };
    let reference = run_piper(python, &model, reps);
    println!("| sentence | hiwar first audio p50 / p95 | Piper first audio p50 / p95 | ratio (p50) | hiwar RTF p50 | Piper RTF p50 | ratio |");
    println!("|---|---|---|---|---|---|---|");
    let (mut ratios_first, mut ratios_rtf) = (Vec::new(), Vec::new());
    for (i, text) in TTS_ENGLISH.iter().enumerate() {
        let (mut first, mut rtf) = measure(text, false)?;
        let (f50, f95, r50) = (percentile(&mut first.clone(), 50.0), percentile(&mut first, 95.0), percentile(&mut rtf, 50.0));
        match &reference {
            Ok(rows) => {
                let mut pf: Vec<f64> = rows.iter().filter(|r| r.sentence == i).map(|r| r.first_ms).collect();
                let mut pr: Vec<f64> = rows.iter().filter(|r| r.sentence == i).map(|r| r.total_ms / 1e3 / r.audio_s).collect();
                let (p50, p95, pr50) = (percentile(&mut pf.clone(), 50.0), percentile(&mut pf, 95.0), percentile(&mut pr, 50.0));
                ratios_first.push(f50 / p50);
                ratios_rtf.push(r50 / pr50);
                println!("| {text} | {f50:.0} / {f95:.0} ms | {p50:.0} / {p95:.0} ms | {:.2} | {r50:.3} | {pr50:.3} | {:.2} |", f50 / p50, r50 / pr50);
            }
            Err(_) => println!("| {text} | {f50:.0} / {f95:.0} ms | — | — | {r50:.3} | — | — |"),
        }
    }
    match &reference {
        Ok(_) => {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            println!("| **mean of ratios** | | | **{:.2}** | | | **{:.2}** |\n", mean(&ratios_first), mean(&ratios_rtf));
        }
        Err(e) => println!("\nReference not run: {e:#}\n"),
    }
    println!("Arabic (diacritisation + rule G2P + synthesis; Piper has no Arabic front-end to compare):\n");
    println!("| sentence | first audio p50 / p95 | RTF p50 |\n|---|---|---|");
    for text in TTS_ARABIC {
        let (mut first, mut rtf) = measure(text, true)?;
        println!("| {text} | {:.0} / {:.0} ms | {:.3} |", percentile(&mut first.clone(), 50.0), percentile(&mut first, 95.0), percentile(&mut rtf, 50.0));
    }
    println!();
    if part("round-trip") {
        let sentences = sentences.map(read_sentences).transpose()?;
        round_trip(config, &mut voice, &mut diacritizer, sentences, espeak)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sentences from a file, one per line (`#` comments), without their tashkeel.
fn read_sentences(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(hiwar_speech::voice::strip_tashkeel).collect())
}

/// Intelligibility of the Arabic voices a registry can give, heard back by whisper with
/// Arabic forced: the English Piper voice on hiwar's phonemes, and espeak-ng's own voice,
/// both from hiwar's diacritisation of the same undiacritised sentences.
fn round_trip(
    config: &Config,
    voice: &mut hiwar_speech::voice::PiperVoice,
    diacritizer: &mut hiwar_speech::voice::Diacritizer,
    sentences: Option<Vec<String>>,
    with_espeak: bool,
) -> anyhow::Result<()> {
    let hc = hiwar_core::build::hearing_config(config, Some("ar"))?;
    let transcriber = Transcriber::load(&hc)?;
    let espeak = hiwar_speech::voice::EspeakVoice { voice: "ar".into(), speed: 130 };
    let sentences: Vec<String> = match sentences {
        Some(s) => s,
        None => load_clips()?.iter().filter(|c| c.clip.lang == "ar").map(|c| c.clip.text.clone()).chain(TTS_ARABIC.iter().map(|s| (*s).to_string())).collect(),
    };
    let hear = |speech: hiwar_speech::voice::Speech| -> anyhow::Result<String> {
        let audio = speech.resampled(16_000)?;
        let u = transcriber.transcribe(0, &audio.samples, 0, audio.samples.len() as u64)?;
        Ok(u.map(|u| u.text).unwrap_or_default())
    };
    println!(
        "Round trip, Arabic forced in whisper {} (the judge is weak on Arabic):\n",
        hiwar_speech::models::read_ggml_whisper_info(&hc.whisper_model)?.size_name()
    );
    println!("| sentence | English Piper voice on hiwar's phonemes: CER | espeak-ng Arabic voice: CER |\n|---|---|---|");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for text in &sentences {
        let piper = voice.speak(text, Some(&mut *diacritizer))?;
        let heard = hear(piper)?;
        let ca = character_error_rate(text, &heard);
        a.push(ca);
        if with_espeak {
            let marked = diacritizer.diacritize(&hiwar_speech::voice::normalize_for_speech(text))?;
            let cb = character_error_rate(text, &hear(espeak.synthesize(&marked)?)?);
            b.push(cb);
            println!("| {text} | {ca:.2} | {cb:.2} |");
        } else {
            println!("| {text} | {ca:.2} | — |");
            if std::env::var_os("BENCH_TTS_DEBUG").is_some() {
                eprintln!("{ca:.2}  said: {text}\n      heard: {heard}");
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let worst = a.iter().copied().fold(0.0, f64::max);
    println!("| **mean** (worst {worst:.2}) | **{:.2}** | **{}** |\n", mean(&a), if b.is_empty() { "—".to_string() } else { format!("{:.2}", mean(&b)) });
    Ok(())
}

fn run_piper(python: &str, model: &Path, reps: usize) -> anyhow::Result<Vec<PiperRow>> {
    let dir = tempdir()?;
    let script = dir.join("piper_ref.py");
    std::fs::write(&script, REFERENCE_PIPER)?;
    let out = Command::new(python).arg(&script).arg(model).arg(reps.to_string()).args(TTS_ENGLISH).output().with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        bail!(
            "{python} could not run Python Piper ({}); install it with `python3 -m venv V && V/bin/pip install piper-tts==1.8.0` and pass --python V/bin/python",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
        );
    }
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).context("reference output")).collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClipSet {
    pub clip: Vec<Clip>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Clip {
    pub file: String,
    /// "ar", "en" or "mixed".
    pub lang: String,
    pub text: String,
    #[allow(dead_code, reason = "provenance, read by people")]
    pub made: String,
    /// It holds the knowledge base's own terms.
    #[serde(default)]
    pub kb: bool,
}

pub(crate) struct Loaded {
    pub clip: Clip,
    pub name: String,
    pub samples: Vec<f32>,
}

pub(crate) fn load_clips() -> anyhow::Result<Vec<Loaded>> {
    let dir = hiwar_core::assets::assets_dir().join("clips");
    let text = std::fs::read_to_string(dir.join("clips.toml")).context("assets/clips/clips.toml")?;
    let set: ClipSet = toml::from_str(&text).context("assets/clips/clips.toml")?;
    set.clip
        .into_iter()
        .map(|clip| {
            let path = dir.join(&clip.file);
            let samples = hearing::read_16k(&path)?;
            let name = Path::new(&clip.file).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            Ok(Loaded { clip, name, samples })
        })
        .collect()
}

pub(crate) fn rss_mib() -> f64 {
    crate::stats::rss_mib(std::process::id())
}

/// The `p`th percentile (0–100).
pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    crate::stats::percentile(values, p / 100.0)
}

pub(crate) fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hiwar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
