//! `hiwar serve`: the WebSocket protocol (v1, `protocol.rs`, docs/protocol.md), the reference
//! web page, `/healthz` and Prometheus `/metrics`, on one port.
//!
//! Each connection (TLS first, if configured: tokio-rustls) is served by hyper, its request head
//! read within the handshake timeout, and routed by axum: the page's files (tower-http), health,
//! metrics, or a WebSocket upgrade on `/ws` (axum's, over tokio-tungstenite), checked for its
//! token (constant-time) and Origin before it is answered.
//! A session's outgoing messages go through a bounded queue: a client that stops reading is
//! dropped rather than buffered without end. The mind is shared (each session has its own
//! conversation memory); the voice is a small pool of synthesis threads.

pub mod protocol;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::ws::{CloseFrame, Message, close_code};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::{Bus, EventKind, Lang, Said};
use hiwar_core::config::Config;
use hiwar_core::speaking::VoicePool;
use hiwar_dialogue::mind::Mind;
use hiwar_dialogue::turn::{Speak, answer_turn, reply_lang};
use protocol::{ClientMsg, ServerMsg, VERSION, WordSpan};

/// Longest a single message may take to be written to a client before the client counts as
/// not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest `reply` text in one message: a longer delta goes out as several.
const MAX_REPLY_BYTES: usize = 16 * 1024;

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
fn pieces(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest);
    }
    out
}

/// The server's metrics at /metrics, in Prometheus' text format through the `prometheus` crate.
/// The count of open sessions stays an atomic as well: admission adds and compares in one step.
pub struct Metrics {
    pub sessions: AtomicUsize,
    registry: prometheus::Registry,
    open: prometheus::IntGauge,
    sessions_total: prometheus::IntCounter,
    refused: prometheus::IntCounterVec,
    turns_total: prometheus::IntCounter,
    errors_total: prometheus::IntCounter,
    /// Answers speaking now, and waiting for a voice (set when rendered, from [`Speaking`]).
    speaking: prometheus::IntGauge,
    waiting: prometheus::IntGauge,
    /// Audio chunks sent, and those sent after the client's playback (from the turn's first
    /// chunk) would have run out: the voice fell behind real time.
    chunks_total: prometheus::IntCounter,
    chunks_late: prometheus::IntCounter,
    /// Per-stage latency: the question → first audio sent, retrieval, the LLM's first token,
    /// one chunk's synthesis.
    stages: prometheus::HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("sessions", &self.sessions).finish_non_exhaustive()
    }
}

const BUCKETS_MS: [f64; 10] = [1.0, 5.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1_600.0, 6_400.0];
const STAGES: [&str; 5] = ["first_audio", "retrieval", "llm_first_token", "synthesis", "voice_wait"];
const REFUSALS: [&str; 5] = ["auth", "origin", "full", "busy", "slow_client"];

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        use prometheus::{HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
        let registry = prometheus::Registry::new();
        let open = IntGauge::new("hiwar_sessions", "WebSocket sessions open now.")?;
        let sessions_total = IntCounter::new("hiwar_sessions_total", "WebSocket sessions accepted.")?;
        let refused = IntCounterVec::new(Opts::new("hiwar_refused_total", "Connections refused, by reason."), &["reason"])?;
        let turns_total = IntCounter::new("hiwar_turns_total", "Turns answered.")?;
        let errors_total = IntCounter::new("hiwar_errors_total", "Error messages sent to clients.")?;
        let speaking = IntGauge::new("hiwar_turns_speaking", "Answers being synthesised and streamed now.")?;
        let waiting = IntGauge::new("hiwar_turns_waiting", "Answers waiting for a voice (the voice is at capacity).")?;
        let chunks_total = IntCounter::new("hiwar_chunks_total", "Audio chunks sent.")?;
        let chunks_late = IntCounter::new("hiwar_chunks_late_total", "Audio chunks sent after the client's playback would have run out.")?;
        let stages = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "hiwar_stage_ms",
                "Latency by stage, milliseconds: question → first audio sent, retrieval, LLM first token, one chunk's synthesis, an answer's wait for a voice.",
            )
            .buckets(BUCKETS_MS.to_vec()),
            &["stage"],
        )?;
        // Every series exists from the start (a scrape before the first turn sees zeros).
        for r in REFUSALS {
            refused.with_label_values(&[r]);
        }
        for st in STAGES {
            stages.with_label_values(&[st]);
        }
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(sessions_total.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(turns_total.clone()))?;
        registry.register(Box::new(errors_total.clone()))?;
        registry.register(Box::new(speaking.clone()))?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(chunks_total.clone()))?;
        registry.register(Box::new(chunks_late.clone()))?;
        registry.register(Box::new(stages.clone()))?;
        Ok(Metrics {
            sessions: AtomicUsize::new(0),
            registry,
            open,
            sessions_total,
            refused,
            turns_total,
            errors_total,
            speaking,
            waiting,
            chunks_total,
            chunks_late,
            stages,
        })
    }

    fn refused(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    fn observe(&self, stage: &str, ms: f64) {
        self.stages.with_label_values(&[stage]).observe(ms);
    }

    fn render(&self, voice: &Speaking) -> String {
        self.open.set(self.sessions.load(Ordering::Relaxed) as i64);
        self.waiting.set(voice.waiting.load(Ordering::Relaxed) as i64);
        self.speaking.set(voice.speaking() as i64);
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// How long after an answer waited for a voice, or a chunk went out late, new sessions are
/// still refused as busy: the load must have eased for a moment, not just between two turns.
const BUSY_HOLD: Duration = Duration::from_secs(3);

/// The answers the voice speaks at once (`serve.turns_per_voice_thread` per synthesis thread),
/// and the measured load new sessions are admitted on. An answer takes a place before its first
/// chunk is synthesised and gives it back after its last (or when cut): answers past the limit
/// wait their turn (their first audio comes later) instead of every answer falling behind real
/// time; while any waits, or did, or a chunk went out late while answers shared the voice, in
/// the last [`BUSY_HOLD`], a new session is refused as busy (1013).
struct Speaking {
    slots: Arc<tokio::sync::Semaphore>,
    size: usize,
    waiting: AtomicUsize,
    /// Milliseconds after `epoch` (+1) when the voice was last seen at capacity; 0: never.
    strained_at: AtomicU64,
    epoch: Instant,
}

impl Speaking {
    fn new(size: usize) -> Speaking {
        let size = size.max(1);
        Speaking {
            slots: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
            waiting: AtomicUsize::new(0),
            strained_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Answers holding a place now.
    fn speaking(&self) -> usize {
        self.size - self.slots.available_permits()
    }

    fn strained(&self) {
        self.strained_at.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
    }

    /// Whether the voice is at capacity now (see the type's documentation).
    fn busy(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
            || match self.strained_at.load(Ordering::Relaxed) {
                0 => false,
                at => self.epoch.elapsed() < Duration::from_millis(at - 1) + BUSY_HOLD,
            }
    }

    /// A place to speak, waiting in line (first come, first served) if all are taken; `None`
    /// when `cancel` comes first.
    async fn take(&self, cancel: &CancellationToken, metrics: &Metrics) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(place) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(place);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.strained();
        let started = Instant::now();
        let place = tokio::select! {
            p = Arc::clone(&self.slots).acquire_owned() => p.ok(),
            () = cancel.cancelled() => None,
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.strained();
        metrics.observe("voice_wait", started.elapsed().as_secs_f64() * 1e3);
        place
    }
}

/// The server's settings, from `[serve]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub token: Option<String>,
    pub origins: Vec<String>,
    pub max_sessions: usize,
    pub max_message_bytes: usize,
    pub messages_per_second: f64,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub send_queue: usize,
    pub max_audio_streams: usize,
    pub web_dir: PathBuf,
    /// The kiosk's avatar, served to the page as /avatar.glb.
    pub avatar: PathBuf,
}

struct Shared {
    settings: Settings,
    /// Hearing for microphone audio over the socket (None: its models are missing).
    hearing: Option<hiwar_speech::hearing::HearingConfig>,
    /// Whisper's weights, loaded once and kept: every audio session decodes over them.
    _whisper: Option<hiwar_speech::whisper::Preloaded>,
    audio_streams: AtomicUsize,
    /// What new sessions start from; a reload (SIGHUP) replaces it, open sessions keep theirs.
    mind: std::sync::RwLock<Mind>,
    /// The voices new sessions speak with; a reload that changes `[voice]` replaces them, and
    /// open sessions finish with theirs (the old pool stops when the last of them ends).
    synth: std::sync::RwLock<Arc<VoicePool>>,
    voice: Speaking,
    metrics: Metrics,
    next_session: AtomicU64,
    shutdown: CancellationToken,
}

/// Byte-for-byte comparison whose time does not depend on where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// `hiwar serve`.
pub fn run(config: &Config, bind: Option<String>) -> anyhow::Result<ExitCode> {
    // Before any thread starts: sessions' threads come and go for weeks (hiwar_core::memory).
    hiwar_core::memory::limit_arenas(2);
    // Memory that comes back: no ONNX Runtime arena, freed blocks kept for the next synthesis
    // and given back at rest (give_back_at_rest; docs/benchmarks.md).
    hiwar_core::memory::keep_freed();
    hiwar_speech::onnx::use_arena(false);
    let s = &config.serve;
    let bind = bind.unwrap_or_else(|| s.bind.clone());
    let addr: std::net::SocketAddr = bind.parse().with_context(|| format!("--bind {bind}: expected ADDRESS:PORT, e.g. 127.0.0.1:8787"))?;
    let token = Some(s.token.trim().to_string()).filter(|t| !t.is_empty());
    anyhow::ensure!(
        token.is_some() || is_loopback(&addr),
        "hiwar serve binds to {addr}, which other machines can reach, but no token is set: set serve.token (or HIWAR_SERVE_TOKEN) so that only your page can connect"
    );
    let settings = Settings {
        token,
        origins: s.allowed_origins.clone(),
        max_sessions: s.max_sessions.max(1),
        max_message_bytes: s.max_message_bytes.max(1024),
        messages_per_second: s.messages_per_second.max(1.0),
        idle_timeout: Duration::from_secs(s.idle_timeout_secs.max(1)),
        handshake_timeout: Duration::from_millis(s.handshake_timeout_ms.max(100)),
        send_queue: s.send_queue.max(8),
        max_audio_streams: s.max_audio_streams,
        web_dir: hiwar_core::assets::assets_dir().join("web"),
        avatar: config.stage.avatar_path(&hiwar_core::assets::assets_dir()),
    };
    let mind = Mind::from_config(config)?;
    let synth = VoicePool::start(config, s.voice_threads)?;
    let hearing = match hiwar_dialogue::mind::hearing_config(config, None) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("microphone audio over the socket is off: {e:#}");
            None
        }
    };
    let whisper = hearing
        .as_ref()
        .and_then(|h| hiwar_speech::whisper::preload(&h.whisper_model).map_err(|e| tracing::warn!("microphone audio over the socket will fail: {e}")).ok());
    let tls = tls_acceptor(&s.tls_cert, &s.tls_key)?;
    let scheme = if tls.is_some() { ("https", "wss") } else { ("http", "ws") };
    let rt = hiwar_core::runtime::runtime()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let at = listener.local_addr()?;
        eprintln!("hiwar serve: {}://{at}/ (page) · {}://{at}/ws (protocol v{VERSION}) · /healthz · /metrics", scheme.0, scheme.1);
        let shared = Arc::new(Shared {
            settings,
            hearing,
            _whisper: whisper,
            audio_streams: AtomicUsize::new(0),
            mind: std::sync::RwLock::new(mind),
            synth: std::sync::RwLock::new(Arc::new(synth)),
            voice: Speaking::new(s.turns_per_voice_thread.saturating_mul(s.voice_threads.max(1))),
            metrics: Metrics::new().context("the server's metrics")?,
            next_session: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        });
        let notifier = Arc::new(hiwar_core::notify::Notifier::from_env());
        service(&shared, &notifier, config.clone());
        give_back_at_rest(&shared);
        notifier.ready(&format!("serving on {at}"));
        let app = router(Arc::clone(&shared));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = shared.shutdown.cancelled() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let _ = stream.set_nodelay(true);
            let (shared, app) = (Arc::clone(&shared), app.clone());
            match tls.clone() {
                Some(acceptor) => {
                    tokio::spawn(async move {
                        // The TLS handshake counts against the handshake timeout too.
                        if let Ok(Ok(stream)) = tokio::time::timeout(shared.settings.handshake_timeout, acceptor.accept(stream)).await {
                            connection(shared, app, stream).await;
                        }
                    });
                }
                None => {
                    tokio::spawn(async move { connection(shared, app, stream).await });
                }
            }
        }
        notifier.stopping();
        // Give sessions a moment to send their close frames.
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.metrics.sessions.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How long nothing must happen before the server gives its free memory back.
const REST: Duration = Duration::from_secs(5);

/// Gives the allocator's free memory back once the server has been at rest for [`REST`]
/// after anything happened (a session opened or closed, a turn, a synthesis, a microphone
/// stream): the heap keeps a synthesis's tensors for the next one while sessions are busy
/// (`hiwar_core::memory::keep_freed`), and returns them when they are not — ~210 MiB after
/// 100 typed turns (docs/benchmarks.md). The first synthesis after a rest faults them in again.
fn give_back_at_rest(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let activity = |s: &Shared| {
            let m = &s.metrics;
            let synth = m.stages.with_label_values(&["synthesis"]).get_sample_count();
            (m.sessions_total.get(), m.sessions.load(Ordering::Relaxed), m.turns_total.get(), synth, s.audio_streams.load(Ordering::Relaxed))
        };
        let mut tick = tokio::time::interval(REST);
        let (mut last, mut trimmed) = (activity(&shared), activity(&shared));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shared.shutdown.cancelled() => return,
            }
            let now = activity(&shared);
            if now == last && now != trimmed {
                let _ = tokio::task::spawn_blocking(hiwar_core::memory::give_back).await;
                trimmed = now;
            }
            last = now;
        }
    });
}

/// `hiwar serve` as a systemd service: the watchdog's heartbeat from the runtime that serves
/// (a stalled runtime stops it, and systemd restarts the server); SIGTERM and Ctrl-C close the
/// sessions and stop; SIGHUP reloads the config — the knowledge base, persona, LLM settings
/// and voices for sessions that start after it (open ones keep theirs; `[serve]` takes a
/// restart); a config that does not load, or whose voices do not, is refused and the running
/// one stays.
fn service(shared: &Arc<Shared>, notifier: &Arc<hiwar_core::notify::Notifier>, config: Config) {
    use tokio::signal::unix::{SignalKind, signal};
    if let Some(every) = notifier.watchdog_interval() {
        let (n, stop) = (Arc::clone(notifier), shared.shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while tokio::select! { _ = tick.tick() => true, () = stop.cancelled() => false } {
                n.heartbeat();
            }
        });
    }
    let (shared, n) = (Arc::clone(shared), Arc::clone(notifier));
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            tracing::error!("cannot listen for signals");
            return;
        };
        let mut config = config;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => {
                    n.reloading();
                    tracing::warn!(target: "hiwar::ops", "SIGHUP: reloading the config");
                    let old = config.clone();
                    let threads = shared.synth.read().unwrap_or_else(|e| e.into_inner()).threads();
                    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<(Config, Mind, Option<VoicePool>)> {
                        let new = Config::load(old.source.as_deref())?;
                        let mind = Mind::from_config(&new)?;
                        // New voices are loaded (and have spoken a word) before anything is swapped.
                        let voices = if new.voice == old.voice { None } else { Some(VoicePool::start(&new, threads).context("the new [voice]")?) };
                        if new.serve != old.serve {
                            tracing::warn!(target: "hiwar::ops", "config: changes to [serve] take effect at the next restart");
                        }
                        Ok((new, mind, voices))
                    })
                    .await;
                    match loaded {
                        Ok(Ok((new, mind, voices))) => {
                            *shared.mind.write().unwrap_or_else(|e| e.into_inner()) = mind;
                            if let Some(v) = voices {
                                *shared.synth.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
                                tracing::warn!(target: "hiwar::ops", "voices reloaded: sessions that start now speak with them");
                            }
                            tracing::warn!(target: "hiwar::ops", "config reloaded: sessions that start now use it");
                            config = new;
                        }
                        Ok(Err(e)) => tracing::error!(target: "hiwar::ops", "config reload refused, the running config stays: {e:#}"),
                        Err(e) => tracing::error!(target: "hiwar::ops", "config reload failed: {e}"),
                    }
                    n.ready("serving");
                }
            }
        }
        eprintln!("shutting down: open turns are cancelled, sessions closed");
        shared.shutdown.cancel();
    });
}

/// TLS from PEM files (`serve.tls_cert`, `serve.tls_key`); both empty: plain TCP.
fn tls_acceptor(cert: &str, key: &str) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        _ => anyhow::bail!("serve.tls_cert and serve.tls_key go together: set both (PEM files) or neither"),
    }
    let certs =
        CertificateDer::pem_file_iter(cert).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| anyhow::anyhow!("serve.tls_cert {cert}: {e}"))?;
    anyhow::ensure!(!certs.is_empty(), "serve.tls_cert {cert}: no certificate in it");
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("serve.tls_key {key}: {e}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("serve.tls_cert / serve.tls_key do not make a usable certificate and key")?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Anything a connection can be: plain TCP or TLS over it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Conn for T {}

/// Largest request head (request line and headers) hyper reads before it refuses the request.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest a plain HTTP request (not a WebSocket session) may take to be answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP side, on axum: `/ws` (the protocol), `/healthz`, `/metrics`, `/avatar.glb`, and the
/// reference page's files from assets/web (tower-http's `ServeDir`: no directory traversal,
/// types from the file names); every answer is `no-store` and `nosniff`, timed out after
/// [`REQUEST_TIMEOUT`], and traced.
fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::routing::get;
    use tower_http::set_header::SetResponseHeaderLayer;
    let page = tower_http::services::ServeDir::new(&shared.settings.web_dir);
    axum::Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics))
        .route("/avatar.glb", get(avatar))
        .fallback_service(page)
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(shared)
}

/// Why a new session would be refused with `open` places taken (its own included): the
/// metric's reason and the close's; `None`: admitted.
fn refusal(shared: &Shared, open: usize) -> Option<(&'static str, String)> {
    let max = shared.settings.max_sessions;
    if open > max {
        Some(("full", format!("server full: {max} sessions at most")))
    } else if shared.voice.busy() {
        Some(("busy", "server busy: its voice is at capacity and answers are waiting; try again shortly".to_string()))
    } else {
        None
    }
}

/// `/readyz`: 200 while a new session would be admitted, 503 with the reason while the server
/// is full or its voice busy: a load balancer's readiness check sends new clients elsewhere
/// (open sessions carry on). `/healthz` stays 200 as long as the server serves (liveness).
async fn readiness(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let open = shared.metrics.sessions.load(Ordering::Acquire);
    match refusal(&shared, open + 1) {
        None => "ready\n".into_response(),
        Some((_, why)) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// One connection, served by hyper (HTTP/1.1, upgrades allowed): a request head not read
/// within the handshake timeout, or over [`MAX_HEAD_BYTES`], ends the connection.
async fn connection<S: Conn>(shared: Arc<Shared>, app: axum::Router, stream: S) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(shared.settings.handshake_timeout).max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

async fn metrics(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], shared.metrics.render(&shared.voice))
}

/// The kiosk's own avatar for the page's 3D view (the operator's file, never a path from the
/// request).
async fn avatar(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::fs::read(&shared.settings.avatar).await {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, "model/gltf-binary")], body).into_response(),
        Err(_) => (axum::http::StatusCode::NOT_FOUND, "no avatar\n").into_response(),
    }
}

/// The token a request carries: `Authorization: Bearer …`, or `?token=` (a browser's
/// WebSocket cannot set headers).
fn given_token(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
        .map(str::to_string);
    bearer.or_else(|| form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()))
}

/// `/ws`: the token (constant time) and the Origin are checked before the upgrade is
/// answered, and the session's place among `serve.max_sessions` is taken then too.
async fn websocket(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    upgrade: Result<axum::extract::ws::WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse as _;
    let s = &shared.settings;
    let Ok(upgrade) = upgrade else {
        return (StatusCode::UPGRADE_REQUIRED, [(header::UPGRADE, "websocket")], "WebSocket only\n").into_response();
    };
    if let Some(token) = &s.token
        && !given_token(&headers, query.as_deref()).is_some_and(|g| same_secret(g.trim().as_bytes(), token.as_bytes()))
    {
        shared.metrics.refused("auth");
        let why = "a valid token is required (Authorization: Bearer TOKEN, or ?token=)\n";
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], why).into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or("\u{0}"))
        && !s.origins.is_empty()
        && !s.origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        shared.metrics.refused("origin");
        return (StatusCode::FORBIDDEN, "this origin is not allowed (serve.allowed_origins)\n").into_response();
    }
    // The session's place is taken before the upgrade is answered, so a client whose upgrade
    // succeeded holds its place before the next client is judged (counted after the
    // handshake, two clients finishing together could each take the other's place).
    let slot = Slot::take(&shared);
    // A refused client gives its place back at once.
    let admitted = refusal(&shared, slot.open).map_or(Ok(slot), Err);
    upgrade
        .max_message_size(s.max_message_bytes)
        .max_frame_size(s.max_message_bytes)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(shared, socket, admitted))
}

/// The close code for an error reading the client's messages.
fn close_code_for(e: axum::Error) -> (u16, String) {
    use tokio_tungstenite::tungstenite::Error;
    let text = e.to_string();
    let code = match e.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(Error::Capacity(_)) => close_code::SIZE,
        // A text frame that is not UTF-8: "inconsistent data" (RFC 6455, 1007).
        Ok(Error::Utf8(_)) => close_code::INVALID,
        _ => close_code::PROTOCOL,
    };
    (code, text)
}

/// One WebSocket session, from the upgrade to the close; `admitted` is the refusal (the
/// metric's reason and the close's) when the server was full or its voice busy: the client is
/// told so (1013, try again later) instead of being refused silently.
async fn session(shared: Arc<Shared>, socket: axum::extract::ws::WebSocket, admitted: Result<Slot, (&'static str, String)>) {
    let s = &shared.settings;
    let (mut sink, mut incoming) = socket.split();
    let slot = match admitted {
        Ok(slot) => slot,
        Err((why, reason)) => {
            shared.metrics.refused(why);
            let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code::AGAIN, reason: reason.into() }))).await;
            return;
        }
    };
    shared.metrics.sessions_total.inc();
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    // Outgoing: a bounded queue to a writer task. Full means the client stopped reading.
    let (out, mut out_rx) = mpsc::channel::<Message>(s.send_queue);
    let session_end = CancellationToken::new();
    let writer_end = session_end.clone();
    let writer_shared = Arc::clone(&shared);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(m)).await {
                Ok(Ok(())) => {}
                Err(_) => {
                    // The client's socket took nothing for that long: it is not reading.
                    writer_shared.metrics.refused("slow_client");
                    tracing::warn!("session s{id}: a message could not be written in {WRITE_TIMEOUT:?}: the client is not reading; dropped");
                    break;
                }
                Ok(Err(e)) => {
                    if !close {
                        tracing::info!("session s{id}: the connection failed while writing: {e}");
                    }
                    break;
                }
            }
            if close {
                break;
            }
        }
        writer_end.cancel();
        let _ = sink.close().await;
    });
    let mut session = Session::new(Arc::clone(&shared), id, out.clone(), session_end.clone());
    let mut bucket = (s.messages_per_second * 2.0, Instant::now());
    let close = loop {
        let next = tokio::select! {
            h = session.heard() => {
                session.on_heard(h);
                continue;
            }
            m = tokio::time::timeout(s.idle_timeout, incoming.next()) => m,
            () = session_end.cancelled() => break None,
            () = shared.shutdown.cancelled() => break Some((close_code::AWAY, "server shutting down".to_string())),
        };
        let msg = match next {
            Err(_) => break Some((close_code::NORMAL, format!("idle for {:?}", s.idle_timeout))),
            Ok(None) => break None,
            Ok(Some(Err(e))) => break Some(close_code_for(e)),
            Ok(Some(Ok(m))) => m,
        };
        // A token bucket: a burst of twice the rate, refilled continuously.
        let (tokens, at) = &mut bucket;
        *tokens = (*tokens + at.elapsed().as_secs_f64() * s.messages_per_second).min(s.messages_per_second * 2.0);
        *at = Instant::now();
        if *tokens < 1.0 {
            break Some((close_code::POLICY, format!("over {} messages a second", s.messages_per_second)));
        }
        *tokens -= 1.0;
        match msg {
            Message::Text(t) => {
                if let Some(close) = session.on_text(&t).await {
                    break Some(close);
                }
            }
            Message::Binary(b) => session.on_binary(&b),
            Message::Close(_) => break None,
            _ => {}
        }
    };
    session.end();
    if let Some((code, reason)) = close {
        let _ = out.try_send(Message::Close(Some(CloseFrame { code, reason: reason.into() })));
    }
    drop(out);
    drop(session);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    drop(slot);
}

/// A session's place among `serve.max_sessions`, given back when dropped (however the
/// session or its handshake ends).
struct Slot {
    shared: Arc<Shared>,
    /// Places taken, this one included.
    open: usize,
}

impl Slot {
    fn take(shared: &Arc<Shared>) -> Slot {
        let open = shared.metrics.sessions.fetch_add(1, Ordering::AcqRel) + 1;
        Slot { shared: Arc::clone(shared), open }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.metrics.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the session's speech task is asked to do, in order.
enum SpeechJob {
    Say {
        turn: u64,
        what: Said,
        text: String,
    },
    /// A new turn: its cancel token (a turn waiting for a voice stops waiting when it is cut).
    Begin {
        turn: u64,
        cancel: CancellationToken,
    },
    /// Everything of the turn has been queued: its end goes out after its last chunk.
    Finish {
        turn: u64,
        source: &'static str,
    },
}

/// The dialogue's voice for a session: chunks are synthesised by the pool and streamed in order.
struct SessionVoice {
    jobs: mpsc::UnboundedSender<SpeechJob>,
}

impl Speak for SessionVoice {
    fn say(&self, turn: u64, what: Said, text: &str) {
        let _ = self.jobs.send(SpeechJob::Say { turn, what, text: text.to_string() });
    }

    fn end(&self, _turn: u64) {}
}

struct Session {
    shared: Arc<Shared>,
    id: u64,
    out: mpsc::Sender<Message>,
    end: CancellationToken,
    mind: Arc<Mind>,
    /// The rate of the voices the session speaks with.
    audio_rate: u32,
    voice: Arc<SessionVoice>,
    /// The turn in progress and its cancel token; turns cancelled up to this one.
    turn: Option<(u64, CancellationToken)>,
    cancelled: Arc<AtomicU64>,
    /// The last turn whose `end_of_turn` has been sent.
    finished: Arc<AtomicU64>,
    progress: Arc<std::sync::Mutex<Progress>>,
    next_turn: u64,
    hello: bool,
    lang: Option<Lang>,
    /// Microphone audio from the client: where its blocks go, and what hearing makes of them.
    audio: Option<std::sync::mpsc::Sender<Vec<f32>>>,
    heard: Option<mpsc::UnboundedReceiver<hiwar_speech::hearing::HearingEvent>>,
    /// What the client asked to be streamed, for the speech task.
    wanted: Arc<std::sync::Mutex<protocol::Want>>,
    asked_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Sends one message, or ends the session if the client is not reading (the queue is full).
fn send(out: &mpsc::Sender<Message>, end: &CancellationToken, shared: &Shared, msg: Message) {
    if let Err(mpsc::error::TrySendError::Full(_)) = out.try_send(msg) {
        shared.metrics.refused("slow_client");
        tracing::warn!("a client stopped reading: its session is dropped");
        end.cancel();
    }
}

fn json(msg: &ServerMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

impl Session {
    fn new(shared: Arc<Shared>, id: u64, out: mpsc::Sender<Message>, end: CancellationToken) -> Session {
        let mind = Arc::new(shared.mind.read().unwrap_or_else(|e| e.into_inner()).session());
        let synth = Arc::clone(&shared.synth.read().unwrap_or_else(|e| e.into_inner()));
        let (jobs, rx) = mpsc::unbounded_channel();
        let cancelled = Arc::new(AtomicU64::new(0));
        let asked_at = Arc::new(std::sync::Mutex::new(None));
        let finished = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(std::sync::Mutex::new(Progress::default()));
        let wanted = Arc::new(std::sync::Mutex::new(protocol::Want::default()));
        let audio_rate = synth.rate();
        let task = SpeechTask {
            shared: Arc::clone(&shared),
            synth,
            out: out.clone(),
            end: end.clone(),
            cancelled: Arc::clone(&cancelled),
            finished: Arc::clone(&finished),
            progress: Arc::clone(&progress),
            asked_at: Arc::clone(&asked_at),
            wanted: Arc::clone(&wanted),
            session: id,
        };
        tokio::spawn(speech_task(task, rx));
        Session {
            shared,
            id,
            out,
            end,
            mind,
            audio_rate,
            voice: Arc::new(SessionVoice { jobs }),
            turn: None,
            cancelled,
            finished,
            progress,
            next_turn: 1,
            hello: false,
            lang: None,
            audio: None,
            heard: None,
            wanted,
            asked_at,
        }
    }

    fn send(&self, msg: &ServerMsg) {
        send(&self.out, &self.end, &self.shared, json(msg));
    }

    fn refuse(&self, r: &protocol::Refusal) {
        self.shared.metrics.errors_total.inc();
        self.send(&r.to_msg());
    }

    /// Returns a close (code, reason) when the session must end.
    async fn on_text(&mut self, text: &str) -> Option<(u16, String)> {
        let msg = match protocol::decode(text) {
            Ok(m) => m,
            Err(r) => {
                self.refuse(&r);
                return None;
            }
        };
        if !self.hello && !matches!(msg, ClientMsg::Hello { .. } | ClientMsg::Bye { .. }) {
            self.refuse(&protocol::Refusal {
                code: "hello_first", message: "send hello first".into(), message_ar: "أرسل رسالة الترحيب أولاً."
            });
            return None;
        }
        match msg {
            ClientMsg::Hello { lang, want, .. } => {
                self.hello = true;
                if let Ok(mut w) = self.wanted.lock() {
                    *w = want;
                }
                self.lang = match lang.as_deref() {
                    Some("ar") => Some(Lang::Ar),
                    Some("en") => Some(Lang::En),
                    _ => None,
                };
                self.send(&ServerMsg::Ready {
                    v: VERSION,
                    session: format!("s{}", self.id),
                    audio_rate: self.audio_rate,
                    audio_format: "pcm16le",
                    languages: vec!["ar", "en"],
                    streams: want.streams(),
                    blendshapes: want.blendshapes.then_some(protocol::BlendshapeInfo { fps: want.fps, names: &hiwar_animation::ARKIT }),
                });
                self.send(&ServerMsg::State { v: VERSION, state: "idle", turn: None });
            }
            ClientMsg::Text { text, .. } => self.ask(text),
            ClientMsg::Interrupt { .. } => self.interrupt(),
            ClientMsg::AudioStart { rate, .. } => self.start_audio(rate).await,
            ClientMsg::AudioEnd { .. } => {
                // The end of the stream closes what was being said; hearing then finishes.
                self.audio = None;
            }
            ClientMsg::Bye { .. } => return Some((close_code::NORMAL, "bye".into())),
        }
        None
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        let samples = match protocol::pcm16_to_f32(bytes) {
            Ok(s) => s,
            Err(r) => return self.refuse(&r),
        };
        match &self.audio {
            Some(tx) => {
                let _ = tx.send(samples);
            }
            None => self.refuse(&protocol::Refusal {
                code: "bad_message",
                message: "audio frame without audio_start".into(),
                message_ar: "وصل صوت قبل رسالة بدء الصوت.",
            }),
        }
    }

    /// `audio_start`: a hearing pipeline (VAD + whisper) for this client's microphone.
    async fn start_audio(&mut self, rate: u32) {
        let refuse = |code, message: String, message_ar| protocol::Refusal { code, message, message_ar };
        if self.audio.is_some() {
            return self.refuse(&refuse("bad_message", "audio is already streaming; send audio_end first".into(), "الصوت يُرسل بالفعل."));
        }
        let Some(hc) = self.shared.hearing.clone() else {
            return self.refuse(&refuse(
                "not_available",
                "hearing's models are missing on the server (hiwar models fetch)".into(),
                "التعرف على الكلام غير متاح على الخادم.",
            ));
        };
        let limit = self.shared.settings.max_audio_streams;
        if self.shared.audio_streams.fetch_add(1, Ordering::AcqRel) >= limit {
            self.shared.audio_streams.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(&refuse(
                "busy",
                format!("{limit} microphone streams at most; send text, or try again"),
                "الخادم مشغول؛ أرسل نصاً أو حاول لاحقاً.",
            ));
        }
        let (tx, blocks) = std::sync::mpsc::channel();
        let started =
            tokio::task::spawn_blocking(move || hiwar_speech::hearing::Hearing::start(hc, hiwar_speech::hearing::Source::Stream { blocks, rate })).await;
        let hearing = match started {
            Ok(Ok(h)) => h,
            other => {
                self.shared.audio_streams.fetch_sub(1, Ordering::AcqRel);
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "hearing did not start".into(),
                };
                return self.refuse(&refuse("not_available", why, "التعرف على الكلام غير متاح الآن."));
            }
        };
        let (heard_tx, heard_rx) = mpsc::unbounded_channel();
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || {
            for e in hearing.events.iter() {
                if heard_tx.send(e).is_err() {
                    break;
                }
            }
            drop(hearing);
            hiwar_core::memory::give_back();
            shared.audio_streams.fetch_sub(1, Ordering::AcqRel);
        });
        self.audio = Some(tx);
        self.heard = Some(heard_rx);
    }

    /// The next thing hearing reports; pending for ever when no audio is streaming.
    async fn heard(&mut self) -> Option<hiwar_speech::hearing::HearingEvent> {
        match self.heard.as_mut() {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    fn on_heard(&mut self, event: Option<hiwar_speech::hearing::HearingEvent>) {
        use hiwar_speech::hearing::HearingEvent as H;
        let Some(event) = event else {
            self.heard = None;
            return;
        };
        match event {
            H::SpeechStarted { .. } => {
                // The client's own voice over the answer: barge-in (browsers cancel their echo).
                self.interrupt();
                self.send(&ServerMsg::State { v: VERSION, state: "listening", turn: None });
            }
            H::Partial { text, lang, .. } => {
                let lang = reply_lang(&lang, &text);
                self.send(&ServerMsg::Transcript { v: VERSION, turn: self.next_turn, text, lang: lang.code(), is_final: false });
            }
            H::Final { utterance: Some(u), .. } => {
                let lang = self.lang.unwrap_or_else(|| reply_lang(&u.lang, &u.text));
                self.ask_in(u.text, lang);
            }
            H::Final { utterance: None, .. } => self.send(&ServerMsg::State { v: VERSION, state: "idle", turn: None }),
            H::Failed { reason } => {
                self.refuse(&protocol::Refusal { code: "hearing_failed", message: reason, message_ar: "تعذّر سماع الصوت." });
            }
            _ => {}
        }
    }

    fn interrupt(&mut self) {
        // A turn whose end has been sent is over: nothing to interrupt.
        let Some((turn, cancel)) = self.turn.take() else { return };
        cancel.cancel();
        // Between two of its chunks: what was sent of it stays sent, nothing more follows, and
        // its end (interrupted) goes out now, before anything of the next turn.
        let Ok(p) = self.progress.lock() else { return };
        self.cancelled.fetch_max(turn, Ordering::AcqRel);
        if self.finished.fetch_max(turn, Ordering::AcqRel) < turn {
            let samples = if p.turn == turn { p.samples } else { 0 };
            self.send(&ServerMsg::State { v: VERSION, state: "listening", turn: Some(turn) });
            self.send(&ServerMsg::EndOfTurn { v: VERSION, turn, source: "interrupted", interrupted: true, samples });
        }
    }

    fn ask(&mut self, text: String) {
        let lang = self.lang.unwrap_or_else(|| hiwar_dialogue::mind::knowledge::lang_of(&text));
        self.ask_in(text, lang);
    }

    fn ask_in(&mut self, text: String, lang: Lang) {
        self.interrupt();
        let turn = self.next_turn;
        self.next_turn += 1;
        let cancel = CancellationToken::new();
        self.turn = Some((turn, cancel.clone()));
        let _ = self.voice.jobs.send(SpeechJob::Begin { turn, cancel: cancel.clone() });
        self.shared.metrics.turns_total.inc();
        if let Ok(mut a) = self.asked_at.lock() {
            *a = Some(Instant::now());
        }
        self.send(&ServerMsg::Transcript { v: VERSION, turn, text: text.clone(), lang: lang.code(), is_final: true });
        self.send(&ServerMsg::State { v: VERSION, state: "thinking", turn: Some(turn) });
        let (mind, voice, out, end, shared) = (Arc::clone(&self.mind), Arc::clone(&self.voice), self.out.clone(), self.end.clone(), Arc::clone(&self.shared));
        let (progress, cancelled) = (Arc::clone(&self.progress), Arc::clone(&self.cancelled));
        tokio::spawn(async move {
            // The reply's text deltas go to the client from the bus this turn publishes on.
            let bus = Bus::new(1024);
            let mut rx = bus.subscribe();
            let relay = {
                let (out, end, shared) = (out.clone(), end.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    while let Ok(e) = rx.recv().await {
                        if let EventKind::ReplyText { delta } = e.kind {
                            // Under the lock `interrupt` sends the turn's end with: a delta
                            // still queued when the turn was interrupted is not sent after it.
                            let Ok(_order) = progress.lock() else { break };
                            if cancelled.load(Ordering::Acquire) >= turn {
                                break;
                            }
                            for piece in pieces(&delta, MAX_REPLY_BYTES) {
                                send(&out, &end, &shared, json(&ServerMsg::Reply { v: VERSION, turn, delta: piece.to_string() }));
                            }
                        }
                    }
                })
            };
            let report = answer_turn(&mind, voice.as_ref(), &bus, turn, &text, lang, Instant::now(), Duration::from_secs(2), cancel).await;
            shared.metrics.observe("retrieval", report.retrieval_ms);
            if let Some(ms) = report.first_token_ms {
                shared.metrics.observe("llm_first_token", ms);
            }
            drop(bus);
            let _ = relay.await;
            if !report.cancelled {
                let source = report.source.map_or("no_answer", hiwar_core::bus::Source::code);
                let _ = voice.jobs.send(SpeechJob::Finish { turn, source });
            }
        });
    }

    fn end(&mut self) {
        if let Some((_, cancel)) = self.turn.take() {
            cancel.cancel();
        }
        self.cancelled.store(u64::MAX, Ordering::Release);
    }
}

/// Synthesises a session's chunks in order and streams them: an `audio` header and its binary
/// frame, the visemes, the words and the blendshape frames, all on the turn's sample clock.
/// A session's speech task and what it shares with the session.
struct SpeechTask {
    shared: Arc<Shared>,
    /// The voices of the server's config when the session started.
    synth: Arc<VoicePool>,
    out: mpsc::Sender<Message>,
    end: CancellationToken,
    cancelled: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
    progress: Arc<std::sync::Mutex<Progress>>,
    asked_at: Arc<std::sync::Mutex<Option<Instant>>>,
    wanted: Arc<std::sync::Mutex<protocol::Want>>,
    /// The session's number: its face's idle life is seeded with it (blinks and glances differ
    /// between sessions, and repeat for a session replayed).
    session: u64,
}

async fn speech_task(task: SpeechTask, mut jobs: mpsc::UnboundedReceiver<SpeechJob>) {
    let SpeechTask { shared, synth, out, end, cancelled, finished, progress, asked_at, wanted, session } = task;
    let live = |turn: u64| cancelled.load(Ordering::Acquire) < turn;
    let mut face = protocol::FaceStream::new(session);
    // The turn asked last and its cancel token; the turn speaking and its place among the
    // answers the voice speaks at once (given back at its end, when it is cut, or at the next).
    let mut current: Option<(u64, CancellationToken)> = None;
    let mut place: Option<(u64, tokio::sync::OwnedSemaphorePermit)> = None;
    loop {
        let job = match (&current, &place) {
            (Some((_, cancel)), Some(_)) => tokio::select! {
                j = jobs.recv() => j,
                () = cancel.cancelled() => {
                    place = None;
                    continue;
                }
            },
            _ => jobs.recv().await,
        };
        let Some(job) = job else { return };
        if end.is_cancelled() {
            return;
        }
        match job {
            SpeechJob::Begin { turn, cancel } => {
                place = None;
                current = Some((turn, cancel));
            }
            SpeechJob::Say { turn, what, text } => {
                if !live(turn) {
                    continue;
                }
                if place.as_ref().is_none_or(|(t, _)| *t != turn) {
                    place = None;
                    let cancel = current.as_ref().filter(|(t, _)| *t == turn).map_or_else(CancellationToken::new, |(_, c)| c.clone());
                    match shared.voice.take(&cancel, &shared.metrics).await {
                        Some(p) => place = Some((turn, p)),
                        None => continue,
                    }
                }
                // When this piece is needed: now for the turn's first (someone is waiting), else
                // when the client's playback of what was sent runs out.
                let due = match progress.lock() {
                    Ok(p) if p.turn == turn => p.runs_out(synth.rate()),
                    _ => None,
                }
                .unwrap_or_else(Instant::now);
                let synth_started = Instant::now();
                let spoken = synth.speak(text, due).await;
                shared.metrics.observe("synthesis", synth_started.elapsed().as_secs_f64() * 1e3);
                let speech = match spoken {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("voice: {e}");
                        continue;
                    }
                };
                // What goes out for a turn, and its end, are sent under the progress lock, so an
                // interrupt (which takes it too) falls between two chunks, never inside one.
                let Ok(mut p) = progress.lock() else { return };
                if !live(turn) || speech.samples.is_empty() {
                    continue;
                }
                if turn != p.turn {
                    *p = Progress { turn, samples: 0, chunks: 0, first_at: Some(Instant::now()) };
                    send(&out, &end, &shared, json(&ServerMsg::State { v: VERSION, state: "speaking", turn: Some(turn) }));
                    if let Some(at) = asked_at.lock().ok().and_then(|mut a| a.take()) {
                        shared.metrics.observe("first_audio", at.elapsed().as_secs_f64() * 1e3);
                    }
                }
                let (n, clock, seq) = (speech.samples.len() as u64, p.samples, p.chunks);
                let want = wanted.lock().map(|w| *w).unwrap_or_default();
                if want.audio {
                    send(
                        &out,
                        &end,
                        &shared,
                        json(&ServerMsg::Audio { v: VERSION, turn, seq, start: clock, samples: n, rate: speech.sample_rate, what: what.code() }),
                    );
                    send(&out, &end, &shared, Message::Binary(protocol::f32_to_pcm16(&speech.samples).into()));
                }
                if want.visemes {
                    send(&out, &end, &shared, json(&ServerMsg::Visemes { v: VERSION, turn, frames: protocol::visemes_of(&speech.phonemes, clock) }));
                }
                if want.words {
                    let words = speech
                        .words
                        .iter()
                        .map(|w| WordSpan { text: w.word.clone(), start: w.start + clock, end: w.end + clock, written: w.written.clone(), joined: w.joined })
                        .collect();
                    send(&out, &end, &shared, json(&ServerMsg::Words { v: VERSION, turn, words }));
                }
                if want.blendshapes {
                    face.express(turn, &speech.written_words(true), speech.sample_rate, clock, what == Said::Fallback);
                    let f = face.frames(turn, &speech.phonemes, speech.sample_rate, clock, n, want.fps);
                    send(
                        &out,
                        &end,
                        &shared,
                        json(&ServerMsg::Blendshapes { v: VERSION, turn, fps: want.fps, first: f.first, frames: f.weights, pose: f.pose }),
                    );
                }
                // Behind real time: sent after the client's playback (from the turn's first chunk)
                // ran out, 20 ms of slack. While the voice is shared (another answer speaking),
                // that is load, and new sessions are refused for a while; alone, it is not (a
                // cold first synthesis), and another session would not be the cause.
                shared.metrics.chunks_total.inc();
                if p.runs_out(speech.sample_rate).is_some_and(|at| Instant::now() > at + Duration::from_millis(20)) {
                    shared.metrics.chunks_late.inc();
                    if shared.voice.speaking() > 1 {
                        shared.voice.strained();
                    }
                }
                p.samples += n;
                p.chunks += 1;
            }
            SpeechJob::Finish { turn, source } => {
                if place.as_ref().is_some_and(|(t, _)| *t == turn) {
                    place = None;
                }
                let Ok(p) = progress.lock() else { return };
                if finished.fetch_max(turn, Ordering::AcqRel) >= turn {
                    continue; // already ended by an interrupt
                }
                let samples = if p.turn == turn { p.samples } else { 0 };
                send(&out, &end, &shared, json(&ServerMsg::EndOfTurn { v: VERSION, turn, source, interrupted: false, samples }));
                send(&out, &end, &shared, json(&ServerMsg::State { v: VERSION, state: "idle", turn: Some(turn) }));
            }
        }
    }
}

/// How far the turn being spoken has got: its number, the samples sent (its clock) and the
/// chunks. The lock around it orders a turn's chunks against its interruption.
#[derive(Debug, Default)]
struct Progress {
    turn: u64,
    samples: u64,
    chunks: u64,
    /// When its first chunk went out: its playback (at the client) is counted from there.
    first_at: Option<Instant>,
}

impl Progress {
    /// When the client's playback of what was sent of the turn runs out (samples at `rate`,
    /// playing from its first chunk); `None` before its first chunk.
    fn runs_out(&self, rate: u32) -> Option<Instant> {
        self.first_at.map(|at| at + Duration::from_secs_f64(self.samples as f64 / f64::from(rate.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole_and_tokens_decode() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"s3cret", b"s3cres"));
        assert!(!same_secret(b"", b"x"));
        let headers = axum::http::HeaderMap::new();
        assert_eq!(given_token(&headers, Some("lang=ar&token=a%20b+c%2B")).as_deref(), Some("a b c+"));
        assert_eq!(given_token(&headers, Some("token=%zz")).as_deref(), Some("%zz"));
        assert_eq!(given_token(&headers, None), None);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", axum::http::HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(given_token(&headers, Some("token=other")).as_deref(), Some("s3cret"));
    }

    #[test]
    fn long_replies_are_cut_into_pieces_at_character_boundaries() {
        assert_eq!(pieces("", 4), [""]);
        assert_eq!(pieces("abcdefgh", 4), ["abcd", "efgh"]);
        let arabic = "مرحبا".repeat(10);
        let cut = pieces(&arabic, 7);
        assert!(cut.iter().all(|p| p.len() <= 7 && !p.is_empty()));
        assert_eq!(cut.concat(), arabic);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let m = Metrics::new().expect("metrics");
        m.observe("first_audio", 120.0);
        m.observe("first_audio", 9_000.0);
        m.refused("auth");
        let text = m.render(&Speaking::new(2));
        assert!(text.contains("hiwar_stage_ms_bucket{stage=\"first_audio\",le=\"200\"} 1"), "{text}");
        assert!(text.contains("hiwar_stage_ms_bucket{stage=\"first_audio\",le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("hiwar_stage_ms_count{stage=\"synthesis\"} 0"), "{text}");
        assert!(text.contains("# TYPE hiwar_sessions gauge"));
        assert!(text.contains("hiwar_refused_total{reason=\"auth\"} 1") && text.contains("hiwar_refused_total{reason=\"full\"} 0"), "{text}");
    }
}
