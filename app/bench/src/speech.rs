//! `hiwar bench asr`: figures for docs/benchmarks.md, printed as Markdown.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hiwar_speech::hearing::{self, Hearing, HearingConfig, HearingEvent, PacedSource, Source, Transcriber};
use hiwar_speech::text::{character_error_rate, word_error_rate};
use hiwar_speech::whisper::{DecodeOptions, Language, WhisperModel, audio_ctx_for};
use serde::Deserialize;

use hiwar_core::config::Config;

const REFERENCE_C: &str = include_str!("../ref/whisper_ref.c");
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
pub fn tts(config: &Config, python: &str, reps: usize) -> anyhow::Result<ExitCode> {
    let mut voice = hiwar_core::build::english_voice(config)?;
    let mut diacritizer = hiwar_core::build::diacritizer(config)?;
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
    round_trip(config, &mut voice, &mut diacritizer)?;
    Ok(ExitCode::SUCCESS)
}

/// Intelligibility of the Arabic voices a registry can give, heard back by whisper with
/// Arabic forced: the English Piper voice on hiwar's phonemes, and espeak-ng's own voice,
/// both from hiwar's diacritisation of the same undiacritised sentences.
fn round_trip(config: &Config, voice: &mut hiwar_speech::voice::PiperVoice, diacritizer: &mut hiwar_speech::voice::Diacritizer) -> anyhow::Result<()> {
    let hc = hiwar_core::build::hearing_config(config, Some("ar"))?;
    let transcriber = Transcriber::load(&hc)?;
    let espeak = hiwar_speech::voice::EspeakVoice { voice: "ar".into(), speed: 130 };
    let clips = load_clips()?;
    let sentences: Vec<String> =
        clips.iter().filter(|c| c.clip.lang == "ar").map(|c| c.clip.text.clone()).chain(TTS_ARABIC.iter().map(|s| (*s).to_string())).collect();
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
        let marked = diacritizer.diacritize(&hiwar_speech::voice::normalize_for_speech(text))?;
        let es = espeak.synthesize(&marked)?;
        let (ca, cb) = (character_error_rate(text, &hear(piper)?), character_error_rate(text, &hear(es)?));
        a.push(ca);
        b.push(cb);
        println!("| {text} | {ca:.2} | {cb:.2} |");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!("| **mean** | **{:.2}** | **{:.2}** |\n", mean(&a), mean(&b));
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
struct ClipSet {
    clip: Vec<Clip>,
}

#[derive(Debug, Clone, Deserialize)]
struct Clip {
    file: String,
    lang: String,
    text: String,
    #[allow(dead_code, reason = "provenance, read by people")]
    made: String,
}

struct Loaded {
    clip: Clip,
    name: String,
    samples: Vec<f32>,
}

fn load_clips() -> anyhow::Result<Vec<Loaded>> {
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

fn rss_mib() -> f64 {
    crate::stats::rss_mib(std::process::id())
}

/// The `p`th percentile (0–100).
fn percentile(values: &mut [f64], p: f64) -> f64 {
    crate::stats::percentile(values, p / 100.0)
}

fn error_rate(clip: &Clip, heard: &str) -> (String, f64) {
    if clip.lang == "en" { ("WER".into(), word_error_rate(&clip.text, heard)) } else { ("CER".into(), character_error_rate(&clip.text, heard)) }
}

pub fn asr(config: &Config, model: Option<PathBuf>, reps: usize, rounds: usize, only: &[String]) -> anyhow::Result<ExitCode> {
    let part = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut hc = hiwar_core::build::hearing_config(config, None)?;
    if let Some(m) = model {
        anyhow::ensure!(m.is_file(), "{} does not exist", m.display());
        hc.whisper_model = m;
    }
    let threads = hc.threads;
    let clips = load_clips()?;
    let info = hiwar_speech::models::read_ggml_whisper_info(&hc.whisper_model)?;
    println!("## hiwar bench asr\n");
    println!(
        "Model `{}` (whisper {}), {threads} threads, {} clips from assets/clips (see clips.toml for their limits).\n",
        hc.whisper_model.display(),
        info.size_name(),
        clips.len()
    );

    // Memory.
    let before = rss_mib();
    let mut transcriber = Transcriber::load(&hc)?;
    let loaded = rss_mib();

    if part("accuracy") {
        accuracy(&hc, &mut transcriber, &clips)?;
    }
    if part("speed") {
        speed(&hc, &clips, reps, threads)?;
    }
    drop(transcriber);
    if part("latency") {
        latency(&hc, &clips, rounds)?;
    }
    if !part("memory") {
        return Ok(ExitCode::SUCCESS);
    }
    println!("### Memory\n");
    println!("| what | RSS |\n|---|---|");
    println!("| process before loading whisper | {before:.0} MiB |");
    println!("| with whisper {} loaded (and ONNX Runtime + VAD) | {loaded:.0} MiB |", info.size_name());
    println!("| after all runs | {:.0} MiB |\n", rss_mib());
    Ok(ExitCode::SUCCESS)
}

/// Accuracy through the whole file pipeline (VAD → whisper), detected and forced language,
/// with the short encoder window and with whisper's full 30 s window.
fn accuracy(hc: &HearingConfig, t: &mut Transcriber, clips: &[Loaded]) -> anyhow::Result<()> {
    println!("### Accuracy on the clip set (file pipeline: VAD → whisper)\n");
    println!("| clip | lang | metric | detected (ar/en): heard | rate | forced: rate | forced, full 30 s window: rate |");
    println!("|---|---|---|---|---|---|---|");
    let dir = hiwar_core::assets::assets_dir().join("clips");
    let mut sums = [(0.0, 0.0, 0.0, 0usize); 2];
    for c in clips {
        let path = dir.join(&c.clip.file);
        let run = |t: &mut Transcriber, lang: Option<&str>, short: bool| -> anyhow::Result<(String, String)> {
            t.set_forced_language(lang.map(str::to_string));
            t.set_short_window(short);
            let us = hearing::transcribe_file(&path, hc, t)?;
            let text = us.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ");
            let lang = us.first().map(|u| u.lang.clone()).unwrap_or_else(|| "—".into());
            Ok((lang, text))
        };
        let forced = if c.clip.lang == "mixed" { "ar" } else { c.clip.lang.as_str() };
        let (lang, heard) = run(t, None, true)?;
        let (_, forced_heard) = run(t, Some(forced), true)?;
        let (_, full_heard) = run(t, Some(forced), false)?;
        let (metric, auto_rate) = error_rate(&c.clip, &heard);
        let forced_rate = error_rate(&c.clip, &forced_heard).1;
        let full_rate = error_rate(&c.clip, &full_heard).1;
        let k = usize::from(c.clip.lang != "en");
        sums[k].0 += auto_rate;
        sums[k].1 += forced_rate;
        sums[k].2 += full_rate;
        sums[k].3 += 1;
        println!("| {} | {} | {metric} | {lang}: {} | {auto_rate:.2} | {forced_rate:.2} | {full_rate:.2} |", c.name, c.clip.lang, heard.replace('|', "/"),);
    }
    t.set_forced_language(None);
    t.set_short_window(hc.short_window);
    for (k, name) in [(0, "English (mean WER)"), (1, "Arabic and mixed (mean CER)")] {
        let (a, f, w, n) = sums[k];
        let n = n.max(1) as f64;
        println!("| **{name}** | | | | **{:.2}** | **{:.2}** | **{:.2}** |", a / n, f / n, w / n);
    }
    println!();
    Ok(())
}

/// Our decode time against whisper.cpp called directly, same model, threads, encoder width,
/// language and clips.
fn speed(hc: &HearingConfig, clips: &[Loaded], reps: usize, threads: usize) -> anyhow::Result<()> {
    println!("### Speed: hiwar's whisper call vs whisper.cpp called directly (C, whisper.h)\n");
    let model = WhisperModel::load(&hc.whisper_model)?;
    let reference = match build_reference() {
        Ok(path) => Some(path),
        Err(e) => {
            println!("reference not built here ({e:#}); only hiwar's own times are shown.\n");
            None
        }
    };
    let tmp = tempdir()?;
    println!("| clip | audio | encoder width | hiwar (median of {reps}) | whisper.cpp | ratio | same text |");
    println!("|---|---|---|---|---|---|---|");
    let (mut ours_total, mut ref_total) = (0.0, 0.0);
    let mut differences = Vec::new();
    for c in clips.iter().filter(|c| c.clip.lang != "mixed") {
        let lang = c.clip.lang.as_str();
        let options = DecodeOptions { language: Language::Fixed(lang), threads, temperature_fallback: hc.temperature_fallback, ..DecodeOptions::default() };
        let mut times = Vec::with_capacity(reps);
        let mut text = String::new();
        for _ in 0..reps {
            let started = Instant::now();
            let t = model.decode(&c.samples, &options)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            text = t.text();
        }
        let ours = percentile(&mut times, 50.0);
        let width = audio_ctx_for(c.samples.len());
        let theirs = match &reference {
            Some(exe) => Some(run_reference(exe, &tmp, c, threads, width, lang, reps, &hc.whisper_model, hc.temperature_fallback)?),
            None => None,
        };
        ours_total += ours;
        let (ref_ms, ratio, same) = match &theirs {
            Some((ms, ref_text)) => {
                ref_total += ms;
                let same = words(ref_text) == words(&text);
                if !same {
                    differences.push(format!("- {}: hiwar \"{}\" · whisper.cpp \"{}\"", c.name, text.trim(), ref_text.trim()));
                }
                (format!("{ms:.0} ms"), format!("{:.3}", ours / ms), if same { "yes" } else { "no" })
            }
            None => ("—".into(), "—".into(), "—"),
        };
        println!("| {} | {:.1} s | {width} | {ours:.0} ms | {ref_ms} | {ratio} | {same} |", c.name, c.samples.len() as f64 / 16_000.0);
    }
    if ref_total > 0.0 {
        println!("| **all** | | | **{ours_total:.0} ms** | **{ref_total:.0} ms** | **{:.3}** | |", ours_total / ref_total);
    }
    if !differences.is_empty() {
        println!("\nWhere the transcripts differ:\n\n{}", differences.join("\n"));
    }
    println!();
    Ok(())
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hiwar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[allow(clippy::too_many_arguments, reason = "one call site; the reference's command line")]
fn run_reference(
    exe: &Path,
    tmp: &Path,
    c: &Loaded,
    threads: usize,
    width: i32,
    lang: &str,
    reps: usize,
    model: &Path,
    fallback: bool,
) -> anyhow::Result<(f64, String)> {
    let raw = tmp.join(format!("{}.f32", c.name));
    let bytes: Vec<u8> = c.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw, bytes)?;
    let out = Command::new(exe)
        .arg(model)
        .args([threads.to_string(), width.to_string(), lang.to_string(), reps.to_string(), if fallback { "0.2" } else { "0.0" }.to_string()])
        .arg(&raw)
        .output()
        .context("running the whisper.cpp reference")?;
    if !out.status.success() {
        bail!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    let (ms, text) = line.split_once('\t').context("reference output")?;
    Ok((ms.parse()?, text.to_string()))
}

/// Compiles bench/whisper_ref.c against the whisper.cpp that whisper-rs-sys built for this
/// binary (same source, same static libraries).
fn build_reference() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().context("exe dir")?;
    let build = profile_dir.join("build");
    let mut outs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&build)
        .with_context(|| format!("{} (run from a cargo build)", build.display()))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("whisper-rs-sys-"))
        .map(|e| e.path().join("out"))
        .filter_map(|o| Some((std::fs::metadata(o.join("lib/libwhisper.a")).ok()?.modified().ok()?, o)))
        .collect();
    outs.sort();
    let (_, out) = outs.pop().context("whisper-rs-sys's build output not found")?;
    let src = profile_dir.join("whisper_ref.c");
    let bin = profile_dir.join("whisper_ref");
    std::fs::write(&src, REFERENCE_C)?;
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg(format!("-I{}", out.join("include").display()))
        .arg(format!("-L{}", out.join("lib").display()))
        .args(["-lwhisper", "-lggml", "-lggml-cpu", "-lggml-base", "-lstdc++", "-lm", "-lpthread"])
        .status()
        .context("running cc")?;
    anyhow::ensure!(status.success(), "cc failed to build the reference");
    Ok(bin)
}

/// End-of-speech latency on a real-time paced stream: each clip after a second of silence.
fn latency(hc: &HearingConfig, clips: &[Loaded], rounds: usize) -> anyhow::Result<()> {
    let chosen: Vec<&Loaded> = clips.iter().filter(|c| (2.0..=5.5).contains(&(c.samples.len() as f64 / 16_000.0))).collect();
    let mut stream = Vec::new();
    for _ in 0..rounds.max(1) {
        for c in &chosen {
            stream.extend(std::iter::repeat_n(0.0, 16_000));
            stream.extend_from_slice(&c.samples);
        }
    }
    stream.extend(std::iter::repeat_n(0.0, 24_000));
    let seconds = stream.len() as f64 / 16_000.0;
    println!("### Latency on a real-time paced stream\n");
    println!(
        "{} utterances of 2–5.5 s ({} rounds of the clip set), each after 1 s of silence, fed at real-time pace in 20 ms blocks; end silence {} ms.\n",
        chosen.len() * rounds.max(1),
        rounds.max(1),
        hc.segmenter.end_silence_ms
    );
    let hearing = Hearing::start(hc.clone(), Source::Paced(PacedSource { samples: stream, rate: 16_000, block: 320 }))?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 30.0);
    let mut started = std::collections::HashMap::new();
    let mut decided = std::collections::HashMap::new();
    let (mut to_final, mut to_partial, mut speculative, mut finals) = (Vec::new(), Vec::new(), 0, 0);
    let mut heard: Vec<String> = Vec::new();
    let mut first_partial = std::collections::HashSet::new();
    while Instant::now() < deadline && finals < chosen.len() * rounds.max(1) {
        let Ok(event) = hearing.events.recv_timeout(Duration::from_millis(200)) else { continue };
        match event {
            HearingEvent::SpeechStarted { utterance, at, .. } => {
                started.insert(utterance, at);
            }
            HearingEvent::Partial { utterance, at, .. } => {
                if first_partial.insert(utterance)
                    && let Some(s) = started.get(&utterance)
                {
                    to_partial.push(at.duration_since(*s).as_secs_f64() * 1e3);
                }
            }
            HearingEvent::SpeechEnded { utterance, decided: when, .. } => {
                decided.insert(utterance, when);
            }
            HearingEvent::Final { id, ready, speculative: s, utterance } => {
                finals += 1;
                heard.push(utterance.map(|u| u.text).unwrap_or_default());
                speculative += usize::from(s);
                if let Some(d) = decided.get(&id) {
                    to_final.push(ready.saturating_duration_since(*d).as_secs_f64() * 1e3);
                }
            }
            HearingEvent::Failed { reason } => bail!("hearing failed: {reason}"),
            _ => {}
        }
    }
    hearing.stop();
    println!("| measure | n | p50 | p95 |\n|---|---|---|---|");
    let n = to_final.len();
    println!(
        "| end-pointing decision → final transcript | {n} | {:.0} ms | {:.0} ms |",
        percentile(&mut to_final.clone(), 50.0),
        percentile(&mut to_final, 95.0)
    );
    let n = to_partial.len();
    println!("| speech detected → first partial | {n} | {:.0} ms | {:.0} ms |", percentile(&mut to_partial.clone(), 50.0), percentile(&mut to_partial, 95.0));
    println!("\nFinals ready from the speculative decode during the trailing silence: {speculative} of {finals}.");
    // What the live finals said, against the references (utterances in clip order).
    let expected: Vec<&Loaded> = (0..rounds.max(1)).flat_map(|_| chosen.iter().copied()).collect();
    if heard.len() == expected.len() {
        let english: Vec<f64> = expected.iter().zip(&heard).filter(|(c, _)| c.clip.lang == "en").map(|(c, h)| word_error_rate(&c.clip.text, h)).collect();
        let other: Vec<f64> = expected.iter().zip(&heard).filter(|(c, _)| c.clip.lang != "en").map(|(c, h)| character_error_rate(&c.clip.text, h)).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!("Live finals (language detected, as a kiosk runs): English mean WER {:.2}, Arabic/mixed mean CER {:.2}.\n", mean(&english), mean(&other));
    } else {
        println!("Live finals: {} for {} utterances (a clip split or merged), accuracy not paired.\n", heard.len(), expected.len());
    }
    Ok(())
}
