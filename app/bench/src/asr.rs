//! `hiwar bench asr`: hearing's figures for docs/benchmarks.md, printed as Markdown, with
//! whisper.cpp called directly (the same vendored source, built here) as the peer.
//!
//! Parts (`--only`): `accuracy` (the clip set clean and with pink noise at 20 and 10 dB SNR:
//! hiwar with detection and with the language forced, whisper.cpp with whisper-cli's defaults,
//! forced and with its own detection; `accuracy-hiwar`: hiwar's rows only, for a change to
//! hiwar alone: the peer's take most of the part's half hour and do not change), `costs` (each decoding addition's cost and effect),
//! `biasing` (the knowledge base's words as the prompt, on the clips that hold them), `speed`
//! (hiwar's whisper call against whisper.cpp's, same settings), `decision` (a language
//! decision's detection and two decodes on one shared encoding against whisper_full's
//! encoding for each), `drafts` (a final after its partials, with no draft and with the
//! last partial as its draft), `latency` (end of speech →
//! final on a real-time paced stream; `BENCH_ASR_DEBUG=1` prints each clip's live finals), `memory`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hiwar_speech::audio::with_noise;
use hiwar_speech::hearing::{self, Decide, Hearing, HearingConfig, HearingEvent, PacedSource, Source, Transcriber, Utterance, script_share};
use hiwar_speech::text::{character_error_rate, word_error_rate};
use hiwar_speech::whisper::{DecodeOptions, Language, WhisperModel, audio_ctx_for};

use crate::speech::{Clip, Loaded, load_clips, percentile, rss_mib, tempdir};
use hiwar_core::config::Config;

const REFERENCE_C: &str = include_str!("../ref/whisper_ref.c");

/// The listening conditions: clean, and pink noise at 20 and 10 dB below the speech.
const CONDITIONS: [(&str, Option<f32>); 3] = [("clean", None), ("20 dB SNR", Some(20.0)), ("10 dB SNR", Some(10.0))];

pub fn asr(config: &Config, model: Option<PathBuf>, reps: usize, rounds: usize, only: &[String]) -> anyhow::Result<ExitCode> {
    let part = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut hc = hiwar_dialogue::mind::hearing_config(config, None)?;
    if let Some(m) = model {
        anyhow::ensure!(m.is_file(), "{} does not exist", m.display());
        hc.whisper_model = m;
    }
    let threads = hc.threads;
    let clips = load_clips()?;
    let info = hiwar_speech::models::read_ggml_whisper_info(&hc.whisper_model)?;
    let count = |lang: &str| clips.iter().filter(|c| c.clip.lang == lang).count();
    println!("## hiwar bench asr\n");
    println!(
        "Model `{}` (whisper {}), {threads} threads, {} clips from assets/clips ({} Arabic, {} English, {} mixed; espeak-ng, synthetic: see clips.toml for their limits). \
         hiwar as configured: temperature fallback {}, beam {}, knowledge prompt {}.\n",
        hc.whisper_model.display(),
        info.size_name(),
        clips.len(),
        count("ar"),
        count("en"),
        count("mixed"),
        match (hc.temperature_fallback, hc.fallback_logprob.is_finite()) {
            (false, _) => "off",
            (true, false) => "on (loops only)",
            (true, true) => "on (loops and log-probability)",
        },
        hc.beam_size,
        if config.hearing.knowledge_prompt.is_empty() { "off".to_string() } else { format!("in {}", config.hearing.knowledge_prompt.join(", ")) },
    );
    let reference = if part("accuracy") || part("speed") {
        match build_reference() {
            Ok(path) => Some(path),
            Err(e) => {
                println!("whisper.cpp reference not built here ({e:#}); only hiwar's own figures are shown.\n");
                None
            }
        }
    } else {
        None
    };

    let before = rss_mib();
    let mut transcriber = Transcriber::load(&hc)?;
    let loaded = rss_mib();
    for lang in &config.hearing.knowledge_prompt {
        let prompt = transcriber.prompt_for(lang);
        println!("The prompt in {lang} ({} of at most {} tokens): \"{prompt}\"\n", transcriber.token_count(&prompt), hc.prompt_tokens);
    }

    if part("accuracy") || part("accuracy-hiwar") {
        accuracy(&hc, &mut transcriber, &clips, if part("accuracy") { reference.as_deref() } else { None })?;
    }
    // The knowledge base's words, whether or not the config puts them in the prompt.
    let words = hiwar_dialogue::mind::knowledge::Knowledge::load(&hiwar_dialogue::mind::knowledge_dir(config))?.vocabulary();
    if part("costs") {
        costs(&mut transcriber, &hc, &clips, &words)?;
    }
    if part("biasing") {
        biasing(&mut transcriber, &hc, &clips, &words)?;
    }
    if part("speed") {
        speed(&hc, &clips, reps, threads, reference.as_deref())?;
    }
    if part("decision") {
        decision(&hc, &clips, reps, threads)?;
    }
    if part("drafts") {
        let prompts = ["ar", "en"].map(|l| (l, transcriber.prompt_for(l)));
        drafts(&hc, &clips, &prompts, reps, threads)?;
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

/// WER for English, CER for Arabic and mixed.
fn error_rate(clip: &Clip, heard: &str) -> f64 {
    if clip.lang == "en" { word_error_rate(&clip.text, heard) } else { character_error_rate(&clip.text, heard) }
}

/// A transcript more than twice as long as what was said: a runaway decode.
fn runaway(clip: &Clip, heard: &str) -> bool {
    heard.chars().count() > 2 * clip.text.chars().count()
}

/// The share of a mixed sentence's English words that the transcript kept (in Latin script).
fn english_kept(clip: &Clip, heard: &str) -> f64 {
    let latin = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| w.chars().any(|c| c.is_ascii_alphabetic())).map(str::to_lowercase).collect()
    };
    let said = latin(&clip.text);
    let got = latin(heard);
    if said.is_empty() {
        return 1.0;
    }
    said.iter().filter(|w| got.contains(w)).count() as f64 / said.len() as f64
}

/// What one decode of one clip gave.
struct Heard {
    text: String,
    lang: String,
    how: &'static str,
}

fn heard(us: &[Utterance]) -> Heard {
    Heard {
        text: us.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" "),
        lang: us.first().map_or_else(|| "—".into(), |u| u.lang.clone()),
        how: us.first().map_or("", |u| u.language.how),
    }
}

/// Sums over a set of clips, per language group.
#[derive(Default, Clone)]
struct Tally {
    en: Vec<f64>,
    ar: Vec<f64>,
    mixed: Vec<f64>,
    kept: Vec<f64>,
    empty: usize,
    runaway: usize,
    arabic_answered_in_latin: usize,
    /// Clips that ran away or came out empty, by name.
    faults: Vec<String>,
}

impl Tally {
    fn add(&mut self, clip: &Clip, text: &str) {
        if text.trim().is_empty() || runaway(clip, text) {
            self.faults.push(format!("{}: {:?}", clip.file, text));
        }
        let rate = error_rate(clip, text);
        match clip.lang.as_str() {
            "en" => self.en.push(rate),
            "ar" => self.ar.push(rate),
            _ => {
                self.mixed.push(rate);
                self.kept.push(english_kept(clip, text));
            }
        }
        self.empty += usize::from(text.trim().is_empty());
        self.runaway += usize::from(runaway(clip, text));
        if clip.lang == "ar" && !text.trim().is_empty() && script_share(text, "ar") < 0.5 {
            self.arabic_answered_in_latin += 1;
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    fn cells(&self) -> String {
        format!(
            "{:.3} | {:.3} | {:.3} | {:.2} | {} | {} | {}",
            Self::mean(&self.ar),
            Self::mean(&self.en),
            Self::mean(&self.mixed),
            Self::mean(&self.kept),
            self.empty,
            self.runaway,
            self.arabic_answered_in_latin
        )
    }
}

const TALLY_HEAD: &str = "Arabic CER | English WER | mixed CER | mixed: English words kept | empty | runaway | Arabic heard in Latin script";

/// Accuracy through the whole file pipeline (VAD → whisper), clean and in noise, detected and
/// forced, with whisper.cpp (whisper-cli's defaults) beside it on the same audio.
fn accuracy(hc: &HearingConfig, t: &mut Transcriber, clips: &[Loaded], reference: Option<&Path>) -> anyhow::Result<()> {
    println!("### Accuracy: the clip set, clean and in noise\n");
    println!(
        "hiwar: the file pipeline (VAD → whisper) as configured, with detection (the kiosk's mode) and with the language forced (mixed clips forced to Arabic). \
         whisper.cpp: whisper-cli's defaults (beam 5, best of 5, temperature fallback, full 30 s window) on the same audio, language forced and `auto` (its own detection over all languages).\n"
    );
    let tmp = tempdir()?;
    let mut summary = Vec::new();
    let mut faults = Vec::new();
    for (k, (condition, snr)) in CONDITIONS.iter().enumerate() {
        let audio: Vec<Vec<f32>> =
            clips.iter().enumerate().map(|(i, c)| snr.map_or_else(|| c.samples.clone(), |db| with_noise(&c.samples, db, (k * 1000 + i) as u64))).collect();
        let (mut detected, mut forced, mut ref_forced, mut ref_auto) = (Tally::default(), Tally::default(), Tally::default(), Tally::default());
        let (mut how, mut chosen) = (std::collections::BTreeMap::<String, usize>::new(), std::collections::BTreeMap::<String, usize>::new());
        // The peer, in three calls (Arabic-forced, English-forced, auto) so that it loads once each.
        let peer = match reference {
            Some(exe) => Some(reference_batch(exe, &tmp, clips, &audio, hc)?),
            None => None,
        };
        if snr.is_none() {
            println!("#### Each clip, clean\n");
            println!(
                "| clip | lang | hiwar, detected: language (how) · heard | rate | hiwar forced: rate | whisper.cpp forced: rate | whisper.cpp auto: language · rate |"
            );
            println!("|---|---|---|---|---|---|---|");
        }
        for (i, c) in clips.iter().enumerate() {
            t.set_forced_language(None);
            let d = heard(&hearing::transcribe_samples(&audio[i], hc, t)?);
            let force = if c.clip.lang == "mixed" { "ar" } else { c.clip.lang.as_str() };
            t.set_forced_language(Some(force.into()));
            let f = heard(&hearing::transcribe_samples(&audio[i], hc, t)?);
            detected.add(&c.clip, &d.text);
            forced.add(&c.clip, &f.text);
            *how.entry(d.how.to_string()).or_default() += 1;
            *chosen.entry(format!("{}→{}", c.clip.lang, d.lang)).or_default() += 1;
            let (rf, ra) = match &peer {
                Some(p) => {
                    ref_forced.add(&c.clip, &p[i].0.1);
                    ref_auto.add(&c.clip, &p[i].1.1);
                    (format!("{:.2}", error_rate(&c.clip, &p[i].0.1)), format!("{} · {:.2}", p[i].1.0, error_rate(&c.clip, &p[i].1.1)))
                }
                None => ("—".into(), "—".into()),
            };
            if snr.is_none() {
                println!(
                    "| {} | {} | {} ({}) · {} | {:.2} | {:.2} | {rf} | {ra} |",
                    c.name,
                    c.clip.lang,
                    d.lang,
                    d.how,
                    d.text.replace('|', "/"),
                    error_rate(&c.clip, &d.text),
                    error_rate(&c.clip, &f.text)
                );
            }
        }
        t.set_forced_language(hc.forced_language.clone());
        if snr.is_none() {
            println!();
        }
        let how: Vec<String> = how.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let chosen: Vec<String> = chosen.iter().map(|(k, v)| format!("{k} {v}")).collect();
        summary.push(format!("| {condition} | hiwar, detected | {} |", detected.cells()));
        summary.push(format!("| {condition} | hiwar, forced | {} |", forced.cells()));
        if peer.is_some() {
            summary.push(format!("| {condition} | whisper.cpp (cli defaults), forced | {} |", ref_forced.cells()));
            summary.push(format!("| {condition} | whisper.cpp (cli defaults), auto | {} |", ref_auto.cells()));
        }
        for (who, tally) in [("hiwar, detected", &detected), ("hiwar, forced", &forced), ("whisper.cpp forced", &ref_forced), ("whisper.cpp auto", &ref_auto)] {
            faults.extend(tally.faults.iter().map(|f| format!("- {condition}, {who}: {f}")));
        }
        summary.push(format!("| {condition} | hiwar's language choices | clip→chosen: {} · how: {} | | | | | | |", chosen.join(", "), how.join(", ")));
    }
    println!("#### Summary (means over the clips of each language)\n");
    println!("| audio | decoder | {TALLY_HEAD} |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for line in summary {
        println!("{line}");
    }
    if !faults.is_empty() {
        println!("\nEmpty or runaway (a transcript over twice its reference's length):\n\n{}", faults.join("\n"));
    }
    println!();
    Ok(())
}

/// For each clip: whisper.cpp with the language forced, and with `auto`: (language, text) each.
type PeerRow = ((String, String), (String, String));

fn reference_batch(exe: &Path, tmp: &Path, clips: &[Loaded], audio: &[Vec<f32>], hc: &HearingConfig) -> anyhow::Result<Vec<PeerRow>> {
    let mut files = Vec::new();
    for (c, a) in clips.iter().zip(audio) {
        let raw = tmp.join(format!("{}.f32", c.name));
        std::fs::write(&raw, a.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>())?;
        files.push(raw);
    }
    let run = |lang: &str, which: &[usize]| -> anyhow::Result<Vec<(f64, String, String)>> {
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<&PathBuf> = which.iter().map(|&i| &files[i]).collect();
        run_reference(exe, &hc.whisper_model, hc.threads, 0, lang, 1, "cli", &paths)
    };
    let ar: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].clip.lang != "en").collect();
    let en: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].clip.lang == "en").collect();
    let all: Vec<usize> = (0..clips.len()).collect();
    let mut forced = vec![(String::new(), String::new()); clips.len()];
    for (lang, which) in [("ar", &ar), ("en", &en)] {
        for (i, (_, l, text)) in which.iter().zip(run(lang, which)?) {
            forced[*i] = (l, text);
        }
    }
    let auto = run("auto", &all)?;
    Ok(forced.into_iter().zip(auto.into_iter().map(|(_, l, t)| (l, t))).collect())
}

/// The recogniser's vocabulary: terms per language.
type Words = std::collections::BTreeMap<String, Vec<String>>;

/// One configuration of hiwar's decoding for the costs table.
struct Setup {
    name: &'static str,
    fallback: bool,
    /// The fallback's log-probability test (−1.0: whisper's reference; −∞: loops only).
    logprob: f32,
    decide: Decide<'static>,
    /// The languages whose knowledge-base words are whisper's prompt.
    vocabulary: &'static [&'static str],
    /// At most this many of each language's terms (the most useful come first).
    terms: usize,
    beam: usize,
}

/// What each addition to the decoding costs per utterance and what it changes: each clip
/// decoded whole (no VAD), language detected.
fn costs(t: &mut Transcriber, hc: &HearingConfig, clips: &[Loaded], words: &Words) -> anyhow::Result<()> {
    println!("### What each decoding addition costs\n");
    println!(
        "Each clip decoded whole, language detected, clean audio; time per utterance (detection and every decode it needs). \
         Rows add one thing each, from hiwar before issue 17 (greedy, no fallback, detection's first guess, no prompt).\n"
    );
    println!("| setup | ms per utterance p50 | p95 | {TALLY_HEAD} |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let setups = [
        Setup { name: "greedy, detection only (before)", fallback: false, logprob: -1.0, decide: Decide::Detect, vocabulary: &[], terms: usize::MAX, beam: 1 },
        Setup {
            name: "+ temperature fallback (whisper's tests: loops and log-probability under −1.0)",
            fallback: true,
            logprob: -1.0,
            decide: Decide::Detect,
            vocabulary: &[],
            terms: usize::MAX,
            beam: 1,
        },
        Setup {
            name: "+ language decided by decoding both when unsure",
            fallback: true,
            logprob: -1.0,
            decide: Decide::Full,
            vocabulary: &[],
            terms: usize::MAX,
            beam: 1,
        },
        Setup {
            name: "the same, fallback on loops only (the default)",
            fallback: true,
            logprob: f32::NEG_INFINITY,
            decide: Decide::Full,
            vocabulary: &[],
            terms: usize::MAX,
            beam: 1,
        },
        Setup { name: "+ beam 5", fallback: true, logprob: f32::NEG_INFINITY, decide: Decide::Full, vocabulary: &[], terms: usize::MAX, beam: 5 },
        Setup {
            name: "+ knowledge base prompt in both languages, beam 1",
            fallback: true,
            logprob: f32::NEG_INFINITY,
            decide: Decide::Full,
            vocabulary: &["ar", "en"],
            terms: usize::MAX,
            beam: 1,
        },
        Setup {
            name: "the same, prompt in English only",
            fallback: true,
            logprob: f32::NEG_INFINITY,
            decide: Decide::Full,
            vocabulary: &["en"],
            terms: usize::MAX,
            beam: 1,
        },
        Setup {
            name: "the same, the English prompt's first 12 terms",
            fallback: true,
            logprob: f32::NEG_INFINITY,
            decide: Decide::Full,
            vocabulary: &["en"],
            terms: 12,
            beam: 1,
        },
        Setup {
            name: "the same, the English prompt's first 6 terms",
            fallback: true,
            logprob: f32::NEG_INFINITY,
            decide: Decide::Full,
            vocabulary: &["en"],
            terms: 6,
            beam: 1,
        },
    ];
    let saved = hc.vocabulary.read().map(|v| v.clone()).unwrap_or_default();
    t.set_forced_language(None);
    let mut faults = Vec::new();
    let mut prompts = Vec::new();
    for s in setups {
        t.set_temperature_fallback(s.fallback);
        t.set_fallback_logprob(s.logprob);
        t.set_beam_size(s.beam);
        if let Ok(mut v) = hc.vocabulary.write() {
            *v = words
                .iter()
                .filter(|(lang, _)| s.vocabulary.contains(&lang.as_str()))
                .map(|(l, w)| (l.clone(), w.iter().take(s.terms).cloned().collect()))
                .collect();
        }
        if s.terms != usize::MAX {
            prompts.push(format!("- {}: \"{}\"", s.name, t.prompt_for("en")));
        }
        let mut tally = Tally::default();
        let mut times = Vec::new();
        for c in clips {
            t.forget_conversation();
            let started = Instant::now();
            let u = t.transcribe_with(0, &c.samples, 0, c.samples.len() as u64, s.decide)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            tally.add(&c.clip, &u.map(|u| u.text).unwrap_or_default());
        }
        println!("| {} | {:.0} | {:.0} | {} |", s.name, percentile(&mut times.clone(), 50.0), percentile(&mut times, 95.0), tally.cells());
        faults.extend(tally.faults.iter().map(|f| format!("- {}: {f}", s.name)));
    }
    if !faults.is_empty() {
        println!("\nEmpty or runaway:\n\n{}", faults.join("\n"));
    }
    if !prompts.is_empty() {
        println!("\nThe shortened prompts:\n\n{}", prompts.join("\n"));
    }
    if let Ok(mut v) = hc.vocabulary.write() {
        *v = saved;
    }
    t.set_temperature_fallback(hc.temperature_fallback);
    t.set_fallback_logprob(hc.fallback_logprob);
    t.set_beam_size(hc.beam_size);
    t.set_forced_language(hc.forced_language.clone());
    println!();
    Ok(())
}

/// The knowledge base's words as whisper's prompt, on the clips that hold those words,
/// language forced (so only the prompt differs).
fn biasing(t: &mut Transcriber, hc: &HearingConfig, clips: &[Loaded], words: &Words) -> anyhow::Result<()> {
    let chosen: Vec<&Loaded> = clips.iter().filter(|c| c.clip.kb).collect();
    let saved = hc.vocabulary.read().map(|v| v.clone()).unwrap_or_default();
    if let Ok(mut v) = hc.vocabulary.write() {
        *v = words.clone();
    }
    println!("### The knowledge base as the recogniser's prompt\n");
    println!(
        "{} clips that name the knowledge base's services, places and documents; language forced; the prompt in Arabic: «{}»; in English: \"{}\".\n",
        chosen.len(),
        t.prompt_for("ar"),
        t.prompt_for("en")
    );
    println!("| clip | without the prompt | rate | with it | rate |\n|---|---|---|---|---|");
    let (mut off, mut on) = (Tally::default(), Tally::default());
    for c in chosen {
        t.set_forced_language(Some(if c.clip.lang == "mixed" { "ar" } else { c.clip.lang.as_str() }.into()));
        let run = |words: &Words| -> anyhow::Result<String> {
            if let Ok(mut v) = hc.vocabulary.write() {
                *v = words.clone();
            }
            t.forget_conversation();
            Ok(t.transcribe(0, &c.samples, 0, c.samples.len() as u64)?.map(|u| u.text).unwrap_or_default())
        };
        let without = run(&Default::default())?;
        let with = run(words)?;
        off.add(&c.clip, &without);
        on.add(&c.clip, &with);
        println!(
            "| {} | {} | {:.2} | {} | {:.2} |",
            c.name,
            without.replace('|', "/"),
            error_rate(&c.clip, &without),
            with.replace('|', "/"),
            error_rate(&c.clip, &with)
        );
    }
    if let Ok(mut v) = hc.vocabulary.write() {
        *v = saved;
    }
    t.set_forced_language(hc.forced_language.clone());
    println!("\n| prompt | {TALLY_HEAD} |\n|---|---|---|---|---|---|---|---|");
    println!("| none | {} |", off.cells());
    println!("| the knowledge base's words | {} |\n", on.cells());
    Ok(())
}

/// Our decode time against whisper.cpp called directly, same model, threads, encoder width,
/// language, clips and decoding settings (greedy, fallback as configured).
fn speed(hc: &HearingConfig, clips: &[Loaded], reps: usize, threads: usize, reference: Option<&Path>) -> anyhow::Result<()> {
    println!("### Speed: hiwar's whisper call vs whisper.cpp called directly (C, whisper.h)\n");
    let model = WhisperModel::load(&hc.whisper_model)?;
    let tmp = tempdir()?;
    println!("| clip | audio | encoder width | hiwar (median of {reps}) | whisper.cpp | ratio | same text |");
    println!("|---|---|---|---|---|---|---|");
    let (mut ours_total, mut ref_total) = (0.0, 0.0);
    let mut differences = Vec::new();
    let mode = if hc.temperature_fallback { "greedy" } else { "greedy-nofallback" };
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
        let theirs = match reference {
            Some(exe) => {
                let raw = tmp.join(format!("{}.f32", c.name));
                std::fs::write(&raw, c.samples.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>())?;
                run_reference(exe, &hc.whisper_model, threads, width, lang, reps, mode, &[&raw])?.pop()
            }
            None => None,
        };
        ours_total += ours;
        let (ref_ms, ratio, same) = match &theirs {
            Some((ms, _, ref_text)) => {
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
        println!("\nWhere the transcripts differ (the fallback samples, so a clip it fires on may differ run to run):\n\n{}", differences.join("\n"));
    }
    println!();
    Ok(())
}

/// A language decision as hearing makes it when detection is not sure (detection, then a
/// greedy decode as each language), each decode on its own encoding (`whisper_full`, as
/// before) and on detection's (`decode_encoded`), alternating in the same run.
fn decision(hc: &HearingConfig, clips: &[Loaded], reps: usize, threads: usize) -> anyhow::Result<()> {
    println!("### A language decision: one shared encoding against an encoding per decode\n");
    println!(
        "Detection, then a greedy decode as Arabic and as English (the decision hearing makes when detection is not a sure Arabic), \
         median of {reps}, {threads} threads, the two ways alternating: each decode by `whisper_full` (three encodings in all), \
         and both on detection's encoding (`decode_encoded`, one).\n"
    );
    let model = WhisperModel::load(&hc.whisper_model)?;
    println!("| clip | audio | encoding per decode | one encoding | ratio | same words |");
    println!("|---|---|---|---|---|---|");
    let (mut own_total, mut shared_total, mut same_count) = (0.0, 0.0, 0);
    for c in clips {
        let width = audio_ctx_for(c.samples.len());
        let options = |lang| DecodeOptions { language: Language::Fixed(lang), threads, temperature_fallback: false, ..DecodeOptions::default() };
        let (mut own, mut shared) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        let (mut own_text, mut shared_text) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let started = Instant::now();
            model.detect(&c.samples, &["ar", "en"], width, threads)?;
            own_text = ["ar", "en"].iter().map(|l| model.decode(&c.samples, &options(l)).map(|t| t.text())).collect::<Result<_, _>>()?;
            own.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            model.detect(&c.samples, &["ar", "en"], width, threads)?;
            shared_text = ["ar", "en"].iter().map(|l| model.decode_encoded(&c.samples, &options(l)).map(|t| t.text())).collect::<Result<_, _>>()?;
            shared.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let (o, s) = (percentile(&mut own, 50.0), percentile(&mut shared, 50.0));
        own_total += o;
        shared_total += s;
        let same = own_text == shared_text;
        same_count += usize::from(same);
        println!("| {} | {:.1} s | {o:.0} ms | {s:.0} ms | {:.2} | {} |", c.name, c.samples.len() as f64 / 16_000.0, s / o, if same { "yes" } else { "no" });
    }
    println!(
        "| **all** | | **{own_total:.0} ms** | **{shared_total:.0} ms** | **{:.2}** | {same_count} of {} |\n",
        shared_total / own_total.max(1e-9),
        clips.len()
    );
    Ok(())
}

/// A final decode after the partials hearing makes of the same utterance (every half second
/// from 1.5 s, the last a quarter of a second or more before its end), with no draft and with
/// the last partial as its draft (`DecodeOptions::draft`), each on a model of its own. The
/// finals alone are timed (their encoding included); the two take turns, `reps` times.
fn drafts(hc: &HearingConfig, clips: &[Loaded], prompts: &[(&str, String); 2], reps: usize, threads: usize) -> anyhow::Result<()> {
    println!("### A final with the last partial as its draft\n");
    println!(
        "Each clip's final decode after its partials (every 0.5 s from 1.5 s, as hearing makes them), in the clip's language (mixed: \
         Arabic) with hearing's prompt, {threads} threads, median of {reps}, with no draft and with the last partial as its draft \
         (`hearing.whisper_draft`). Decoder calls after the prompt's, and the final's time (its encoding included).\n"
    );
    let models: Vec<WhisperModel> = (0..2).map(|_| WhisperModel::load(&hc.whisper_model)).collect::<Result<_, _>>()?;
    println!("| clip | audio | no draft: calls | ms | draft: calls | ms | same words |");
    println!("|---|---|---|---|---|---|---|");
    let mut totals = [(0u64, 0.0f64); 2];
    let (mut same_count, mut differ) = (0, Vec::new());
    for c in clips {
        let lang = if c.clip.lang == "en" { "en" } else { "ar" };
        let prompt = prompts.iter().find(|(l, _)| *l == lang).map(|(_, p)| p.as_str()).filter(|p| !p.is_empty());
        let mut row: [(u64, Vec<f64>); 2] = std::array::from_fn(|_| (0, Vec::with_capacity(reps)));
        let mut texts: [String; 2] = Default::default();
        for _ in 0..reps {
            for (w, model) in models.iter().enumerate() {
                let options = DecodeOptions {
                    language: Language::Fixed(lang),
                    initial_prompt: prompt,
                    temperature_fallback: false,
                    threads,
                    draft: w == 1,
                    ..DecodeOptions::default()
                };
                for upto in (24_000..c.samples.len().saturating_sub(4_000)).step_by(8_000) {
                    model.decode_encoded(&c.samples[..upto], &options)?;
                }
                let calls = model.decoder_calls();
                let started = Instant::now();
                texts[w] = model.decode_encoded(&c.samples, &options)?.text();
                row[w].1.push(started.elapsed().as_secs_f64() * 1e3);
                row[w].0 = model.decoder_calls() - calls;
            }
        }
        let same = texts[0] == texts[1];
        same_count += usize::from(same);
        if !same {
            differ.push(format!("- {}: no draft «{}», draft «{}»", c.name, texts[0].trim(), texts[1].trim()));
        }
        let cells: Vec<String> = row
            .iter_mut()
            .zip(totals.iter_mut())
            .map(|((calls, ms), total)| {
                let ms = percentile(ms, 50.0);
                *total = (total.0 + *calls, total.1 + ms);
                format!("{calls} | {ms:.0}")
            })
            .collect();
        println!("| {} | {:.1} s | {} | {} |", c.name, c.samples.len() as f64 / 16_000.0, cells.join(" | "), if same { "yes" } else { "no" });
    }
    println!(
        "| **all** | | **{}** | **{:.0}** | **{}** | **{:.0}** ({:.2}×) | {same_count} of {} |\n",
        totals[0].0,
        totals[0].1,
        totals[1].0,
        totals[1].1,
        totals[1].1 / totals[0].1.max(1e-9),
        clips.len()
    );
    if !differ.is_empty() {
        println!("Where the words differ:\n\n{}\n", differ.join("\n"));
    }
    Ok(())
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// Runs the reference over `clips` (raw f32 files); one (median ms, language, text) per clip.
#[allow(clippy::too_many_arguments, reason = "the reference's command line")]
fn run_reference(
    exe: &Path,
    model: &Path,
    threads: usize,
    width: i32,
    lang: &str,
    reps: usize,
    mode: &str,
    clips: &[&PathBuf],
) -> anyhow::Result<Vec<(f64, String, String)>> {
    let out = Command::new(exe)
        .arg(model)
        .args([threads.to_string(), width.to_string(), lang.to_string(), reps.to_string(), mode.to_string()])
        .args(clips)
        .output()
        .context("running the whisper.cpp reference")?;
    if !out.status.success() {
        bail!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let ms: f64 = parts.next().context("reference output")?.parse()?;
            let lang = parts.next().context("reference output")?.to_string();
            Ok((ms, lang, parts.next().unwrap_or_default().trim().to_string()))
        })
        .collect()
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
        // whisper.cpp is built with OpenMP (see speech/Cargo.toml): link libgomp as hiwar does.
        .args(["-lwhisper", "-lggml", "-lggml-cpu", "-lggml-base", "-lstdc++", "-lm", "-lpthread", "-fopenmp"])
        .status()
        .context("running cc")?;
    anyhow::ensure!(status.success(), "cc failed to build the reference");
    Ok(bin)
}

/// End-of-speech latency on a real-time paced stream: each clip after two seconds of silence
/// (longer than Smart Turn's wait after an "unfinished", so clips stay apart).
fn latency(hc: &HearingConfig, clips: &[Loaded], rounds: usize) -> anyhow::Result<()> {
    let chosen: Vec<&Loaded> = clips.iter().filter(|c| (2.0..=5.5).contains(&(c.samples.len() as f64 / 16_000.0))).collect();
    let mut stream = Vec::new();
    // Where each clip lies in the stream (samples): finals are paired with clips by time, so a
    // clip the VAD splits in two is one clip heard in two finals.
    let mut spans = Vec::new();
    for _ in 0..rounds.max(1) {
        for c in &chosen {
            stream.extend(std::iter::repeat_n(0.0, 32_000));
            spans.push((stream.len() as u64, (stream.len() + c.samples.len()) as u64));
            stream.extend_from_slice(&c.samples);
        }
    }
    stream.extend(std::iter::repeat_n(0.0, 24_000));
    let seconds = stream.len() as f64 / 16_000.0;
    println!("### Latency on a real-time paced stream\n");
    println!(
        "{} utterances of 2–5.5 s ({} rounds of the clip set), each after 2 s of silence, fed at real-time pace in 20 ms blocks; end silence {} ms (Smart Turn {}).\n",
        chosen.len() * rounds.max(1),
        rounds.max(1),
        hc.segmenter.end_silence_ms,
        match (hc.segmenter.turn, &hc.smart_turn) {
            (Some(t), Some(_)) => format!("at {} ms, {} ms when unfinished", t.probe_ms, t.incomplete_ms),
            _ => "off".into(),
        }
    );
    let hearing = Hearing::start(hc.clone(), Source::Paced(PacedSource { samples: stream, rate: 16_000, block: 320 }))?;
    let fed = Instant::now() + Duration::from_secs_f64(seconds);
    let deadline = fed + Duration::from_secs(30);
    let mut started = std::collections::HashMap::new();
    let mut decided = std::collections::HashMap::new();
    let (mut to_final, mut to_partial, mut speculative, mut finals) = (Vec::new(), Vec::new(), 0, 0);
    let mut heard: Vec<Vec<String>> = vec![Vec::new(); spans.len()];
    let mut first_partial = std::collections::HashSet::new();
    // decision → final by how the final's language was chosen ("settled": by an earlier decode).
    let mut by_how: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    while Instant::now() < deadline {
        // Done when the stream has been fed and hearing has had nothing to say for 3 s.
        let Ok(event) = hearing.events.recv_timeout(Duration::from_millis(200)) else {
            if Instant::now() > fed + Duration::from_secs(3) && decided.len() <= finals {
                break;
            }
            continue;
        };
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
                let how = utterance.as_ref().map_or("none", |u| u.language.how).to_string();
                if let Some(u) = utterance {
                    let middle = (u.start + u.end) / 2;
                    // The clip it lies in, else the one before it (a final that starts in the
                    // silence before its clip, by the pre-roll).
                    let at = spans.iter().rposition(|(s, _)| *s <= middle + 16_000).unwrap_or(0);
                    heard[at].push(u.text);
                }
                speculative += usize::from(s);
                if let Some(d) = decided.get(&id) {
                    let ms = ready.saturating_duration_since(*d).as_secs_f64() * 1e3;
                    to_final.push(ms);
                    by_how.entry(how).or_default().push(ms);
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
    let by_how: Vec<String> = by_how.iter_mut().map(|(how, v)| format!("{how} {} (p50 {:.0} ms)", v.len(), percentile(&mut v.clone(), 50.0))).collect();
    println!("The finals' language, decided how (decision → final): {}.", by_how.join(", "));
    // What the live finals said, against the references (finals paired with clips by time).
    let expected: Vec<&Loaded> = (0..rounds.max(1)).flat_map(|_| chosen.iter().copied()).collect();
    let heard: Vec<String> = heard.iter().map(|h| h.join(" ")).collect();
    if std::env::var_os("BENCH_ASR_DEBUG").is_some() {
        for ((c, h), (s, e)) in expected.iter().zip(&heard).zip(&spans) {
            eprintln!("{} at {:.1}–{:.1} s | {h}", c.name, *s as f64 / 16_000.0, *e as f64 / 16_000.0);
        }
    }
    let english: Vec<f64> = expected.iter().zip(&heard).filter(|(c, _)| c.clip.lang == "en").map(|(c, h)| word_error_rate(&c.clip.text, h)).collect();
    let other: Vec<f64> = expected.iter().zip(&heard).filter(|(c, _)| c.clip.lang != "en").map(|(c, h)| character_error_rate(&c.clip.text, h)).collect();
    let arabic_in_latin = expected.iter().zip(&heard).filter(|(c, h)| c.clip.lang == "ar" && script_share(h, "ar") < 0.5).count();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "Live finals (language detected, as a kiosk runs; each clip's finals against its reference): English mean WER {:.2}, Arabic/mixed mean CER {:.2}; Arabic clips heard in Latin script: {arabic_in_latin} of {}.\n",
        mean(&english),
        mean(&other),
        expected.iter().filter(|c| c.clip.lang == "ar").count()
    );
    Ok(())
}
