//! The event bus: one tokio broadcast channel of typed events that every part publishes on
//! and every observer (the window, the WebSocket server, the logs) subscribes to.
//!
//! Each event carries the turn it belongs to and, where it has one, its position on the audio
//! output clock — the single source of time for the mouth, the captions and embedders. Hearing's
//! own events are adapted onto it here ([`from_hearing`]).

use std::sync::Arc;

use hiwar_speech::hearing::HearingEvent;
use tokio::sync::broadcast;

/// A conversational turn: one thing the person said and everything said back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TurnId(pub u64);

/// A position on the audio output device's played-sample clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockPos {
    pub sample: u64,
    pub sample_rate: u32,
}

impl ClockPos {
    pub fn seconds(self) -> f64 {
        self.sample as f64 / f64::from(self.sample_rate.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Listening,
    Thinking,
    Speaking,
}

impl State {
    /// The name on the wire (`--events`, the WebSocket protocol).
    pub fn code(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Listening => "listening",
            State::Thinking => "thinking",
            State::Speaking => "speaking",
        }
    }
}

/// ISO 639-1 language of a transcript or reply span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ar,
    En,
}

impl Lang {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ar => "ar",
            Lang::En => "en",
        }
    }

    /// A whisper language code as one of the two hiwar speaks (anything but English is taken
    /// as Arabic, the first language).
    pub fn of_code(code: &str) -> Lang {
        if code == "en" { Lang::En } else { Lang::Ar }
    }
}

/// What a piece of speech is, in a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// The answer itself.
    Answer,
    /// "One moment, please…" while the answer is late.
    Holding,
    /// What is said instead of (or after part of) an answer that failed.
    Fallback,
}

impl Said {
    pub fn code(self) -> &'static str {
        match self {
            Said::Answer => "answer",
            Said::Holding => "holding",
            Said::Fallback => "fallback",
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Llm,
    /// The best passage of the knowledge base, read out.
    Knowledge,
    /// Nothing fitting: the person is told so.
    NoAnswer,
}

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Knowledge => "knowledge",
            Source::NoAnswer => "no_answer",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub turn: TurnId,
    /// Where on the audio clock this happens, for events that have a time.
    pub clock: Option<ClockPos>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    State(State),
    SpeechStarted,
    SpeechEnded,
    /// What the person said so far (`is_final == false`) or in all (`true`).
    Transcript {
        text: String,
        lang: Lang,
        is_final: bool,
        confidence: Option<f32>,
    },
    /// A piece of the assistant's reply as the LLM streams it.
    ReplyText {
        delta: String,
    },
    /// Something failed; `for_person` is what the person at the kiosk is told (Arabic first).
    Error {
        message: String,
        for_person: Option<String>,
    },
    /// The microphone went away (`ready: false`; the person is told) or is back and listening.
    Microphone {
        ready: bool,
        detail: String,
    },
    /// Speech queued on the speaker: what it is, its text, the audio with its phoneme and word
    /// timings, and where it plays on the clock (`clock` is its start, `end` its end, both at
    /// the clock's rate).
    Said {
        what: Said,
        text: String,
        speech: Arc<hiwar_speech::voice::Speech>,
        end: u64,
    },
    /// The LLM failed and the fallback answer was taken (`kind`: unauthorised, rate_limited,
    /// http_error, first_token_timeout, stalled, cut, malformed, runaway, empty, unreachable).
    Fallback {
        kind: &'static str,
        log: String,
    },
    /// The person spoke over the answer: it was stopped. `audible_after` frames of it reached
    /// the device after the decision, against a `limit` of the fade plus one device buffer.
    BargeIn {
        audible_after: u64,
        limit: u64,
    },
    /// The turn's answer in full, and where it came from.
    Answered {
        source: Source,
        text: String,
    },
    /// A visitor's session began (first speech or touch) or ended (inactivity: everything of
    /// it has been wiped). The event's turn is the session's number.
    Session {
        started: bool,
    },
    /// The kiosk went out of service (a stage keeps failing) or came back; `reason` is for the
    /// operator.
    Service {
        in_service: bool,
        reason: String,
    },
}

/// What the person at the kiosk is told when the microphone goes away (Arabic first).
pub const MICROPHONE_LOST: &str = "عذراً، الميكروفون لا يعمل حالياً. Sorry, the microphone is not working right now.";

impl EventKind {
    /// Events that belong to the turn's output and are dropped when the person interrupts
    /// (barge-in); the rest (state, what the person said, errors) survive.
    pub fn dropped_on_interruption(&self) -> bool {
        matches!(self, EventKind::ReplyText { .. } | EventKind::Said { .. })
    }
}

/// An event as one JSON object (`hiwar run --events`, logs): `{"turn", "at"?, "event", …}`;
/// audio is summarised, not dumped.
pub fn to_json(e: &Event) -> serde_json::Value {
    use serde_json::json;
    let mut v = match &e.kind {
        EventKind::State(s) => json!({"event": "state", "state": s.code()}),
        EventKind::SpeechStarted => json!({"event": "speech_started"}),
        EventKind::SpeechEnded => json!({"event": "speech_ended"}),
        EventKind::Transcript { text, lang, is_final, confidence } => {
            json!({"event": "transcript", "text": text, "lang": lang.code(), "final": is_final, "confidence": confidence})
        }
        EventKind::ReplyText { delta } => json!({"event": "reply_text", "delta": delta}),
        EventKind::Error { message, for_person } => json!({"event": "error", "message": message, "for_person": for_person}),
        EventKind::Microphone { ready: false, detail } => {
            json!({"event": "error", "message": format!("microphone lost: {detail}; waiting for it to come back"), "for_person": MICROPHONE_LOST})
        }
        EventKind::Microphone { ready: true, detail } => json!({"event": "error", "message": format!("microphone ready: {detail}"), "for_person": null}),
        EventKind::Said { what, text, speech, end } => {
            json!({"event": "said", "what": what.code(), "text": text, "end": end, "seconds": speech.samples.len() as f64 / f64::from(speech.sample_rate.max(1))})
        }
        EventKind::Fallback { kind, log } => json!({"event": "fallback", "kind": kind, "log": log}),
        EventKind::BargeIn { audible_after, limit } => json!({"event": "barge_in", "audible_after": audible_after, "limit": limit}),
        EventKind::Answered { source, text } => json!({"event": "answered", "source": source.code(), "text": text}),
        EventKind::Session { started } => json!({"event": "session", "state": if *started { "started" } else { "ended" }}),
        EventKind::Service { in_service, reason } => json!({"event": "service", "in_service": in_service, "reason": reason}),
    };
    v["turn"] = json!(e.turn.0);
    if let Some(c) = e.clock {
        v["at"] = json!({"sample": c.sample, "rate": c.sample_rate});
    }
    v
}

/// The bus. Cloning it gives another handle to the same channel.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Event>,
}

impl Bus {
    /// `capacity` events are kept for slow subscribers; a subscriber that falls further behind
    /// is told how many it missed (tokio's `RecvError::Lagged`) rather than stalling the rest.
    pub fn new(capacity: usize) -> Bus {
        Bus { tx: broadcast::channel(capacity.max(1)).0 }
    }

    pub fn publish(&self, event: Event) {
        // No subscribers is not an error: nobody is watching yet.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

fn at(sample: u64) -> Option<ClockPos> {
    Some(ClockPos { sample, sample_rate: 16_000 })
}

/// Hearing's events as bus events. The turn is the utterance; the clock is the position on
/// the input stream.
pub fn from_hearing(event: &HearingEvent) -> Vec<Event> {
    let ev = |turn: u64, clock, kind| Event { turn: TurnId(turn), clock, kind };
    match event {
        HearingEvent::SpeechStarted { utterance, start, .. } => {
            vec![ev(*utterance, at(*start), EventKind::State(State::Listening)), ev(*utterance, at(*start), EventKind::SpeechStarted)]
        }
        HearingEvent::Partial { utterance, text, lang, upto, .. } => {
            vec![ev(*utterance, at(*upto), EventKind::Transcript { text: text.clone(), lang: Lang::of_code(lang), is_final: false, confidence: None })]
        }
        HearingEvent::SpeechEnded { utterance, decided_at, .. } => vec![ev(*utterance, at(*decided_at), EventKind::SpeechEnded)],
        HearingEvent::Final { utterance: Some(u), id, .. } => {
            vec![ev(
                *id,
                at(u.end),
                EventKind::Transcript { text: u.text.clone(), lang: Lang::of_code(&u.lang), is_final: true, confidence: Some(u.confidence) },
            )]
        }
        HearingEvent::Final { utterance: None, id, .. } => vec![ev(*id, None, EventKind::State(State::Idle))],
        HearingEvent::DeviceLost { reason } => vec![ev(0, None, EventKind::Microphone { ready: false, detail: reason.clone() })],
        HearingEvent::DeviceRestored { device } => vec![ev(0, None, EventKind::Microphone { ready: true, detail: device.clone() })],
        HearingEvent::Overrun { dropped } => {
            vec![ev(0, None, EventKind::Error { message: format!("hearing fell behind: {dropped} samples dropped so far"), for_person: None })]
        }
        HearingEvent::Failed { reason } => vec![ev(0, None, EventKind::Error { message: format!("hearing stopped: {reason}"), for_person: None })],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hiwar_speech::hearing::Utterance;

    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = Bus::new(16);
        let (mut window, mut server) = (bus.subscribe(), bus.subscribe());
        let turn = TurnId(7);
        bus.publish(Event { turn, clock: None, kind: EventKind::State(State::Listening) });
        bus.publish(Event { turn, clock: Some(ClockPos { sample: 22_050, sample_rate: 22_050 }), kind: EventKind::ReplyText { delta: "مرحبا".into() } });
        for rx in [&mut window, &mut server] {
            assert_eq!(rx.recv().await.expect("first").kind, EventKind::State(State::Listening));
            let word = rx.recv().await.expect("second");
            assert_eq!(word.turn, turn);
            assert_eq!(word.clock.map(ClockPos::seconds), Some(1.0));
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let bus = Bus::new(2);
        let mut slow = bus.subscribe();
        for i in 0..5 {
            bus.publish(Event { turn: TurnId(i), clock: None, kind: EventKind::SpeechStarted });
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(3))));
        assert_eq!(slow.recv().await.expect("latest kept").turn, TurnId(3));
    }

    #[test]
    fn interruption_drops_output_but_keeps_what_the_person_said() {
        let said = EventKind::Transcript { text: "أبغى أجدد الـ Emirates ID".into(), lang: Lang::Ar, is_final: true, confidence: None };
        assert!(!said.dropped_on_interruption());
        assert!(EventKind::ReplyText { delta: "حاضر".into() }.dropped_on_interruption());
        assert!(!EventKind::State(State::Idle).dropped_on_interruption());
    }

    #[test]
    fn hearing_events_become_bus_events_with_their_turn_and_input_position() {
        let utterance = Utterance {
            id: 3,
            start: 16_000,
            end: 48_000,
            lang: "ar".into(),
            text: "أبغى أجدد الـ Emirates ID".into(),
            confidence: 0.8,
            segments: Vec::new(),
            language: Default::default(),
        };
        let events = [
            HearingEvent::SpeechStarted { utterance: 3, start: 16_000, at: Instant::now(), level_db: -20.0 },
            HearingEvent::Partial { utterance: 3, text: "أبغى".into(), lang: "ar".into(), upto: 32_000, at: Instant::now() },
            HearingEvent::SpeechEnded { utterance: 3, last_voiced: 48_000, decided_at: 56_000, decided: Instant::now(), turn: Some(0.9) },
            HearingEvent::Final { utterance: Some(utterance), id: 3, ready: Instant::now(), speculative: true },
        ];
        let bus: Vec<Event> = events.iter().flat_map(from_hearing).collect();
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
    fn a_lost_microphone_is_told_to_the_person_in_arabic_first_and_its_return_is_typed() {
        let bus = from_hearing(&HearingEvent::DeviceLost { reason: "unplugged".into() });
        assert_eq!(bus[0].kind, EventKind::Microphone { ready: false, detail: "unplugged".into() });
        let json = to_json(&bus[0]);
        assert!(json["for_person"].as_str().is_some_and(|s| s.starts_with("عذراً")), "{json}");
        assert!(json["message"].as_str().is_some_and(|m| m.contains("unplugged")), "{json}");
        let back = to_json(&from_hearing(&HearingEvent::DeviceRestored { device: "mic".into() })[0]);
        assert_eq!((back["event"].as_str(), back["message"].as_str()), (Some("error"), Some("microphone ready: mic")), "the wire stays as it was");
    }
}
