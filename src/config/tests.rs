use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_ok(yaml: &str) -> Config {
    parse(yaml, Path::new("."), &no_env).unwrap().config
}

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml, Path::new("."), &no_env)
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse_ok("");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.server.max_request_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.server.upstream_timeout, Duration::from_secs(600));
    assert!(c.routes.is_none() && c.providers.is_empty() && c.auth.is_none());
    assert_eq!(
        c.retry,
        RetryConfig {
            retry_enabled: true,
            num_retries: 3,
            retry_after: 0.2
        }
    );
}

#[test]
fn unknown_keys_are_named_by_path() {
    let p = problems("server:\n  lisen: 1");
    assert_eq!(p, ["server.lisen: unknown key"]);
    // Every unknown key, not only the first.
    let p = problems(
        "providers:\n  openai:\n    type: openai\n    api_kye: x\n\
         routes:\n  - match: \"*\"\n    provider: openai\n    modle: y\ntelemetri: {}\n\
         server:\n  threads: 0\n",
    );
    assert_eq!(
        p,
        [
            "providers.openai.api_kye: unknown key",
            "routes[0].modle: unknown key",
            "telemetri: unknown key",
            "server.threads: must be above 0"
        ]
    );
}

#[test]
fn type_errors_are_named_by_path() {
    let p = problems("server:\n  max_request_body_bytes: lots\n");
    assert!(p[0].starts_with("server.max_request_body_bytes:"), "{p:?}");
}

#[test]
fn every_validation_problem_is_listed() {
    let p = problems(
        "server:\n  listen: nowhere\nproviders:\n  a:\n    type: openia\n  az:\n    type: azure_openai\n\
         routes:\n  - match: x\n    provider: missing\n",
    );
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(p.iter().any(|s| s.starts_with("server.listen:")));
    assert!(p
        .iter()
        .any(|s| s.starts_with("providers.a.type: unknown provider type `openia`")));
    assert!(p
        .iter()
        .any(|s| s.starts_with("providers.az.base_url: is required")));
    assert!(p
        .iter()
        .any(|s| s.starts_with("routes[0].provider: no provider named `missing`")));
}

#[test]
fn providers_keep_file_order_and_defaults() {
    let c = parse_ok(
        "providers:\n  zeta:\n    type: openai\n    base_url: http://127.0.0.1:9000/v1/\n\
         \x20 alpha:\n    type: anthropic\n  az:\n    type: azure_openai\n    base_url: https://r.openai.azure.com\n",
    );
    let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "az"]);
    let zeta = c.providers[0].base_url.as_ref().unwrap();
    assert_eq!(
        (zeta.tls, zeta.port, zeta.path.as_str()),
        (false, 9000, "/v1")
    );
    assert_eq!(zeta.host_header(), "127.0.0.1:9000");
    assert_eq!(
        c.providers[1].base_url.as_ref().unwrap().to_string(),
        "https://api.anthropic.com"
    );
    assert_eq!(c.providers[2].api_version.as_deref(), Some("2024-10-21"));
}

#[test]
fn env_expansion_and_empty_keys() {
    let env = |name: &str| (name == "K").then(|| "sk-x".to_string());
    let loaded = parse(
        "providers:\n  a:\n    type: openai\n    api_key: \"${K}\"\n  b:\n    type: openai\n    api_key: \"${UNSET}\"\n",
        Path::new("."),
        &env,
    )
    .unwrap();
    assert_eq!(
        loaded.config.providers[0]
            .api_key
            .as_ref()
            .unwrap()
            .expose(),
        "sk-x"
    );
    assert!(loaded.config.providers[1].api_key.is_none());
    assert_eq!(
        loaded.warnings,
        ["providers.b.api_key: environment variable UNSET is not set"]
    );
}

#[test]
fn api_key_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "sk-file\n").unwrap();
    let c = parse(
        "providers:\n  a:\n    type: openai\n    api_key_file: key\n",
        dir.path(),
        &no_env,
    )
    .unwrap()
    .config;
    assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose(), "sk-file");
    let p = problems("providers:\n  a:\n    type: openai\n    api_key_file: /nonexistent/key\n");
    assert!(
        p[0].starts_with("providers.a.api_key_file: cannot read"),
        "{p:?}"
    );
    std::fs::write(dir.path().join("key"), " \n").unwrap();
    let empty = parse(
        "providers:\n  a:\n    type: openai\n    api_key_file: key\n",
        dir.path(),
        &no_env,
    )
    .unwrap_err();
    assert!(
        empty.problems[0].to_string().ends_with("key is empty"),
        "{empty:?}"
    );
}

#[test]
fn base_urls_are_checked() {
    for bad in ["ftp://x", "api.openai.com", "https://x/v1?a=b"] {
        let p = problems(&format!(
            "providers:\n  a:\n    type: openai\n    base_url: \"{bad}\"\n"
        ));
        assert!(p[0].starts_with("providers.a.base_url:"), "{bad}: {p:?}");
    }
}

#[test]
fn the_shipped_configs_load() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("anthropic-key");
    std::fs::write(&key, "sk-ant-test").unwrap();
    let key = key.display().to_string();
    for file in ["conf/respan-sidecar.yaml", "conf/example-full.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let env = |name: &str| (name == "ANTHROPIC_KEY_FILE").then(|| key.clone());
        if let Err(e) = parse(&text, path.parent().unwrap(), &env) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn prompt_templates_are_checked_at_load() {
    let p = problems(
        "prompts:\n  a:\n    messages:\n      - role: user\n        content: \"hi {{ name \"\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("prompts.a.messages[0].content: not a valid template"),
        "{p:?}"
    );
}

#[test]
fn prompt_versions_and_the_respan_source_are_read_and_checked() {
    let config = parse_ok(
        "prompts:\n  a:\n    version: 2\n    messages: [{role: user, content: hi}]\n    versions:\n      1:\n        temperature: 0.5\n        messages: [{role: user, content: ho}]\n\
         respan_prompts:\n  api_key: rk-1\n",
    );
    let prompt = &config.prompts["a"];
    assert_eq!(prompt.version, Some(2));
    assert_eq!(prompt.versions[&1].version, Some(1));
    assert_eq!(prompt.versions[&1].parameters["temperature"], 0.5);
    assert!(!prompt.parameters.contains_key("versions"));
    let source = config.respan_prompts.unwrap();
    assert_eq!(source.base_url, "https://api.respan.ai/api");
    assert_eq!(source.refresh, Duration::from_secs(60));
    let p = problems(
        "prompts:\n  a:\n    messages: [{role: user, content: hi}]\n    versions:\n      1:\n        messages: []\n\
         respan_prompts:\n  base_url: ftp://x\n",
    );
    assert_eq!(
        p,
        [
            "prompts.a.versions.1.messages: is empty",
            "respan_prompts.api_key: is required (the Respan API key)",
        ],
        "{p:?}"
    );
}
