//! One turn: a question answered — the mind's stream cut into chunks as it comes and spoken,
//! a holding phrase when the answer is late, the fallback when the LLM fails. The live loop,
//! `hiwar chat`, the demo and every WebSocket session answer through [`answer_turn`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use hiwar_core::bus::{Bus, ClockPos, Event, EventKind, Lang, Said, Source, State, TurnId};
use hiwar_core::speaking::{Spoken, VoiceOut};
use hiwar_speech::voice::Chunker;
use tokio_util::sync::CancellationToken;

use crate::mind::{Mind, MindEvent, Phrases};

/// Where a turn's speech goes: the live voice worker, or a WebSocket session's stream.
pub trait Speak: Send + Sync {
    fn say(&self, turn: u64, what: Said, text: &str);
    /// Everything for `turn` has been sent.
    fn end(&self, turn: u64);
}

impl Speak for VoiceOut {
    fn say(&self, turn: u64, what: Said, text: &str) {
        VoiceOut::say(self, turn, what, text);
    }

    fn end(&self, turn: u64) {
        VoiceOut::end(self, turn);
    }
}

/// What happened in a turn, for `turns.json`, the benchmark and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TurnReport {
    pub turn: u64,
    pub question: String,
    pub lang: &'static str,
    pub answer: String,
    pub source: Option<Source>,
    pub fallback: Option<&'static str>,
    pub held: bool,
    pub cancelled: bool,
    pub retrieval_ms: f64,
    pub first_token_ms: Option<f64>,
    /// From the end of the person's speech to the first chunk sent to the voice.
    #[serde(skip)]
    pub first_chunk_sent: Option<Instant>,
    #[serde(skip)]
    pub holding_sent: Option<Instant>,
    #[serde(skip)]
    pub fallback_sent: Option<Instant>,
    /// The live loop's clock of the turn (filled in by `live_loop`).
    #[serde(skip)]
    pub times: TurnTimes,
}

/// When things happened in a live turn.
#[derive(Debug, Clone, Default)]
pub struct TurnTimes {
    /// The last voiced sample, as hearing placed it.
    pub speech_end: Option<Instant>,
    /// The end-pointing decision, and the final transcript.
    pub decided: Option<Instant>,
    pub final_ready: Option<Instant>,
    /// When the first sample of the answer / holding phrase / fallback reached the listener.
    pub answer_heard: Option<Instant>,
    pub holding_heard: Option<Instant>,
    pub fallback_heard: Option<Instant>,
    /// The first answer chunk: synthesis time, and queue → heard (the device's share).
    pub first_synth_ms: f64,
    pub first_device_ms: f64,
}

/// Answers one question: the mind's stream → chunks → the voice, with the holding phrase and
/// the fallback. Returns when everything has been sent to the voice (or the turn is cancelled).
#[allow(clippy::too_many_arguments, reason = "one turn's inputs, called from three places")]
pub async fn answer_turn(
    mind: &Mind,
    voice: &dyn Speak,
    bus: &Bus,
    turn: u64,
    question: &str,
    lang: Lang,
    speech_end: Instant,
    holding_after: Duration,
    cancel: CancellationToken,
) -> TurnReport {
    let mut report = TurnReport { turn, question: question.to_string(), lang: lang.code(), ..TurnReport::default() };
    let publish = |kind| bus.publish(Event { turn: TurnId(turn), clock: None, kind });
    publish(EventKind::State(State::Thinking));
    let mut rx = mind.ask(question, lang, cancel.clone());
    let mut chunker = Chunker::new();
    let holding_at = tokio::time::Instant::from_std(speech_end + holding_after);
    let send = |report: &mut TurnReport, what: Said, text: &str| {
        if !text.trim().is_empty() {
            voice.say(turn, what, text);
            let now = Instant::now();
            match what {
                Said::Answer => report.first_chunk_sent.get_or_insert(now),
                Said::Holding => report.holding_sent.get_or_insert(now),
                _ => report.fallback_sent.get_or_insert(now),
            };
        }
    };
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                report.cancelled = true;
                break;
            }
            () = tokio::time::sleep_until(holding_at), if report.first_chunk_sent.is_none() && report.fallback_sent.is_none() && !report.held => {
                report.held = true;
                // Every answer's text reaches the page, not only the LLM's stream.
                publish(EventKind::ReplyText { delta: Phrases::holding(lang).to_string() });
                send(&mut report, Said::Holding, Phrases::holding(lang));
            }
            event = rx.recv() => match event {
                None => break,
                Some(MindEvent::Retrieved { ms, .. }) => report.retrieval_ms = ms,
                Some(MindEvent::Delta(d)) => {
                    publish(EventKind::ReplyText { delta: d.clone() });
                    for chunk in chunker.push(&d) {
                        send(&mut report, Said::Answer, &chunk);
                    }
                }
                Some(MindEvent::Fallback { kind, log, text }) => {
                    report.fallback = Some(kind);
                    publish(EventKind::Fallback { kind, log });
                    // An unfinished sentence from a broken stream is not spoken; the fallback
                    // goes out chunk by chunk, its first clause heard soonest.
                    chunker.clear();
                    publish(EventKind::ReplyText { delta: text.clone() });
                    let mut c = Chunker::new();
                    for chunk in c.push(&text).into_iter().chain(c.finish()) {
                        send(&mut report, Said::Fallback, &chunk);
                    }
                }
                Some(MindEvent::Done { source, text, first_token_ms, .. }) => {
                    if source == Source::Llm {
                        if let Some(rest) = chunker.finish() {
                            send(&mut report, Said::Answer, &rest);
                        }
                    } else if report.fallback.is_none() {
                        // The knowledge's answer comes whole: spoken chunk by chunk all the same.
                        publish(EventKind::ReplyText { delta: text.clone() });
                        let mut c = Chunker::new();
                        for chunk in c.push(&text).into_iter().chain(c.finish()) {
                            send(&mut report, Said::Answer, &chunk);
                        }
                    }
                    report.first_token_ms = first_token_ms;
                    report.source = Some(source);
                    report.answer = text.clone();
                    publish(EventKind::Answered { source, text });
                    break;
                }
            }
        }
    }
    voice.end(turn);
    report
}

/// The language to answer in: the transcript's script when it is Arabic (whisper's language
/// label is sometimes English for Arabic speech, and a mixed sentence is Arabic), else whisper's.
pub fn reply_lang(detected: &str, text: &str) -> Lang {
    if crate::mind::knowledge::lang_of(text) == Lang::Ar && text.chars().any(hiwar_speech::text::is_arabic_letter) {
        Lang::Ar
    } else if detected == "en" {
        Lang::En
    } else {
        crate::mind::knowledge::lang_of(text)
    }
}

/// Publishes a chunk of speech on the bus (and so to the window, the server and the logs).
pub fn publish_spoken(bus: &Bus, s: &Spoken) {
    let clock = Some(ClockPos { sample: s.start, sample_rate: s.clock_rate });
    bus.publish(Event { turn: TurnId(s.turn), clock, kind: EventKind::Said { what: s.what, text: s.text.clone(), speech: Arc::clone(&s.speech), end: s.end } });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_follows_the_script_of_what_was_said() {
        assert_eq!(reply_lang("en", "أبغى أجدد الـ Emirates ID"), Lang::Ar, "whisper's label is not trusted over Arabic script");
        assert_eq!(reply_lang("en", "Where can I park?"), Lang::En);
        assert_eq!(reply_lang("ar", "Where can I park?"), Lang::En);
        assert_eq!(reply_lang("ar", "متى تفتحون؟"), Lang::Ar);
    }
}
