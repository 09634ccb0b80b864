//! A local stand-in for the remote LLM that speaks its exact wire format: HTTP/1.1 with chunked
//! transfer encoding, `text/event-stream` lines `data: {chat.completion.chunk}` (a role delta,
//! content deltas, a chunk with `finish_reason`, a usage chunk, `data: [DONE]`), and Model
//! Studio's error bodies. It can misbehave on purpose: an HTTP error, a stall before the first
//! byte, a cut mid-sentence, a line that is not JSON, a stream that never ends. It records what
//! it was asked and whether the client hung up. `hiwar bench loop` runs it in-process; tests
//! run it as `hiwar llm-standin` (hidden), which prints its address and then one JSON line per
//! request and per disconnect.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the stand-in does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Streams `text` word by word: the first word after `ttft`, then one every `gap`.
    Answer { text: Option<String>, ttft: Duration, gap: Duration },
    /// An HTTP error with Model Studio's body for that status.
    Status(u16),
    /// Sends the first `n` words, then closes the connection mid-stream.
    Cut(usize),
    /// Sends one word, then a `data:` line that is not JSON.
    Malformed,
    /// Accepts the request and sends nothing for this long, then answers.
    Stall(Duration),
    /// Streams words forever.
    Endless,
    /// A role chunk, a finish chunk and `[DONE]`: an answer with no words.
    Empty,
    /// Reasoning first: a vLLM-style `reasoning_content` stream, then the answer.
    Reasoning,
    /// Reasoning inside the content, as a server without a reasoning parser sends Qwen3's:
    /// `<think>…</think>` split across pieces, then the answer.
    ThinkTags,
    /// One piece of this many bytes of text (a broken server).
    Huge(usize),
}

impl Behaviour {
    /// `answer`, `answer:TTFT_MS`, `say:TEXT`, `401`, `429`, `500`, `cut`, `malformed`, `stall:MS`, `endless`,
    /// `empty`, `reasoning`, `think`, `huge:BYTES`.
    pub fn parse(spec: &str) -> anyhow::Result<Behaviour> {
        let (name, arg) = spec.split_once(':').unwrap_or((spec, ""));
        let ms = |default: u64| -> anyhow::Result<Duration> {
            Ok(Duration::from_millis(if arg.is_empty() { default } else { arg.parse().map_err(|_| anyhow::anyhow!("{spec}: {arg} is not milliseconds"))? }))
        };
        Ok(match name {
            "answer" => Behaviour::Answer { text: None, ttft: ms(0)?, gap: Duration::from_millis(15) },
            "say" => Behaviour::Answer { text: Some(arg.to_string()), ttft: Duration::ZERO, gap: Duration::from_millis(15) },
            "cut" => Behaviour::Cut(if arg.is_empty() { 4 } else { arg.parse()? }),
            "malformed" => Behaviour::Malformed,
            "stall" => Behaviour::Stall(ms(10_000)?),
            "endless" => Behaviour::Endless,
            "empty" => Behaviour::Empty,
            "reasoning" => Behaviour::Reasoning,
            "think" => Behaviour::ThinkTags,
            "huge" => Behaviour::Huge(if arg.is_empty() { 5 << 20 } else { arg.parse()? }),
            code => Behaviour::Status(
                code.parse()
                    .map_err(|_| anyhow::anyhow!("unknown behaviour {spec:?}: answer[:ms], say:TEXT, 401, 429, 500, cut[:words], malformed, stall[:ms], endless, empty, reasoning, think, huge[:bytes]"))?,
            ),
        })
    }
}

/// What the stand-in saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Request number `n` (from 1): its JSON body.
    Request { n: usize, body: serde_json::Value },
    /// The client hung up on request `n` before the response was finished.
    Disconnect { n: usize },
    /// Request `n` was answered in full.
    Finished { n: usize },
}

#[derive(Debug, Clone)]
pub struct Standin {
    pub base_url: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Behaviour per request in turn; the last repeats.
    script: Arc<Mutex<(Vec<Behaviour>, usize)>>,
}

impl Standin {
    /// Listens on 127.0.0.1 (a free port) and serves requests on the current tokio runtime.
    pub async fn start(script: Vec<Behaviour>) -> anyhow::Result<Standin> {
        Standin::start_on("127.0.0.1:0", script).await
    }

    /// As [`Standin::start`], on `addr` (a server that comes back where it was).
    pub async fn start_on(addr: &str, script: Vec<Behaviour>) -> anyhow::Result<Standin> {
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let s = Standin {
            base_url: format!("http://{addr}/v1"),
            addr,
            seen: Arc::default(),
            script: Arc::new(Mutex::new((if script.is_empty() { vec![Behaviour::parse("answer")?] } else { script }, 0))),
        };
        let server = s.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        Ok(s)
    }

    /// Replaces the script (requests from now on).
    #[cfg(test)]
    pub fn set_script(&self, script: Vec<Behaviour>) {
        if let Ok(mut s) = self.script.lock() {
            *s = (script, 0);
        }
    }

    fn record(&self, seen: Seen) {
        if let Ok(mut s) = self.seen.lock() {
            s.push(seen);
        }
    }

    fn next_behaviour(&self) -> (usize, Behaviour) {
        let mut s = self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = s.1.min(s.0.len() - 1);
        s.1 += 1;
        let n = self.seen.lock().map_or(0, |v| v.iter().filter(|x| matches!(x, Seen::Request { .. })).count()) + 1;
        (n, s.0[i].clone())
    }

    async fn serve(&self, mut stream: TcpStream) {
        // Keep-alive: requests on one connection until it closes.
        loop {
            let Some((path, body)) = read_request(&mut stream).await else { return };
            if path.ends_with("/models") {
                let _ = write_json(&mut stream, 200, r#"{"object":"list","data":[{"id":"qwen-plus","object":"model"}]}"#).await;
                continue;
            }
            let (n, behaviour) = self.next_behaviour();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let question = json
                .pointer("/messages")
                .and_then(|m| m.as_array())
                .and_then(|m| m.last())
                .and_then(|m| m.get("content"))
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string();
            self.record(Seen::Request { n, body: json });
            match self.respond(&mut stream, &behaviour, &question).await {
                Ok(true) => self.record(Seen::Finished { n }),
                Ok(false) => return, // closed on purpose
                Err(_) => {
                    self.record(Seen::Disconnect { n });
                    return;
                }
            }
        }
    }

    /// Ok(true): answered and the connection stays open; Ok(false): closed on purpose;
    /// Err: the client went away.
    async fn respond(&self, stream: &mut TcpStream, behaviour: &Behaviour, question: &str) -> std::io::Result<bool> {
        let words = |text: &Option<String>| -> Vec<String> {
            let text = text.clone().unwrap_or_else(|| default_answer(question).to_string());
            text.split_inclusive(' ').map(str::to_string).collect()
        };
        match behaviour {
            Behaviour::Status(code) => {
                write_json(stream, *code, &error_body(*code)).await?;
                Ok(true)
            }
            Behaviour::Stall(wait) => {
                // Nothing at all, not even headers; a client that hangs up is noticed.
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(*wait, stream.read(&mut probe)).await {
                    return Err(std::io::ErrorKind::ConnectionAborted.into());
                }
                self.stream_words(stream, &words(&None), Duration::ZERO, Duration::from_millis(15)).await?;
                Ok(true)
            }
            Behaviour::Answer { text, ttft, gap } => {
                self.stream_words(stream, &words(text), *ttft, *gap).await?;
                Ok(true)
            }
            Behaviour::Cut(n) => {
                start_sse(stream).await?;
                chunk(stream, &sse(&role_chunk())).await?;
                for w in words(&None).iter().take(*n) {
                    chunk(stream, &sse(&content_chunk(w))).await?;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                stream.shutdown().await?;
                Ok(false)
            }
            Behaviour::Malformed => {
                start_sse(stream).await?;
                chunk(stream, &sse(&role_chunk())).await?;
                chunk(stream, &sse(&content_chunk(&words(&None)[0]))).await?;
                chunk(stream, "data: {\"choices\": [{\"delta\": {\"content\": \"\n\n").await?;
                chunk(stream, &sse(&finish_chunk())).await?;
                chunk(stream, "data: [DONE]\n\n").await?;
                chunk(stream, "").await?;
                Ok(true)
            }
            Behaviour::Empty => {
                complete_stream(stream, Vec::new()).await?;
                Ok(true)
            }
            Behaviour::Reasoning => {
                let reasoning = ["The visitor ", "asks about ", "the centre; ", "answer briefly."];
                let mut pieces: Vec<String> =
                    reasoning.iter().map(|w| base_chunk(serde_json::json!({"content": null, "reasoning_content": w}), None)).collect();
                pieces.extend(words(&None).iter().map(|w| content_chunk(w)));
                complete_stream(stream, pieces).await?;
                Ok(true)
            }
            Behaviour::ThinkTags => {
                let thinking = ["<thi", "nk>\nThe visitor asks", " about the centre.\n</th", "ink>\n\n"];
                let pieces = thinking.iter().map(|w| content_chunk(w)).chain(words(&None).iter().map(|w| content_chunk(w))).collect();
                complete_stream(stream, pieces).await?;
                Ok(true)
            }
            Behaviour::Huge(bytes) => {
                complete_stream(stream, vec![content_chunk(&"a ".repeat(bytes / 2))]).await?;
                Ok(true)
            }
            Behaviour::Endless => {
                start_sse(stream).await?;
                chunk(stream, &sse(&role_chunk())).await?;
                let ws = words(&None);
                for i in 0.. {
                    chunk(stream, &sse(&content_chunk(&ws[i % ws.len()]))).await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(true)
            }
        }
    }

    async fn stream_words(&self, stream: &mut TcpStream, words: &[String], ttft: Duration, gap: Duration) -> std::io::Result<()> {
        let started = Instant::now();
        start_sse(stream).await?;
        chunk(stream, &sse(&role_chunk())).await?;
        tokio::time::sleep(ttft.saturating_sub(started.elapsed())).await;
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            chunk(stream, &sse(&content_chunk(w))).await?;
        }
        chunk(stream, &sse(&finish_chunk())).await?;
        let usage = serde_json::json!({"choices": [], "object": "chat.completion.chunk", "usage": {"prompt_tokens": 300, "completion_tokens": words.len(), "total_tokens": 300 + words.len()}, "created": 1_764_000_000, "system_fingerprint": null, "model": "qwen-plus", "id": "chatcmpl-standin"});
        chunk(stream, &sse(&usage.to_string())).await?;
        chunk(stream, "data: [DONE]\n\n").await?;
        chunk(stream, "").await
    }
}

/// The answer when the script gives none: in the question's language.
pub fn default_answer(question: &str) -> &'static str {
    if hiwar_dialogue::mind::knowledge::lang_of(question) == hiwar_core::bus::Lang::En {
        "Hello. The centre is open Monday to Thursday from half past seven in the morning. Is there anything else?"
    } else {
        "أهلاً وسهلاً. المركز مفتوح من الاثنين إلى الخميس من السابعة والنصف صباحاً. هل من خدمة أخرى؟"
    }
}

fn error_body(code: u16) -> String {
    let (kind, c, message) = match code {
        401 => ("invalid_request_error", "invalid_api_key", "Incorrect API key provided. "),
        429 => ("limit_requests", "limit_requests", "Requests rate limit exceeded, please try again later."),
        400 => ("invalid_request_error", "invalid_parameter_error", "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 129024]"),
        _ => ("internal_error", "internal_error", "An internal error has occured, please try again later or contact service support."),
    };
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": c}, "request_id": "standin-request"}).to_string()
}

fn base_chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    serde_json::json!({
        "choices": [{"delta": delta, "finish_reason": finish, "index": 0, "logprobs": null}],
        "object": "chat.completion.chunk", "usage": null, "created": 1_764_000_000,
        "system_fingerprint": null, "model": "qwen-plus", "id": "chatcmpl-standin"
    })
    .to_string()
}

fn role_chunk() -> String {
    base_chunk(serde_json::json!({"content": "", "role": "assistant"}), None)
}

fn content_chunk(text: &str) -> String {
    base_chunk(serde_json::json!({"content": text}), None)
}

fn finish_chunk() -> String {
    base_chunk(serde_json::json!({"content": ""}), Some("stop"))
}

fn sse(data: &str) -> String {
    format!("data: {data}\n\n")
}

/// A whole stream: the role chunk, `pieces` (each a `chat.completion.chunk`), the finish
/// chunk, `[DONE]`, the end of the body.
async fn complete_stream(stream: &mut TcpStream, pieces: Vec<String>) -> std::io::Result<()> {
    start_sse(stream).await?;
    chunk(stream, &sse(&role_chunk())).await?;
    for piece in pieces {
        chunk(stream, &sse(&piece)).await?;
    }
    chunk(stream, &sse(&finish_chunk())).await?;
    chunk(stream, "data: [DONE]\n\n").await?;
    chunk(stream, "").await
}

async fn start_sse(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n").await
}

/// One HTTP chunk (an empty one ends the body).
async fn chunk(stream: &mut TcpStream, data: &str) -> std::io::Result<()> {
    stream.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes()).await?;
    stream.flush().await
}

async fn write_json(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// Reads one request: its path and body (Content-Length bodies only, as reqwest sends JSON).
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some((path, body))
}

/// `hiwar llm-standin BEHAVIOUR…`: prints `listening BASE_URL`, then a JSON line per request
/// and per disconnect, until standard input closes.
pub fn run_cli(script: &[String], bind: &str) -> anyhow::Result<std::process::ExitCode> {
    let script = script.iter().map(|s| Behaviour::parse(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let s = Standin::start_on(bind, script).await?;
        println!("listening {}", s.base_url);
        let seen = Arc::clone(&s.seen);
        let printer = tokio::spawn(async move {
            let mut shown = 0;
            loop {
                let new: Vec<Seen> = seen.lock().map(|v| v[shown..].to_vec()).unwrap_or_default();
                shown += new.len();
                for e in new {
                    let line = match e {
                        Seen::Request { n, body } => serde_json::json!({"request": n, "body": body}),
                        Seen::Disconnect { n } => serde_json::json!({"disconnect": n}),
                        Seen::Finished { n } => serde_json::json!({"finished": n}),
                    };
                    println!("{line}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        // Until whoever started it closes standard input.
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while std::io::Read::read(&mut std::io::stdin(), &mut sink).map(|n| n > 0).unwrap_or(false) {}
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        printer.abort();
        Ok(std::process::ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hiwar_dialogue::mind::llm::{LlmClient, LlmError, LlmEvent, LlmSettings, Message};
    use tokio_util::sync::CancellationToken;

    fn client(base_url: &str, first_token_ms: u64) -> LlmClient {
        LlmClient::new(LlmSettings {
            base_url: base_url.into(),
            model: "qwen-plus".into(),
            api_key: Some("sk-test".into()),
            connect_timeout: Duration::from_millis(500),
            first_token_timeout: Duration::from_millis(first_token_ms),
            idle_timeout: Duration::from_millis(300),
            retries: 2,
            max_tokens: 30,
            temperature: 0.3,
        })
        .expect("client")
    }

    async fn collect(c: &LlmClient, q: &str) -> (String, Result<LlmEvent, LlmError>) {
        let mut rx = c.stream(vec![Message { role: "user", content: q.into() }], CancellationToken::new());
        let mut text = String::new();
        while let Some(e) = rx.recv().await {
            match e {
                Ok(LlmEvent::Delta(d)) => text.push_str(&d),
                other => return (text, other),
            }
        }
        (text, Err(LlmError::Cancelled))
    }

    #[tokio::test]
    async fn a_streamed_answer_arrives_whole_with_its_usage_and_the_request_is_openai_shaped() {
        let s = Standin::start(vec![Behaviour::parse("answer").expect("spec")]).await.expect("standin");
        let (text, end) = collect(&client(&s.base_url, 2_000), "متى يفتح المركز؟").await;
        assert_eq!(text, default_answer("متى"));
        assert!(matches!(end, Ok(LlmEvent::Done { usage: Some(_), finish_reason: Some(ref f) }) if f == "stop"), "{end:?}");
        let seen = s.seen.lock().expect("seen").clone();
        let Seen::Request { body, .. } = &seen[0] else { panic!("{seen:?}") };
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["content"], "متى يفتح المركز؟");
    }

    /// What `bench soak` allows the LLM connections (two, each with two ends in the process):
    /// a question asked while another answer streams gets a connection of its own, the pool
    /// keeps both, and questions one at a time after that open none.
    #[tokio::test]
    async fn overlapping_questions_pool_two_connections_and_no_more() {
        let s =
            Standin::start(vec![Behaviour::Answer { text: None, ttft: Duration::from_millis(100), gap: Duration::from_millis(10) }]).await.expect("standin");
        let c = client(&s.base_url, 3_000);
        let ends = || crate::stats::connection_ends(&crate::stats::fd_targets(), s.addr.port());
        let _ = collect(&c, "one").await;
        assert_eq!(ends(), 2, "one connection, its two ends");
        let (a, b) = tokio::join!(collect(&c, "two"), collect(&c, "three"));
        assert!(a.1.is_ok() && b.1.is_ok(), "{a:?} {b:?}");
        assert_eq!(ends(), 4, "the second connection is pooled too");
        for q in ["four", "five", "six"] {
            let _ = collect(&c, q).await;
        }
        assert_eq!(ends(), 4, "one question at a time opens no more");
    }

    #[tokio::test]
    async fn overload_is_retried_before_the_first_token_and_a_bad_key_is_not() {
        let s = Standin::start(vec![Behaviour::Status(429), Behaviour::Status(500), Behaviour::parse("answer").expect("spec")]).await.expect("standin");
        let (text, end) = collect(&client(&s.base_url, 3_000), "When do you open?").await;
        assert!(end.is_ok() && text.starts_with("Hello."), "{end:?} {text}");
        s.set_script(vec![Behaviour::Status(401)]);
        let (_, end) = collect(&client(&s.base_url, 3_000), "When do you open?").await;
        assert!(matches!(end, Err(LlmError::Status { status: 401, .. })), "{end:?}");
        let requests = s.seen.lock().expect("seen").iter().filter(|x| matches!(x, Seen::Request { .. })).count();
        assert_eq!(requests, 4, "429 and 500 retried, 401 not");
    }

    #[tokio::test]
    async fn faults_end_in_the_right_error() {
        for (spec, kind, some_text) in [
            ("cut:3", "cut", true),
            ("malformed", "malformed", true),
            ("stall:2000", "first_token_timeout", false),
            ("endless", "runaway", true),
            ("empty", "empty", false),
            ("huge", "runaway", false),
        ] {
            let s = Standin::start(vec![Behaviour::parse(spec).expect("spec")]).await.expect("standin");
            let (text, end) = collect(&client(&s.base_url, 400), "متى يفتح المركز؟").await;
            let err = end.expect_err(spec);
            assert_eq!(err.kind(), kind, "{spec}: {err}");
            assert_eq!(!text.is_empty(), some_text, "{spec}: {text:?}");
        }
    }

    #[tokio::test]
    async fn reasoning_is_never_part_of_the_answer_and_self_hosted_servers_are_asked_not_to_think() {
        for spec in ["reasoning", "think"] {
            let s = Standin::start(vec![Behaviour::parse(spec).expect("spec")]).await.expect("standin");
            let (text, end) = collect(&client(&s.base_url, 2_000), "When do you open?").await;
            assert!(end.is_ok(), "{spec}: {end:?}");
            assert_eq!(text, default_answer("When do you open?"), "{spec}");
            let seen = s.seen.lock().expect("seen").clone();
            let Seen::Request { body, .. } = &seen[0] else { panic!("{seen:?}") };
            assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false, "{spec}: {body}");
            assert!(body.get("enable_thinking").is_none(), "Model Studio's own switch only for Model Studio: {body}");
        }
    }

    #[tokio::test]
    async fn cancelling_drops_the_connection_and_the_server_sees_it() {
        let s = Standin::start(vec![Behaviour::Endless]).await.expect("standin");
        let c = client(&s.base_url, 2_000);
        let cancel = CancellationToken::new();
        let mut rx = c.stream(vec![Message { role: "user", content: "hi".into() }], cancel.clone());
        assert!(matches!(rx.recv().await, Some(Ok(LlmEvent::Delta(_)))));
        cancel.cancel();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !s.seen.lock().expect("seen").iter().any(|x| matches!(x, Seen::Disconnect { .. })) {
            assert!(Instant::now() < deadline, "the server never saw the disconnect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
