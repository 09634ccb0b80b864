//! Echo cancellation in a simulated room on real-time paced devices: hiwar speaks into the
//! "speaker" sink; the room (parec → sox: 50 ms delay, 0 dB, a short reverb → pacat) carries
//! the speaker's sound into the "room" sink, whose monitor is hiwar's microphone; the person's
//! voice is played into the room too. With the canceller, the avatar does not hear itself and
//! a person who talks over it interrupts it at full speaker volume; without it, its own voice
//! reaches the VAD.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hiwar_tests::{Pulse, Standin, clip, hiwar, lines_of, model_cache, wait_for};
use serde_json::Value;

/// Processes killed when dropped.
struct Reaped(Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The room: what plays on `speaker` comes back into `room` 50 ms later at the same level, with
/// a short reverb.
fn room(pulse: &Pulse) -> Child {
    let fmt = "--format=s16le --rate=16000 --channels=1 --latency-msec=20";
    let script = format!(
        "exec parec -d speaker.monitor {fmt} --raw | sox --buffer 320 -t raw -r 16000 -e signed -b 16 -c 1 - -t raw - delay 0.05 reverb 20 50 20 | pacat -d room {fmt} --raw"
    );
    let mut cmd = Command::new("sh");
    pulse.apply(&mut cmd);
    cmd.args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("the room: parec | sox | pacat")
}

/// One conversation in the room: a question, a long answer, and after three seconds of it a
/// second question said over it. Returns the bus events with the index of the first one seen
/// after the second question began, and hiwar's stderr.
fn converse(echo_cancellation: bool) -> (Vec<Value>, usize, String) {
    let pulse = Pulse::start(&["speaker", "room"]);
    pulse.pactl(&["set-default-source", "room.monitor"]);
    let answer = "say:The office opens at half past seven in the morning and closes at three in the afternoon on weekdays. On Friday it closes at noon. \
                  Bring your Emirates ID and the old passport, and take a ticket from the machine by the door; the wait is short in the morning.";
    let standin = Standin::start(&[answer, "answer"]);
    let mut reaped = Reaped(vec![room(&pulse)]);
    let mut cmd = hiwar(&model_cache());
    pulse.apply(&mut cmd);
    standin.apply(&mut cmd);
    cmd.env_remove("DISPLAY").env("HIWAR_HEARING_ECHO_CANCELLATION", echo_cancellation.to_string()).env("RUST_LOG", "warn,hiwar=info");
    let mut child = cmd.args(["run", "--no-window", "--events"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hiwar");
    let (out, err) = (lines_of(child.stdout.take().expect("stdout")), lines_of(child.stderr.take().expect("stderr")));
    reaped.0.push(child);
    let mut events = Vec::new();
    let mut stderr = String::new();
    let drain = |events: &mut Vec<Value>, stderr: &mut String, out: &Receiver<String>, err: &Receiver<String>, wait: Duration| {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            while let Ok(l) = err.try_recv() {
                stderr.push_str(&l);
                stderr.push('\n');
            }
            match out.recv_timeout(Duration::from_millis(50)) {
                Ok(l) => events.extend(serde_json::from_str::<Value>(&l).ok()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
    };
    wait_for(&err, Duration::from_secs(60), "hiwar listening", |l| l.starts_with("hiwar is listening"));
    // PulseAudio's ALSA plugin delivers its first capture ~1.7 s after the stream starts.
    drain(&mut events, &mut stderr, &out, &err, Duration::from_secs(3));
    pulse.play("room", &clip("en-passport.wav").0);
    let started = Instant::now();
    while !events.iter().any(|e| e["event"] == "state" && e["state"] == "speaking") {
        assert!(started.elapsed() < Duration::from_secs(30), "no answer was spoken: {events:#?}\n{stderr}");
        drain(&mut events, &mut stderr, &out, &err, Duration::from_millis(200));
    }
    // Three seconds of the answer, its echo filling the room.
    drain(&mut events, &mut stderr, &out, &err, Duration::from_secs(3));
    let before = events.len();
    pulse.play("room", &clip("en-office.wav").0);
    drain(&mut events, &mut stderr, &out, &err, Duration::from_secs(6));
    drop(reaped);
    while let Ok(l) = err.try_recv() {
        stderr.push_str(&l);
        stderr.push('\n');
    }
    (events, before, stderr)
}

fn starts_while_speaking(events: &[Value], upto: usize) -> usize {
    let speaking = events.iter().position(|e| e["event"] == "state" && e["state"] == "speaking").expect("speaking");
    events[speaking..upto].iter().filter(|e| e["event"] == "speech_started").count()
}

#[test]
fn with_the_canceller_the_avatar_does_not_hear_itself_and_is_interrupted_at_full_volume() {
    let (events, before, stderr) = converse(true);
    assert_eq!(starts_while_speaking(&events, before), 0, "the avatar heard its own voice as speech: {events:#?}\n{stderr}");
    let barge = events[before..].iter().position(|e| e["event"] == "barge_in");
    assert!(barge.is_some(), "the person talking over the answer did not stop it: {:#?}\n{stderr}", &events[before..]);
    let heard: Vec<String> =
        events.iter().filter(|e| e["event"] == "transcript" && e["final"] == true).map(|e| e["text"].as_str().unwrap_or("").to_lowercase()).collect();
    assert!(heard.first().is_some_and(|t| t.contains("passport")), "{heard:?}");
}

#[test]
fn without_the_canceller_the_avatar_hears_its_own_voice() {
    let (events, before, stderr) = converse(false);
    assert!(starts_while_speaking(&events, before) > 0, "no echo reached the VAD: is the room wired? {events:#?}\n{stderr}");
}
