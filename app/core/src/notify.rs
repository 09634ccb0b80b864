//! systemd's notify protocol (sd_notify(3)) through the `libsystemd` crate (pure Rust: a path or
//! an abstract `@name` in `$NOTIFY_SOCKET`): READY=1, WATCHDOG=1, STATUS=…, RELOADING=1,
//! STOPPING=1. Outside systemd (no socket) every call is a no-op. What stays here is hiwar's own
//! policy: who sends the heartbeat (hiwar, also when it runs under cage) and how often.

use std::time::Duration;

use libsystemd::daemon::{self, NotifyState};

#[derive(Debug)]
pub struct Notifier {
    /// Whether systemd gave a socket to talk to.
    enabled: bool,
    /// Half of systemd's WatchdogSec, if the unit has one (`$WATCHDOG_USEC`).
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var("NOTIFY_SOCKET").is_ok_and(|s| !s.is_empty());
        // WATCHDOG_PID, when set, names the process that must send the heartbeat: this one, or
        // the kiosk compositor (cage) that started it — hiwar then names itself MAINPID. (The
        // crate's `watchdog_enabled` accepts this process only.)
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id() || p == std::os::unix::process::parent_id());
        let watchdog = std::env::var("WATCHDOG_USEC").ok().and_then(|u| u.parse::<u64>().ok()).filter(|u| *u > 0 && ours).map(|u| Duration::from_micros(u / 2));
        Notifier { enabled, watchdog }
    }

    /// How often the heartbeat must go, if systemd watches this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled
            && let Err(e) = daemon::notify(false, states)
        {
            tracing::debug!("sd_notify {states:?}: {e}");
        }
    }

    /// READY=1, naming this process the service's main one (it may run under cage).
    pub fn ready(&self, status: &str) {
        let pid = NotifyState::Other(format!("MAINPID={}", std::process::id()));
        self.send(&[NotifyState::Ready, pid, NotifyState::Status(status.to_string())]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status.to_string())]);
    }

    pub fn heartbeat(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// RELOADING=1 with the monotonic time systemd (253+) asks for, then READY=1 when done.
    pub fn reloading(&self) {
        let usec = std::fs::read_to_string("/proc/uptime").ok().and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok()).map_or(0, |s| (s * 1e6) as u64);
        self.send(&[NotifyState::Reloading, NotifyState::Other(format!("MONOTONIC_USEC={usec}"))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// `f` with `$NOTIFY_SOCKET` set to `socket` (tests in this module run one at a time: they
    /// share the variable).
    #[allow(unsafe_code, reason = "setting the environment in a test, serialised")]
    fn with_socket(socket: &str, f: impl FnOnce(&Notifier)) {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the only threads touching the environment are these tests, serialised above.
        unsafe { std::env::set_var("NOTIFY_SOCKET", socket) };
        f(&Notifier::from_env());
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }

    #[test]
    fn messages_reach_a_systemd_style_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        with_socket(path.to_str().expect("utf-8"), |n| {
            n.ready("listening");
            n.heartbeat();
        });
        let mut buf = [0u8; 256];
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(String::from_utf8_lossy(&buf[..got]), format!("READY=1\nMAINPID={}\nSTATUS=listening\n", std::process::id()));
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"WATCHDOG=1\n");
    }

    #[test]
    fn abstract_socket_names_work_too() {
        let name = format!("hiwar-test-{}", std::process::id());
        let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind");
        with_socket(&format!("@{name}"), Notifier::stopping);
        let mut buf = [0u8; 64];
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"STOPPING=1\n");
    }
}
