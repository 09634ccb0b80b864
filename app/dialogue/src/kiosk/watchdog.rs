//! The watchdog inside hiwar. Each stage reports that it is alive: hearing by the samples it
//! takes in and how long a transcription runs, the dialogue loop by its tick, the window by
//! its frames. A stalled hearing is restarted alone; the systemd heartbeat goes only while the
//! dialogue loop and the window (if there is one) are alive, so a frozen renderer gets the
//! whole process restarted by systemd; a stage that keeps failing puts the kiosk out of
//! service ("خارج الخدمة") until it recovers, and tells the operator why.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hiwar_speech::hearing::{Hearing, HearingConfig, HearingEvent, InputLevel, Source};
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::{Bus, Event, EventKind, TurnId};
use hiwar_core::config::WatchdogConfig;
use hiwar_core::notify::Notifier;

/// What the kiosk person is told while hiwar is out of service.
pub const OUT_OF_SERVICE: &str = "خارج الخدمة · Out of service";

/// Liveness of the stages, the service state, and systemd.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    pub notifier: Notifier,
    /// Milliseconds after `epoch` (+1) of the dialogue loop's last tick and the window's last
    /// frame; 0: not running.
    dialogue: AtomicU64,
    render: AtomicU64,
    /// Stages that are failing, with why.
    failing: Mutex<BTreeMap<&'static str, String>>,
    bus: Bus,
    config: WatchdogConfig,
    withheld: AtomicBool,
}

impl Health {
    pub fn new(bus: Bus, config: WatchdogConfig, notifier: Notifier) -> Arc<Health> {
        Arc::new(Health {
            epoch: Instant::now(),
            notifier,
            dialogue: AtomicU64::new(0),
            render: AtomicU64::new(0),
            failing: Mutex::new(BTreeMap::new()),
            bus,
            config,
            withheld: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub fn beat_dialogue(&self) {
        self.dialogue.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Called by the window for every frame it draws.
    pub fn beat_render(&self) {
        self.render.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn in_service(&self) -> bool {
        self.failing.lock().map(|f| f.is_empty()).unwrap_or(true)
    }

    fn publish(&self, in_service: bool, reason: String) {
        self.bus.publish(Event { turn: TurnId(0), clock: None, kind: EventKind::Service { in_service, reason } });
    }

    /// A stage cannot work: the screen says out of service, the operator is told why.
    pub fn out_of_service(&self, stage: &'static str, reason: String) {
        let Ok(mut failing) = self.failing.lock() else { return };
        if failing.get(stage) == Some(&reason) {
            return;
        }
        let first = failing.is_empty();
        failing.insert(stage, reason.clone());
        drop(failing);
        tracing::error!(
            stage,
            "OUT OF SERVICE — {stage}: {reason}. The kiosk shows «{OUT_OF_SERVICE}» and retries every {} s; operator: see `hiwar doctor` and this log",
            self.config.retry_after_secs
        );
        self.notifier.status(&format!("out of service: {stage}: {reason}"));
        if first {
            self.publish(false, format!("{stage}: {reason}"));
        }
    }

    /// A stage works again.
    pub fn recovered(&self, stage: &'static str) {
        let Ok(mut failing) = self.failing.lock() else { return };
        if failing.remove(stage).is_none() {
            return;
        }
        let now_ok = failing.is_empty();
        drop(failing);
        tracing::warn!(stage, "{stage} works again");
        if now_ok {
            self.notifier.status("in service");
            self.publish(true, format!("{stage} recovered"));
        }
    }

    /// Why the systemd heartbeat must be withheld now, if it must.
    fn stalled(&self, now: u64) -> Option<String> {
        let age = |v: &AtomicU64| match v.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(now.saturating_sub(t))),
        };
        if let Some(a) = age(&self.dialogue).filter(|a| *a > Duration::from_secs(5)) {
            return Some(format!("the dialogue loop has not run for {:.0} s", a.as_secs_f64()));
        }
        if let Some(a) = age(&self.render).filter(|a| *a > Duration::from_secs(self.config.render_stall_secs)) {
            return Some(format!("the window has not drawn a frame for {:.0} s", a.as_secs_f64()));
        }
        None
    }

    /// Sends systemd's heartbeat while every stage that beats is alive. Ends with `stop`.
    pub fn start_heartbeat(self: &Arc<Self>, stop: CancellationToken) {
        let Some(interval) = self.notifier.watchdog_interval() else { return };
        let health = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            let period = interval.min(Duration::from_secs(1));
            while !stop.is_cancelled() {
                match health.stalled(health.now_ms()) {
                    None => {
                        health.notifier.heartbeat();
                        health.withheld.store(false, Ordering::Relaxed);
                    }
                    Some(why) => {
                        if !health.withheld.swap(true, Ordering::Relaxed) {
                            tracing::error!("watchdog: {why}; withholding the systemd heartbeat so that systemd restarts hiwar");
                        }
                    }
                }
                std::thread::sleep(period);
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the watchdog thread: {e}");
        }
    }
}

/// What a supervised hearing passes on: its events, and that it was restarted (utterance
/// numbers start again).
#[derive(Debug)]
pub enum Supervised {
    Event(Box<HearingEvent>),
    Restarted,
}

/// Where [`Supervised`] goes; false when nobody listens any more (the supervisor stops).
pub type Forward = Box<dyn Fn(Supervised) -> bool + Send>;

/// Stops a hearing on another thread: a stuck thread must not hang its supervisor.
fn reap(hearing: Hearing) {
    let _ = std::thread::Builder::new().name("reaper".into()).spawn(move || drop(hearing));
}

/// Sleeps `d` unless `stop` fires first; false if it did.
fn pause(d: Duration, stop: &CancellationToken) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.is_cancelled() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !stop.is_cancelled()
}

/// Runs hearing on the microphone under the watchdog, forwarding its events into the loop,
/// until `stop` fires or the loop goes. `wipe` asks for the audio kept between utterances to
/// be wiped (a session ended).
#[allow(clippy::too_many_arguments, reason = "what a supervised stage is wired to")]
pub fn supervise_hearing(
    hc: HearingConfig,
    device: String,
    level: Arc<InputLevel>,
    tx: Forward,
    wipe: Arc<AtomicBool>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("hearing-watch".into()).spawn(move || {
        let config = health.config.clone();
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut first = true;
        while !stop.is_cancelled() {
            if !first && !tx(Supervised::Restarted) {
                return;
            }
            first = false;
            let hearing = match Hearing::start_with_level(hc.clone(), Source::Microphone { device: device.clone() }, Arc::clone(&level)) {
                Ok(h) => h,
                Err(e) => {
                    health.out_of_service("hearing", format!("cannot start hearing: {e}"));
                    if !pause(Duration::from_secs(config.retry_after_secs), &stop) {
                        return;
                    }
                    continue;
                }
            };
            let why = watch(&hearing, &tx, &wipe, &health, &config, &stop);
            reap(hearing);
            let Some(why) = why else { return };
            let now = Instant::now();
            restarts.push_back(now);
            while restarts.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(config.restart_window_secs)) {
                restarts.pop_front();
            }
            tracing::error!("watchdog: restarting hearing ({} in {} min): {why}", restarts.len(), config.restart_window_secs / 60);
            if restarts.len() >= config.max_restarts {
                health.out_of_service("hearing", format!("{} restarts in {} min, the last: {why}", restarts.len(), config.restart_window_secs / 60));
                if !pause(Duration::from_secs(config.retry_after_secs), &stop) {
                    return;
                }
            }
        }
    })
}

/// Forwards one hearing's events until it must be restarted (returns why) or all is over.
fn watch(hearing: &Hearing, tx: &Forward, wipe: &AtomicBool, health: &Health, config: &WatchdogConfig, stop: &CancellationToken) -> Option<String> {
    let started = Instant::now();
    let (mut samples, mut progress, mut lost) = (hearing.liveness.samples(), Instant::now(), false);
    loop {
        if stop.is_cancelled() {
            return None;
        }
        match hearing.events.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => {
                let failed = match &e {
                    HearingEvent::DeviceLost { .. } => {
                        lost = true;
                        None
                    }
                    HearingEvent::DeviceRestored { .. } => {
                        (lost, progress) = (false, Instant::now());
                        None
                    }
                    HearingEvent::Failed { reason } => Some(format!("hearing failed: {reason}")),
                    _ => None,
                };
                if !tx(Supervised::Event(Box::new(e))) {
                    return None;
                }
                if failed.is_some() {
                    return failed;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Some("hearing's threads ended".into()),
        }
        if wipe.swap(false, Ordering::Relaxed) {
            hearing.forget();
        }
        let now = hearing.liveness.samples();
        if now != samples {
            (samples, progress) = (now, Instant::now());
        }
        if !lost && progress.elapsed() > Duration::from_secs(config.audio_stall_secs) {
            return Some(format!("no audio from the microphone for {} s", progress.elapsed().as_secs()));
        }
        if let Some(d) = hearing.liveness.decoding_for().filter(|d| *d > Duration::from_secs(config.inference_stall_secs)) {
            return Some(format!("one transcription has run for {} s", d.as_secs()));
        }
        if !lost && started.elapsed() > Duration::from_secs(config.healthy_after_secs) {
            health.recovered("hearing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Arc<Health> {
        Health::new(Bus::new(16), WatchdogConfig::default(), Notifier::from_env())
    }

    #[test]
    fn a_frozen_window_or_loop_withholds_the_heartbeat() {
        let h = health();
        assert_eq!(h.stalled(1_000), None, "nothing beats yet: nothing is stalled");
        h.dialogue.store(1_000, Ordering::Relaxed);
        h.render.store(1_000, Ordering::Relaxed);
        assert_eq!(h.stalled(3_000), None);
        let why = h.stalled(12_000).expect("stalled");
        assert!(why.contains("dialogue loop"), "{why}");
        h.dialogue.store(11_900, Ordering::Relaxed);
        let why = h.stalled(12_000).expect("stalled");
        assert!(why.contains("window has not drawn a frame for 11 s"), "{why}");
    }

    #[test]
    fn out_of_service_is_announced_once_and_lifted_when_every_stage_works() {
        let h = health();
        let mut rx = h.bus.subscribe();
        h.out_of_service("hearing", "whisper model unreadable".into());
        h.out_of_service("hearing", "whisper model unreadable".into());
        h.out_of_service("voice", "piper model unreadable".into());
        h.recovered("hearing");
        assert!(!h.in_service());
        h.recovered("voice");
        assert!(h.in_service());
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let EventKind::Service { in_service, .. } = e.kind {
                seen.push(in_service);
            }
        }
        assert_eq!(seen, vec![false, true]);
    }
}
