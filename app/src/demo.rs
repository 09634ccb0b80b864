//! `hiwar demo`: what hiwar can do on this machine today, with real models and bundled inputs.
//!
//! It grows into the full showcase (listen → think → speak with a moving face) as the pipeline
//! lands; until then it runs what exists and says what is still to come.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;


use hiwar_speech::hearing::Transcriber;

use crate::config::Config;
use crate::models::{FileStatus, Store};

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

    let hc = crate::hearing::hearing_config(config, None)?;
    println!("1. Hearing — VAD + whisper {} ({}) on the bundled clips", size_name(&hc.whisper_model), hc.whisper_model.display());
    let mut transcriber = Transcriber::load(&hc)?;
    let clips = assets_dir().join("demo");
    for (file, lang, said) in CLIPS {
        let path = clips.join(file);
        let audio = crate::bench::read_16k(&path)?.len() as f64 / 16_000.0;
        println!("   {file} ({audio:.1} s)");
        println!("     said:  {said}");
        let mut attempts = vec![(None, "heard")];
        if lang == "ar" {
            attempts.push((Some("ar"), "heard, Arabic forced"));
        }
        for (forced, label) in attempts {
            transcriber.set_forced_language(forced.map(str::to_string));
            let started = Instant::now();
            let heard = hiwar_speech::hearing::transcribe_file(&path, &hc, &transcriber)?;
            let took = started.elapsed().as_secs_f64();
            let text = heard.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ");
            let detected = heard.first().map_or("—", |u| u.lang.as_str());
            println!("     {label}: [{detected}] {text}   ({took:.2} s, {:.2}× real time)", took / audio);
        }
    }
    if CLIPS.iter().any(|(_, l, _)| *l == "ar") && size_name(&hc.whisper_model) == "base" {
        println!("   whisper base hears espeak-ng's synthetic Arabic poorly and often takes it for English;");
        println!("   a larger whisper model is the first thing to try for Arabic (see `hiwar doctor`).");
    }
    println!("   Live from the microphone: `hiwar transcribe --mic`.");

    println!("\n2. Voice runtime — ONNX Runtime");
    let ort = store.load_onnx_runtime()?;
    println!("   ONNX Runtime {} loaded from the model cache; execution providers: {}", ort.version, ort.providers.join(", "));

    println!("\n3. Voice and face — the avatar greets you in Arabic, rendered offscreen with its audio");
    let video = store.home.join("demo").join("welcome.mp4");
    if let Some(dir) = video.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let render = crate::voice::VideoArgs { video: Some(video.clone()), frames: None, size: Some((640, 360)), fps: Some(25) };
    let started = Instant::now();
    crate::voice::say(config, "مرحبا بكم في مركز الخدمة. كيف يمكنني مساعدتكم اليوم؟", "auto", None, None, None, &render)?;
    println!("   {} ({:.1} s to synthesise and render; play it with any video player)", video.display(), started.elapsed().as_secs_f64());
    println!("   In a window: `hiwar stage`, then type {{\"say\": \"مرحبا\"}} and Enter; `--kiosk` for fullscreen.");

    println!("\nStill to come, each its own piece of work:");
    println!("   · Qwen answers grounded in the knowledge base, barge-in (mind)");
    println!("   · WebSocket embedding and the reference web page (embedding)");
    println!("   · kiosk operations: session wipe, watchdog, running for weeks unattended (kiosk)");
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
