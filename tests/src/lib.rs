//! Helpers for hiwar's end-to-end tests: run the real `hiwar` binary in an isolated
//! environment, and serve files over real HTTP on loopback.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `hiwar` binary built beside this test (cargo nextest / cargo test --workspace build it).
pub fn hiwar_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Tests run from target/debug/deps, the measuring tools from target/debug.
    let dir = exe.parent().filter(|d| d.join("hiwar").is_file()).or_else(|| exe.parent().and_then(Path::parent)).expect("target dir");
    let bin = dir.join("hiwar");
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p hiwar` (the test command does)", bin.display());
    bin
}

/// The repository root (for assets): the checkout whose tests are running. cargo and nextest
/// name it when they run a test (CARGO_MANIFEST_DIR in the environment); the path compiled in
/// is only a fallback, because two checkouts that share one build cache (a fresh clone beside
/// the working one, as the README's test command is run) share compiled test binaries, and
/// cargo does not rebuild one for being run from another checkout.
pub fn repo_root() -> PathBuf {
    let tests = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    tests.join("..")
}

/// A `hiwar` command with no inherited `HIWAR_*` settings and the given cache directory.
pub fn hiwar(home: &Path) -> Command {
    let mut cmd = Command::new(hiwar_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("HIWAR_") {
            cmd.env_remove(key);
        }
    }
    // Run outside the checkout so no ./hiwar.toml is picked up by accident.
    let cwd = home.parent().filter(|p| p.is_dir()).unwrap_or(Path::new("/"));
    // The voice without its random variation, so round trips through hearing are repeatable;
    // hearing without the temperature fallback's sampling, so transcripts are (a decode the
    // fallback resamples differs run to run: "m rate ID" one run, "m 8 i D" the next). The
    // fallback's effect is measured by `hiwar bench asr` (runaways over the clip set in noise).
    // The assets of the checkout under test, not of whichever checkout last built the binary
    // (the same shared-cache reason as `repo_root`).
    cmd.env("HIWAR_HOME", home)
        .env("BEVY_ASSET_ROOT", repo_root())
        .env("HIWAR_VOICE_DETERMINISTIC", "true")
        .env("HIWAR_HEARING_TEMPERATURE_FALLBACK", "false")
        .env("NO_COLOR", "1")
        .current_dir(cwd);
    cmd
}

/// The model cache the app itself uses ($HIWAR_HOME, else ~/.cache/hiwar): tests that need
/// real models find them where `hiwar models fetch` put them.
pub fn model_cache() -> PathBuf {
    match std::env::var_os("HIWAR_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache").join("hiwar"),
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output { status, stdout, stderr } = cmd.output().expect("run hiwar");
    Run { code: status.code(), stdout: String::from_utf8_lossy(&stdout).into(), stderr: String::from_utf8_lossy(&stderr).into() }
}

/// How the test server answers one path.
#[derive(Clone)]
pub enum Route {
    /// The bytes, with `Range: bytes=N-` honoured (206).
    File(Vec<u8>),
    /// The first request gets full headers but only `cut` bytes, then the connection closes;
    /// later requests are served like `File`.
    CutOnce { body: Vec<u8>, cut: usize },
    /// Headers, then silence for this long.
    Stall(Duration),
    /// A status code and a body.
    Status(u16, String),
}

/// A real HTTP/1.1 server on 127.0.0.1, one thread per connection, for as long as it lives.
pub struct TestServer {
    pub base: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn start(routes: Vec<(&'static str, Route)>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let routes = Arc::new(Mutex::new(routes));
        std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                for stream in listener.incoming().take(64).flatten() {
                    let (routes, log) = (Arc::clone(&routes), Arc::clone(&log));
                    std::thread::spawn(move || serve(stream, &routes, &log));
                }
            })
            .expect("spawn server");
        TestServer { base, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn serve(mut stream: TcpStream, routes: &Mutex<Vec<(&'static str, Route)>>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_start = 0usize;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_start = v.trim().trim_end_matches('-').parse().unwrap_or(0);
        }
        headers.push(line.trim().to_string());
    }
    log.lock().expect("log").push(format!("{} {path} {}", request_line.split_whitespace().next().unwrap_or(""), headers.join(" | ")));
    let route = {
        let mut routes = routes.lock().expect("routes");
        let Some(entry) = routes.iter_mut().find(|(p, _)| *p == path) else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
            return;
        };
        let route = entry.1.clone();
        if let Route::CutOnce { body, .. } = &entry.1 {
            entry.1 = Route::File(body.clone());
        }
        route
    };
    let _ = match route {
        Route::File(body) => send_file(&mut stream, &body, range_start, None),
        Route::CutOnce { body, cut } => send_file(&mut stream, &body, range_start, Some(cut)),
        Route::Stall(pause) => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            std::thread::sleep(pause);
            Ok(())
        }
        Route::Status(code, body) => stream.write_all(
            format!("HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        ),
    };
    let mut rest = Vec::new();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = reader.read_to_end(&mut rest);
}

fn send_file(stream: &mut TcpStream, body: &[u8], start: usize, cut: Option<usize>) -> std::io::Result<()> {
    let start = start.min(body.len());
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len() - start,
            body.len().saturating_sub(1),
            body.len()
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
    };
    stream.write_all(head.as_bytes())?;
    let end = cut.map_or(body.len(), |c| (start + c).min(body.len()));
    stream.write_all(&body[start..end])?;
    stream.flush()
}

/// Writes 16-bit PCM wav (`channels` interleaved).
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// Reads a 16-bit mono wav as f32 (the repo's clips).
pub fn read_wav(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    (rate, r.samples::<i16>().map(|s| f32::from(s.expect("sample")) / 32768.0).collect())
}

/// A clip from assets/clips or assets/demo, with the text it says (from clips.toml).
pub fn clip(name: &str) -> (PathBuf, String) {
    let dir = repo_root().join("assets/clips");
    let toml = std::fs::read_to_string(dir.join("clips.toml")).expect("clips.toml");
    let mut file = None;
    for line in toml.lines() {
        if let Some(f) = line.strip_prefix("file = ") {
            file = Some(f.trim_matches('"').to_string());
        }
        if let (Some(f), Some(text)) = (&file, line.strip_prefix("text = "))
            && f.ends_with(name)
        {
            return (dir.join(f), text.trim_matches('"').to_string());
        }
    }
    panic!("no clip {name} in clips.toml")
}

/// Peak resident memory of a running process so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// Resident memory of a running process now (VmRSS), in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A private PulseAudio server with null sinks: real-time paced virtual devices. Each test
/// gets its own (own runtime dir, own socket); it is killed when dropped.
pub struct Pulse {
    dir: tempfile::TempDir,
    child: std::process::Child,
    alsa_conf: PathBuf,
}

impl Pulse {
    /// Starts PulseAudio with one null sink per name; the first sink's monitor becomes the
    /// default source (the "microphone").
    pub fn start(sinks: &[&str]) -> Pulse {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--log-level=error", "-L", "module-native-protocol-unix"]);
        for s in sinks {
            cmd.args(["-L", &format!("module-null-sink sink_name={s}")]);
        }
        let child = cmd
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("HOME", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pulseaudio (Debian package pulseaudio, installed by ./bootstrap)");
        // ALSA's default device is PulseAudio, in a copy of the system config (never edited).
        let alsa_conf = dir.path().join("asound.conf");
        let mut conf = std::fs::read_to_string("/usr/share/alsa/alsa.conf").expect("alsa.conf");
        conf.push_str("\npcm.!default { type pulse }\nctl.!default { type pulse }\n");
        std::fs::write(&alsa_conf, conf).expect("write alsa conf");
        let pulse = Pulse { dir, child, alsa_conf };
        let started = std::time::Instant::now();
        while pulse.try_pactl(&["info"]).is_none() {
            assert!(started.elapsed() < Duration::from_secs(15), "PulseAudio did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(first) = sinks.first() {
            pulse.pactl(&["set-default-source", &format!("{first}.monitor")]);
            pulse.pactl(&["set-default-sink", first]);
        }
        pulse
    }

    /// This server's address for libpulse and ALSA's pulse plugin (`server "…"`).
    pub fn server(&self) -> String {
        format!("unix:{}", self.dir.path().join("pulse").join("native").display())
    }

    /// Points a command at this server, through ALSA as hiwar's cpal host sees it.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("XDG_RUNTIME_DIR", self.dir.path()).env("ALSA_CONFIG_PATH", &self.alsa_conf).env_remove("PULSE_SERVER");
    }

    fn try_pactl(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("pactl");
        self.apply(&mut cmd);
        let out = cmd.args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn pactl(&self, args: &[&str]) -> String {
        self.try_pactl(args).unwrap_or_else(|| panic!("pactl {args:?} failed"))
    }

    /// Plays a wav into `sink` in real time (returns when it has played).
    pub fn play(&self, sink: &str, wav: &Path) {
        let mut cmd = Command::new("paplay");
        self.apply(&mut cmd);
        let status = cmd.args(["-d", sink]).arg(wav).status().expect("paplay");
        assert!(status.success(), "paplay {}", wav.display());
    }

    /// Records what plays into `sink` (from its monitor) as 16 kHz mono s16le until the
    /// returned child is killed.
    pub fn record(&self, sink: &str, raw: &Path) -> std::process::Child {
        let mut cmd = Command::new("parec");
        self.apply(&mut cmd);
        cmd.args(["-d", &format!("{sink}.monitor"), "--format=s16le", "--rate=16000", "--channels=1"])
            .stdout(std::fs::File::create(raw).expect("raw file"))
            .spawn()
            .expect("parec")
    }

    /// The module index of the null sink `name`.
    pub fn module_of(&self, name: &str) -> String {
        let list = self.pactl(&["list", "short", "modules"]);
        list.lines()
            .find(|l| l.contains(&format!("sink_name={name}")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no module for {name}: {list}"))
            .to_string()
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines a child writes, split at '\n' or '\r' (live partials overwrite their line with
/// '\r'), with ANSI erase codes removed, delivered through a channel as they come.
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while reader.read(&mut byte).unwrap_or(0) == 1 {
            if byte[0] == b'\n' || byte[0] == b'\r' {
                let text = String::from_utf8_lossy(&line).replace("\x1b[2K", "").trim().to_string();
                if !text.is_empty() && tx.send(text).is_err() {
                    return;
                }
                line.clear();
            } else {
                line.push(byte[0]);
            }
        }
    });
    rx
}

/// Waits for a line matching `pred` (up to `limit`), returning it.
pub fn wait_for(rx: &std::sync::mpsc::Receiver<String>, limit: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no {what} within {limit:?}; saw:\n{}", seen.join("\n"))
}

/// `cmd` under a private X server (xvfb-run), with the same environment and directory; add its
/// arguments to the result.
pub fn under_xvfb(cmd: &Command) -> Command {
    let mut xvfb = Command::new("xvfb-run");
    xvfb.args(["-a", "-s", "-screen 0 1024x768x24"]).arg(cmd.get_program());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => xvfb.env(k, v),
            None => xvfb.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        xvfb.current_dir(dir);
    }
    xvfb
}

/// `hiwar llm-standin`: the stand-in LLM in its own process, its report lines on a channel.
pub struct Standin {
    child: std::process::Child,
    pub url: String,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Standin {
    pub fn start(behaviours: &[&str]) -> Standin {
        Standin::start_on("127.0.0.1:0", behaviours)
    }

    /// On `addr` (a server that comes back where it was after being killed).
    pub fn start_on(addr: &str, behaviours: &[&str]) -> Standin {
        let mut child = hiwar(&model_cache())
            .args(["llm-standin", "--bind", addr])
            .args(behaviours)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn llm-standin");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let first = wait_for(&lines, Duration::from_secs(10), "the stand-in's address", |l| l.starts_with("listening "));
        Standin { child, url: first.trim_start_matches("listening ").to_string(), lines }
    }

    /// Points a hiwar command at it, with short timeouts (how long things take is measured by
    /// `hiwar bench loop`, not here).
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("HIWAR_LLM_BASE_URL", &self.url)
            .env("HIWAR_LLM_API_KEY_ENV", "TEST_LLM_KEY_FOR_HIWAR")
            .env("TEST_LLM_KEY_FOR_HIWAR", "sk-test")
            .env("HIWAR_LLM_FIRST_TOKEN_TIMEOUT_MS", "1500")
            .env("HIWAR_LLM_IDLE_TIMEOUT_MS", "1000")
            .env("HIWAR_LLM_RETRIES", "1")
            .env("HIWAR_LLM_MAX_TOKENS", "20")
            .env("HIWAR_DIALOGUE_HOLDING_AFTER_MS", "700");
    }
}

impl Standin {
    /// host:port it listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").trim_end_matches("/v1").to_string()
    }

    /// Kills it (the LLM server goes away).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET on loopback: (status, body), the body read by its Content-Length or to
/// the close (some servers, Chromium's DevTools among them, keep the connection open).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: Option<usize> = head.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()));
            if let Some(n) = length
                && buf.len() >= end + 4 + n
            {
                buf.truncate(end + 4 + n);
                break;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}
