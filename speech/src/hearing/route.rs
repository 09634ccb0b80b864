//! Where the sound server routes hiwar's capture. When a microphone disappears, PulseAudio (and
//! PipeWire's pulse server) move the streams that used it to another source; on a kiosk with
//! no second microphone that is the monitor of the speaker, and hiwar would hear its own voice
//! (and nothing of the person). The watch follows the server's change events (`pactl
//! subscribe`, a child process: libpulse is LGPL and not linked) and says when this process's
//! capture is the monitor of a sink its own player plays to, so the hearing thread can stop
//! listening, report the loss, and reopen when a microphone is back.
//!
//! Where no pulse server answers (ALSA alone, or `pactl` not installed) there is nothing to
//! watch: the capture goes straight to a device that cannot be moved.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// What the server routes for one process, as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// The sources this process captures from (one per open capture stream).
    pub capture: Vec<String>,
    /// The monitor sources of the sinks this process plays to.
    pub own_monitors: Vec<String>,
    /// The server's default source, where a newly opened capture goes.
    pub default_source: String,
}

impl Route {
    /// The source this process's capture hears itself on: the monitor of its own speaker.
    pub fn hears_itself(&self) -> Option<&str> {
        self.capture.iter().find(|s| self.own_monitors.contains(s)).map(String::as_str)
    }

    /// Whether a capture opened now would land on the speaker's monitor.
    pub fn default_hears_itself(&self) -> bool {
        self.own_monitors.contains(&self.default_source)
    }

    /// Reads the route of process `pid` from `pactl -f json` listings: `sources`, `sinks`,
    /// `source_outputs`, `sink_inputs` (arrays) and `info` (an object). `None` when a listing
    /// is not what pactl writes.
    pub fn from_listings(pid: u32, sources: &Value, sinks: &Value, source_outputs: &Value, sink_inputs: &Value, info: &Value) -> Option<Route> {
        let pid = pid.to_string();
        let ours = |streams: &Value, key: &str| -> Option<Vec<u64>> {
            Some(
                streams
                    .as_array()?
                    .iter()
                    .filter(|s| s["properties"]["application.process.id"].as_str() == Some(pid.as_str()))
                    .filter_map(|s| s[key].as_u64())
                    .collect(),
            )
        };
        let by_index = |list: &Value, index: u64, field: &str| -> Option<String> {
            list.as_array()?.iter().find(|x| x["index"].as_u64() == Some(index)).and_then(|x| x[field].as_str()).map(str::to_string)
        };
        let capture = ours(source_outputs, "source")?.into_iter().filter_map(|i| by_index(sources, i, "name")).collect();
        // A sink's "monitor_source" is the name of its monitor.
        let own_monitors = ours(sink_inputs, "sink")?.into_iter().filter_map(|i| by_index(sinks, i, "monitor_source")).filter(|m| !m.is_empty()).collect();
        let default_source = info["default_source_name"].as_str()?.to_string();
        Some(Route { capture, own_monitors, default_source })
    }
}

/// The server's default source when it is the monitor of its default sink (a capture opened
/// now would hear the speaker: no microphone is connected), with that sink; `None` when it is
/// not, or no pulse server answers.
pub fn default_source_hears_default_sink() -> Option<(String, String)> {
    let info = pactl_json(&["info"])?;
    let sinks = pactl_json(&["list", "sinks"])?;
    let (source, sink) = (info["default_source_name"].as_str()?, info["default_sink_name"].as_str()?);
    let monitor = sinks.as_array()?.iter().find(|s| s["name"].as_str() == Some(sink))?["monitor_source"].as_str()?;
    (monitor == source).then(|| (source.to_string(), sink.to_string()))
}

/// Follows the route of this process's streams while it lives.
pub struct RouteWatch {
    route: Arc<Mutex<Route>>,
    hears_itself: Arc<AtomicBool>,
    child: Child,
}

impl std::fmt::Debug for RouteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteWatch").field("route", &self.route()).finish_non_exhaustive()
    }
}

/// Events that can change a route; the rest (clients coming and going, our own queries among
/// them) are not read.
fn relevant(event: &str) -> bool {
    [" on source-output ", " on sink-input ", " on source #", " on sink #", " on server"].iter().any(|k| event.contains(k))
}

fn pactl_json(args: &[&str]) -> Option<Value> {
    let out = Command::new("pactl").args(["-f", "json"]).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The route of this process now, from five `pactl` listings (a few ms).
fn read_route() -> Option<Route> {
    let sources = pactl_json(&["list", "sources"])?;
    let sinks = pactl_json(&["list", "sinks"])?;
    let outputs = pactl_json(&["list", "source-outputs"])?;
    let inputs = pactl_json(&["list", "sink-inputs"])?;
    let info = pactl_json(&["info"])?;
    Route::from_listings(std::process::id(), &sources, &sinks, &outputs, &inputs, &info)
}

impl RouteWatch {
    /// Starts watching, or `None` where no pulse server answers `pactl`.
    pub fn start() -> Option<RouteWatch> {
        let Some(first) = read_route() else {
            tracing::debug!(target: "hiwar::hearing", "no pulse server answers pactl: the capture's route is not watched");
            return None;
        };
        let mut child = Command::new("pactl").arg("subscribe").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
        let stdout = child.stdout.take();
        let hears_itself = Arc::new(AtomicBool::new(first.hears_itself().is_some()));
        let route = Arc::new(Mutex::new(first));
        // Made before the threads: if one cannot start, dropping it kills `pactl subscribe`.
        let watch = RouteWatch { route: Arc::clone(&route), hears_itself: Arc::clone(&hears_itself), child };
        let stdout = stdout?;
        let (events, changes) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("route-events".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if relevant(&line) && events.send(()).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        let (r, h) = (route, hears_itself);
        std::thread::Builder::new()
            .name("route-watch".into())
            .spawn(move || {
                while changes.recv().is_ok() {
                    // Events come in bursts (a move is a remove, a new and several changes):
                    // read the route once the burst is over.
                    while changes.recv_timeout(Duration::from_millis(30)).is_ok() {}
                    let Some(now) = read_route() else { continue };
                    let mut held = r.lock().unwrap_or_else(|e| e.into_inner());
                    if *held != now {
                        tracing::debug!(target: "hiwar::hearing", "capture route: {now:?}");
                        h.store(now.hears_itself().is_some(), Ordering::Relaxed);
                        *held = now;
                    }
                }
            })
            .ok()?;
        Some(watch)
    }

    /// The route as last read.
    pub fn route(&self) -> Route {
        self.route.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the capture is on the speaker's monitor now (cheap: an atomic load).
    pub fn hears_itself(&self) -> bool {
        self.hears_itself.load(Ordering::Relaxed)
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        // The event reader ends with pactl's stdout, and the watcher with the reader.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listings(capture_on: u64, default: &str) -> Route {
        let sources = json!([
            {"index": 0, "name": "speaker.monitor", "monitor_source": "speaker"},
            {"index": 1, "name": "mic.monitor", "monitor_source": "mic"},
            {"index": 2, "name": "alsa_input.usb", "monitor_source": ""}
        ]);
        let sinks = json!([{"index": 0, "name": "speaker", "monitor_source": "speaker.monitor"}, {"index": 1, "name": "mic", "monitor_source": "mic.monitor"}]);
        let outputs = json!([
            {"index": 7, "source": capture_on, "properties": {"application.process.id": "42"}},
            {"index": 8, "source": 0, "properties": {"application.process.id": "43"}}
        ]);
        let inputs = json!([{"index": 3, "sink": 0, "properties": {"application.process.id": "42"}}]);
        Route::from_listings(42, &sources, &sinks, &outputs, &inputs, &json!({"default_source_name": default})).expect("route")
    }

    #[test]
    fn a_capture_moved_to_the_monitor_of_its_own_speaker_hears_itself() {
        let moved = listings(0, "speaker.monitor");
        assert_eq!(moved.hears_itself(), Some("speaker.monitor"));
        assert!(moved.default_hears_itself());
        // A monitor is a fine microphone when it is not our own speaker's (the test rigs').
        let other = listings(1, "mic.monitor");
        assert_eq!((other.hears_itself(), other.default_hears_itself()), (None, false));
        let real = listings(2, "alsa_input.usb");
        assert_eq!(real.capture, ["alsa_input.usb"]);
        assert_eq!(real.own_monitors, ["speaker.monitor"]);
        assert_eq!(real.hears_itself(), None);
    }

    #[test]
    fn another_process_on_the_monitor_is_not_us_and_odd_listings_are_refused() {
        // Process 43 records the speaker's monitor; process 42 plays and captures elsewhere.
        assert_eq!(listings(2, "alsa_input.usb").capture.len(), 1);
        let no_route = Route::from_listings(42, &json!([]), &json!([]), &json!({"error": "x"}), &json!([]), &json!({"default_source_name": "x"}));
        assert!(no_route.is_none(), "{no_route:?}");
        let missing_default = Route::from_listings(42, &json!([]), &json!([]), &json!([]), &json!([]), &json!({}));
        assert!(missing_default.is_none());
    }

    #[test]
    fn only_route_events_are_read() {
        assert!(relevant("Event 'change' on source-output #0"));
        assert!(relevant("Event 'remove' on source #2"));
        assert!(relevant("Event 'change' on server #-1"));
        assert!(relevant("Event 'new' on sink-input #4"));
        assert!(!relevant("Event 'new' on client #15"));
        assert!(!relevant("Event 'change' on card #1"));
    }
}
