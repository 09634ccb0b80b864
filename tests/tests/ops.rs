//! Running unattended, end to end through the `hiwar` binary on real-time virtual audio
//! devices (a private PulseAudio): systemd's notify protocol and watchdog heartbeat, visitor
//! sessions that never leak into each other (the LLM's prompt, the logs), SIGTERM in the middle
//! of an answer, and faults — the LLM server killed, the microphone unplugged, a corrupted
//! voice model and a bad config reloaded, a full log disk — each survived and recovered from.
//!
//! Where the subject is not hearing, questions are typed (`hiwar run --control`), as an
//! on-screen keyboard sends them: what is asserted is the kiosk's behaviour, and it must not
//! hang on whether whisper base heard a recording well. Only the unplugged microphone is
//! asked through the microphone.

use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hiwar_tests::{Pulse, Standin, clip, hiwar, lines_of, model_cache, wait_for};
use serde_json::Value;

/// `hiwar run --no-window --events` on the private PulseAudio's microphone and speaker.
struct Kiosk {
    child: Child,
    /// Typed input (`--control`).
    control: std::cell::RefCell<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every event read so far, in order.
    seen: std::cell::RefCell<Vec<Value>>,
}

impl Kiosk {
    fn start(mut cmd: Command) -> Kiosk {
        let mut child = cmd
            .args(["run", "--no-window", "--events", "--control"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hiwar run");
        let (out, err) = (lines_of(child.stdout.take().expect("stdout")), lines_of(child.stderr.take().expect("stderr")));
        let control = std::cell::RefCell::new(child.stdin.take().expect("stdin"));
        let k = Kiosk { child, control, out, err, seen: Default::default() };
        wait_for(&k.err, Duration::from_secs(60), "hiwar listening", |l| l.starts_with("hiwar is listening"));
        // PulseAudio's ALSA plugin delivers its first capture ~1.7 s after the stream starts.
        std::thread::sleep(Duration::from_secs(3));
        k
    }

    /// The next event matching `pred`.
    fn event(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let line = wait_for(&self.out, Duration::from_secs(secs), what, |l| {
            let Ok(v) = serde_json::from_str::<Value>(l) else { return false };
            let hit = pred(&v);
            self.seen.borrow_mut().push(v);
            hit
        });
        serde_json::from_str(&line).expect("json")
    }

    /// Types a question, as the kiosk's on-screen keyboard would; returns the answer event once
    /// the answer has been heard to its end.
    fn ask_typed(&self, question: &str) -> Value {
        let line = serde_json::json!({ "ask": question }).to_string();
        writeln!(self.control.borrow_mut(), "{line}").expect("write a control line");
        self.answer_heard(question)
    }

    /// The next answer, then the kiosk idle again after it.
    fn answer_heard(&self, what: &str) -> Value {
        let answer = self.event(60, &format!("an answer to {what}"), is("answered"));
        let turn = answer["turn"].clone();
        self.event(60, "the answer heard", |e| e["event"] == "state" && e["state"] == "idle" && e["turn"] == turn);
        answer
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["event"] == name
}

/// A microphone and a speaker; the speaker is the default output.
fn devices() -> Pulse {
    let pulse = Pulse::start(&["mic", "speaker"]);
    pulse.pactl(&["set-default-sink", "speaker"]);
    pulse
}

/// hiwar on `pulse`, its input pinned to the microphone (so that, unplugged, it is gone rather
/// than replaced by the speaker's monitor) and its output to the speaker.
fn kiosk_cmd(pulse: &Pulse) -> Command {
    let mut cmd = hiwar(&model_cache());
    pulse.apply(&mut cmd);
    cmd.env("PULSE_SOURCE", "mic.monitor").env("PULSE_SINK", "speaker");
    cmd
}

/// Says a recorded question into the microphone; returns the answer event.
fn ask(pulse: &Pulse, k: &Kiosk, name: &str) -> Value {
    pulse.play("mic", &clip(name).0);
    k.answer_heard(name)
}

const PASSPORT: &str = "I would like to book an appointment to renew my passport.";
const OFFICE: &str = "Where is the nearest office, and what time does it open tomorrow?";
const FEE: &str = "How much does it cost to renew a passport?";

/// Waits until `path` holds a line matching `pred` (a log written by another process).
fn wait_in_file(path: &Path, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| pred(l)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no {what} in {} within {secs} s:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_kiosk_tells_systemd_keeps_visitors_apart_and_stops_cleanly_mid_answer() {
    let pulse = &devices();
    let standin = Standin::start(&["answer"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let notify_path = tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let log = tmp.path().join("logs").join("hiwar.log");
    let mut cmd = kiosk_cmd(pulse);
    standin.apply(&mut cmd);
    cmd.env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("HIWAR_DIALOGUE_SESSION_ENDS_AFTER_SECS", "3")
        .env("HIWAR_PRIVACY_RECORD_TRANSCRIPTS", "true")
        .env("HIWAR_LOG_FORMAT", "json")
        .env("HIWAR_LOG_FILE", &log);
    let k = Kiosk::start(cmd);
    // What hiwar tells "systemd", read as systemd does: all the time.
    let (notes_tx, notes) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) => {
                    if notes_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    // READY=1 naming this process, then heartbeats (WatchdogSec = 2 s: one a second).
    let mut messages = Vec::new();
    let started = Instant::now();
    while messages.iter().filter(|m: &&String| m.trim() == "WATCHDOG=1").count() < 2 && started.elapsed() < Duration::from_secs(20) {
        messages.extend(notes.recv_timeout(Duration::from_millis(200)).ok());
    }
    let ready = messages.iter().find(|m| m.starts_with("READY=1")).unwrap_or_else(|| panic!("no READY=1: {messages:?}"));
    assert!(ready.contains(&format!("MAINPID={}", k.child.id())), "{ready}");
    assert!(messages.iter().filter(|m| m.trim() == "WATCHDOG=1").count() >= 2, "no heartbeat: {messages:?}");

    // Visitor A asks, leaves; the session ends; visitor B asks.
    let _ = k.ask_typed(PASSPORT);
    let began = k.seen.borrow().iter().find(|e| e["event"] == "session").cloned().expect("a session began with the first speech");
    assert_eq!((began["state"].as_str(), began["turn"].as_u64()), (Some("started"), Some(1)), "{began}");
    let ended = k.event(20, "the end of session 1", is("session"));
    assert_eq!((ended["state"].as_str(), ended["turn"].as_u64()), (Some("ended"), Some(1)), "{ended}");
    let _ = k.ask_typed(OFFICE);
    let requests: Vec<Value> = {
        let mut r = Vec::new();
        while r.len() < 2 {
            let line = wait_for(&standin.lines, Duration::from_secs(10), "two LLM requests", |l| l.starts_with("{\"body\"") || l.contains("\"request\""));
            let v: Value = serde_json::from_str(&line).expect("json");
            if v.get("request").is_some() {
                r.push(v);
            }
        }
        r
    };
    let user_turns = |req: &Value| -> Vec<String> {
        req["body"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let a = user_turns(&requests[0]);
    assert_eq!(a.len(), 1, "{a:?}");
    let heard_a = a[0].clone();
    assert_eq!(heard_a, PASSPORT, "visitor A's question");
    // Visitor B's prompt: only B's question, nothing of A's conversation.
    let b = user_turns(&requests[1]);
    assert_eq!(b.len(), 1, "session B's prompt carries earlier turns: {b:?}");
    assert!(!requests[1]["body"].to_string().contains(&heard_a), "A's words in B's prompt");
    // The log (JSON lines, transcripts on for this test): A's words before B's session, none after.
    let text = wait_in_file(&log, 10, "session 2", |l| l.contains("session 2 began"));
    let lines: Vec<String> = std::fs::read_to_string(&log).expect("log").lines().map(str::to_string).collect();
    for l in &lines {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
    }
    let split = lines.iter().position(|l| *l == text).expect("session 2 line");
    assert!(lines[..split].iter().any(|l| l.contains(&heard_a)), "A's transcript is not logged even with record_transcripts on");
    assert!(!lines[split..].iter().any(|l| l.contains(&heard_a)), "A's words logged in session B");

    // SIGTERM while an answer is being spoken: it stops at once, cleanly.
    writeln!(k.control.borrow_mut(), "{}", serde_json::json!({ "ask": PASSPORT })).expect("control");
    let said = k.event(60, "the answer starting", |e| e["event"] == "said" && e["what"] == "answer");
    let turn = said["turn"].clone();
    k.signal("-TERM");
    let stopped = Instant::now();
    let mut child = k;
    let status = loop {
        if let Some(s) = child.child.try_wait().expect("wait") {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let bt = Command::new("gdb")
                .args(["-p", &child.child.id().to_string(), "-batch", "-ex", "thread apply all bt 15"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let bt: Vec<&str> = bt.lines().filter(|l| (l.starts_with("Thread") || l.starts_with('#')) && !l.contains("?? ()")).collect();
            panic!("hiwar did not stop within 10 s of SIGTERM (turn {turn}):\n{}", bt.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(300));
    let rest: Vec<String> = notes.try_iter().collect();
    assert!(rest.iter().any(|m| m.trim() == "STOPPING=1"), "{rest:?}");
    let stderr: Vec<String> = child.err.try_iter().collect();
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "{stderr:?}");
}

/// The processes whose parent is `pid` and whose name is `name`.
fn children(pid: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid …
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if &stat[open + 1..close] == name && ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

#[test]
fn a_voice_stuck_inside_synthesis_is_restarted_and_the_answer_still_spoken() {
    let pulse = &devices();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("hiwar.log");
    let mut cmd = kiosk_cmd(pulse);
    cmd.env("HIWAR_WATCHDOG_VOICE_STALL_SECS", "3").env("HIWAR_LOG_FILE", &log);
    let k = Kiosk::start(cmd);
    // The English voice phonemises through a long-lived espeak-ng: stop it, as a wedged helper
    // would be, so the next synthesis waits on it for ever.
    let stopped = children(k.child.id(), "espeak-ng");
    assert!(!stopped.is_empty(), "no espeak-ng under hiwar");
    for pid in &stopped {
        assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("kill").success());
    }
    let asked = Instant::now();
    let answer = k.ask_typed("When do you open on Friday?");
    assert!(answer["source"] == "knowledge", "{answer}");
    let restarted =
        k.seen.borrow().iter().find(|e| e["event"] == "error" && e["message"].as_str().unwrap_or_default().starts_with("the voice was restarted")).cloned();
    assert!(restarted.is_some(), "no restart seen: {:?}", k.seen.borrow());
    assert!(k.seen.borrow().iter().any(|e| e["event"] == "said" && e["what"] == "answer"), "the answer was never spoken");
    assert!(asked.elapsed() > Duration::from_secs(3), "answered before the stall could be seen: the stopped espeak-ng was not in the way");
    // The stopped helpers were ended (not left behind), new ones serve the new voice.
    for pid in &stopped {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z"),
            "the stuck espeak-ng {pid} is still there"
        );
    }
    assert!(!children(k.child.id(), "espeak-ng").is_empty(), "the restarted voice has no espeak-ng");
    wait_in_file(&log, 10, "the restart in the log", |l| l.contains("watchdog: restarting the voice"));
    // And it goes on answering.
    assert!(k.ask_typed("Where is the nearest office?")["text"].as_str().is_some());
}

/// A free port on loopback.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A file of the model cache, by name.
fn cached(name: &str) -> PathBuf {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = find(&p, name) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
        None
    }
    find(&model_cache(), name).unwrap_or_else(|| panic!("{name} is not in the model cache (hiwar models fetch)"))
}

/// A tmpfs of `kib` KiB mounted on a new folder, unmounted when dropped: a disk that fills.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"]).arg(dir.path()).output().expect("mount");
        assert!(out.status.success(), "mounting a small tmpfs for the full-disk test needs root: {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(dir)
    }

    /// Fills what is left, to the last byte: a new file's pages, then the slack in the last
    /// page of `log` (tmpfs allocates whole pages, so a log line would otherwise still fit in
    /// the page its file already holds), with empty lines appended as hiwar appends its own.
    fn fill(&self, log: &Path) -> PathBuf {
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        for size in [4096, 512, 64, 8, 1] {
            let block = vec![0u8; size];
            while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
        }
        let mut slack = std::fs::OpenOptions::new().append(true).open(log).expect("the log file");
        while slack.write_all(b"\n").is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The microphone and the speaker on two PulseAudio servers, joined for ALSA's default device
/// (capture from one, playback to the other): unplugging the microphone then leaves no other
/// source for PulseAudio to move the capture to, as on a kiosk with one microphone.
struct Split {
    mic: Pulse,
    /// Kept running: the speaker's server.
    _speaker: Pulse,
    conf: tempfile::NamedTempFile,
}

impl Split {
    fn start() -> Split {
        let (mic, speaker) = (Pulse::start(&["mic"]), Pulse::start(&["speaker"]));
        let mut conf = tempfile::NamedTempFile::new().expect("asound.conf");
        // A config of its own, not appended to alsa.conf (whose conf.d hooks would put
        // PulseAudio's plain default back over it).
        write!(
            conf,
            "pcm.!default {{ type asym playback.pcm {{ type pulse server \"{}\" }} capture.pcm {{ type pulse server \"{}\" }} }}\nctl.!default {{ type pulse server \"{}\" }}\n",
            speaker.server(),
            mic.server(),
            mic.server()
        )
        .expect("write asound.conf");
        Split { mic, _speaker: speaker, conf }
    }

    fn apply(&self, cmd: &mut Command) {
        self.mic.apply(cmd);
        cmd.env("ALSA_CONFIG_PATH", self.conf.path());
    }
}

#[test]
fn faults_are_survived_and_recovered_from() {
    let split = Split::start();
    let pulse = &split.mic;
    let addr = free_addr();
    let standin = Standin::start_on(&addr, &["answer"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    // The English voice from a copy the test can damage.
    let voice = tmp.path().join("voice").join("en_US-joe-medium.onnx");
    std::fs::create_dir_all(voice.parent().expect("dir")).expect("mkdir");
    let original = cached("en_US-joe-medium.onnx");
    std::fs::copy(&original, &voice).expect("copy voice");
    std::fs::copy(cached("en_US-joe-medium.onnx.json"), voice.with_extension("onnx.json")).expect("copy voice config");
    let kb = tmp.path().join("kb");
    std::fs::create_dir_all(&kb).expect("kb");
    std::fs::write(kb.join("passports.md"), "## Passport renewal {#passport}\nRenewing a passport costs 999 dirhams; book an appointment at any office.\n")
        .expect("kb");
    let disk = SmallDisk::mount(256);
    let log = disk.0.path().join("hiwar.log");
    let config = tmp.path().join("hiwar.toml");
    let write_config = |knowledge: &str| {
        let text = format!("[voice]\nenglish_voice = {voice:?}\n\n[knowledge]\ndir = {knowledge:?}\n\n[log]\nfile = {log:?}\n");
        std::fs::write(&config, text).expect("config");
    };
    write_config("");
    let mut cmd = hiwar(&model_cache());
    split.apply(&mut cmd);
    standin.apply(&mut cmd);
    cmd.arg("--config").arg(&config);
    let k = Kiosk::start(cmd);
    let reloaded = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let done = text.lines().filter(|l| l.contains("config reloaded") || l.contains("config reload refused")).count();
            if done >= n {
                return text.lines().filter(|l| l.contains("config reload")).nth(n - 1).unwrap_or_default().to_string();
            }
            assert!(Instant::now() < deadline, "reload {n} not logged:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // The LLM answers.
    assert_eq!(k.ask_typed(PASSPORT)["source"], "llm");
    // The LLM server dies: the knowledge base answers.
    standin.kill();
    let a = k.ask_typed(PASSPORT);
    assert!(a["source"] == "knowledge" || a["source"] == "no_answer", "{a}");
    assert!(k.seen.borrow().iter().any(|e| e["event"] == "fallback" && e["kind"] == "unreachable"), "no fallback for the dead LLM");
    // The operator points the knowledge base at their own documents and reloads: used at once.
    write_config(kb.to_str().expect("utf-8"));
    k.signal("-HUP");
    assert!(reloaded(1).contains("config reloaded"), "{}", reloaded(1));
    let a = k.ask_typed(FEE);
    assert!(a["text"].as_str().unwrap_or_default().contains("999"), "{a}");
    // A broken config is refused, with where; the running one stays.
    std::fs::write(&config, "[knowledge\ndir = 3\n").expect("config");
    k.signal("-HUP");
    let refused = reloaded(2);
    assert!(refused.contains("refused") && refused.contains("line 1"), "{refused}");
    assert!(k.ask_typed(FEE)["text"].as_str().unwrap_or_default().contains("999"));
    // A voice model corrupted on disk: the reload is refused and the loaded voice speaks on.
    write_config(kb.to_str().expect("utf-8"));
    let bytes = std::fs::read(&original).expect("voice");
    std::fs::write(&voice, &bytes[..bytes.len() / 3]).expect("corrupt");
    k.signal("-HUP");
    let refused = reloaded(3);
    assert!(refused.contains("refused") && refused.contains("en_US-joe-medium"), "{refused}");
    writeln!(k.control.borrow_mut(), "{}", serde_json::json!({ "ask": FEE })).expect("control");
    k.event(60, "the old voice speaking", |e| e["event"] == "said" && e["what"] != "holding");
    k.event(60, "the answer heard", |e| e["event"] == "state" && e["state"] == "idle");
    std::fs::write(&voice, &bytes).expect("restore");
    k.signal("-HUP");
    assert!(reloaded(4).contains("config reloaded"), "{}", reloaded(4));
    // The LLM server comes back where it was: answers are the LLM's again.
    let standin = Standin::start_on(&addr, &["answer"]);
    let back = k.ask_typed(OFFICE);
    assert_eq!(back["source"], "llm", "{back}");

    // The microphone is unplugged: the person is told; plugged back in, it hears again.
    pulse.pactl(&["unload-module", &pulse.module_of("mic")]);
    let lost = k.event(20, "the microphone lost", |e| e["event"] == "error" && !e["for_person"].is_null());
    assert!(lost["for_person"].as_str().unwrap_or_default().starts_with("عذراً"), "{lost}");
    pulse.pactl(&["load-module", "module-null-sink", "sink_name=mic"]);
    pulse.pactl(&["set-default-source", "mic.monitor"]);
    k.event(30, "the microphone back", |e| e["event"] == "error" && e["message"].as_str().unwrap_or_default().starts_with("microphone ready"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ask(pulse, &k, "en-office.wav")["source"], "llm");

    // The log disk fills up: hiwar goes on answering; once there is room, the log says what it lost.
    let filler = disk.fill(&log);
    let _ = k.ask_typed(PASSPORT);
    wait_for(&k.err, Duration::from_secs(10), "the full log disk reported", |l| l.contains("cannot write the log file"));
    std::fs::remove_file(filler).expect("free");
    let _ = k.ask_typed(OFFICE);
    wait_in_file(&log, 10, "the dropped-lines note", |l| l.contains("log line(s) were dropped"));
    drop(standin);
}

#[test]
fn thirty_turns_through_the_whole_pipeline_keep_fds_and_threads_flat() {
    let out = hiwar_tests::run(hiwar(&model_cache()).env("WGPU_BACKEND", "vulkan").args(["bench", "soak", "--turns", "30", "--every", "10", "--json"]));
    let report: Value = out.stdout.lines().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| panic!("no report:\n{}\n{}", out.stdout, out.stderr));
    // Whisper misses the odd streamed question (2 in 500 in the benchmark): nearly all are answered.
    assert!(report["answered"].as_u64().unwrap_or(0) >= 27, "{report}");
    assert_eq!(report["panics"], 0, "{report}");
    assert!(report["sessions"].as_u64().unwrap_or(0) >= 3, "a session ends every 10 turns: {report}");
    assert!(report["rendered_frames"].as_u64().unwrap_or(0) > 30, "{report}");
    let samples = report["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 4, "{report}");
    // From turn 10 on (everything warmed up), nothing accumulates.
    // The LLM connections' ends are left out: the HTTP pool may hold a second connection for
    // its idle time (bench soak's `run` says when), never more.
    let own = |s: &Value| s["fds"].as_u64().unwrap_or(0).saturating_sub(s["llm_sockets"].as_u64().unwrap_or(0));
    let (fds, threads): (Vec<u64>, Vec<u64>) = samples[1..].iter().map(|s| (own(s), s["threads"].as_u64().unwrap_or(0))).unzip();
    assert!(report["llm_sockets_max"].as_u64().is_some_and(|n| n <= 4), "more LLM connections than two: {report}");
    assert!(fds.windows(2).all(|w| w[1] <= w[0]), "file descriptors grew: {fds:?}\n{report}");
    assert!(threads.windows(2).all(|w| w[1] <= w[0]), "threads grew: {threads:?}");
    // (Its exit status also weighs RSS growth, which 30 turns are too few to judge: the
    // 500-turn benchmark does.)
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
}
