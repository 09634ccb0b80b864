//! What the live loop is told: hearing's events, typed questions and touches, the voice's
//! reports, a reloaded config, turns finished and barge-ins measured.

use crate::kiosk::reload::Reloaded;
use crate::turn::TurnReport;
use hiwar_core::speaking::VoiceEvent;
use std::time::Instant;

/// A barge-in, measured at the device.
#[derive(Debug, Clone)]
pub struct BargeRecord {
    pub turn: u64,
    /// When the loop decided (hearing's speech start, past the echo gate).
    pub decided: Instant,
    /// When the last of the answer's sound reached the listener.
    pub silent_at: Instant,
    pub audible_after: u64,
    pub limit: u64,
}

/// Messages into the live loop.
pub enum LoopInput {
    Hearing(hiwar_speech::hearing::HearingEvent),
    /// Hearing has stopped (its input ended).
    HearingClosed,
    /// Hearing was restarted by the watchdog: utterance numbers start again.
    HearingRestarted,
    /// Someone touched the screen (or pressed push-to-talk): a session begins.
    Touch,
    /// A typed question (an on-screen keyboard, an operator's console): answered like a heard
    /// one, in the language of its script.
    Typed(String),
    /// The operator's config was reloaded and validated: the new mind (sharing the
    /// conversation memory), voices and settings.
    Reload(Box<Reloaded>),
    Voice(VoiceEvent),
    TurnDone(Box<TurnReport>),
    BargeMeasured(BargeRecord),
}
