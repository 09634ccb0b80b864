//! `hiwar transcribe`, and the adapter from hearing's events onto the bus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hiwar_speech::hearing::{self, HearingConfig, Source, Transcriber, Utterance};
use serde::Serialize;

use hiwar_core::bus::{Bus, Event, EventKind, Lang};
use hiwar_core::config::Config;
use hiwar_dialogue::mind::hearing_config;

#[derive(Serialize)]
struct FileJson<'a> {
    file: &'a str,
    lang: String,
    text: String,
    segments: Vec<SegmentJson>,
}

#[derive(Serialize)]
struct SegmentJson {
    start: f64,
    end: f64,
    text: String,
    lang: String,
    /// How the utterance's language was chosen, with the scores compared.
    language_choice: String,
}

/// `hiwar transcribe`.
pub fn transcribe(config: &Config, files: &[PathBuf], lang: &str, json: bool, mic: bool) -> anyhow::Result<ExitCode> {
    let hc = hearing_config(config, Some(lang))?;
    if mic {
        return live(hc);
    }
    let transcriber = Transcriber::load(&hc)?;
    let mut failed = 0;
    for file in files {
        match hearing::transcribe_file(file, &hc, &transcriber) {
            Ok(utterances) => print_file(file, &utterances, json)?,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn round(seconds: f32) -> f64 {
    (f64::from(seconds) * 100.0).round() / 100.0
}

fn print_file(file: &Path, utterances: &[Utterance], json: bool) -> anyhow::Result<()> {
    let name = file.display().to_string();
    if json {
        let segments: Vec<SegmentJson> = utterances
            .iter()
            .flat_map(|u| {
                u.segments.iter().map(|s| SegmentJson {
                    start: round(s.start),
                    end: round(s.end),
                    text: s.text.clone(),
                    lang: u.lang.clone(),
                    language_choice: u.language.summary(&u.lang),
                })
            })
            .collect();
        let text = utterances.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ");
        let out = FileJson { file: &name, lang: dominant_lang(utterances), text, segments };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!("{name}");
    if utterances.is_empty() {
        println!("  (no speech)");
    }
    for u in utterances {
        for s in &u.segments {
            println!("  [{:>8.2} → {:>8.2}] ({}) {}", s.start, s.end, u.lang, s.text);
        }
    }
    Ok(())
}

/// The language most of the text is in.
fn dominant_lang(utterances: &[Utterance]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for u in utterances {
        match counts.iter_mut().find(|(l, _)| *l == u.lang) {
            Some((_, n)) => *n += u.text.chars().count(),
            None => counts.push((&u.lang, u.text.chars().count())),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l.to_string()).unwrap_or_default()
}

/// `hiwar transcribe --mic`: hearing's events go onto the bus; this terminal is one subscriber.
fn live(hc: HearingConfig) -> anyhow::Result<ExitCode> {
    let device = hc.input_device.clone();
    let hearing = hearing::Hearing::start(hc, Source::Microphone { device })?;
    let bus = Bus::new(256);
    let mut terminal = bus.subscribe();
    let adapter = std::thread::Builder::new().name("hearing-bus".into()).spawn(move || {
        for event in hearing.events.iter() {
            for e in hiwar_core::bus::from_hearing(&event) {
                bus.publish(e);
            }
        }
    })?;
    eprintln!("listening — speak Arabic or English; Ctrl-C to stop");
    loop {
        match terminal.blocking_recv() {
            Ok(Event { kind: EventKind::Transcript { text, lang, is_final, .. }, .. }) => {
                let lang = if lang == Lang::Ar { "ar" } else { "en" };
                if is_final {
                    // Clear the partial line (on stderr), then the final on stdout.
                    eprint!("\r\x1b[2K");
                    println!("({lang}) {text}");
                } else {
                    eprint!("\r\x1b[2K… ({lang}) {text}");
                }
            }
            Ok(e @ Event { kind: EventKind::Error { .. } | EventKind::Microphone { .. }, .. }) => {
                eprintln!("\r\x1b[2K{}", hiwar_core::bus::to_json(&e)["message"].as_str().unwrap_or_default());
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("(display fell behind by {n} events)")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    let _ = adapter.join();
    Ok(ExitCode::SUCCESS)
}
