//! Prompts managed on the Respan platform (`respan_prompts`), for ids the config does not
//! hold: fetched from its prompt API the first time a request names one (identical first
//! requests share one fetch), kept, and fetched again in the background once older than
//! `refresh_seconds`. While the platform is unreachable the last good copy serves, so only
//! a prompt never fetched can fail a request.
//!
//! The API (Respan's public reference): `GET {base}/prompts/{id}/` names the deployed
//! version (`live_version.version`); `GET {base}/prompts/{id}/versions/{n}/` holds a
//! version's `messages`, `model` and chat parameters. Both take `Authorization: Bearer`.

use crate::config::{PromptConfig, RespanPromptsConfig};
use crate::error::GatewayError;
use crate::state::SharedState;
use crate::telemetry::logging::LogLimit;
use async_trait::async_trait;
use moka::future::Cache;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a fetch may take (a request waits for it only the first time).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Prompts (and versions) kept at most.
const MAX_KEPT: u64 = 1000;
/// The chat parameters a prompt version may set, as the API names them.
const PARAMETERS: [&str; 12] = [
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "reasoning_effort",
    "verbosity",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "stop",
];

/// Which prompt, and which of its versions (`None`: the deployed one).
type Id = (String, Option<u64>);

/// The prompts fetched so far, shared by every request (and kept across reloads).
pub struct ManagedPrompts {
    kept: Cache<Id, Arc<Kept>>,
    /// Fetches that gave no prompt lately, answered again without asking the platform: an
    /// unknown id for `NOT_FOUND_FOR`, a platform that failed for `FAILED_FOR` (so a flood
    /// of requests naming unknown ids, or an outage, does not become one call each).
    refused: Cache<Id, Arc<Fetch>>,
    client: reqwest::Client,
    log: LogLimit,
}

/// How long an id the platform does not have is known as unknown.
const NOT_FOUND_FOR: Duration = Duration::from_secs(60);
/// How long a failed fetch is not tried again.
const FAILED_FOR: Duration = Duration::from_secs(5);

/// Each refusal lives as long as its kind says.
struct RefusedFor;

impl moka::Expiry<Id, Arc<Fetch>> for RefusedFor {
    fn expire_after_create(
        &self,
        _: &Id,
        refusal: &Arc<Fetch>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(match **refusal {
            Fetch::NotFound => NOT_FOUND_FOR,
            Fetch::Failed(_) => FAILED_FOR,
        })
    }
}

struct Kept {
    prompt: Arc<PromptConfig>,
    fetched: Instant,
}

/// Why a fetch gave no prompt.
#[derive(Debug)]
enum Fetch {
    /// The platform has no such prompt (or version, or deployed version).
    NotFound,
    /// The platform could not be asked, or its answer not read.
    Failed(String),
}

impl Default for ManagedPrompts {
    fn default() -> Self {
        ManagedPrompts {
            kept: Cache::new(MAX_KEPT),
            refused: Cache::builder()
                .max_capacity(MAX_KEPT)
                .expire_after(RefusedFor)
                .build(),
            client: reqwest::Client::new(),
            log: LogLimit::once_a_minute(),
        }
    }
}

impl ManagedPrompts {
    /// The prompt `id` (its `version`, or the deployed one): the copy kept, else fetched now.
    pub async fn get(
        &self,
        source: &RespanPromptsConfig,
        id: &str,
        version: Option<u64>,
    ) -> Result<Arc<PromptConfig>, GatewayError> {
        let unknown = || GatewayError::UnknownPrompt {
            id: id.to_string(),
            version,
        };
        // An id that could not be a path segment is never sent.
        if !is_id(id) {
            return Err(unknown());
        }
        let key = (id.to_string(), version);
        let fetch = async {
            if let Some(refused) = self.refused.get(&key).await {
                return Err(refused);
            }
            match self.fetch(source, id, version).await {
                Ok(prompt) => Ok(Arc::new(Kept {
                    prompt: Arc::new(prompt),
                    fetched: Instant::now(),
                })),
                Err(refused) => {
                    let refused = Arc::new(refused);
                    self.refused.insert(key.clone(), refused.clone()).await;
                    Err(refused)
                }
            }
        };
        match self.kept.try_get_with(key.clone(), fetch).await {
            Ok(kept) => Ok(kept.prompt.clone()),
            Err(e) => match &**e {
                Fetch::NotFound => Err(unknown()),
                Fetch::Failed(why) => Err(GatewayError::NoUpstream(format!(
                    "the Respan prompt API could not give prompt `{id}`: {why}"
                ))),
            },
        }
    }

    /// Fetches again every prompt older than `source.refresh`. A prompt the platform no
    /// longer has is dropped; one it cannot give now keeps its last good copy.
    pub async fn refresh(&self, source: &RespanPromptsConfig) {
        let stale: Vec<Id> = self
            .kept
            .iter()
            .filter(|(_, kept)| kept.fetched.elapsed() >= source.refresh)
            .map(|(id, _)| (*id).clone())
            .collect();
        for id in stale {
            match self.fetch(source, &id.0, id.1).await {
                Ok(prompt) => {
                    let kept = Kept {
                        prompt: Arc::new(prompt),
                        fetched: Instant::now(),
                    };
                    self.kept.insert(id, Arc::new(kept)).await;
                }
                Err(Fetch::NotFound) => self.kept.invalidate(&id).await,
                Err(Fetch::Failed(why)) => self.failed(&id.0, &why),
            }
        }
    }

    fn failed(&self, id: &str, why: &str) {
        if let Some(quiet) = self.log.permit() {
            tracing::warn!(
                prompt_id = id,
                failures_not_logged = quiet,
                "cannot refresh a Respan prompt, serving the last good copy: {why}"
            );
        }
    }

    async fn fetch(
        &self,
        source: &RespanPromptsConfig,
        id: &str,
        version: Option<u64>,
    ) -> Result<PromptConfig, Fetch> {
        let base = &source.base_url;
        let version = match version {
            Some(version) => version,
            None => {
                let prompt = self
                    .get_json(source, &format!("{base}/prompts/{id}/"))
                    .await?;
                let live = prompt.pointer("/live_version/version");
                live.and_then(Value::as_u64).ok_or(Fetch::NotFound)?
            }
        };
        let url = format!("{base}/prompts/{id}/versions/{version}/");
        template(self.get_json(source, &url).await?, version)
    }

    async fn get_json(&self, source: &RespanPromptsConfig, url: &str) -> Result<Value, Fetch> {
        let failed = |e: reqwest::Error| Fetch::Failed(e.without_url().to_string());
        let response = self
            .client
            .get(url)
            .bearer_auth(source.api_key.expose())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(failed)?;
        match response.status().as_u16() {
            404 => Err(Fetch::NotFound),
            200..=299 => {
                let body = response.bytes().await.map_err(failed)?;
                serde_json::from_slice(&body).map_err(|e| Fetch::Failed(e.to_string()))
            }
            status => Err(Fetch::Failed(format!("it answered {status}"))),
        }
    }
}

/// A prompt id as the platform makes them: letters, digits, `_` and `-`.
fn is_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A version as the API gives it -> a template: its messages, model and the chat
/// parameters it sets.
fn template(version: Value, number: u64) -> Result<PromptConfig, Fetch> {
    let unreadable = |what: &str| Fetch::Failed(format!("the prompt version has no {what}"));
    let messages = match version.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages.clone(),
        _ => return Err(unreadable("messages")),
    };
    let parameters: Map<String, Value> = PARAMETERS
        .iter()
        .filter_map(|name| {
            let value = version.get(*name).filter(|v| !v.is_null())?;
            Some((name.to_string(), value.clone()))
        })
        .collect();
    Ok(PromptConfig {
        model: version
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        messages,
        parameters,
        version: Some(
            version
                .get("version")
                .and_then(Value::as_u64)
                .unwrap_or(number),
        ),
        versions: BTreeMap::new(),
    })
}

/// Refreshes the managed prompts in the background, on the config in force.
pub struct PromptRefresher {
    pub prompts: Arc<ManagedPrompts>,
    pub state: SharedState,
}

#[async_trait]
impl BackgroundService for PromptRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let source = self.state.load_full().config.respan_prompts.clone();
            let every = source
                .as_ref()
                .map_or(Duration::from_secs(60), |s| s.refresh);
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Some(source) = source {
                self.prompts.refresh(&source).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_that_are_not_path_segments_are_refused() {
        assert!(is_id("prompt_abc-123"));
        for bad in ["", "../admin", "a/b", "a?b", "a b", &"x".repeat(129)] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_version_becomes_a_template_of_the_parameters_it_sets() {
        let version = json!({"version": 3, "model": "gpt-4o", "temperature": 0.7,
            "max_tokens": null, "variables": {"x": ""}, "fallback_models": ["a"],
            "messages": [{"role": "user", "content": "{{x}}"}]});
        let prompt = template(version, 3).unwrap();
        assert_eq!(prompt.model.as_deref(), Some("gpt-4o"));
        assert_eq!(prompt.version, Some(3));
        assert_eq!(
            Value::Object(prompt.parameters),
            json!({"temperature": 0.7})
        );
        assert!(matches!(
            template(json!({"messages": []}), 1),
            Err(Fetch::Failed(_))
        ));
    }
}
