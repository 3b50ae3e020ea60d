//! Coding agents through the sidecar, as their users run them: the Codex CLI (which speaks
//! only the Responses API) and Claude Code (the Anthropic API), each completing a task that
//! takes one shell tool call, against mock providers. `.ci/run` installs both, pinned, from
//! `tests/cli/package.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::mock::Flavor;
use support::{Mock, Reply, Sidecar};

/// An agent's executable from `tests/cli/node_modules`.
fn agent(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/node_modules/.bin")
        .join(name);
    assert!(
        path.exists(),
        "install the coding agents first: npm ci --prefix tests/cli"
    );
    path
}

/// Runs an agent in `workdir` with its own home, off the network but for the sidecar.
async fn run(mut command: Command, workdir: &Path) -> Output {
    let home = workdir.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    command.current_dir(workdir).env("HOME", &home);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the agent failed:\n{all}");
    output
}

/// The tool result the agent sent back, in an Anthropic request.
fn anthropic_tool_result(sent: &Value) -> Option<String> {
    let messages = sent["messages"].as_array()?;
    messages.iter().find_map(|m| {
        let parts = m["content"].as_array()?;
        parts.iter().find_map(|p| {
            (p["type"] == "tool_result" && p["tool_use_id"] == "toolu_cli").then(|| p.to_string())
        })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codex_cli_runs_a_shell_command_on_a_claude_model() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    anthropic.push(Reply::anthropic_tool_stream(
        "claude-x",
        "exec_command",
        &json!({"cmd": "echo from-the-sidecar > proof.txt"}),
    ));
    anthropic.push(Reply::anthropic_stream(
        "claude-x",
        &["Done: ", "proof.txt is written."],
    ));
    let sidecar = Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n",
        anthropic.url("")
    ))
    .await;
    let work = tempfile::tempdir().unwrap();
    let provider = format!(
        "model_providers.respan={{name=\"respan\",base_url=\"{}\",wire_api=\"responses\",env_key=\"RESPAN_KEY\"}}",
        sidecar.url("/v1")
    );
    let mut codex = Command::new(agent("codex"));
    codex
        .args([
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
        ])
        .args(["-c", "model_provider=respan", "-c", &provider])
        // Codex's default config: it offers its built-in web search on every turn.
        .args(["-m", "claude-x"])
        .arg("Write the word from-the-sidecar into proof.txt")
        .env("RESPAN_KEY", "app-key")
        .env("CODEX_HOME", work.path().join(".home"));
    let output = run(codex, work.path()).await;
    let proof = std::fs::read_to_string(work.path().join("proof.txt")).unwrap_or_default();
    assert_eq!(proof.trim(), "from-the-sidecar");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("proof.txt is written"), "{stdout}");
    let got = anthropic.received();
    let second = got.iter().find_map(|r| anthropic_tool_result(&r.json()));
    assert!(
        second.is_some(),
        "the command's output went back as a tool_result"
    );
    assert!(got.iter().all(|r| r.header("x-api-key") == Some("sk-an")));
    // The search Codex offered went as Anthropic's own web search tool.
    let tools = got[0].json()["tools"].clone();
    let search = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "web_search");
    assert_eq!(search.unwrap()["type"], "web_search_20250305", "{tools}");
}

/// A fixture of a provider's answer, from `tests/fixtures/<provider>/`.
fn fixture(provider: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider)
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// `codex exec` with its default config (web search offered) on `model`, through the
/// sidecar, asked a question its provider answers by searching the web.
async fn codex_asks(sidecar: &Sidecar, model: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let provider = format!(
        "model_providers.respan={{name=\"respan\",base_url=\"{}\",wire_api=\"responses\",env_key=\"RESPAN_KEY\"}}",
        sidecar.url("/v1")
    );
    let mut codex = Command::new(agent("codex"));
    codex
        .args(["exec", "--skip-git-repo-check"])
        .args(["-c", "model_provider=respan", "-c", &provider])
        .args(["-m", model])
        .arg("What is new in Rust 2024? Search the web.")
        .env("RESPAN_KEY", "app-key")
        .env("CODEX_HOME", work.path().join(".home"));
    let output = run(codex, work.path()).await;
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codex_cli_searches_the_web_with_claudes_own_search() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    anthropic.push(Reply::sse_text(&fixture(
        "anthropic",
        "stream_web_search.sse",
    )));
    let sidecar = Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n",
        anthropic.url("")
    ))
    .await;
    let stdout = codex_asks(&sidecar, "claude-sonnet-4-5").await;
    assert!(
        stdout.contains("Rust 2024 shipped with Rust 1.85."),
        "{stdout}"
    );
    let sent = anthropic.last().json();
    let tools = sent["tools"].as_array().unwrap();
    assert!(
        tools.iter().any(|t| t["type"] == "web_search_20250305"),
        "{tools:?}"
    );
    let trace = &sidecar.traces("limit=1").await[0];
    assert_eq!(trace["web_search"], "anthropic_web_search");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codex_cli_searches_the_web_with_gemini_grounding() {
    let gemini = Mock::start_as(Flavor::Gemini).await;
    gemini.push(Reply::sse_text(&fixture("gemini", "stream_web_search.sse")));
    let sidecar = Sidecar::start(&format!(
        "providers:\n  ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: g-key\n\
         routes:\n  - match: \"gemini-*\"\n    provider: ge\n",
        gemini.url("")
    ))
    .await;
    let stdout = codex_asks(&sidecar, "gemini-2.5-flash").await;
    assert!(
        stdout.contains("Rust 2024 shipped with Rust 1.85."),
        "{stdout}"
    );
    let sent = gemini.last().json();
    let tools = sent["tools"].as_array().unwrap();
    assert!(
        tools.iter().any(|t| t.get("google_search").is_some()),
        "{tools:?}"
    );
    let trace = &sidecar.traces("limit=1").await[0];
    assert_eq!(trace["web_search"], "gemini_google_search");
}

/// Claude Code (`claude -p`) with the sidecar as its Anthropic API, and its task: one Bash
/// call that writes a file. Its non-essential traffic is off; its key is a dummy.
async fn claude_code(sidecar: &Sidecar, model: &str) -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    let mut claude = Command::new(agent("claude"));
    claude
        .args(["-p", "Write the word from-the-sidecar into proof.txt"])
        .args([
            "--model",
            model,
            "--allowedTools",
            "Bash",
            "--output-format",
            "text",
        ])
        .env("ANTHROPIC_BASE_URL", sidecar.url(""))
        .env("ANTHROPIC_API_KEY", "sk-ant-dummy")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1");
    let output = run(claude, work.path()).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (work, stdout)
}

const BASH: &str = "echo from-the-sidecar > proof.txt";

fn proof(work: &tempfile::TempDir) -> String {
    let text = std::fs::read_to_string(work.path().join("proof.txt")).unwrap_or_default();
    text.trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_runs_a_bash_command_on_anthropic() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    anthropic.push(Reply::anthropic_tool_stream(
        "claude-sonnet-4-5",
        "Bash",
        &json!({"command": BASH, "description": "write the file"}),
    ));
    anthropic.push(Reply::anthropic_stream(
        "claude-sonnet-4-5",
        &["Done: ", "proof.txt is written."],
    ));
    let sidecar = Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n",
        anthropic.url("")
    ))
    .await;
    let (work, stdout) = claude_code(&sidecar, "claude-sonnet-4-5").await;
    let got = anthropic.received();
    let paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    assert_eq!(proof(&work), "from-the-sidecar", "{paths:?}\n{stdout}");
    assert!(stdout.contains("proof.txt is written"), "{stdout}");
    assert!(got
        .iter()
        .any(|r| anthropic_tool_result(&r.json()).is_some()));
}

/// Every Claude model routed to `provider` (a `type` and its mock), as `upstream`.
async fn routed_to(kind: &str, mock: &Mock, upstream: &str) -> Sidecar {
    let base = if kind == "openai" {
        mock.url("/v1")
    } else {
        mock.url("")
    };
    Sidecar::start(&format!(
        "providers:\n  up:\n    type: {kind}\n    base_url: \"{base}\"\n    api_key: sk-up\n\
         routes:\n  - match: \"*\"\n    provider: up\n    upstream_model: {upstream}\n"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_runs_a_bash_command_on_an_openai_model_within_its_output_limit() {
    let openai = Mock::start().await;
    openai.limit_max_tokens(32_768);
    openai.push(Reply::openai_tool_stream(
        "gpt-4.1",
        "Bash",
        &json!({"command": BASH, "description": "write the file"}),
    ));
    openai.push(Reply::openai_stream(
        "gpt-4.1",
        &["Done: ", "proof.txt is written."],
        std::time::Duration::ZERO,
    ));
    let sidecar = routed_to("openai", &openai, "gpt-4.1").await;
    let (work, stdout) = claude_code(&sidecar, "claude-sonnet-4-5").await;
    let got = openai.received();
    let asked: Vec<Value> = got
        .iter()
        .map(|r| {
            let body = r.json();
            let limit = &body["max_completion_tokens"];
            if limit.is_null() {
                body["max_tokens"].clone()
            } else {
                limit.clone()
            }
        })
        .collect();
    assert_eq!(proof(&work), "from-the-sidecar", "{asked:?}\n{stdout}");
    assert!(stdout.contains("proof.txt is written"), "{stdout}");
    assert!(
        asked
            .iter()
            .all(|m| m.as_u64().is_some_and(|m| m <= 32_768)),
        "{asked:?}"
    );
    let tool_result = got.iter().any(|r| {
        let messages = r.json()["messages"].clone();
        messages
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["role"] == "tool" && m["tool_call_id"] == "call_cli")
    });
    assert!(
        tool_result,
        "the command's output went back as a tool message"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_runs_a_bash_command_on_a_gemini_model() {
    let gemini = Mock::start_as(Flavor::Gemini).await;
    gemini.push(Reply::gemini_tool_stream(
        "Bash",
        &json!({"command": BASH, "description": "write the file"}),
    ));
    gemini.push(Reply::gemini(&["Done: ", "proof.txt is written."], true));
    let sidecar = routed_to("gemini", &gemini, "gemini-2.5-flash").await;
    let (work, stdout) = claude_code(&sidecar, "claude-sonnet-4-5").await;
    let got = gemini.received();
    let paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    assert_eq!(proof(&work), "from-the-sidecar", "{paths:?}\n{stdout}");
    assert!(stdout.contains("proof.txt is written"), "{stdout}");
    let answered = got
        .iter()
        .any(|r| r.json().to_string().contains("functionResponse"));
    assert!(
        answered,
        "the command's output went back as a functionResponse"
    );
}
