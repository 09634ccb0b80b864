//! The event bus: one tokio broadcast channel of typed events that every part publishes on
//! and every observer (the window, the WebSocket server, the logs) subscribes to.
//!
//! Each event carries the turn it belongs to and, where it has one, its position on the audio
//! output clock — the single source of time for the mouth, the captions and embedders.

#![allow(dead_code, reason = "the shape is settled here; the pipeline that publishes every variant follows")]

use std::sync::Arc;

use hiwar_animation::{SamplePos, Viseme};
use tokio::sync::broadcast;

/// A conversational turn: one thing the person said and everything said back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TurnId(pub u64);

/// A position on the audio output device's played-sample clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockPos {
    pub sample: SamplePos,
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

/// ISO 639-1 language of a transcript or reply span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ar,
    En,
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
    /// Synthesised audio about to be played (mono f32).
    AudioChunk {
        samples: Arc<[f32]>,
        sample_rate: u32,
    },
    /// Mouth shapes from the clock position on: (viseme, weight, start, end) in samples.
    Visemes {
        frames: Arc<[(Viseme, f32, SamplePos, SamplePos)]>,
    },
    /// A spoken word with its span on the audio clock (caption highlight).
    Word {
        text: String,
        start: SamplePos,
        end: SamplePos,
    },
    /// Something failed; `for_person` is what the person at the kiosk is told (Arabic first).
    Error {
        message: String,
        for_person: Option<String>,
    },
    /// Speech queued on the speaker: what (`answer`, `holding`, `fallback`), its text, the
    /// audio with its phoneme and word timings, and where it plays on the clock (`clock` is
    /// its start, `end` its end, both at the clock's rate).
    Said {
        what: &'static str,
        text: String,
        speech: Arc<hiwar_speech::voice::Speech>,
        end: SamplePos,
    },
    /// The LLM failed and the fallback answer was taken (`kind`: unauthorised, rate_limited,
    /// http_error, first_token_timeout, stalled, cut, malformed, runaway, unreachable).
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
    /// The turn's answer in full, and where it came from (llm, knowledge, no_answer).
    Answered {
        source: &'static str,
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

impl EventKind {
    /// Events that belong to the turn's output and are dropped when the person interrupts
    /// (barge-in); the rest (state, what the person said, errors) survive.
    pub fn dropped_on_interruption(&self) -> bool {
        matches!(self, EventKind::ReplyText { .. } | EventKind::AudioChunk { .. } | EventKind::Visemes { .. } | EventKind::Word { .. } | EventKind::Said { .. })
    }
}

impl Lang {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ar => "ar",
            Lang::En => "en",
        }
    }
}

/// An event as one JSON object (`hiwar run --events`, logs): `{"turn", "at"?, "event", …}`;
/// audio samples and viseme frames are summarised, not dumped.
pub fn to_json(e: &Event) -> serde_json::Value {
    use serde_json::json;
    let mut v = match &e.kind {
        EventKind::State(s) => json!({"event": "state", "state": format!("{s:?}").to_lowercase()}),
        EventKind::SpeechStarted => json!({"event": "speech_started"}),
        EventKind::SpeechEnded => json!({"event": "speech_ended"}),
        EventKind::Transcript { text, lang, is_final, confidence } => {
            json!({"event": "transcript", "text": text, "lang": lang.code(), "final": is_final, "confidence": confidence})
        }
        EventKind::ReplyText { delta } => json!({"event": "reply_text", "delta": delta}),
        EventKind::AudioChunk { samples, sample_rate } => json!({"event": "audio", "samples": samples.len(), "rate": sample_rate}),
        EventKind::Visemes { frames } => json!({"event": "visemes", "frames": frames.len()}),
        EventKind::Word { text, start, end } => json!({"event": "word", "text": text, "start": start, "end": end}),
        EventKind::Error { message, for_person } => json!({"event": "error", "message": message, "for_person": for_person}),
        EventKind::Said { what, text, speech, end } => {
            json!({"event": "said", "what": what, "text": text, "end": end, "seconds": speech.samples.len() as f64 / f64::from(speech.sample_rate.max(1))})
        }
        EventKind::Fallback { kind, log } => json!({"event": "fallback", "kind": kind, "log": log}),
        EventKind::BargeIn { audible_after, limit } => json!({"event": "barge_in", "audible_after": audible_after, "limit": limit}),
        EventKind::Answered { source, text } => json!({"event": "answered", "source": source, "text": text}),
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

impl From<&hiwar_speech::whisper::Transcript> for EventKind {
    fn from(t: &hiwar_speech::whisper::Transcript) -> EventKind {
        EventKind::Transcript { text: t.text(), lang: if t.lang == "en" { Lang::En } else { Lang::Ar }, is_final: true, confidence: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = Bus::new(16);
        let (mut window, mut server) = (bus.subscribe(), bus.subscribe());
        let turn = TurnId(7);
        bus.publish(Event { turn, clock: None, kind: EventKind::State(State::Listening) });
        bus.publish(Event {
            turn,
            clock: Some(ClockPos { sample: 22_050, sample_rate: 22_050 }),
            kind: EventKind::Word { text: "مرحبا".into(), start: 22_050, end: 30_000 },
        });
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
}
