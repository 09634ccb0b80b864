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
    Transcript { text: String, lang: Lang, is_final: bool, confidence: Option<f32> },
    /// A piece of the assistant's reply as the LLM streams it.
    ReplyText { delta: String },
    /// Synthesised audio about to be played (mono f32).
    AudioChunk { samples: Arc<[f32]>, sample_rate: u32 },
    /// Mouth shapes from the clock position on: (viseme, weight, start, end) in samples.
    Visemes { frames: Arc<[(Viseme, f32, SamplePos, SamplePos)]> },
    /// A spoken word with its span on the audio clock (caption highlight).
    Word { text: String, start: SamplePos, end: SamplePos },
    /// Something failed; `for_person` is what the person at the kiosk is told (Arabic first).
    Error { message: String, for_person: Option<String> },
}

impl EventKind {
    /// Events that belong to the turn's output and are dropped when the person interrupts
    /// (barge-in); the rest (state, what the person said, errors) survive.
    pub fn dropped_on_interruption(&self) -> bool {
        matches!(
            self,
            EventKind::ReplyText { .. } | EventKind::AudioChunk { .. } | EventKind::Visemes { .. } | EventKind::Word { .. }
        )
    }
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
        EventKind::Transcript {
            text: t.text(),
            lang: if t.lang == "en" { Lang::En } else { Lang::Ar },
            is_final: true,
            confidence: None,
        }
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
