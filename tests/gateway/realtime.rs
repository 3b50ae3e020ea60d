//! The Realtime API: a real WebSocket client (tokio-tungstenite) through the sidecar to a
//! real WebSocket server standing in for OpenAI's and Azure's Realtime endpoints.
#![allow(clippy::disallowed_methods)] // tokio::spawn runs the mock server in tests.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback's own error type.

use crate::support::{client, Sidecar};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// What the mock Realtime server saw of one session.
#[derive(Debug, Default, Clone)]
struct Seen {
    uri: String,
    authorization: Option<String>,
    api_key: Option<String>,
    /// The client's text messages.
    messages: Vec<Value>,
    /// The close code the client (the sidecar, on a shutdown) sent.
    close: Option<u16>,
}

/// A Realtime server: it says `session.created`, answers each `response.create` with an
/// audio delta (large, to cross many reads) and a `response.done` with usage, and echoes
/// nothing else.
struct RealtimeMock {
    port: u16,
    sessions: Arc<Mutex<Vec<Seen>>>,
}

impl RealtimeMock {
    async fn start() -> RealtimeMock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let all = sessions.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let all = all.clone();
                tokio::spawn(async move {
                    let mut seen = Seen::default();
                    let callback = |req: &Request, resp: Response| {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_string())
                        };
                        seen.uri = req.uri().to_string();
                        seen.authorization = header("authorization");
                        seen.api_key = header("api-key");
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                    else {
                        return;
                    };
                    let index = {
                        let mut all = all.lock().unwrap();
                        all.push(seen);
                        all.len() - 1
                    };
                    let created = json!({"type": "session.created", "event_id": "e0", "session": {"id": "sess_1"}});
                    let _ = ws.send(Message::text(created.to_string())).await;
                    while let Some(Ok(message)) = ws.next().await {
                        match message {
                            Message::Text(text) => {
                                let event: Value = serde_json::from_str(&text).unwrap();
                                let create = event["type"] == "response.create";
                                all.lock().unwrap()[index].messages.push(event);
                                if create {
                                    answer(&mut ws).await;
                                }
                            }
                            Message::Close(frame) => {
                                all.lock().unwrap()[index].close = frame.map(|f| u16::from(f.code));
                                let _ = ws.close(None).await;
                                break;
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
        RealtimeMock { port, sessions }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn sessions(&self) -> Vec<Seen> {
        self.sessions.lock().unwrap().clone()
    }
}

/// One response: a 100 KB audio delta, then `response.done` with its usage.
async fn answer<S>(ws: &mut S)
where
    S: SinkExt<Message> + Unpin,
{
    let audio = json!({"type": "response.output_audio.delta", "event_id": "e1", "delta": "A".repeat(100_000)});
    let done = json!({"type": "response.done", "event_id": "e2", "response": {"id": "resp_1",
        "status": "completed", "usage": {"total_tokens": 42, "input_tokens": 30, "output_tokens": 12,
        "input_token_details": {"cached_tokens": 4, "text_tokens": 20, "audio_tokens": 10}}}});
    let _ = ws.send(Message::text(audio.to_string())).await;
    let _ = ws.send(Message::text(done.to_string())).await;
}

fn config(mock: &RealtimeMock) -> String {
    format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{base}/v1\"\n    api_key: sk-realtime\n  az:\n    type: azure_openai\n    base_url: \"{base}\"\n    api_key: az-key\n    api_version: 2025-04-01-preview\n  an:\n    type: anthropic\n    base_url: \"{base}\"\n    api_key: sk-ant\nroutes:\n  - match: voice\n    provider: az\n    upstream_model: rt-deployment\n  - match: \"claude-*\"\n    provider: an\n  - match: \"*\"\n    provider: oa\n",
        base = mock.base()
    )
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a WebSocket client to the sidecar's Realtime endpoint, with the app's own key.
async fn connect(sidecar: &Sidecar, model: &str) -> (Client, u16, Option<String>) {
    let url = format!("ws://{}/v1/realtime?model={model}", sidecar.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer sk-app-own".parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let id = response
        .headers()
        .get("x-respan-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, response.status().as_u16(), id)
}

/// The next text event from the sidecar.
async fn next_event(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an event within 5 s")
            .expect("the session is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn a_session_is_routed_with_the_providers_key_relayed_both_ways_and_traced() {
    let mock = RealtimeMock::start().await;
    let sidecar = Sidecar::start(&config(&mock)).await;
    let (mut ws, status, id) = connect(&sidecar, "gpt-realtime").await;
    assert_eq!(status, 101);
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    for _ in 0..2 {
        let create = json!({"type": "response.create", "response": {"instructions": "hi"}});
        ws.send(Message::text(create.to_string())).await.unwrap();
        let delta = next_event(&mut ws).await;
        assert_eq!(delta["delta"].as_str().unwrap().len(), 100_000);
        assert_eq!(next_event(&mut ws).await["type"], "response.done");
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let seen = &mock.sessions()[0];
    assert_eq!(seen.uri, "/v1/realtime?model=gpt-realtime");
    // The provider's key, never the app's.
    assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-realtime"));
    assert_eq!(seen.messages.len(), 2);
    let id = id.unwrap();
    let found = sidecar.traces(&format!("request_id={id}")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let trace = &found[0];
    assert_eq!(trace["endpoint"], "realtime");
    assert_eq!(trace["status_code"], 101);
    assert_eq!(trace["model"], "gpt-realtime");
    assert_eq!(trace["provider"], "oa");
    // Two responses' usage, added up.
    assert_eq!(trace["usage"]["prompt_tokens"], 60);
    assert_eq!(trace["usage"]["completion_tokens"], 24);
    assert_eq!(trace["usage"]["total_tokens"], 84);
    let counted = sidecar
        .metric(
            "respan_requests_total",
            &[("endpoint", "realtime"), ("status", "101")],
        )
        .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn azure_gets_its_deployment_and_key_and_other_providers_are_refused() {
    let mock = RealtimeMock::start().await;
    let sidecar = Sidecar::start(&config(&mock)).await;
    let (mut ws, status, _) = connect(&sidecar, "voice").await;
    assert_eq!(status, 101);
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    ws.close(None).await.unwrap();
    let seen = &mock.sessions()[0];
    assert_eq!(
        seen.uri,
        "/openai/realtime?api-version=2025-04-01-preview&deployment=rt-deployment"
    );
    assert_eq!(seen.api_key.as_deref(), Some("az-key"));
    assert_eq!(seen.authorization, None);
    // A model that routes to Anthropic, and one with no `model`: refused before any upgrade.
    for path in ["/v1/realtime?model=claude-sonnet-4-5", "/v1/realtime"] {
        let url = format!("ws://{}{path}", sidecar.addr);
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
            panic!("{path}: {err}");
        };
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    assert_eq!(mock.sessions().len(), 1);
    // A plain GET is no session.
    let r = client()
        .get(sidecar.url("/v1/realtime?model=gpt-realtime"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_shutdown_closes_sessions_in_band_and_exits_at_once() {
    let mock = RealtimeMock::start().await;
    let mut sidecar = Sidecar::start_with_server("shutdown_grace_ms: 20000", &config(&mock)).await;
    let (mut ws, _, _) = connect(&sidecar, "gpt-realtime").await;
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    sidecar.signal("TERM");
    // The app is told the sidecar is going away, in a close frame.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    drop(ws);
    // Nothing else in flight: the process is gone long before its 20 s of grace.
    let exit = sidecar.exited_within(Duration::from_secs(5)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.sessions()[0].close, Some(1001));
}
