//! systemd's notify protocol (sd_notify(3)), spoken directly over the datagram socket named by
//! `$NOTIFY_SOCKET`: READY=1, WATCHDOG=1, STATUS=…, RELOADING=1, STOPPING=1. Outside systemd
//! (no socket) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of systemd's WatchdogSec, if the unit has one (`$WATCHDOG_USEC`).
    watchdog: Option<Duration>,
}

fn address(path: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    match path.strip_prefix('@') {
        // Linux's abstract namespace, as systemd usually hands it out.
        Some(name) => <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()),
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    }
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|path| {
            // Non-blocking: a reader that stopped reading must never stall hiwar (a full
            // queue costs a message, which the next heartbeat replaces).
            let made = UnixDatagram::unbound().and_then(|s| {
                s.set_nonblocking(true)?;
                Ok((s, address(&path)?))
            });
            made.map_err(|e| tracing::warn!("NOTIFY_SOCKET {path}: {e}; systemd will not hear from hiwar")).ok()
        });
        // WATCHDOG_PID, when set, names the process that must send the heartbeat: this one, or
        // the kiosk compositor (cage) that started it — hiwar then names itself MAINPID.
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id() || p == std::os::unix::process::parent_id());
        let watchdog = std::env::var("WATCHDOG_USEC").ok().and_then(|u| u.parse::<u64>().ok()).filter(|u| *u > 0 && ours).map(|u| Duration::from_micros(u / 2));
        Notifier { socket, watchdog }
    }

    /// How often the heartbeat must go, if systemd watches this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::debug!("sd_notify {state:?}: {e}");
        }
    }

    /// READY=1, naming this process the service's main one (it may run under cage).
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nMAINPID={}\nSTATUS={status}", std::process::id()));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn heartbeat(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// RELOADING=1 with the monotonic time systemd (253+) asks for, then READY=1 when done.
    pub fn reloading(&self) {
        let usec = std::fs::read_to_string("/proc/uptime").ok().and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok()).map_or(0, |s| (s * 1e6) as u64);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_systemd_style_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier { socket: Some((UnixDatagram::unbound().expect("socket"), address(path.to_str().expect("utf-8")).expect("addr"))), watchdog: None };
        n.ready("listening");
        n.heartbeat();
        let mut buf = [0u8; 256];
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(String::from_utf8_lossy(&buf[..got]), format!("READY=1\nMAINPID={}\nSTATUS=listening", std::process::id()));
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"WATCHDOG=1");
    }

    #[test]
    fn abstract_socket_names_work_too() {
        let name = format!("hiwar-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&address(&format!("@{name}")).expect("addr")).expect("bind");
        let n = Notifier { socket: Some((UnixDatagram::unbound().expect("socket"), address(&format!("@{name}")).expect("addr"))), watchdog: None };
        n.stopping();
        let mut buf = [0u8; 64];
        let got = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"STOPPING=1");
    }
}
