//! `hiwar demo`: what hiwar can do on this machine today, with real models and bundled inputs.
//!
//! It grows into the full showcase (listen → think → speak with a moving face) as the pipeline
//! lands; until then it runs what exists and says what is still to come.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;

use hiwar_speech::whisper::Language;

use crate::config::Config;
use crate::models::{FileStatus, Store, fetch_hint};

/// The bundled demo clips: (file, language, what is said).
const CLIPS: [(&str, &str, &str); 2] = [
    ("ar-welcome.wav", "ar", "مرحبا بكم في مركز الخدمة. كيف يمكنني مساعدتكم اليوم؟"),
    ("en-welcome.wav", "en", "Welcome to the government service centre. How can I help you today?"),
];

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    println!("حوار · hiwar — an Arabic-first digital human\n");
    let store = Store::open(config)?;
    let missing: Vec<&str> = store
        .manifest
        .models
        .iter()
        .filter(|m| m.required && store.model_status(m).iter().any(|(_, s)| !matches!(s, FileStatus::Ok)))
        .map(|m| m.name.as_str())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("models not ready: {}; run `hiwar models fetch` first", missing.join(", "));
    }

    let whisper_path = crate::doctor::whisper_model_path(&store, config).context("no whisper model")?;
    println!("1. Hearing — whisper ({}) on the bundled clips", whisper_path.display());
    let started = Instant::now();
    let model = hiwar_speech::whisper::WhisperModel::load(&whisper_path)?;
    println!("   model loaded in {:.2} s", started.elapsed().as_secs_f64());
    let clips = assets_dir().join("demo");
    let languages: Vec<&str> = config.hearing.languages.iter().map(String::as_str).collect();
    for (file, lang, said) in CLIPS {
        let samples = read_wav_16k(&clips.join(file))?;
        let started = Instant::now();
        let transcript = model.transcribe(&samples, Language::Among(&languages))?;
        let took = started.elapsed().as_secs_f64();
        let audio = samples.len() as f64 / 16_000.0;
        println!("   {file} ({lang}, {audio:.1} s of audio, decoded in {took:.2} s = {:.2}× real time)", took / audio);
        println!("     said:  {said}");
        let heard = transcript.text();
        if heard.is_empty() {
            println!("     heard: nothing — whisper {} is weak on Arabic and this clip is espeak-ng's synthetic voice;", size_name(&whisper_path));
            println!("            a larger whisper model is the first thing to try (see `hiwar doctor`)");
        } else {
            println!("     heard: [{}] {heard}", transcript.lang);
        }
    }

    println!("\n2. Voice runtime — ONNX Runtime");
    let ort_path = store.file_of("onnxruntime", "libonnxruntime.so.1.32.0").context("onnxruntime in manifest")?;
    let ort = hiwar_speech::onnx::load(&ort_path).with_context(|| fetch_hint("onnxruntime"))?;
    println!("   ONNX Runtime {} loaded from the model cache; execution providers: {}", ort.version, ort.providers.join(", "));

    println!("\nStill to come, each its own piece of work:");
    println!("   · live listening from the microphone with VAD and partial transcripts (hearing)");
    println!("   · the Arabic-first voice with per-phoneme timing (voice)");
    println!("   · the face: lip-sync and the rendered avatar with RTL/LTR captions (face)");
    println!("   · Qwen answers grounded in the knowledge base, barge-in (mind)");
    println!("   · WebSocket embedding and the reference web page (embedding)");
    println!("   · kiosk mode: attract screen, session wipe, watchdog (kiosk)");
    Ok(ExitCode::SUCCESS)
}

fn size_name(path: &Path) -> &'static str {
    hiwar_speech::models::read_ggml_whisper_info(path).map_or("(unknown size)", |i| i.size_name())
}

/// The assets folder: `$BEVY_ASSET_ROOT/assets` if set, else beside the executable's
/// workspace when run from a checkout, else `./assets`.
pub fn assets_dir() -> PathBuf {
    if let Some(root) = std::env::var_os("BEVY_ASSET_ROOT") {
        return PathBuf::from(root).join("assets");
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets");
    if checkout.is_dir() { checkout } else { PathBuf::from("assets") }
}

/// Reads a 16 kHz mono 16-bit wav into f32 samples.
fn read_wav_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let mut reader = hound::WavReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let spec = reader.spec();
    anyhow::ensure!(
        spec.sample_rate == 16_000 && spec.channels == 1 && spec.bits_per_sample == 16,
        "{}: expected 16 kHz mono 16-bit, found {} Hz {} ch {} bit",
        path.display(),
        spec.sample_rate,
        spec.channels,
        spec.bits_per_sample
    );
    reader
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0).map_err(anyhow::Error::from))
        .collect()
}
