//! `hiwar doctor`: what works on this machine and what does not, each with its fix.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hiwar_core::config::Config;
use hiwar_core::models::{FileStatus, Store, fetch_hint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but worse than it could; or not configured and optional.
    Warn,
    /// Broken; if the check is required, doctor exits non-zero.
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub required: bool,
    pub detail: String,
    pub fix: String,
}

impl Check {
    fn new(name: impl Into<String>, required: bool, level: Level, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), level, required, detail: detail.into(), fix: fix.into() }
    }
}

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let checks = collect(config);
    print_table(&checks);
    let broken: Vec<&str> = checks.iter().filter(|c| c.required && c.level == Level::Fail).map(|c| c.name.as_str()).collect();
    if broken.is_empty() {
        println!("\nhiwar can run here.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nrequired and not working: {}", broken.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

pub fn collect(config: &Config) -> Vec<Check> {
    let mut checks = vec![config_check(config)];
    match Store::open(config) {
        Ok(store) => {
            checks.push(cache_check(&store));
            checks.extend(model_checks(&store));
            checks.push(whisper_check(&store, config));
            checks.push(whisper_build_check());
            checks.push(turn_check(&store, config));
            checks.push(echo_check(config));
            checks.push(onnx_check(&store));
            checks.push(arabic_voice_check(config));
        }
        Err(e) => checks.push(Check::new("models manifest", true, Level::Fail, format!("{e:#}"), "leave models.manifest empty to use the built-in one")),
    }
    checks.push(espeak_check());
    checks.extend(audio_checks(config));
    checks.push(display_check());
    checks.push(graphics_check());
    checks.push(font_check());
    checks.push(llm_check(config));
    checks
}

fn print_table(checks: &[Check]) {
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(10);
    for c in checks {
        let mark = match (c.level, c.required) {
            (Level::Ok, _) => "ok  ",
            (Level::Warn, _) => "warn",
            (Level::Fail, true) => "FAIL",
            (Level::Fail, false) => "off ",
        };
        println!("{mark}  {:<width$}  {}", c.name, c.detail);
        if c.level != Level::Ok && !c.fix.is_empty() {
            println!("      {:<width$}  fix: {}", "", c.fix);
        }
    }
}

fn config_check(config: &Config) -> Check {
    let detail = config.source.as_ref().map_or_else(|| "built-in defaults (no hiwar.toml found)".into(), |p| format!("loaded {}", p.display()));
    Check::new("config", false, Level::Ok, detail, "")
}

fn cache_check(store: &Store) -> Check {
    let probe = store.home.join(".doctor-write-test");
    let writable = std::fs::create_dir_all(&store.home).and_then(|()| std::fs::write(&probe, b"")).is_ok();
    std::fs::remove_file(&probe).ok();
    if writable {
        Check::new("model cache", true, Level::Ok, store.home.display().to_string(), "")
    } else {
        Check::new("model cache", true, Level::Fail, format!("{} is not writable", store.home.display()), "set HIWAR_HOME to a writable directory")
    }
}

fn model_checks(store: &Store) -> Vec<Check> {
    store
        .manifest
        .models
        .iter()
        .filter(|m| m.required)
        .map(|m| {
            let statuses = store.model_status(m);
            let bad = statuses.iter().find(|(_, s)| matches!(s, FileStatus::Missing | FileStatus::Corrupt(_)));
            let name = format!("model {}", m.name);
            match bad {
                None => Check::new(name, true, Level::Ok, "present, checksums verified", ""),
                Some((path, FileStatus::Corrupt(why))) => {
                    Check::new(name, true, Level::Fail, format!("{} is corrupt: {why}", path.display()), fetch_hint(&m.name))
                }
                Some((path, _)) => Check::new(name, true, Level::Fail, format!("{} is missing", path.display()), fetch_hint(&m.name)),
            }
        })
        .collect()
}

/// The whisper model in use: the configured one, else the cache's converted base.
pub fn whisper_model_path(store: &Store, config: &Config) -> Option<PathBuf> {
    if config.hearing.whisper_model.is_empty() { store.file_of("whisper-base", "ggml-base.bin") } else { Some(PathBuf::from(&config.hearing.whisper_model)) }
}

/// Whether the speaker's echo is cancelled in the microphone.
fn echo_check(config: &Config) -> Check {
    if config.hearing.echo_cancellation {
        Check::new("echo", false, Level::Ok, "cancelled: WebRTC AEC3 (sonora) with what the speaker plays as its reference", "")
    } else {
        Check::new(
            "echo",
            false,
            Level::Warn,
            format!("not cancelled (hearing.echo_cancellation = false): only a level {} dB over the echo interrupts", config.dialogue.barge_in_margin_db),
            "leave it on unless the microphone is a headset or cancels echo itself",
        )
    }
}

/// How turns end: Smart Turn when configured and present, else silence alone.
fn turn_check(store: &Store, config: &Config) -> Check {
    let h = &config.hearing;
    if h.end_of_turn != "smart" {
        return Check::new("end of turn", false, Level::Ok, format!("silence alone: {} ms ends a turn (hearing.end_of_turn)", h.end_silence_ms), "");
    }
    match store.file_of(hiwar_core::build::SMART_TURN.0, hiwar_core::build::SMART_TURN.1).filter(|p| p.is_file()) {
        Some(path) => Check::new(
            "end of turn",
            false,
            Level::Ok,
            format!("Smart Turn v3.2 judges each pause ({} ms; {} ms when unfinished) — {}", h.turn_probe_ms, h.turn_incomplete_ms, path.display()),
            "",
        ),
        None => Check::new(
            "end of turn",
            false,
            Level::Warn,
            format!("Smart Turn is missing: turns end after {} ms of silence, cutting people off at pauses", h.end_silence_ms),
            fetch_hint(hiwar_core::build::SMART_TURN.0),
        ),
    }
}

fn whisper_check(store: &Store, config: &Config) -> Check {
    let Some(path) = whisper_model_path(store, config) else {
        return Check::new("whisper model", true, Level::Fail, "no whisper model configured", fetch_hint("whisper-base"));
    };
    match hiwar_speech::models::read_ggml_whisper_info(&path) {
        Err(e) if !path.exists() => Check::new("whisper model", true, Level::Fail, format!("{}: missing ({e})", path.display()), fetch_hint("whisper-base")),
        Err(e) => Check::new("whisper model", true, Level::Fail, e.to_string(), "point hearing.whisper_model at a whisper.cpp ggml file"),
        Ok(info) => {
            let size = info.size_name();
            let detail = format!("whisper {size}{} ({})", if info.multilingual() { "" } else { " (English only!)" }, path.display());
            if matches!(size, "tiny" | "base") || !info.multilingual() {
                Check::new(
                    "whisper model",
                    true,
                    if info.multilingual() { Level::Warn } else { Level::Fail },
                    detail,
                    "a larger multilingual model improves Arabic a lot: `hiwar models fetch whisper-large-v3-turbo` \
                     (or whisper-small), then set hearing.whisper_model to it",
                )
            } else {
                Check::new("whisper model", true, Level::Ok, detail, "")
            }
        }
    }
}

/// How whisper.cpp was compiled into this binary: for which CPU, and with llamafile's matrix
/// kernels (docs/benchmarks.md, "whisper.cpp's matrix products").
fn whisper_build_check() -> Check {
    let built = hiwar_speech::whisper::build_features();
    let detail = format!("built with {}", built.join(" "));
    let missing = hiwar_speech::whisper::missing_cpu_features(&built);
    if !missing.is_empty() {
        return Check::new(
            "whisper.cpp build",
            true,
            Level::Fail,
            format!("built for {} this CPU lacks: the first decode would stop hiwar (illegal instruction); {detail}", missing.join(", ")),
            "build hiwar on a machine with this CPU's instruction set (`./bootstrap`), or build the package for the kiosks' CPUs",
        );
    }
    if !built.iter().any(|f| f == "LLAMAFILE") {
        return Check::new(
            "whisper.cpp build",
            false,
            Level::Warn,
            format!("without llamafile's matrix kernels: decodes ~15 % slower; {detail}"),
            "`./bootstrap` rebuilds it with GGML_LLAMAFILE",
        );
    }
    Check::new("whisper.cpp build", true, Level::Ok, detail, "")
}

fn onnx_check(store: &Store) -> Check {
    let Some(path) = store.onnx_runtime_path() else {
        return Check::new("ONNX Runtime", true, Level::Fail, "not in the manifest", "");
    };
    match hiwar_speech::onnx::load(&path) {
        Ok(info) => Check::new("ONNX Runtime", true, Level::Ok, format!("{} loads; execution providers: {}", info.version, info.providers.join(", ")), ""),
        Err(e) => Check::new("ONNX Runtime", true, Level::Fail, e.to_string(), fetch_hint("onnxruntime")),
    }
}

fn arabic_voice_check(config: &Config) -> Check {
    let path = &config.voice.arabic_voice;
    if path.is_empty() {
        return Check::new(
            "Arabic voice",
            false,
            Level::Warn,
            "en_US-joe-medium speaking hiwar's Arabic phonemes: hard to understand (round-trip CER 0.52 with whisper base judging: docs/benchmarks.md, \"Arabic voice\")",
            "for natural Arabic: `hiwar models fetch piper-ar-kareem-medium` (needs internet), then set voice.arabic_voice to its .onnx",
        );
    }
    let json = format!("{path}.json");
    if std::path::Path::new(path).is_file() && std::path::Path::new(&json).is_file() {
        Check::new("Arabic voice", false, Level::Ok, format!("{path} (Piper)"), "")
    } else {
        Check::new(
            "Arabic voice",
            true,
            Level::Fail,
            format!("voice.arabic_voice = {path}: the .onnx or its .onnx.json is missing"),
            "hiwar models fetch piper-ar-kareem-medium, or fix the path",
        )
    }
}

fn espeak_check() -> Check {
    match hiwar_speech::espeak::probe() {
        Ok(info) if info.has_arabic && info.has_english => {
            Check::new("espeak-ng", true, Level::Ok, format!("{} with Arabic and English data (run as a separate process)", info.version), "")
        }
        Ok(info) => Check::new(
            "espeak-ng",
            true,
            Level::Fail,
            format!("{}: Arabic data {}, English data {}", info.version, yes_no(info.has_arabic), yes_no(info.has_english)),
            "apt-get install espeak-ng-data",
        ),
        Err(e) => Check::new("espeak-ng", true, Level::Fail, e.to_string(), "apt-get install espeak-ng"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "present" } else { "missing" }
}

fn audio_checks(config: &Config) -> Vec<Check> {
    let devices = hiwar_speech::audio::list_devices();
    let fix = "connect a microphone and speaker, or start PulseAudio/PipeWire; `hiwar say --out` and `hiwar transcribe FILE` work without them";
    let row = |name: &str, wanted: &str, default: &Result<String, String>, all: &[String]| -> Check {
        if !wanted.is_empty() {
            return if all.iter().any(|d| d == wanted) {
                Check::new(name, true, Level::Ok, format!("{wanted} (configured; {} host)", devices.host), "")
            } else {
                Check::new(
                    name,
                    true,
                    Level::Fail,
                    format!("configured device `{wanted}` not found; have: {}", list_or_none(all)),
                    "set the device name to one listed, or empty for the default",
                )
            };
        }
        match default {
            Ok(d) => Check::new(name, true, Level::Ok, format!("{d}; default of the {} host", devices.host), ""),
            Err(why) => Check::new(name, true, Level::Fail, format!("{why} ({} host, {} devices listed)", devices.host, all.len()), fix),
        }
    };
    let mut input = row("audio input", &config.audio.input_device, &devices.default_input, &devices.inputs);
    if config.audio.input_device.is_empty()
        && input.level == Level::Ok
        && let Some((source, sink)) = hiwar_speech::hearing::default_source_hears_default_sink()
    {
        input = Check::new(
            "audio input",
            true,
            Level::Warn,
            format!(
                "the sound server's default source is {source}, the monitor of the speaker {sink}: no microphone, hiwar would hear itself (it waits for one)"
            ),
            "connect a microphone, or choose it: pactl set-default-source NAME",
        );
    }
    vec![input, row("audio output", &config.audio.output_device, &devices.default_output, &devices.outputs)]
}

fn list_or_none(all: &[String]) -> String {
    if all.is_empty() { "none".into() } else { all.join(", ") }
}

fn display_check() -> Check {
    let x11 = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let wayland = std::env::var("WAYLAND_DISPLAY").ok().filter(|d| !d.is_empty());
    match (x11, wayland) {
        (_, Some(w)) => Check::new("display", false, Level::Ok, format!("Wayland {w}"), ""),
        (Some(x), None) => Check::new("display", false, Level::Ok, format!("X11 {x}"), ""),
        (None, None) => Check::new(
            "display",
            false,
            Level::Warn,
            "none (no DISPLAY or WAYLAND_DISPLAY): headless only",
            "run on a desktop, or under `xvfb-run -a` for offscreen rendering",
        ),
    }
}

fn graphics_check() -> Check {
    let best = match hiwar_stage::graphics::best_adapter() {
        Ok(b) => b,
        Err(e) => return Check::new("graphics", false, Level::Fail, e, ""),
    };
    match best.as_ref() {
        None => Check::new(
            "graphics",
            false,
            Level::Fail,
            "no wgpu adapter (Vulkan/GL)",
            "install GPU drivers, or Mesa's software Vulkan: apt-get install mesa-vulkan-drivers",
        ),
        Some(i) if i.device_type == wgpu::DeviceType::Cpu => Check::new(
            "graphics",
            false,
            Level::Warn,
            format!("{} via {:?} — software rendering, slow", i.name, i.backend),
            "fine for tests and headless video; use a GPU for a kiosk",
        ),
        Some(i) => Check::new("graphics", false, Level::Ok, format!("{} via {:?} ({:?})", i.name, i.backend, i.device_type), ""),
    }
}

fn font_check() -> Check {
    let bundled = hiwar_core::assets::assets_dir().join(hiwar_stage::captions::FONT);
    if bundled.is_file() {
        return Check::new("Arabic font", true, Level::Ok, format!("{} (bundled, OFL)", bundled.display()), "");
    }
    const FONTS: [&str; 2] = ["/usr/share/fonts/opentype/fonts-hosny-amiri/Amiri-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf"];
    match FONTS.iter().find(|f| std::path::Path::new(f).exists()) {
        Some(f) => Check::new("Arabic font", true, Level::Ok, (*f).to_string(), ""),
        None => Check::new("Arabic font", true, Level::Fail, "no Arabic caption font", "apt-get install fonts-hosny-amiri fonts-noto-core"),
    }
}

fn llm_check(config: &Config) -> Check {
    let llm = &config.llm;
    let base_url = match llm.endpoint() {
        Ok(url) => url,
        Err(e) => return Check::new("LLM", true, Level::Fail, e.to_string(), "fix llm.preset or set llm.base_url"),
    };
    if base_url.is_empty() {
        return Check::new(
            "LLM",
            false,
            Level::Warn,
            "not configured: answers come from the local knowledge base only",
            "set llm.base_url (see hiwar.example.toml)",
        );
    }
    let key = match config.llm_api_key() {
        Ok(key) => key,
        Err(why) => return Check::new("LLM", true, Level::Fail, format!("{}: {why}", base_url), format!("export {}=…", llm.api_key_env)),
    };
    let url = format!("{}/models", base_url);
    let probe = async {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(llm.connect_timeout_ms.clamp(1_000, 10_000))).build()?;
        let mut request = client.get(&url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await
    };
    let result = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(probe));
    match result {
        Err(e) => Check::new("LLM", true, Level::Fail, format!("cannot start a runtime: {e}"), ""),
        Ok(Ok(r)) if r.status().is_success() => Check::new("LLM", true, Level::Ok, format!("{} reachable and authorised (model {})", base_url, llm.model), ""),
        Ok(Ok(r)) if matches!(r.status().as_u16(), 401 | 403) => Check::new(
            "LLM",
            true,
            Level::Fail,
            format!("{} refused the key (HTTP {})", base_url, r.status().as_u16()),
            format!("check the key in ${} and its region/endpoint", llm.api_key_env),
        ),
        Ok(Ok(r)) => Check::new("LLM", true, Level::Fail, format!("{url} answered HTTP {}", r.status().as_u16()), "check llm.base_url (it should end in /v1)"),
        Ok(Err(e)) => Check::new(
            "LLM",
            true,
            Level::Fail,
            format!("{} unreachable: {}", base_url, hiwar_core::runtime::root_cause(&e)),
            "check the network and llm.base_url; offline, hiwar answers from its knowledge base",
        ),
    }
}
