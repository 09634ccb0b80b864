//! Bad input from outside, through the `hiwar` binary: audio with samples that are not numbers,
//! model files damaged on disk, LLM answers that are empty, oversized or full of reasoning, and
//! config values outside their documented sets. Each gets a clear error or a spoken fallback —
//! never a panic, noise, silence or a hang — and nothing is written outside hiwar's own cache.

use std::path::{Path, PathBuf};

use hiwar_tests::{Standin, clip, hiwar, model_cache, run};
use serde_json::Value;

/// The clip as f32 at `rate`, with a NaN, +inf and -inf in the speech, as a float wav.
fn damaged_clip(dir: &Path, rate: u32) -> PathBuf {
    let (path, _) = clip("en-passport.wav");
    let audio = hiwar_speech::hearing::open_audio_file(&path).and_then(|f| f.read_all()).expect("clip");
    let mut r = hiwar_speech::hearing::Resampler::between(audio.sample_rate, rate).expect("resampler");
    let mut samples = r.push(&audio.samples).expect("resample").to_vec();
    samples.extend_from_slice(r.finish().expect("resample"));
    let at = samples.len() / 3;
    samples[at] = f32::NAN;
    samples[at + 100] = f32::INFINITY;
    samples[at + 200] = f32::NEG_INFINITY;
    let out = dir.join(format!("damaged-{rate}.wav"));
    let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(&out, spec).expect("wav");
    for s in samples {
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("wav");
    out
}

fn no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{what}: a panic\n{stderr}");
}

#[test]
fn samples_that_are_not_numbers_are_replaced_with_a_warning_and_the_speech_is_kept() {
    let dir = tempfile::tempdir().expect("dir");
    for rate in [8_000, 16_000, 22_050, 44_100, 48_000] {
        let wav = damaged_clip(dir.path(), rate);
        let out = run(hiwar(&model_cache()).args(["transcribe", "--json", "--lang", "en"]).arg(&wav));
        no_panic(&format!("{rate} Hz"), &out.stderr);
        assert_eq!(out.code, Some(0), "{rate} Hz: {}", out.stderr);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{rate} Hz: {e}: {}", out.stdout));
        let text = v["text"].as_str().unwrap_or_default().to_lowercase();
        assert!(text.contains("passport") && text.contains("appointment"), "{rate} Hz: the speech was lost: {text:?}");
        assert!(out.stderr.contains("3 sample(s) were not finite numbers"), "{rate} Hz: no warning:\n{}", out.stderr);
    }
}

/// A model cache whose files link to the real one, except `damaged`, which is a copy of the
/// real file with 4 KiB flipped in its middle.
fn cache_with_damaged(dir: &Path, damaged: &str) -> PathBuf {
    let home = dir.join("cache");
    fn link_all(from: &Path, to: &Path, damaged: &str) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read cache").flatten() {
            let (src, dst) = (e.path(), to.join(e.file_name()));
            if src.is_dir() {
                if !e.file_name().to_string_lossy().starts_with('.') {
                    link_all(&src, &dst, damaged);
                }
            } else if e.file_name().to_string_lossy() == damaged {
                let mut bytes = std::fs::read(&src).expect("model");
                let mid = bytes.len() / 2;
                bytes[mid..mid + 4096].iter_mut().for_each(|b| *b ^= 0xff);
                std::fs::write(&dst, bytes).expect("damaged copy");
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                std::os::unix::fs::symlink(&src, &dst).expect("link");
            }
        }
    }
    link_all(&model_cache(), &home, damaged);
    home
}

#[test]
fn a_model_damaged_on_disk_is_refused_before_it_is_used_with_the_fix() {
    let dir = tempfile::tempdir().expect("dir");
    // The voice: 4 KiB flipped played full-scale noise and exited 0.
    let home = cache_with_damaged(dir.path(), "en_US-joe-medium.onnx");
    let wav = dir.path().join("said.wav");
    let out = run(hiwar(&home).args(["say", "Welcome to the service centre.", "--out"]).arg(&wav));
    no_panic("damaged voice", &out.stderr);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("en_US-joe-medium.onnx is damaged") && out.stderr.contains("hiwar models fetch piper-en-joe"), "{}", out.stderr);
    assert!(!wav.exists(), "noise was written");
    // The same damaged file named as the operator's own voice: it loads, and what it makes is
    // noise, which is refused.
    let mut cmd = hiwar(&model_cache());
    cmd.env("HIWAR_VOICE_ENGLISH_VOICE", home.join("voices/en_US-joe-medium.onnx"));
    let out = run(cmd.args(["say", "Welcome to the service centre.", "--out"]).arg(&wav));
    no_panic("the operator's damaged voice", &out.stderr);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("noise, not speech"), "{}", out.stderr);
    assert!(!wav.exists(), "noise was written");
    // hiwar serve does not start with it.
    let mut cmd = hiwar(&model_cache());
    cmd.env("HIWAR_VOICE_ENGLISH_VOICE", home.join("voices/en_US-joe-medium.onnx"));
    let out = run(cmd.args(["serve", "--bind", "127.0.0.1:0"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("does not speak"), "{}", out.stderr);

    // Whisper: a damaged model made every file "(no speech)".
    let dir = tempfile::tempdir().expect("dir");
    let home = cache_with_damaged(dir.path(), "ggml-base.bin");
    let out = run(hiwar(&home).args(["transcribe"]).arg(clip("en-office.wav").0));
    no_panic("damaged whisper", &out.stderr);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("ggml-base.bin is damaged") && out.stderr.contains("hiwar models fetch whisper-base"), "{}", out.stderr);
    assert!(!out.stdout.contains("(no speech)"), "{}", out.stdout);
    // `models verify` agrees, and names the fix.
    let out = run(hiwar(&home).args(["models", "verify"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.contains("CORRUPT") && out.stdout.contains("ggml-base.bin"), "{}", out.stdout);
}

/// `hiwar chat --once` against the stand-in behaving as `behaviour`: the events and stderr.
fn chat(behaviour: &str, question: &str) -> (Vec<Value>, String) {
    let standin = Standin::start(&[behaviour]);
    let mut cmd = hiwar(&model_cache());
    standin.apply(&mut cmd);
    let out = run(cmd.args(["chat", "--once", question, "--events"]));
    no_panic(behaviour, &out.stderr);
    assert_eq!(out.code, Some(0), "{behaviour}: {}", out.stderr);
    let events = out.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (events, out.stderr)
}

#[test]
fn empty_oversized_and_reasoning_llm_answers_end_in_words_for_the_person() {
    let question = "How much does it cost to renew my passport?";
    for (behaviour, kind, log) in [("empty", "empty", "the LLM's answer was empty"), ("huge", "runaway", "bytes of text")] {
        let (events, stderr) = chat(behaviour, question);
        let fallback = events.iter().find(|e| e["event"] == "fallback").unwrap_or_else(|| panic!("{behaviour}: no fallback: {events:?}"));
        assert_eq!(fallback["kind"], kind, "{behaviour}");
        let answered = events.iter().find(|e| e["event"] == "answered").unwrap_or_else(|| panic!("{behaviour}: no answer"));
        let text = answered["text"].as_str().unwrap_or_default();
        assert!(text.contains("passport") || text.contains("Sorry"), "{behaviour}: the person hears nothing useful: {text:?}");
        assert!(text.len() < 2_000, "{behaviour}: {} bytes answered", text.len());
        assert!(stderr.contains(&format!("llm failed ({kind})")) && stderr.contains(log), "{behaviour}: the log does not say what failed:\n{stderr}");
    }
    // Reasoning, as a parser-less server or a parsing one sends it, is never said.
    for behaviour in ["reasoning", "think"] {
        let (events, _) = chat(behaviour, question);
        let answered = events.iter().find(|e| e["event"] == "answered").expect("answered");
        assert_eq!(answered["source"], "llm", "{behaviour}");
        let text = answered["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("Hello.") && !text.contains("think") && !text.contains("visitor asks"), "{behaviour}: {text:?}");
    }
}

#[test]
fn config_values_outside_their_documented_sets_are_errors_that_name_the_key() {
    for (var, value, key) in [
        ("HIWAR_HEARING_LANGUAGE", "fr", "hearing.language"),
        ("HIWAR_HEARING_LANGUAGES", "ar,de", "hearing.languages"),
        ("HIWAR_LLM_TEMPERATURE", "nan", "llm.temperature"),
        ("HIWAR_VOICE_DEVICE", "gpu", "voice.device"),
        ("HIWAR_HEARING_NO_SPEECH_THRESHOLD", "1.5", "hearing.no_speech_threshold"),
    ] {
        let out = run(hiwar(&model_cache()).env(var, value).args(["doctor"]));
        no_panic(var, &out.stderr);
        assert_eq!(out.code, Some(1), "{var}={value} was accepted:\n{}", out.stdout);
        assert!(out.stderr.contains(key), "{var}={value}: {}", out.stderr);
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("hiwar.toml");
    std::fs::write(&config, "[hearing]\nlanguage = \"fr\"\n\n[llm]\ntemperature = nan\n").expect("config");
    let out = run(hiwar(&model_cache()).arg("--config").arg(&config).args(["chat", "--once", "hello"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("hearing.language") && out.stderr.contains("llm.temperature") && out.stderr.contains("hiwar.toml"), "{}", out.stderr);
}

#[test]
fn onnx_runtime_writes_no_telemetry_and_nothing_lands_outside_the_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let (home, xdg) = (dir.path().join("home"), dir.path().join("xdg-cache"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&xdg).expect("xdg");
    let wav = dir.path().join("said.wav");
    let out = run(hiwar(&model_cache()).env("HOME", &home).env("XDG_CACHE_HOME", &xdg).args(["say", "Hello", "--out"]).arg(&wav));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = run(hiwar(&model_cache()).env("HOME", &home).env("XDG_CACHE_HOME", &xdg).args(["transcribe"]).arg(&wav));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mut written = Vec::new();
    for root in [&home, &xdg] {
        for e in walk(root) {
            written.push(e.display().to_string());
        }
    }
    assert!(written.is_empty(), "written outside hiwar's cache: {written:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
