//! `hiwar transcribe`, and the adapter from hearing's events onto the bus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use hiwar_speech::hearing::{self, HearingConfig, HearingEvent, SegmenterConfig, Source, Transcriber, Utterance};
use serde::Serialize;

use crate::bus::{Bus, ClockPos, Event, EventKind, Lang, State, TurnId};
use crate::config::Config;
use crate::models::{Store, fetch_hint};

/// Builds hearing's settings from the config, with every model found and ONNX Runtime loaded.
pub fn hearing_config(config: &Config, lang: Option<&str>) -> anyhow::Result<HearingConfig> {
    let store = Store::open(config)?;
    let whisper = if config.hearing.whisper_model.is_empty() {
        store.verified_file("whisper-base", "ggml-base.bin")?
    } else {
        let path = PathBuf::from(&config.hearing.whisper_model);
        anyhow::ensure!(
            path.is_file(),
            "hearing.whisper_model = {} is missing; fix: point it at a whisper.cpp ggml file, or {}",
            path.display(),
            fetch_hint("whisper-base")
        );
        store.check_configured(&path)?;
        // A file of the operator's own: at least its header must be a whisper ggml model's.
        hiwar_speech::models::read_ggml_whisper_info(&path).with_context(|| format!("hearing.whisper_model = {}", path.display()))?;
        path
    };
    let vad = store.verified_file("silero-vad-onnx", "silero_vad_16k_op15.onnx")?;
    store.load_onnx_runtime()?;
    let h = &config.hearing;
    let mut out = HearingConfig::new(whisper, vad);
    out.segmenter = SegmenterConfig {
        start_threshold: h.vad_start_threshold,
        end_threshold: h.vad_end_threshold.min(h.vad_start_threshold),
        min_speech_ms: h.min_speech_ms,
        end_silence_ms: h.end_silence_ms,
        ..SegmenterConfig::default()
    };
    out.languages = h.languages.clone();
    out.forced_language = match lang {
        Some("auto") | None => Some(h.language.clone()).filter(|l| !l.is_empty()),
        Some(l) => Some(l.to_string()),
    };
    out.initial_prompt = h.initial_prompt.clone();
    out.no_speech_threshold = h.no_speech_threshold;
    out.short_window = h.short_window;
    out.temperature_fallback = h.temperature_fallback;
    out.partial_interval_ms = h.partial_interval_ms.max(100);
    out.input_device = config.audio.input_device.clone();
    if h.threads > 0 {
        out.threads = h.threads;
    }
    Ok(out)
}

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
            .flat_map(|u| u.segments.iter().map(|s| SegmentJson { start: round(s.start), end: round(s.end), text: s.text.clone(), lang: u.lang.clone() }))
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
            for e in to_bus(&event) {
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
            Ok(Event { kind: EventKind::Error { message, .. }, .. }) => eprintln!("\r\x1b[2K{message}"),
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

fn lang_of(code: &str) -> Lang {
    if code == "en" { Lang::En } else { Lang::Ar }
}

fn at(sample: u64) -> Option<ClockPos> {
    Some(ClockPos { sample, sample_rate: 16_000 })
}

/// Hearing's events as bus events. The turn is the utterance; the clock is the position on
/// the input stream.
pub fn to_bus(event: &HearingEvent) -> Vec<Event> {
    let ev = |turn: u64, clock, kind| Event { turn: TurnId(turn), clock, kind };
    match event {
        HearingEvent::SpeechStarted { utterance, start, .. } => {
            vec![ev(*utterance, at(*start), EventKind::State(State::Listening)), ev(*utterance, at(*start), EventKind::SpeechStarted)]
        }
        HearingEvent::Partial { utterance, text, lang, upto, .. } => {
            vec![ev(*utterance, at(*upto), EventKind::Transcript { text: text.clone(), lang: lang_of(lang), is_final: false, confidence: None })]
        }
        HearingEvent::SpeechEnded { utterance, decided_at, .. } => vec![ev(*utterance, at(*decided_at), EventKind::SpeechEnded)],
        HearingEvent::Final { utterance: Some(u), id, .. } => {
            vec![ev(*id, at(u.end), EventKind::Transcript { text: u.text.clone(), lang: lang_of(&u.lang), is_final: true, confidence: Some(u.confidence) })]
        }
        HearingEvent::Final { utterance: None, id, .. } => vec![ev(*id, None, EventKind::State(State::Idle))],
        HearingEvent::DeviceLost { reason } => vec![ev(
            0,
            None,
            EventKind::Error {
                message: format!("microphone lost: {reason}; waiting for it to come back"),
                for_person: Some("عذراً، الميكروفون لا يعمل حالياً. Sorry, the microphone is not working right now.".into()),
            },
        )],
        HearingEvent::DeviceRestored { device } => {
            vec![ev(0, None, EventKind::Error { message: format!("microphone ready: {device}"), for_person: None })]
        }
        HearingEvent::Overrun { dropped } => {
            vec![ev(0, None, EventKind::Error { message: format!("hearing fell behind: {dropped} samples dropped so far"), for_person: None })]
        }
        HearingEvent::Failed { reason } => vec![ev(0, None, EventKind::Error { message: format!("hearing stopped: {reason}"), for_person: None })],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn hearing_events_become_bus_events_with_their_turn_and_input_position() {
        let utterance =
            Utterance {
                id: 3, start: 16_000, end: 48_000, lang: "ar".into(), text: "أبغى أجدد الـ Emirates ID".into(), confidence: 0.8, segments: Vec::new()
            };
        let events = [
            HearingEvent::SpeechStarted { utterance: 3, start: 16_000, at: Instant::now(), level_db: -20.0 },
            HearingEvent::Partial { utterance: 3, text: "أبغى".into(), lang: "ar".into(), upto: 32_000, at: Instant::now() },
            HearingEvent::SpeechEnded { utterance: 3, last_voiced: 48_000, decided_at: 56_000, decided: Instant::now() },
            HearingEvent::Final { utterance: Some(utterance), id: 3, ready: Instant::now(), speculative: true },
        ];
        let bus: Vec<Event> = events.iter().flat_map(to_bus).collect();
        let kinds: Vec<&EventKind> = bus.iter().map(|e| &e.kind).collect();
        assert!(
            matches!(
                kinds[..],
                [
                    EventKind::State(State::Listening),
                    EventKind::SpeechStarted,
                    EventKind::Transcript { is_final: false, lang: Lang::Ar, .. },
                    EventKind::SpeechEnded,
                    EventKind::Transcript { is_final: true, lang: Lang::Ar, confidence: Some(_), .. },
                ]
            ),
            "{kinds:?}"
        );
        assert!(bus.iter().all(|e| e.turn == TurnId(3)));
        assert_eq!(bus.last().and_then(|e| e.clock).map(ClockPos::seconds), Some(3.0));
    }

    #[test]
    fn a_lost_microphone_is_told_to_the_person_in_arabic_first() {
        let bus = to_bus(&HearingEvent::DeviceLost { reason: "unplugged".into() });
        let EventKind::Error { for_person: Some(said), message } = &bus[0].kind else { panic!("{bus:?}") };
        assert!(said.starts_with("عذراً"), "{said}");
        assert!(message.contains("unplugged"));
    }
}
