//! Running unattended: the watchdog over hearing (and the systemd heartbeat), and reloading
//! the operator's config without a restart.

pub mod reload;
pub mod watchdog;
