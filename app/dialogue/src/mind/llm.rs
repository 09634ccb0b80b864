//! A streaming client for OpenAI-compatible `/chat/completions` (Alibaba Cloud Model Studio's
//! compatible mode, vLLM, llama.cpp): server-sent events over reqwest (rustls), with a connect
//! timeout, a first-token deadline (retries with backoff fit inside it, and happen only before
//! the first word), an idle timeout between chunks, an answer-length cap, and cancellation that
//! drops the connection (barge-in).

use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource as _};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One chat message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// Token counts the server reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// A piece of the answer.
    Delta(String),
    /// The answer is complete.
    Done { usage: Option<Usage>, finish_reason: Option<String> },
}

/// Why an answer did not (fully) come. `Display` is the operator's log line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach the LLM at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the LLM answered HTTP {status} ({code}): {message}")]
    Status { status: u16, code: String, message: String },
    #[error("no first token within {0:?}")]
    FirstToken(Duration),
    #[error("the answer stalled: nothing for {0:?} mid-stream")]
    Idle(Duration),
    #[error("the stream was cut before it finished: {0}")]
    Cut(String),
    #[error("malformed stream data: {0}")]
    Malformed(String),
    #[error("runaway answer: over {0} pieces without an end; cut off")]
    Runaway(usize),
    #[error("runaway answer: over {0} bytes of text; cut off")]
    TooLong(usize),
    #[error("the LLM's answer was empty (the stream ended with no words)")]
    Empty,
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    /// Worth another try (before the first token only): overload, server errors, the network.
    fn retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Connect { .. } | LlmError::Cut(_) => true,
            _ => false,
        }
    }

    /// A short name for events and the benchmark.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Connect { .. } => "unreachable",
            LlmError::Status { status: 401 | 403, .. } => "unauthorised",
            LlmError::Status { status: 429, .. } => "rate_limited",
            LlmError::Status { .. } => "http_error",
            LlmError::FirstToken(_) => "first_token_timeout",
            LlmError::Idle(_) => "stalled",
            LlmError::Cut(_) => "cut",
            LlmError::Malformed(_) => "malformed",
            LlmError::Runaway(_) | LlmError::TooLong(_) => "runaway",
            LlmError::Empty => "empty",
            LlmError::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Up to `/v1`, without a trailing slash.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub retries: u32,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl LlmSettings {
    pub fn from_config(config: &hiwar_core::config::Config) -> anyhow::Result<Option<LlmSettings>> {
        let l = &config.llm;
        let base_url = l.endpoint()?;
        if base_url.is_empty() {
            return Ok(None);
        }
        let api_key = config.llm_api_key().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(LlmSettings {
            base_url,
            model: l.model.clone(),
            api_key,
            connect_timeout: Duration::from_millis(l.connect_timeout_ms.max(1)),
            first_token_timeout: Duration::from_millis(l.first_token_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms.max(1)),
            retries: l.retries,
            max_tokens: l.max_tokens.max(1),
            temperature: l.temperature,
        }))
    }

    fn is_model_studio(&self) -> bool {
        self.base_url.contains("dashscope") || self.base_url.contains("maas.aliyuncs.com")
    }
}

#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    pub settings: LlmSettings,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    stream_options: StreamOptions,
    max_tokens: u32,
    temperature: f32,
    /// Model Studio: Qwen3's thinking would delay the first spoken word by seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_thinking: Option<bool>,
    /// Self-hosted OpenAI-compatible servers (vLLM, SGLang, llama.cpp's server) take the same
    /// switch through the chat template: `{"enable_thinking": false}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_template_kwargs: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

pub type Events = mpsc::Receiver<Result<LlmEvent, LlmError>>;

impl LlmClient {
    pub fn new(settings: LlmSettings) -> anyhow::Result<LlmClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            .user_agent(concat!("hiwar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LlmClient { http, settings })
    }

    /// Opens a connection ahead of the first question (TLS handshakes cost a round trip or two).
    pub async fn warm_up(&self) {
        let url = format!("{}/models", self.settings.base_url);
        let mut req = self.http.get(url).timeout(self.settings.connect_timeout * 2);
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        let _ = req.send().await;
    }

    /// Streams the answer to `messages`. The stream ends after `Done` or one error; cancelling
    /// `cancel` (or dropping the receiver) drops the connection.
    pub fn stream(&self, messages: Vec<Message>, cancel: CancellationToken) -> Events {
        let (tx, rx) = mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                r = client.run(&messages, &tx) => r,
                () = cancel.cancelled() => Err(LlmError::Cancelled),
                () = tx.closed() => Err(LlmError::Cancelled),
            };
            match result {
                Ok(done) => {
                    let _ = tx.send(Ok(done)).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        rx
    }

    async fn run(&self, messages: &[Message], tx: &mpsc::Sender<Result<LlmEvent, LlmError>>) -> Result<LlmEvent, LlmError> {
        let s = &self.settings;
        let first_deadline = Instant::now() + s.first_token_timeout;
        let mut attempt = 0u32;
        loop {
            match self.attempt(messages, tx, first_deadline).await {
                Ok(done) => return Ok(done),
                Err((e, started)) => {
                    // Only before the first word, and only while the deadline allows.
                    let backoff = Duration::from_millis(200 * 2u64.pow(attempt.min(5)));
                    if started || !e.retryable() || attempt >= s.retries || Instant::now() + backoff >= first_deadline {
                        return Err(e);
                    }
                    tracing::warn!("llm: {e}; retrying in {} ms ({} of {})", backoff.as_millis(), attempt + 1, s.retries);
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// One request. The error's flag says whether any of the answer was already sent on.
    async fn attempt(
        &self,
        messages: &[Message],
        tx: &mpsc::Sender<Result<LlmEvent, LlmError>>,
        first_deadline: Instant,
    ) -> Result<LlmEvent, (LlmError, bool)> {
        let s = &self.settings;
        let url = format!("{}/chat/completions", s.base_url);
        let body = Request {
            model: &s.model,
            messages,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
            max_tokens: s.max_tokens,
            temperature: s.temperature,
            enable_thinking: s.is_model_studio().then_some(false),
            chat_template_kwargs: (!s.is_model_studio()).then(|| serde_json::json!({"enable_thinking": false})),
        };
        let mut req = self.http.post(&url).json(&body).header("Accept", "text/event-stream");
        if let Some(key) = &s.api_key {
            req = req.bearer_auth(key);
        }
        let first_token = |_| (LlmError::FirstToken(s.first_token_timeout), false);
        let response = tokio::time::timeout_at(first_deadline, req.send())
            .await
            .map_err(first_token)?
            .map_err(|e| (LlmError::Connect { url: url.clone(), reason: hiwar_core::runtime::root_cause(&e) }, false))?;
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout_at(first_deadline, response.text()).await.map_err(first_token)?.unwrap_or_default();
            return Err((status_error(status.as_u16(), &text), false));
        }
        // Server-sent events through eventsource-stream (UTF-8 split across packets, CRLF, comments
        // and multi-line data are its job); each event waits under the first-token or idle
        // timeout, so a server that sends bytes but never a whole event is cut off too.
        let mut events = response.bytes_stream().eventsource();
        let mut thinking = ThinkFilter::default();
        let (mut started, mut pieces, mut bytes_said) = (false, 0usize, 0usize);
        let (mut usage, mut finish_reason): (Option<Usage>, Option<String>) = (None, None);
        // Every piece is at least one token: a server that ignores max_tokens is cut here.
        let cap = s.max_tokens as usize;
        // No token is longer than a few dozen bytes: text far beyond max_tokens' worth is a
        // broken server, not an answer (a 5 MB piece must not reach a WebSocket client).
        let byte_cap = (cap * 32).max(4_096);
        loop {
            let next = if started {
                tokio::time::timeout(s.idle_timeout, events.next()).await.map_err(|_| (LlmError::Idle(s.idle_timeout), true))?
            } else {
                tokio::time::timeout_at(first_deadline, events.next()).await.map_err(first_token)?
            };
            let event = match next {
                Some(Ok(event)) => event,
                None => return Err((LlmError::Cut("the connection closed without [DONE]".into()), started)),
                Some(Err(EventStreamError::Transport(e))) => return Err((LlmError::Cut(hiwar_core::runtime::root_cause(&e)), started)),
                Some(Err(e)) => return Err((LlmError::Malformed(format!("not a server-sent event stream: {e}")), started)),
            };
            let data = event.data;
            if data.is_empty() {
                continue; // an event without data (a named ping): nothing to read
            }
            if data.trim() == "[DONE]" {
                if let Some(u) = usage {
                    tracing::info!(prompt_tokens = u.prompt_tokens, completion_tokens = u.completion_tokens, "llm usage");
                }
                // Whatever was held back in case it began a <think> tag is text.
                let rest = thinking.finish();
                if !rest.trim().is_empty() || started {
                    if !rest.is_empty() && tx.send(Ok(LlmEvent::Delta(rest))).await.is_err() {
                        return Err((LlmError::Cancelled, true));
                    }
                    return Ok(LlmEvent::Done { usage, finish_reason });
                }
                // A stream with no words is a fault, with its fallback, not silence.
                return Err((LlmError::Empty, false));
            }
            let chunk = parse_chunk(&data).map_err(|e| (e, started))?;
            if let Some(u) = chunk.usage {
                usage = Some(u);
            }
            if chunk.finish_reason.is_some() {
                finish_reason = chunk.finish_reason;
            }
            // Reasoning (a `reasoning_content` field, or a <think> block in the content of a
            // server without a reasoning parser) is never spoken.
            let text = thinking.push(&chunk.content);
            if text.is_empty() {
                continue;
            }
            // Leading blank pieces (the space after a </think>) do not start the answer.
            if !started && text.trim().is_empty() {
                continue;
            }
            let text = if started { text } else { text.trim_start().to_string() };
            pieces += 1;
            bytes_said += text.len();
            // (Whether anything was passed on before decides apology or fallback.)
            if pieces > cap {
                return Err((LlmError::Runaway(cap), started));
            }
            if bytes_said > byte_cap {
                return Err((LlmError::TooLong(byte_cap), started));
            }
            started = true;
            if tx.send(Ok(LlmEvent::Delta(text))).await.is_err() {
                return Err((LlmError::Cancelled, true));
            }
        }
    }
}

/// An error response: Model Studio and OpenAI send `{"error": {"message", "type", "code"}}`.
fn status_error(status: u16, body: &str) -> LlmError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let e = v.get("error").unwrap_or(&v);
    let field = |k: &str| e.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| (!x.is_null()).then(|| x.to_string())));
    let code = field("code").or_else(|| field("type")).unwrap_or_else(|| "-".into());
    let message = field("message").unwrap_or_else(|| body.chars().take(200).collect());
    LlmError::Status { status, code, message }
}

#[derive(Debug, Default, PartialEq)]
struct Chunk {
    content: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

/// One `chat.completion.chunk` (or an in-stream error object).
fn parse_chunk(data: &str) -> Result<Chunk, LlmError> {
    let v: serde_json::Value = serde_json::from_str(data).map_err(|e| LlmError::Malformed(format!("{e}: {}", data.chars().take(120).collect::<String>())))?;
    if let Some(err) = v.get("error") {
        return Err(status_error(200, &serde_json::json!({ "error": err }).to_string()));
    }
    let mut chunk = Chunk::default();
    if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
        if let Some(text) = choice.pointer("/delta/content").and_then(|c| c.as_str()) {
            chunk.content = text.to_string();
        }
        chunk.finish_reason = choice.get("finish_reason").and_then(|f| f.as_str()).map(str::to_string);
    } else if v.get("choices").is_none() && v.get("usage").is_none() {
        return Err(LlmError::Malformed(format!("not a chat.completion.chunk: {}", data.chars().take(120).collect::<String>())));
    }
    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
        chunk.usage = serde_json::from_value(u.clone()).ok();
    }
    Ok(chunk)
}

/// Removes `<think>…</think>` blocks from streamed content, whatever pieces the tags are split
/// across: Qwen3 served without a reasoning parser writes its reasoning (or, with thinking
/// off, an empty block) into the answer itself.
#[derive(Debug, Default)]
pub struct ThinkFilter {
    /// Inside a block.
    inside: bool,
    /// Text held back because it may be the start of a tag.
    held: String,
}

impl ThinkFilter {
    const OPEN: &'static str = "<think>";
    const CLOSE: &'static str = "</think>";

    /// The part of `piece` (with what was held back) that is answer text.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        let mut out = String::new();
        loop {
            let tag = if self.inside { Self::CLOSE } else { Self::OPEN };
            if let Some(at) = self.held.find(tag) {
                if !self.inside {
                    out.push_str(&self.held[..at]);
                }
                self.held.drain(..at + tag.len());
                self.inside = !self.inside;
                continue;
            }
            // Keep back the longest tail that could begin the tag.
            let keep = (1..tag.len()).rev().find(|&n| self.held.ends_with(&tag[..n])).unwrap_or(0);
            let cut = self.held.len() - keep;
            if !self.inside {
                out.push_str(&self.held[..cut]);
            }
            self.held.drain(..cut);
            return out;
        }
    }

    /// The end of the stream: text held back is answer text, unless a block never closed.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        if self.inside { String::new() } else { held }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_blocks_are_removed_however_the_tags_are_split() {
        let wire = "<think>\nThe visitor asks about hours.\n</think>\n\nWe open at 7:30.";
        for split in [1usize, 2, 3, 5, 8, wire.len()] {
            let mut f = ThinkFilter::default();
            let chars: Vec<char> = wire.chars().collect();
            let mut out: String = chars.chunks(split).map(|c| f.push(&c.iter().collect::<String>())).collect();
            out.push_str(&f.finish());
            assert_eq!(out.trim_start(), "We open at 7:30.", "split {split}");
        }
        let mut f = ThinkFilter::default();
        assert_eq!(f.push("a < b and <thin"), "a < b and ");
        assert_eq!(f.push("g>"), "<thing>");
        assert_eq!(f.finish(), "");
        let mut f = ThinkFilter::default();
        assert_eq!(f.push("<think>never closed"), "");
        assert_eq!(f.finish(), "", "an unclosed block is not spoken");
    }

    #[test]
    fn sse_events_are_split_whatever_the_line_ends_and_packet_boundaries() {
        // What the client relies on eventsource-stream for: comments skipped, CRLF and LF line
        // ends, data lines joined, and a UTF-8 character split between packets.
        let wire = ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: one\ndata: two\n\nevent: x\ndata: أهلاً\n\ndata: [DONE]\n\n".as_bytes();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for split in [1usize, 3, 7, wire.len()] {
            let packets = futures_util::stream::iter(wire.chunks(split).map(Ok::<_, std::convert::Infallible>));
            let events: Vec<String> = rt.block_on(packets.eventsource().map(|e| e.expect("event").data).collect());
            assert_eq!(events, ["{\"a\":1}", "one\ntwo", "أهلاً", "[DONE]"], "split {split}");
        }
    }

    #[test]
    fn chunks_and_error_bodies_are_read_as_model_studio_writes_them() {
        let role = r#"{"choices":[{"delta":{"content":"","role":"assistant"},"index":0,"logprobs":null,"finish_reason":null}],"object":"chat.completion.chunk","usage":null,"created":1764000000,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-1"}"#;
        assert_eq!(parse_chunk(role).expect("role"), Chunk::default());
        let delta = r#"{"choices":[{"finish_reason":null,"delta":{"content":"أهلاً"},"index":0,"logprobs":null}],"object":"chat.completion.chunk","usage":null,"created":1764000000,"model":"qwen-plus","id":"chatcmpl-1"}"#;
        assert_eq!(parse_chunk(delta).expect("delta").content, "أهلاً");
        let usage = r#"{"choices":[],"object":"chat.completion.chunk","usage":{"prompt_tokens":310,"completion_tokens":24,"total_tokens":334},"created":1764000000,"model":"qwen-plus","id":"chatcmpl-1"}"#;
        assert_eq!(parse_chunk(usage).expect("usage").usage, Some(Usage { prompt_tokens: 310, completion_tokens: 24 }));
        assert!(matches!(parse_chunk("{not json"), Err(LlmError::Malformed(_))));
        let body =
            r#"{"error":{"message":"Incorrect API key provided. ","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"x"}"#;
        let e = status_error(401, body);
        assert_eq!(e.kind(), "unauthorised");
        assert_eq!(e.to_string(), "the LLM answered HTTP 401 (invalid_api_key): Incorrect API key provided. ");
        assert!(!e.retryable());
        assert!(status_error(429, "{}").retryable() && status_error(500, "oops").retryable());
    }
}
