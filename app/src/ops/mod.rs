//! Running unattended: logs with redaction, systemd's notify protocol, the watchdog, and
//! reloading the operator's config without a restart.

pub mod log;
pub mod notify;
pub mod redact;
pub mod reload;
pub mod watchdog;

/// Overwrites a string's bytes with zeros, then empties it: what a visitor said does not stay
/// in freed memory.
pub fn wipe(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
}
