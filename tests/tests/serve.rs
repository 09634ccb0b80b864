//! `hiwar serve` from the outside, with a real WebSocket client (tungstenite): protocol v1
//! conformance (a text turn streamed as audio, visemes and words on one clock; interrupt),
//! authentication and origin checks before the upgrade, bad input of every kind, limits.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hiwar_tests::{Standin, hiwar, model_cache, wait_for};
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        Server::start_with(&[], env)
    }

    /// With Qwen being `standin` (its settings as the tests' commands get them), and `env`.
    fn with_llm(standin: &Standin, env: &[(&str, &str)]) -> Server {
        let mut cmd = hiwar(&model_cache());
        standin.apply(&mut cmd);
        cmd.envs(env.iter().copied());
        let env: Vec<(String, String)> = cmd.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string()))).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start(&env)
    }

    /// With `global` options before `serve` (`--config FILE`).
    fn start_with(global: &[&str], env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = hiwar(&model_cache());
        cmd.args(global).args(["serve", "--bind", &addr]).envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = cmd.spawn().expect("spawn hiwar serve");
        let server = Server { child, addr };
        let started = Instant::now();
        while server.get("/healthz").0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(60), "hiwar serve did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Waits (10 s at most) for the server to exit after a signal: its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "hiwar serve did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain HTTP GET: (status, body); (0, "") when nothing answers.
    fn get(&self, path: &str) -> (u16, String) {
        hiwar_tests::http_get(&self.addr, path).unwrap_or_default()
    }

    fn connect(&self, token: Option<&str>, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
        let mut req = format!("ws://{}/ws", self.addr).into_client_request().expect("request");
        if let Some(t) = token {
            req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {t}")).expect("header"));
        }
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", HeaderValue::from_str(o).expect("header"));
        }
        let (ws, _) = tungstenite::connect(req)?;
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        }
        Ok(Ws(ws))
    }

    /// A client whose socket takes at most a few KiB before the sender must wait: a client
    /// that stops reading is then found out by what the server buffers, not by how much the
    /// kernel would buffer on loopback (megabytes, auto-tuned).
    fn connect_small_window(&self) -> Ws {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let addr: std::net::SocketAddr = self.addr.parse().expect("address");
        socket.connect(&addr.into()).expect("connect");
        let stream = TcpStream::from(socket);
        let (ws, _) = tungstenite::client(format!("ws://{}/ws", self.addr), MaybeTlsStream::Plain(stream)).expect("upgrade");
        Ws(ws)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ws(WebSocket<MaybeTlsStream<TcpStream>>);

/// What came back: JSON messages, binary frames (as their length), or the close.
#[derive(Debug)]
enum In {
    Json(Value),
    Binary(usize),
    Closed(Option<CloseCode>),
}

impl Ws {
    fn send(&mut self, v: Value) {
        self.0.send(Message::Text(v.to_string().into())).expect("send");
    }

    fn next(&mut self) -> In {
        loop {
            match self.0.read() {
                Ok(Message::Text(t)) => return In::Json(serde_json::from_str(&t).expect("server JSON")),
                Ok(Message::Binary(b)) => return In::Binary(b.len()),
                Ok(Message::Close(f)) => return In::Closed(f.map(|f| f.code)),
                Ok(_) => {}
                Err(_) => return In::Closed(None),
            }
        }
    }

    /// Messages until one of `kind` (inclusive).
    fn until(&mut self, kind: &str) -> Vec<In> {
        let mut got = Vec::new();
        loop {
            let m = self.next();
            let done = matches!(&m, In::Json(v) if v["type"] == kind) || matches!(m, In::Closed(_));
            got.push(m);
            if done {
                return got;
            }
        }
    }

    /// Asks `text` in a typed turn: the answer's `reply` text.
    fn ask(&mut self, text: &str) -> String {
        self.ask_aloud(text).0
    }

    /// Asks `text` in a typed turn: the answer's `reply` text and the bytes of its audio.
    fn ask_aloud(&mut self, text: &str) -> (String, usize) {
        self.send(json!({"type": "text", "v": 1, "text": text}));
        let got = self.until("end_of_turn");
        let reply = got
            .iter()
            .filter_map(|m| match m {
                In::Json(v) if v["type"] == "reply" => v["delta"].as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        (reply, got.iter().map(|m| if let In::Binary(n) = m { *n } else { 0 }).sum())
    }

    fn hello(&mut self) -> Value {
        self.send(json!({"type": "hello", "v": 1, "lang": "auto"}));
        match self.until("ready").pop() {
            Some(In::Json(v)) => v,
            other => panic!("no ready: {other:?}"),
        }
    }
}

const TOKEN: &str = "s3cret-token";

#[test]
fn a_typed_question_streams_audio_visemes_and_words_on_one_clock() {
    let server = Server::start(&[("HIWAR_SERVE_TOKEN", TOKEN)]);
    let mut ws = server.connect(Some(TOKEN), None).expect("connect");
    let ready = ws.hello();
    assert_eq!((ready["v"].as_u64(), ready["audio_format"].as_str()), (Some(1), Some("pcm16le")));
    assert_eq!(ready["streams"], json!(["audio", "visemes", "words"]));
    ws.send(json!({"type": "text", "v": 1, "text": "مَتى يفتح المركز يوم الجمعة؟"}));
    let got = ws.until("end_of_turn");
    let kinds: Vec<String> = got
        .iter()
        .map(|m| match m {
            In::Json(v) => v["type"].as_str().unwrap_or("").to_string() + v["state"].as_str().map(|s| format!(":{s}")).unwrap_or_default().as_str(),
            In::Binary(_) => "binary".into(),
            In::Closed(_) => "closed".into(),
        })
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("no {k} in {kinds:?}"));
    assert!(pos("transcript") < pos("state:thinking") && pos("state:thinking") < pos("state:speaking") && pos("state:speaking") < pos("audio"), "{kinds:?}");
    // Every audio header is followed by its binary frame, chunks back to back on the turn's
    // clock; visemes and words fall inside the audio they belong to.
    let mut clock = 0u64;
    let (mut visemes, mut words) = (0, 0);
    let mut written: Vec<String> = Vec::new();
    for (i, m) in got.iter().enumerate() {
        let In::Json(v) = m else { continue };
        match v["type"].as_str() {
            Some("audio") => {
                assert_eq!(v["start"].as_u64(), Some(clock), "{v}");
                let n = v["samples"].as_u64().expect("samples");
                assert!(matches!(got[i + 1], In::Binary(len) if len as u64 == n * 2), "the header's frame: {:?}", got[i + 1]);
                clock += n;
            }
            Some("visemes") => {
                for f in v["frames"].as_array().expect("frames") {
                    assert!(f["end"].as_u64() <= Some(clock) && f["start"].as_u64() <= f["end"].as_u64(), "{f} beyond {clock}");
                    visemes += 1;
                }
            }
            Some("words") => {
                for w in v["words"].as_array().expect("words") {
                    assert!(w["end"].as_u64() <= Some(clock), "{w} beyond {clock}");
                    words += 1;
                    written.push(w["written"].as_str().unwrap_or_default().to_string());
                }
            }
            _ => {}
        }
    }
    let In::Json(end) = got.last().expect("end") else { panic!() };
    assert_eq!((end["samples"].as_u64(), end["source"].as_str(), end["interrupted"].as_bool()), (Some(clock), Some("knowledge"), Some(false)));
    // The page can show what is said: the knowledge base's answer arrives as `reply` text, in
    // Arabic.
    let reply: String = got
        .iter()
        .filter_map(|m| match m {
            In::Json(v) if v["type"] == "reply" => v["delta"].as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(reply.starts_with("حسب معلومات المركز") && reply.contains("الجمعة"), "reply text: {reply:?}");
    // Each timed word carries the word as the answer wrote it, for the caption.
    let letters = |w: &str| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    assert!(written.iter().all(|w| !letters(w).is_empty() && letters(&reply).contains(&letters(w))), "written words {written:?} not in {reply:?}");
    assert!(clock > 22_050 * 3 && visemes > 20 && words > 5, "{clock} samples, {visemes} visemes, {words} words");
    assert!(kinds.iter().any(|k| k == "visemes") && got.iter().any(|m| matches!(m, In::Json(v) if v["type"] == "words" && v["words"][0]["text"].as_str().is_some_and(|t| t.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))))), "Arabic words");
    // The metrics saw it.
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("hiwar_sessions 1") && metrics.contains("hiwar_turns_total 1"), "{metrics}");
    for stage in ["first_audio", "retrieval", "synthesis"] {
        let count = format!("hiwar_stage_ms_count{{stage=\"{stage}\"}} ");
        assert!(metrics.lines().any(|l| l.starts_with(&count) && !l.ends_with(" 0")), "{stage}: {metrics}");
    }
}

#[test]
fn interrupt_stops_the_answer_mid_stream_and_drops_the_llm_stream() {
    // Qwen (the stand-in) streams an answer that never ends; the client interrupts it.
    let standin = Standin::start(&["endless", "answer"]);
    let server = Server::with_llm(&standin, &[("HIWAR_LLM_MAX_TOKENS", "400")]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.hello();
    ws.send(json!({"type": "text", "v": 1, "text": "When do you open?"}));
    let before = ws.until("audio");
    assert!(before.iter().any(|m| matches!(m, In::Json(v) if v["type"] == "reply")), "reply deltas stream first: {before:?}");
    ws.send(json!({"type": "interrupt", "v": 1}));
    let got = ws.until("end_of_turn");
    let Some(In::Json(end)) = got.last() else { panic!("{got:?}") };
    assert_eq!((end["turn"].as_u64(), end["interrupted"].as_bool()), (Some(1), Some(true)), "{end}");
    wait_for(&standin.lines, Duration::from_secs(3), "the LLM disconnect", |l| l == "{\"disconnect\":1}");
    // Nothing more of that turn; the session goes on.
    ws.send(json!({"type": "text", "v": 1, "text": "Do you accept cash?"}));
    let next = ws.until("end_of_turn");
    for m in &next {
        if let In::Json(v) = m {
            assert_ne!(v["turn"], 1, "turn 1 went on after the interrupt: {v}");
        }
    }
    let Some(In::Json(end)) = next.last() else { panic!() };
    assert_eq!((end["turn"].as_u64(), end["interrupted"].as_bool(), end["source"].as_str()), (Some(2), Some(false), Some("llm")));
}

#[test]
fn a_knowledge_answer_cut_by_an_interrupt_or_a_new_question_ends_interrupted_and_never_idles_the_new_turn() {
    // No LLM: the knowledge base's answer is queued whole at once, and spoken chunk by chunk.
    let server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.hello();
    ws.send(json!({"type": "text", "v": 1, "text": "What documents do I need to renew my passport, and how much does it cost?"}));
    ws.until("audio");
    std::thread::sleep(Duration::from_millis(200));
    ws.send(json!({"type": "interrupt", "v": 1}));
    let got = ws.until("end_of_turn");
    let Some(In::Json(end)) = got.last() else { panic!("{got:?}") };
    assert_eq!((end["turn"].as_u64(), end["interrupted"].as_bool(), end["source"].as_str()), (Some(1), Some(true), Some("interrupted")), "{end}");

    // A new question while an answer plays: the old turn ends interrupted, and nothing of it —
    // no `idle` — arrives after the new turn began thinking.
    ws.send(json!({"type": "text", "v": 1, "text": "What documents do I need to renew my passport, and how much does it cost?"}));
    ws.until("audio");
    std::thread::sleep(Duration::from_millis(200));
    ws.send(json!({"type": "text", "v": 1, "text": "When do you open on Friday?"}));
    let mut seen = Vec::new();
    loop {
        match ws.next() {
            In::Json(v) if v["type"] == "end_of_turn" && v["turn"] == 3 => break,
            In::Closed(c) => panic!("closed {c:?} after {seen:?}"),
            In::Json(v) => seen.push(v),
            In::Binary(_) => {}
        }
    }
    let thinking = seen.iter().position(|v| v["type"] == "state" && v["state"] == "thinking" && v["turn"] == 3).expect("turn 3 thinks");
    for v in &seen[thinking..] {
        assert_ne!(v["turn"], 2, "turn 2 spoke up after turn 3 began: {v}");
    }
    let end2 = seen.iter().find(|v| v["type"] == "end_of_turn" && v["turn"] == 2).expect("turn 2 ended");
    assert_eq!(end2["interrupted"], true, "{end2}");
}

#[test]
fn no_token_wrong_token_and_wrong_origin_are_refused_before_the_upgrade() {
    let server = Server::start(&[("HIWAR_SERVE_TOKEN", TOKEN), ("HIWAR_SERVE_ALLOWED_ORIGINS", "https://kiosk.example")]);
    let status = |r: Result<Ws, tungstenite::Error>| match r {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(status(server.connect(None, None)), 401);
    assert_eq!(status(server.connect(Some("s3cret-tokem"), None)), 401);
    assert_eq!(status(server.connect(Some(TOKEN), Some("https://evil.example"))), 403);
    assert_eq!(status(server.connect(Some(TOKEN), Some("https://kiosk.example"))), 101);
    // Browsers cannot set headers: ?token= works too.
    let req = format!("ws://{}/ws?token={TOKEN}", server.addr);
    assert!(tungstenite::connect(req).is_ok());
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("hiwar_refused_total{reason=\"auth\"} 2") && metrics.contains("hiwar_refused_total{reason=\"origin\"} 1"), "{metrics}");
    // A server other machines can reach refuses to start without a token.
    let out = hiwar(&model_cache()).args(["serve", "--bind", "0.0.0.0:0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serve.token"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_messages_get_named_errors_and_the_session_survives_them() {
    let server = Server::start(&[("HIWAR_SERVE_MAX_MESSAGE_BYTES", "4096")]);
    let mut ws = server.connect(None, None).expect("connect");
    let error = |ws: &mut Ws| loop {
        match ws.next() {
            In::Json(v) if v["type"] == "error" => return v,
            In::Json(_) | In::Binary(_) => {}
            In::Closed(c) => panic!("closed {c:?}"),
        }
    };
    ws.send(json!({"type": "text", "v": 1, "text": "hi"}));
    assert_eq!(error(&mut ws)["code"], "hello_first");
    ws.hello();
    for (frame, code) in [
        ("{oops".to_string(), "bad_json"),
        (json!({"type": "text", "v": 2, "text": "x"}).to_string(), "bad_version"),
        (json!({"type": "dance", "v": 1}).to_string(), "unknown_type"),
        (json!({"type": "text", "v": 1}).to_string(), "bad_message"),
    ] {
        ws.0.send(Message::Text(frame.into())).expect("send");
        let e = error(&mut ws);
        assert_eq!(e["code"], code);
        assert!(e["message_ar"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    ws.0.send(Message::Binary(vec![1u8, 2, 3].into())).expect("send");
    assert_eq!(error(&mut ws)["code"], "bad_audio");
    // Still answering.
    ws.send(json!({"type": "text", "v": 1, "text": "Do you accept cash?"}));
    assert!(matches!(ws.until("end_of_turn").last(), Some(In::Json(v)) if v["source"] == "knowledge"));
    // Over the size limit: closed with 1009.
    ws.0.send(Message::Text("x".repeat(10_000).into())).expect("send");
    assert!(matches!(ws.until("__none__").last(), Some(In::Closed(Some(CloseCode::Size)))), "oversize frame");
}

#[test]
fn limits_close_clearly_and_slow_handshakes_are_dropped() {
    let server = Server::start(&[("HIWAR_SERVE_MAX_SESSIONS", "2"), ("HIWAR_SERVE_HANDSHAKE_TIMEOUT_MS", "500"), ("HIWAR_SERVE_IDLE_TIMEOUT_SECS", "2")]);
    let mut a = server.connect(None, None).expect("first");
    let _b = server.connect(None, None).expect("second");
    let mut c = server.connect(None, None).expect("third gets the upgrade");
    assert!(matches!(c.next(), In::Closed(Some(CloseCode::Again))), "1013 try again later");
    a.hello();
    // Slowloris: half a request head, then nothing — dropped after the handshake timeout.
    let mut slow = TcpStream::connect(&server.addr).expect("tcp");
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(slow.read(&mut buf).unwrap_or(0), 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // An idle session is closed after the idle timeout; the page and health stay up.
    assert!(matches!(a.until("__none__").last(), Some(In::Closed(Some(CloseCode::Normal)))));
    let (status, page) = server.get("/");
    assert!(status == 200 && page.contains("hiwar.js"), "{status}");
    assert_eq!(server.get("/hiwar.js").0, 200);
    assert_eq!(server.get("/../Cargo.toml").0, 404);
    assert_eq!(server.get("/ws").0, 426);
}

/// The close a refused client gets: its code and reason.
fn refusal(ws: &mut Ws) -> (Option<CloseCode>, String) {
    loop {
        match ws.0.read() {
            Ok(Message::Close(f)) => return (f.as_ref().map(|f| f.code), f.map(|f| f.reason.to_string()).unwrap_or_default()),
            Ok(_) => {}
            Err(e) => return (None, e.to_string()),
        }
    }
}

#[test]
fn answers_past_the_voices_capacity_wait_their_turn_and_new_sessions_are_refused_as_busy_meanwhile() {
    // One answer speaks at a time. Qwen (the stand-in) answers the first question without end.
    let standin = Standin::start(&["endless", "answer"]);
    let server = Server::with_llm(&standin, &[("HIWAR_LLM_MAX_TOKENS", "400"), ("HIWAR_SERVE_TURNS_PER_VOICE_THREAD", "1")]);
    let mut a = server.connect(None, None).expect("a");
    a.hello();
    a.send(json!({"type": "text", "v": 1, "text": "When do you open?"}));
    a.until("audio");
    // The second answer waits for the voice: its text streams, its audio does not.
    let mut b = server.connect(None, None).expect("b");
    b.hello();
    b.send(json!({"type": "text", "v": 1, "text": "Do you accept cash?"}));
    let started = Instant::now();
    while metric(&server, "hiwar_turns_waiting ") != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the second answer never waited: {}", server.get("/metrics").1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&server, "hiwar_turns_speaking "), 1.0);
    // Meanwhile a new client is told the server is busy, with a reason, before any session.
    let mut c = server.connect(None, None).expect("c gets the upgrade");
    let (code, reason) = refusal(&mut c);
    assert_eq!(code, Some(CloseCode::Again), "1013 try again later: {reason}");
    assert!(reason.contains("busy"), "{reason}");
    assert_eq!(metric(&server, "hiwar_refused_total{reason=\"busy\"} "), 1.0);
    assert_eq!(metric(&server, "hiwar_sessions "), 2.0, "the refused client holds no place");
    // A load balancer's readiness check says the same; liveness stays up.
    let (status, why) = server.get("/readyz");
    assert!(status == 503 && why.contains("busy"), "{status} {why}");
    assert_eq!(server.get("/healthz").0, 200);
    // The first answer is cut: the second speaks at once, whole and on its clock.
    a.send(json!({"type": "interrupt", "v": 1}));
    let got = b.until("end_of_turn");
    let audio = got.iter().filter(|m| matches!(m, In::Json(v) if v["type"] == "audio")).count();
    let Some(In::Json(end)) = got.last() else { panic!("{got:?}") };
    assert!(audio >= 1 && end["interrupted"] == false && end["source"] == "llm", "{end} after {audio} chunks");
    assert_eq!(metric(&server, "hiwar_turns_waiting "), 0.0);
    assert!(metric(&server, "hiwar_stage_ms_count{stage=\"voice_wait\"} ") >= 1.0);
    // Once the load has eased (3 s without a wait), new sessions are admitted again.
    std::thread::sleep(Duration::from_millis(3_200));
    assert_eq!(server.get("/readyz"), (200, "ready\n".to_string()));
    let mut d = server.connect(None, None).expect("d");
    assert_eq!(d.hello()["type"], "ready");
}

#[test]
fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.hello();
    let frame = tungstenite::protocol::frame::Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        tungstenite::protocol::frame::coding::OpCode::Data(tungstenite::protocol::frame::coding::Data::Text),
        true,
    );
    ws.0.send(Message::Frame(frame)).expect("send a raw frame");
    assert!(matches!(ws.until("__none__").last(), Some(In::Closed(Some(CloseCode::Invalid)))), "1007, inconsistent data");
    assert_eq!(server.get("/healthz").0, 200);
}

/// A metric's value from /metrics.
fn metric(server: &Server, line_start: &str) -> f64 {
    let (_, m) = server.get("/metrics");
    m.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
}

#[test]
fn a_client_that_never_reads_is_dropped_and_others_are_unaffected() {
    let server = Server::start(&[("HIWAR_SERVE_SEND_QUEUE", "32")]);
    let mut slow = server.connect_small_window();
    slow.hello();
    // Questions every 300 ms, answers never read: the socket's buffers fill, then the server's
    // write buffer (4 MiB), then the queue: ~25 s beside a busy core (with the kernel's own
    // loopback buffers it took 17 s alone and over 60 s beside a build: 198 questions).
    // How fast they fill is how fast the voice synthesises, so the bound is generous.
    let started = Instant::now();
    let mut sent = 0;
    while metric(&server, "hiwar_refused_total{reason=\"slow_client\"}") < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(120), "the slow client was never dropped ({sent} questions)");
        if slow.0.send(Message::Text(json!({"type": "text", "v": 1, "text": "Where is the nearest office and where can I park?"}).to_string().into())).is_err()
        {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    // Another client is served as usual.
    let mut other = server.connect(None, None).expect("other client");
    other.hello();
    other.send(json!({"type": "text", "v": 1, "text": "Do you accept cash?"}));
    assert!(matches!(other.until("end_of_turn").last(), Some(In::Json(v)) if v["source"] == "knowledge"));
    drop(slow);
}

#[test]
fn a_thousand_idle_sessions_and_abrupt_disconnects_leave_the_server_serving() {
    // Room for the sockets on both sides (the systemd unit sets LimitNOFILE likewise).
    let _ = Command::new("prlimit").args(["--pid", &std::process::id().to_string(), "--nofile=8192:"]).status();
    let server = Server::start(&[("HIWAR_SERVE_MAX_SESSIONS", "1100"), ("HIWAR_SERVE_IDLE_TIMEOUT_SECS", "120")]);
    let before = hiwar_tests::rss_mib(server.child.id()).expect("server RSS");
    let mut idle = Vec::new();
    for i in 0..1000 {
        idle.push(server.connect(None, None).unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    let started = Instant::now();
    while metric(&server, "hiwar_sessions ") < 1000.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "sessions: {}", metric(&server, "hiwar_sessions "));
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = hiwar_tests::rss_mib(server.child.id()).expect("server RSS");
    assert!(held - before < 200.0, "1000 idle sessions took {:.0} MiB", held - before);
    // Abrupt disconnects mid-turn: the TCP connection just goes.
    for _ in 0..5 {
        let mut c = server.connect(None, None).expect("connect");
        c.hello();
        c.send(json!({"type": "text", "v": 1, "text": "Where is the nearest office and where can I park?"}));
        c.until("audio");
        if let MaybeTlsStream::Plain(s) = c.0.get_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
    // Still serving, with all of those open.
    let mut live = server.connect(None, None).expect("live");
    live.hello();
    live.send(json!({"type": "text", "v": 1, "text": "متى يفتح المركز؟"}));
    assert!(matches!(live.until("end_of_turn").last(), Some(In::Json(v)) if v["interrupted"] == false));
    drop(idle);
    let started = Instant::now();
    while metric(&server, "hiwar_sessions ") > 1.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "sessions not released: {}", metric(&server, "hiwar_sessions "));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn microphone_audio_over_the_socket_is_heard_and_answered() {
    let server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.hello();
    let (rate, samples) = hiwar_tests::read_wav(&hiwar_tests::clip("en-office.wav").0);
    ws.send(json!({"type": "audio_start", "v": 1, "rate": rate}));
    // 100 ms frames of PCM16LE, then a second of silence so the end of speech is heard.
    let pcm: Vec<u8> = samples.iter().chain(std::iter::repeat_n(&0.0, rate as usize)).flat_map(|s| ((s * 32767.0) as i16).to_le_bytes()).collect();
    for frame in pcm.chunks(rate as usize / 10 * 2) {
        ws.0.send(Message::Binary(frame.to_vec().into())).expect("audio frame");
    }
    ws.send(json!({"type": "audio_end", "v": 1}));
    let got = ws.until("end_of_turn");
    let finals: Vec<&Value> =
        got.iter().filter_map(|m| if let In::Json(v) = m { Some(v) } else { None }).filter(|v| v["type"] == "transcript" && v["final"] == true).collect();
    assert!(finals.first().is_some_and(|f| f["text"].as_str().unwrap_or("").to_lowercase().contains("office") && f["lang"] == "en"), "{finals:?}\n{got:?}");
    let Some(In::Json(end)) = got.last() else { panic!() };
    assert_eq!(end["source"], "knowledge", "{end}");
    assert!(got.iter().any(|m| matches!(m, In::Binary(_))), "the answer was spoken");
}

#[test]
fn tls_serves_the_page_and_the_websocket_upgrade() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = hiwar(&model_cache())
        .args(["serve", "--bind", &addr])
        .env("HIWAR_SERVE_TLS_CERT", &cert)
        .env("HIWAR_SERVE_TLS_KEY", &key)
        .stdout(Stdio::null())
        .spawn()
        .expect("hiwar serve");
    let curl = |path: &str| {
        let out = Command::new("curl").args(["-sk", "--max-time", "5"]).arg(format!("https://{addr}{path}")).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let started = Instant::now();
    while curl("/healthz").trim() != "ok" {
        assert!(started.elapsed() < Duration::from_secs(60), "https never came up");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(curl("/").contains("hiwar.js"));
    // The WebSocket upgrade over TLS (wss).
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = s_client.stdin.take().expect("stdin");
    write!(stdin, "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").expect("write");
    let mut stdout = s_client.stdout.take().expect("stdout");
    let mut answer = [0u8; 64];
    let n = stdout.read(&mut answer).unwrap_or(0);
    let _ = s_client.kill();
    let _ = s_client.wait();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&answer[..n]));
    // Plain HTTP to the TLS port gets nothing.
    let plain = TcpStream::connect(&addr).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(7)))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(out)
    });
    assert!(plain.map_or(true, |o| !String::from_utf8_lossy(&o).contains("ok")));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn ctrl_c_closes_sessions_with_going_away_and_exits_cleanly() {
    let mut server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.hello();
    ws.send(json!({"type": "text", "v": 1, "text": "Where is the nearest office and where can I park?"}));
    ws.until("audio");
    let status = Command::new("kill").args(["-INT", &server.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(matches!(ws.until("__none__").last(), Some(In::Closed(Some(CloseCode::Away)))), "1001 going away");
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn a_client_gets_only_the_streams_it_asks_for() {
    let server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.send(json!({"type": "hello", "v": 1, "lang": "en", "rig": "arkit", "want": {"audio": false, "visemes": true, "words": false}}));
    let Some(In::Json(ready)) = ws.until("ready").pop() else { panic!() };
    assert_eq!(ready["streams"], json!(["visemes"]));
    assert!(ready.get("blendshapes").is_none(), "{ready}");
    ws.send(json!({"type": "text", "v": 1, "text": "Do you accept cash?"}));
    let got = ws.until("end_of_turn");
    assert!(got.iter().any(|m| matches!(m, In::Json(v) if v["type"] == "visemes")));
    assert!(
        !got.iter()
            .any(|m| matches!(m, In::Binary(_)) || matches!(m, In::Json(v) if ["audio", "words", "blendshapes"].contains(&v["type"].as_str().unwrap_or("")))),
        "{got:?}"
    );
}

/// An integrator with an ARKit rig asks for blendshape frames at 60 a second: every frame of the
/// turn's audio comes, on one grid across the chunks, 52 weights in ARKit's order, and the mouth
/// moves.
#[test]
fn blendshape_frames_cover_the_answer_on_its_clock() {
    let server = Server::start(&[]);
    let mut ws = server.connect(None, None).expect("connect");
    ws.send(json!({"type": "hello", "v": 1, "lang": "en", "rig": "arkit", "want": {"audio": false, "visemes": false, "words": false, "blendshapes": true, "fps": 60}}));
    let Some(In::Json(ready)) = ws.until("ready").pop() else { panic!() };
    assert_eq!(ready["streams"], json!(["blendshapes"]));
    let names: Vec<&str> = ready["blendshapes"]["names"].as_array().expect("names").iter().filter_map(Value::as_str).collect();
    assert_eq!((names.len(), ready["blendshapes"]["fps"].as_u64()), (52, Some(60)), "{ready}");
    let jaw = names.iter().position(|n| *n == "jawOpen").expect("jawOpen");
    ws.send(json!({"type": "text", "v": 1, "text": "مَتى يفتح المركز يوم الجمعة؟"}));
    let got = ws.until("end_of_turn");
    let Some(In::Json(end)) = got.last() else { panic!("{got:?}") };
    let (samples, rate) = (end["samples"].as_u64().expect("samples"), ready["audio_rate"].as_u64().expect("rate"));
    let (mut next, mut open) = (0u64, 0.0f64);
    for m in &got {
        let In::Json(v) = m else { panic!("only JSON was asked for: {m:?}") };
        if v["type"] != "blendshapes" {
            continue;
        }
        assert_eq!((v["first"].as_u64(), v["fps"].as_u64()), (Some(next), Some(60)), "frames continue where the last chunk's ended");
        let (frames, pose) = (v["frames"].as_array().expect("frames"), v["pose"].as_array().expect("pose"));
        assert_eq!(frames.len(), pose.len(), "a pose for every frame");
        for (f, p) in frames.iter().zip(pose) {
            let w: Vec<f64> = f.as_array().expect("frame").iter().filter_map(Value::as_f64).collect();
            assert!(w.len() == 52 && w.iter().all(|x| (0.0..=1.0).contains(x)), "{f}");
            let p: Vec<f64> = p.as_array().expect("pose").iter().filter_map(Value::as_f64).collect();
            assert!(p.len() == 6 && p[..5].iter().all(|r| r.abs() < 0.35) && (0.0..=1.0).contains(&p[5]), "{p:?}");
            open = open.max(w[jaw]);
            next += 1;
        }
    }
    assert_eq!(next, (samples * 60).div_ceil(rate), "{samples} samples at {rate} Hz");
    assert!(open > 0.3, "the jaw never opened (max {open})");
}

/// `hiwar serve` as a systemd service (packaging/deb/hiwar-serve.service): READY=1 naming itself
/// once it listens, heartbeats, SIGHUP reloads the config — knowledge and voices — for sessions
/// that start after it (a broken one, or one whose voice does not load, is refused and the
/// running one stays), SIGTERM says STOPPING=1 and exits cleanly.
#[test]
fn as_a_service_it_tells_systemd_reloads_on_sighup_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let notify_path = tmp.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let heard = |until: &dyn Fn(&[String]) -> bool, what: &str| -> Vec<String> {
        let (mut got, started, mut buf) = (Vec::new(), Instant::now(), [0u8; 512]);
        while !until(&got) {
            assert!(started.elapsed() < Duration::from_secs(30), "{what}: {got:?}");
            if let Ok(n) = notify.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        got
    };
    let kb = tmp.path().join("kb");
    std::fs::create_dir_all(&kb).expect("kb");
    std::fs::write(kb.join("passports.md"), "## Passport renewal {#passport}\nRenewing a passport costs 999 dirhams; book an appointment at any office.\n")
        .expect("kb");
    let config = tmp.path().join("hiwar.toml");
    std::fs::write(&config, "[dialogue]\n").expect("config");
    let config_arg = config.to_str().expect("utf-8");
    let socket = notify_path.to_str().expect("utf-8");
    let mut server = Server::start_with(&["--config", config_arg], &[("NOTIFY_SOCKET", socket), ("WATCHDOG_USEC", "1000000")]);
    let pid = server.child.id().to_string();

    let got = heard(&|m| m.iter().filter(|m| m.trim() == "WATCHDOG=1").count() >= 2, "READY=1, then heartbeats every half second");
    let ready = got.iter().find(|m| m.starts_with("READY=1")).unwrap_or_else(|| panic!("no READY=1: {got:?}"));
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready}");

    const FEE: &str = "How much does it cost to renew a passport?";
    let mut before = server.connect(None, None).expect("connect");
    before.hello();
    assert!(!before.ask(FEE).contains("999"), "the operator's document is not loaded yet");

    // The operator points the knowledge base at their documents and reloads.
    std::fs::write(&config, format!("[knowledge]\ndir = {:?}\n", kb.to_str().expect("utf-8"))).expect("config");
    let kill = |signal: &str| assert!(Command::new("kill").args([signal, &pid]).status().expect("kill").success());
    kill("-HUP");
    let got = heard(&|m| m.iter().any(|m| m.starts_with("READY=1")), "RELOADING=1, then READY=1");
    assert!(got.iter().any(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC=")), "{got:?}");
    let mut after = server.connect(None, None).expect("connect");
    after.hello();
    assert!(after.ask(FEE).contains("999"), "a session after the reload uses the new knowledge base");

    // The operator changes how the voice says Arabic and reloads: sessions that start after it
    // speak with the new voices; one opened before keeps its own to the end.
    const FRIDAY: &str = "متى يفتح المركز يوم الجمعة؟";
    let (said, plain) = after.ask_aloud(FRIDAY);
    let mut kept = server.connect(None, None).expect("connect");
    kept.hello();
    let kb_line = format!("[knowledge]\ndir = {:?}\n", kb.to_str().expect("utf-8"));
    std::fs::write(&config, format!("{kb_line}[voice]\nenglish_accent = \"none\"\n")).expect("config");
    kill("-HUP");
    heard(&|m| m.iter().any(|m| m.starts_with("READY=1")), "READY=1 after the voice's reload");
    let mut reloaded = server.connect(None, None).expect("connect");
    reloaded.hello();
    let (said_again, changed) = reloaded.ask_aloud(FRIDAY);
    assert!(said_again == said && plain > 0 && changed > 0 && changed != plain, "the same answer in the new voice: {plain} then {changed} bytes ({said:?})");
    assert_eq!(kept.ask_aloud(FRIDAY), (said.clone(), plain), "a session opened before the reload keeps its voice");
    // A voice that does not load refuses the whole reload.
    std::fs::write(&config, format!("{kb_line}[voice]\nenglish_voice = \"/nonexistent/voice.onnx\"\n")).expect("config");
    kill("-HUP");
    heard(&|m| m.iter().any(|m| m.starts_with("READY=1")), "READY=1 after the refused voice");
    let mut still = server.connect(None, None).expect("connect");
    still.hello();
    assert_eq!(still.ask_aloud(FRIDAY), (said, changed), "the running voices stay");

    // A broken config is refused; the running one stays.
    std::fs::write(&config, "[knowledge\ndir = 3\n").expect("config");
    kill("-HUP");
    heard(&|m| m.iter().any(|m| m.starts_with("READY=1")), "READY=1 after the refused reload");
    let mut third = server.connect(None, None).expect("connect");
    third.hello();
    assert!(third.ask(FEE).contains("999"));

    kill("-TERM");
    heard(&|m| m.iter().any(|m| m.trim() == "STOPPING=1"), "STOPPING=1");
    assert!(matches!(third.until("__none__").last(), Some(In::Closed(Some(CloseCode::Away)))), "1001 going away");
    assert_eq!(server.exit_code(), Some(0));
}
