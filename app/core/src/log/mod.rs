//! Logging: tracing to standard error (the journal under systemd) or to a rotated file, as
//! text or JSON lines; every line passes through [`redact`](redact::redact) first.
//!
//! A full disk never stops hiwar: lines that cannot be written are counted and dropped, the
//! oldest rotated file is removed to make room, and the first line that fits again says how
//! many were lost.

pub mod redact;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing_subscriber::fmt::MakeWriter;

/// `[log]` in hiwar.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (for people) or `json` (one object per line, for log collectors).
    pub format: String,
    /// Write to this file, rotated by size, instead of standard error (empty: standard error,
    /// which systemd keeps in the journal).
    pub file: String,
    /// Rotate the file when it would pass this size.
    pub max_bytes: u64,
    /// Rotated files kept (hiwar.log.1 … hiwar.log.N).
    pub keep: usize,
    /// Replace phone numbers, Emirates ID-like numbers and e-mail addresses in every line.
    pub redact: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "text".into(), file: String::new(), max_bytes: 10 << 20, keep: 5, redact: true }
    }
}

impl LogConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(matches!(self.format.as_str(), "text" | "json"), "log.format must be \"text\" or \"json\", not {:?}", self.format);
        anyhow::ensure!(self.max_bytes >= 4096, "log.max_bytes must be at least 4096");
        Ok(())
    }
}

/// A size-rotated log file that never fails its writer.
#[derive(Debug)]
pub struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
    /// Lines dropped since the last successful write (disk full, file unwritable).
    dropped: u64,
}

impl Rotating {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> anyhow::Result<Rotating> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create the log folder {}: {e}", dir.display()))?;
        }
        let mut r = Rotating { path: path.to_path_buf(), max_bytes, keep, file: None, size: 0, dropped: 0 };
        r.reopen().map_err(|e| anyhow::anyhow!("cannot open the log file {}: {e}", path.display()))?;
        Ok(r)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        let file = options.open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(self.numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, self.numbered(1));
        }
        let _ = self.reopen();
    }

    /// Makes room on a full disk: removes the oldest rotated file that exists.
    fn free_space(&mut self) -> bool {
        (1..=self.keep).rev().map(|n| self.numbered(n)).find(|p| p.exists()).is_some_and(|p| std::fs::remove_file(p).is_ok())
    }

    fn try_write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("log file closed"))?;
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Writes one line; on failure drops it (counted) and keeps going.
    pub fn write_line(&mut self, line: &[u8]) {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if self.dropped > 0 {
            let note = format!("(hiwar: {} log line(s) were dropped: the log disk was full or unwritable)\n", self.dropped);
            if self.try_write(note.as_bytes()).is_err() {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        let mut result = self.try_write(line);
        if result.is_err() && self.free_space() {
            result = self.try_write(line);
        }
        if let Err(e) = result {
            if self.dropped == 0 {
                // Once per outage, to the journal (standard error), which has its own space.
                eprintln!("hiwar: cannot write the log file {}: {e}; dropping log lines until it can", self.path.display());
            }
            self.dropped += 1;
            // A short write may have left half a line: start the next one on a new line.
            self.file = None;
        }
    }

    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Where formatted lines go: standard error or a rotated file, through redaction.
#[derive(Clone, Debug)]
pub struct Sink {
    file: Option<Arc<Mutex<Rotating>>>,
    redact: bool,
}

/// One line being written (tracing's fmt layer writes each event with one `write_all`).
pub struct LineWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let line = if self.sink.redact { redact::redact(&text) } else { text };
        match &self.sink.file {
            Some(file) => {
                if let Ok(mut f) = file.lock() {
                    f.write_line(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { sink: self.clone(), buf: Vec::with_capacity(256) }
    }
}

/// JSON lines: {"ts","level","target","message", …fields}.
struct Json;

struct Fields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Json
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime as _;
        let mut ts = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut ts))?;
        let meta = event.metadata();
        let mut fields = Fields(serde_json::Map::new());
        event.record(&mut fields);
        let mut object = serde_json::Map::new();
        object.insert("ts".into(), ts.into());
        object.insert("level".into(), meta.level().as_str().into());
        object.insert("target".into(), meta.target().into());
        object.append(&mut fields.0);
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// Installs the global subscriber: `verbose` picks the default level (RUST_LOG overrides).
pub fn init(config: &LogConfig, verbose: u8) -> anyhow::Result<()> {
    let default = match verbose {
        // wgpu's adapter probing logs an error for every backend a machine lacks (EGL on a
        // headless box): doctor reports the adapter itself, so keep those quiet.
        0 => "warn,wgpu_hal=off,hiwar::ops=info",
        1 => "info,hiwar=debug,hiwar_core=debug,hiwar_dialogue=debug,hiwar_stage=debug,hiwar_serve=debug,hiwar_bench=debug,hiwar_speech=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let file = match config.file.as_str() {
        "" => None,
        path => Some(Arc::new(Mutex::new(Rotating::open(Path::new(path), config.max_bytes, config.keep)?))),
    };
    let sink = Sink { file, redact: config.redact };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink.clone());
    let result = if config.format == "json" {
        builder.event_format(Json).try_init()
    } else {
        builder.with_ansi(sink.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hiwar.log");
        let mut r = Rotating::open(&path, 4096, 2).expect("open");
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..200 {
            r.write_line(line.as_bytes());
        }
        let sizes: Vec<u64> =
            ["hiwar.log", "hiwar.log.1", "hiwar.log.2"].iter().map(|n| std::fs::metadata(dir.path().join(n)).map_or(0, |m| m.len())).collect();
        assert!(sizes.iter().all(|s| *s > 0 && *s <= 4096), "{sizes:?}");
        assert!(!dir.path().join("hiwar.log.3").exists(), "only two rotated files are kept");
    }

    #[test]
    fn a_full_disk_drops_lines_and_says_so_when_it_can_write_again() {
        // /dev/full answers every write with ENOSPC, as a full disk does.
        let mut r = Rotating { path: "/dev/full".into(), max_bytes: u64::MAX, keep: 0, file: None, size: 0, dropped: 0 };
        r.write_line(b"one\n");
        r.write_line(b"two\n");
        assert_eq!(r.dropped(), 2);
        let dir = tempfile::tempdir().expect("tempdir");
        r.path = dir.path().join("hiwar.log");
        r.file = None;
        r.write_line(b"three\n");
        let text = std::fs::read_to_string(&r.path).expect("log");
        assert!(text.contains("2 log line(s) were dropped") && text.ends_with("three\n"), "{text}");
    }

    #[test]
    fn every_line_is_redacted_before_it_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hiwar.log");
        let sink = Sink { file: Some(Arc::new(Mutex::new(Rotating::open(&path, 1 << 20, 1).expect("open")))), redact: true };
        {
            let mut w = sink.make_writer();
            std::io::Write::write_all(&mut w, "رقمي 0501234567 وبريدي a@b.ae\n".as_bytes()).expect("write");
        }
        assert_eq!(std::fs::read_to_string(&path).expect("log"), "رقمي [phone] وبريدي [email]\n");
    }
}
