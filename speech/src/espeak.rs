//! espeak-ng, run as a separate process (it is GPL-3.0; hiwar never links it).

use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// What the installed espeak-ng offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspeakInfo {
    pub version: String,
    pub has_arabic: bool,
    pub has_english: bool,
}

/// Runs `espeak-ng --version` and `--voices` to see that it and its Arabic and English data exist.
pub fn probe() -> Result<EspeakInfo> {
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new("espeak-ng")
            .args(args)
            .env("PULSE_SERVER", NO_SOUND_SERVER)
            .output()
            .map_err(|e| Error::Espeak(format!("cannot run espeak-ng ({e}); install it: apt-get install espeak-ng")))?;
        if !out.status.success() {
            return Err(Error::Espeak(format!("`espeak-ng {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let version = run(&["--version"])?;
    let voices = run(&["--voices"])?;
    let has = |lang: &str| voices.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(lang));
    Ok(EspeakInfo {
        version: version.split_whitespace().nth(3).unwrap_or(version.trim()).to_string(),
        has_arabic: has("ar"),
        has_english: has("en-us") || has("en"),
    })
}

/// A long-lived `espeak-ng -q --ipa -v VOICE` reading stdin line by line (about 1 ms a line,
/// against about 10 ms to start a process per call). It is restarted if it dies.
pub struct Phonemizer {
    voice: String,
    child: Option<Worker>,
    /// What the worker answers for the marker line that ends every request.
    marker: String,
    /// The espeak-ng process in use, shared with [`Helper`]s.
    process: Arc<Mutex<Option<std::process::Child>>>,
}

struct Worker {
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Drop for Phonemizer {
    fn drop(&mut self) {
        Helper { process: Arc::clone(&self.process) }.kill();
    }
}

/// A handle on a phonemizer's espeak-ng process that another thread can use to end it: a
/// thread stuck waiting for a hung espeak-ng (stopped, wedged) gets an error and goes on.
#[derive(Debug, Clone)]
pub struct Helper {
    process: Arc<Mutex<Option<std::process::Child>>>,
}

impl Helper {
    /// Kills the process (a stopped one too) and reaps it; the phonemizer starts a new one the
    /// next time it is used.
    pub fn kill(&self) {
        let mut slot = self.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut p) = slot.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// The process id, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.lock().ok()?.as_ref().map(std::process::Child::id)
    }
}

impl std::fmt::Debug for Phonemizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phonemizer").field("voice", &self.voice).finish_non_exhaustive()
    }
}

/// A line that ends each request: its phonemes mark where the answer stops.
const MARKER: &str = "zaphod";

/// espeak-ng opens an audio output even when it only prints phonemes: it connects to
/// PulseAudio as a client (a kiosk's sound server sees hiwar's helpers come and go) and, with
/// no session around, creates ~/.config/pulse. Pointed at a server that is not there, it
/// writes nothing and phonemises as before.
pub(crate) const NO_SOUND_SERVER: &str = "unix:/nonexistent/hiwar-phonemes-need-no-sound";

impl Phonemizer {
    pub fn new(voice: &str) -> Result<Phonemizer> {
        let mut p = Phonemizer { voice: voice.to_string(), child: None, marker: String::new(), process: Arc::default() };
        p.start()?;
        p.marker = p.exchange(MARKER, true)?.into_iter().next().unwrap_or_default();
        if p.marker.is_empty() {
            return Err(Error::Espeak(format!("voice {voice}: no phonemes for the marker line")));
        }
        Ok(p)
    }

    fn start(&mut self) -> Result<()> {
        use std::process::Stdio;
        let mut process = Command::new("espeak-ng")
            .args(["-q", "--ipa", "-v", &self.voice])
            .env("PULSE_SERVER", NO_SOUND_SERVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Espeak(format!("cannot run espeak-ng ({e}); install it: apt-get install espeak-ng")))?;
        let stdin = process.stdin.take().ok_or_else(|| Error::Espeak("no stdin".into()))?;
        let stdout = std::io::BufReader::new(process.stdout.take().ok_or_else(|| Error::Espeak("no stdout".into()))?);
        let old = self.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(process);
        if let Some(mut old) = old {
            let _ = old.kill();
            let _ = old.wait();
        }
        self.child = Some(Worker { stdin, stdout });
        Ok(())
    }

    /// Sends `line` (then the marker, unless this is the marker itself) and reads the answer.
    fn exchange(&mut self, line: &str, is_marker: bool) -> Result<Vec<String>> {
        use std::io::{BufRead as _, Write as _};
        let worker = self.child.as_mut().ok_or_else(|| Error::Espeak("not running".into()))?;
        let io = |e: std::io::Error| Error::Espeak(format!("worker: {e}"));
        writeln!(worker.stdin, "{line}").map_err(io)?;
        if !is_marker {
            writeln!(worker.stdin, "{MARKER}").map_err(io)?;
        }
        worker.stdin.flush().map_err(io)?;
        let mut lines = Vec::new();
        loop {
            let mut out = String::new();
            if worker.stdout.read_line(&mut out).map_err(io)? == 0 {
                return Err(Error::Espeak("the worker exited".into()));
            }
            let out = out.trim().to_string();
            if is_marker {
                return Ok(vec![out]);
            }
            if out == self.marker {
                return Ok(lines);
            }
            if !out.is_empty() {
                lines.push(out);
            }
        }
    }

    /// A handle that can end this phonemizer's espeak-ng from another thread.
    pub fn helper(&self) -> Helper {
        Helper { process: Arc::clone(&self.process) }
    }

    /// IPA phonemes for one clause (no line breaks), words separated by spaces. A worker that
    /// died is restarted once.
    pub fn phonemize(&mut self, clause: &str) -> Result<String> {
        let clause = clause.replace(['\n', '\r'], " ");
        match self.exchange(clause.trim(), false) {
            Ok(lines) => Ok(lines.join(" ")),
            Err(_) => {
                self.start()?;
                self.exchange(clause.trim(), false).map(|l| l.join(" "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_answers_clause_by_clause_and_survives_being_killed() {
        let mut p = Phonemizer::new("en-us").expect("espeak-ng (installed by ./bootstrap)");
        assert_eq!(p.phonemize("Welcome to the service centre").expect("ipa"), "wˈɛlkʌm tə ðə sˈɜːvɪs sˈɛntɚ");
        // espeak splits at commas itself; the answer still comes back whole.
        assert_eq!(p.phonemize("and a comma, and more").expect("ipa"), "ænd ɐ kˈɑːmə ænd mˈoːɹ");
        let helper = p.helper();
        let first = helper.pid().expect("running");
        helper.kill();
        assert_eq!(helper.pid(), None);
        assert_eq!(p.phonemize("today").expect("restarted"), "tədˈeɪ");
        assert!(helper.pid().is_some_and(|pid| pid != first), "a new espeak-ng, seen by the same helper");
        let mut ar = Phonemizer::new("ar").expect("arabic voice");
        assert_eq!(ar.phonemize("مَرْحَبًا بِكُمْ").expect("ipa"), "mˈarħabˌan bikˌum");
    }
}
