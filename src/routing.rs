//! Model name -> provider: the `routes` table (or the built-in rules), first match wins.
//!
//! Pure: built once per config snapshot, then only read.

use crate::config::{Config, Pricing, ProviderConfig, ProviderKind};
use std::sync::Arc;

/// The compiled routing table of one config snapshot.
#[derive(Debug, Clone)]
pub struct Router {
    /// The config's own providers, shared rather than copied.
    providers: Arc<Vec<ProviderConfig>>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    /// Index into `Router::providers`.
    provider: usize,
    upstream_model: Option<String>,
    pricing: Option<Pricing>,
    max_output_tokens: Option<u64>,
    web_search: bool,
}

impl Rule {
    fn is_exact(&self) -> bool {
        !self.pattern.contains('*')
    }
}

/// Where one model goes.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    pub provider: &'a ProviderConfig,
    /// The model name the provider gets (before a request's `model_name_map`).
    pub upstream_model: &'a str,
    /// The `model` label of metrics: the model itself for an exact route, the route's
    /// pattern for a glob, `other` when no route names it. Keeps label sets small.
    pub metric_label: &'a str,
    pub pricing: Option<Pricing>,
    /// The route's own output limit (`max_output_tokens`), over the model catalog's.
    pub max_output_tokens: Option<u64>,
    /// An offered web search may go to the provider's own search.
    pub web_search: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no route for model `{0}`")]
    NoRoute(String),
    #[error("no provider named `{0}` (X-Respan-Route-Provider)")]
    UnknownProvider(String),
}

impl Router {
    /// Compiles the config's routes, or the built-in rules when it has none:
    /// `claude-*` to the first anthropic provider, `gemini-*` to the first gemini one and
    /// everything else to the first openai one. A route naming a provider the config does
    /// not have is refused, never dropped.
    pub fn new(config: &Config) -> Result<Router, String> {
        let providers = config.providers.clone();
        let index_of = |name: &str| {
            providers
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| format!("no provider named `{name}`"))
        };
        let rules = match &config.routes {
            Some(routes) => routes
                .iter()
                .map(|r| {
                    Ok(Rule {
                        pattern: r.pattern.clone(),
                        provider: index_of(&r.provider)?,
                        upstream_model: r.upstream_model.clone(),
                        pricing: r.pricing,
                        max_output_tokens: r.max_output_tokens,
                        web_search: r.web_search,
                    })
                })
                .collect::<Result<_, String>>()?,
            None => [
                ("claude-*", ProviderKind::Anthropic),
                ("gemini-*", ProviderKind::Gemini),
                ("*", ProviderKind::OpenAi),
            ]
            .into_iter()
            .filter_map(|(pattern, kind)| {
                Some(Rule {
                    pattern: pattern.to_string(),
                    provider: providers.iter().position(|p| p.kind == kind)?,
                    upstream_model: None,
                    pricing: None,
                    max_output_tokens: None,
                    web_search: true,
                })
            })
            .collect(),
        };
        Ok(Router { providers, rules })
    }

    /// Routes `model`. With `pinned` (the `X-Respan-Route-Provider` header) the named provider
    /// serves it and the model name is sent unchanged.
    pub fn resolve<'a>(
        &'a self,
        model: &'a str,
        pinned: Option<&str>,
    ) -> Result<Route<'a>, RouteError> {
        let rule = self.rules.iter().find(|r| glob_match(&r.pattern, model));
        let metric_label = match rule {
            Some(r) if r.is_exact() => model,
            Some(r) => r.pattern.as_str(),
            None => "other",
        };
        if let Some(name) = pinned {
            let provider = self
                .provider(name)
                .ok_or_else(|| RouteError::UnknownProvider(name.to_string()))?;
            return Ok(Route {
                provider,
                upstream_model: model,
                metric_label,
                pricing: rule.and_then(|r| r.pricing),
                max_output_tokens: rule.and_then(|r| r.max_output_tokens),
                web_search: rule.is_none_or(|r| r.web_search),
            });
        }
        let rule = rule.ok_or_else(|| RouteError::NoRoute(model.to_string()))?;
        Ok(Route {
            provider: &self.providers[rule.provider],
            upstream_model: rule.upstream_model.as_deref().unwrap_or(model),
            metric_label,
            pricing: rule.pricing,
            max_output_tokens: rule.max_output_tokens,
            web_search: rule.web_search,
        })
    }

    /// A provider by its configured name.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The first provider of a kind: where passthrough paths go (`openai`).
    pub fn first_of_kind(&self, kind: ProviderKind) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.kind == kind)
    }

    /// Model names routes name exactly, in table order: what `/v1/models` lists.
    pub fn exact_models(&self) -> impl Iterator<Item = (&str, &ProviderConfig)> {
        self.rules
            .iter()
            .filter(|r| r.is_exact())
            .map(|r| (r.pattern.as_str(), &self.providers[r.provider]))
    }
}

/// Matches `text` against a pattern in which `*` stands for any run of characters.
/// Greedy with backtracking to the last `*`, so it is linear for the patterns routes use.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn router(yaml: &str) -> Router {
        let loaded = config::parse(yaml, std::path::Path::new("."), &|_| None).unwrap();
        Router::new(&loaded.config).unwrap()
    }

    const PROVIDERS: &str = "providers:\n  oa:\n    type: openai\n  an:\n    type: anthropic\n  ge:\n    type: gemini\n";

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("claude-*", "claude-haiku-4-5"));
        assert!(!glob_match("claude-*", "gpt-4o"));
        assert!(glob_match("gpt-*-mini", "gpt-4o-mini"));
        assert!(!glob_match("gpt-*-mini", "gpt-4o-mini-x"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn built_in_rules_without_routes() {
        let r = router(PROVIDERS);
        assert_eq!(r.resolve("claude-3", None).unwrap().provider.name, "an");
        assert_eq!(
            r.resolve("gemini-2.5-pro", None).unwrap().provider.name,
            "ge"
        );
        let gpt = r.resolve("gpt-4o", None).unwrap();
        assert_eq!((gpt.provider.name.as_str(), gpt.metric_label), ("oa", "*"));
        assert_eq!(r.exact_models().count(), 0);
    }

    #[test]
    fn built_in_rules_skip_missing_kinds() {
        let r = router("providers:\n  an:\n    type: anthropic\n");
        assert_eq!(
            r.resolve("gpt-4o", None).unwrap_err(),
            RouteError::NoRoute("gpt-4o".into())
        );
    }

    #[test]
    fn first_match_wins_with_aliases() {
        let r = router(&format!(
            "{PROVIDERS}routes:\n  - match: fast\n    provider: an\n    upstream_model: claude-haiku-4-5\n\
             \x20 - match: \"*\"\n    provider: oa\n  - match: never\n    provider: ge\n"
        ));
        let fast = r.resolve("fast", None).unwrap();
        assert_eq!(
            (
                fast.provider.name.as_str(),
                fast.upstream_model,
                fast.metric_label
            ),
            ("an", "claude-haiku-4-5", "fast")
        );
        assert_eq!(r.resolve("never", None).unwrap().provider.name, "oa");
        let models: Vec<_> = r.exact_models().map(|(m, _)| m).collect();
        assert_eq!(models, ["fast", "never"]);
    }

    #[test]
    fn explicit_routes_replace_built_ins() {
        let r = router(&format!(
            "{PROVIDERS}routes:\n  - match: gpt-4o\n    provider: oa\n"
        ));
        assert!(matches!(
            r.resolve("claude-3", None),
            Err(RouteError::NoRoute(_))
        ));
    }

    #[test]
    fn pinned_provider_keeps_the_model_name() {
        let r = router(&format!(
            "{PROVIDERS}routes:\n  - match: fast\n    provider: an\n    upstream_model: claude-haiku-4-5\n"
        ));
        let pinned = r.resolve("fast", Some("oa")).unwrap();
        assert_eq!(
            (pinned.provider.name.as_str(), pinned.upstream_model),
            ("oa", "fast")
        );
        assert_eq!(
            r.resolve("fast", Some("zz")).unwrap_err(),
            RouteError::UnknownProvider("zz".into())
        );
    }
}
