//! A mock provider over real HTTP/1.1 (axum): records every request and answers from a
//! script of replies, or with an OpenAI-format default built from the request.
#![allow(clippy::disallowed_methods)] // tokio::spawn runs the mock server in tests.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The client's end of the connection it came on (plain HTTP mocks only): requests
    /// with the same peer came on one kept-alive connection.
    pub peer: Option<SocketAddr>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the mock answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Json {
        status: u16,
        body: Value,
        headers: Vec<(String, String)>,
    },
    /// Raw SSE blocks (each written as is, then `\n\n`), `gap` apart; with `cut_after`, the
    /// connection is broken after that many blocks.
    Sse {
        blocks: Vec<String>,
        gap: Duration,
        cut_after: Option<usize>,
    },
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
}

impl Reply {
    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Json {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Json {
                status,
                body,
                mut headers,
            } => {
                headers.push((name.into(), value.into()));
                Reply::Json {
                    status,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }

    /// An OpenAI error answer.
    pub fn openai_error(status: u16, message: &str) -> Reply {
        Reply::status(
            status,
            json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
        )
    }

    pub fn openai_chat(model: &str, content: &str) -> Reply {
        Reply::status(
            200,
            json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
        )
    }

    /// A JSON answer from a fixture file's text.
    pub fn json_text(status: u16, text: &str) -> Reply {
        Reply::status(status, serde_json::from_str(text).unwrap())
    }

    /// An SSE answer from a fixture file's text (events separated by blank lines).
    pub fn sse_text(text: &str) -> Reply {
        let text = text.replace("\r\n", "\n");
        Reply::Sse {
            blocks: text
                .split("\n\n")
                .filter(|b| !b.trim().is_empty())
                .map(str::to_string)
                .collect(),
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    /// An Anthropic Messages answer.
    pub fn anthropic_message(model: &str, text: &str) -> Reply {
        Reply::status(
            200,
            json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 2}}),
        )
    }

    /// An Anthropic event stream calling one tool, its input JSON in two pieces.
    pub fn anthropic_tool_stream(model: &str, tool: &str, input: &Value) -> Reply {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}");
        let json = input.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        let delta = |part: &str| {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": part}}),
            )
        };
        let blocks = vec![
            event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_tool",
                "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_cli", "name": tool, "input": {}}}),
            ),
            delta(a),
            delta(b),
            event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            event(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 9}}),
            ),
            event("message_stop", json!({"type": "message_stop"})),
        ];
        Reply::Sse {
            blocks,
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    /// An Anthropic event stream of `pieces`.
    pub fn anthropic_stream(model: &str, pieces: &[&str]) -> Reply {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}");
        let mut blocks = vec![
            event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        blocks.extend(pieces.iter().map(|p| event("content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))));
        blocks.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        blocks.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2}})));
        blocks.push(event("message_stop", json!({"type": "message_stop"})));
        Reply::Sse {
            blocks,
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    /// A Gemini answer, whole or as a stream of `pieces`.
    pub fn gemini(pieces: &[&str], stream: bool) -> Reply {
        let piece = |text: &str, last: bool| {
            let mut v = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                "modelVersion": "gemini-2.5-flash"});
            if last {
                v["candidates"][0]["finishReason"] = json!("STOP");
                v["usageMetadata"] =
                    json!({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7});
            }
            v
        };
        if !stream {
            return Reply::status(200, piece(&pieces.concat(), true));
        }
        let blocks = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| format!("data: {}", piece(p, i + 1 == pieces.len())))
            .collect();
        Reply::Sse {
            blocks,
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    /// An OpenAI chat stream calling one tool, its arguments in two pieces.
    pub fn openai_tool_stream(model: &str, tool: &str, arguments: &Value) -> Reply {
        let chunk = |delta: Value, finish: Value| {
            let c = json!({"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {c}")
        };
        let json = arguments.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        let part = |p: &str| json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]});
        let blocks = vec![
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                "id": "call_cli", "type": "function", "function": {"name": tool, "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(part(a), Value::Null),
            chunk(part(b), Value::Null),
            chunk(json!({}), json!("tool_calls")),
            "data: [DONE]".to_string(),
        ];
        Reply::Sse {
            blocks,
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    /// A Gemini stream (`alt=sse`) calling one function.
    pub fn gemini_tool_stream(tool: &str, args: &Value) -> Reply {
        let piece = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": tool,
            "args": args}}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 9, "totalTokenCount": 29},
            "modelVersion": "gemini-2.5-flash"});
        Reply::Sse {
            blocks: vec![format!("data: {piece}")],
            gap: Duration::ZERO,
            cut_after: None,
        }
    }

    pub fn openai_stream(model: &str, pieces: &[&str], gap: Duration) -> Reply {
        let chunk = |delta: Value, finish: Value| {
            let c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {c}")
        };
        let mut blocks = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        blocks.extend(
            pieces
                .iter()
                .map(|p| chunk(json!({"content": p}), Value::Null)),
        );
        blocks.push(chunk(json!({}), json!("stop")));
        blocks.push("data: [DONE]".to_string());
        Reply::Sse {
            blocks,
            gap,
            cut_after: None,
        }
    }
}

/// Which provider's wire format a mock answers in when its script is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    #[default]
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Default)]
struct MockState {
    flavor: Flavor,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    /// Answers the client stopped waiting for (the request was dropped before it ended).
    cancelled: std::sync::atomic::AtomicUsize,
    /// The output token limit an OpenAI model enforces (0: none), as a 400.
    max_tokens: std::sync::atomic::AtomicU64,
}

/// Counts an answer as cancelled if it is dropped before it is marked done.
struct Watch {
    state: Arc<MockState>,
    done: bool,
}

impl Watch {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.state
                .cancelled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A running mock provider.
pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl Mock {
    pub async fn start() -> Mock {
        Self::start_as(Flavor::OpenAi).await
    }

    /// A mock whose default answers are in `flavor`'s format.
    pub async fn start_as(flavor: Flavor) -> Mock {
        let state = Arc::new(MockState {
            flavor,
            ..MockState::default()
        });
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Small SSE writes leave at once, as a real provider's do.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, state }
    }

    /// The same mock behind TLS with `cert` (PEM chain) and `key` (PEM), HTTP/1.1 only.
    pub async fn start_tls(cert: &str, key: &str) -> Mock {
        use tokio_rustls::rustls;
        let certs = pem_certs(cert);
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let state = Arc::new(MockState::default());
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Mock { addr, state }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Refuses, as OpenAI does, a request asking for more than `limit` output tokens.
    pub fn limit_max_tokens(&self, limit: u64) -> &Self {
        self.state
            .max_tokens
            .store(limit, std::sync::atomic::Ordering::SeqCst);
        self
    }

    /// Queues a reply; replies are used in order, then the default applies.
    pub fn push(&self, reply: Reply) -> &Self {
        self.state.script.lock().unwrap().push_back(reply);
        self
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// How many answers were abandoned by the client before they ended.
    pub fn cancelled(&self) -> usize {
        self.state
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("the mock received nothing")
    }
}

fn router(state: Arc<MockState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        peer: parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    let scripted = match over_limit(&state, &received) {
        Some(refusal) => Some(refusal),
        None => state.script.lock().unwrap().pop_front(),
    };
    let reply = scripted.unwrap_or_else(|| default_reply(state.flavor, &received));
    state.received.lock().unwrap().push(received);
    let watch = Watch {
        state: state.clone(),
        done: false,
    };
    respond(reply, watch).await
}

/// OpenAI's refusal of an output limit above the model's, if the mock enforces one.
fn over_limit(state: &MockState, received: &Received) -> Option<Reply> {
    let limit = state.max_tokens.load(std::sync::atomic::Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&received.body).ok()?;
    let asked = body["max_tokens"]
        .as_u64()
        .or(body["max_completion_tokens"].as_u64())?;
    (limit > 0 && asked > limit).then(|| {
        Reply::status(
            400,
            json!({"error": {"message": format!("max_tokens is too large: {asked}. \
            This model supports at most {limit} completion tokens, whereas you provided {asked}."),
            "type": "invalid_request_error", "param": "max_tokens", "code": "invalid_value"}}),
        )
    })
}

fn default_reply(flavor: Flavor, received: &Received) -> Reply {
    let body: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("unknown");
    let stream = body["stream"] == true;
    match flavor {
        Flavor::OpenAi if stream => {
            let mut reply = Reply::openai_stream(model, &["mock ", "answer"], Duration::ZERO);
            // As OpenAI does: the usage chunk, last before [DONE], only when asked for.
            if let (true, Reply::Sse { blocks, .. }) =
                (body["stream_options"]["include_usage"] == true, &mut reply)
            {
                let usage = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1,
                    "model": model, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
                blocks.insert(blocks.len() - 1, format!("data: {usage}"));
            }
            reply
        }
        Flavor::OpenAi => Reply::openai_chat(model, "mock answer"),
        Flavor::Anthropic if stream => Reply::anthropic_stream(model, &["mock ", "answer"]),
        Flavor::Anthropic if stream => Reply::anthropic_stream(model, &["mock ", "answer"]),
        Flavor::Anthropic => Reply::anthropic_message(model, "mock answer"),
        Flavor::Gemini => Reply::gemini(
            &["mock ", "answer"],
            received.path.contains(":streamGenerateContent"),
        ),
    }
}

async fn respond(reply: Reply, mut watch: Watch) -> Response {
    let mut reply = reply;
    while let Reply::Delay(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    match reply {
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut builder = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (k, v) in headers {
                builder = builder.header(k, v);
            }
            watch.finish();
            builder.body(Body::from(body.to_string())).unwrap()
        }
        Reply::Sse {
            blocks,
            gap,
            cut_after,
        } => {
            let stream = futures::stream::unfold((0usize, watch), move |(i, mut watch)| {
                let blocks = blocks.clone();
                async move {
                    if cut_after == Some(i) {
                        // Let the server flush what came before, then break the connection.
                        tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
                        watch.finish();
                        return Some((Err(std::io::Error::other("cut")), (i + 1, watch)));
                    }
                    let Some(block) = blocks.get(i) else {
                        watch.finish();
                        return None;
                    };
                    if i > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    Some((Ok(Bytes::from(format!("{block}\n\n"))), (i + 1, watch)))
                }
            });
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Reply::Delay(..) => unreachable!(),
    }
}

fn pem_certs(pem: &str) -> Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>> {
    tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}
