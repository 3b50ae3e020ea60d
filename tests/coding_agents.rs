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
        .args(["-c", "web_search=\"disabled\"", "-m", "claude-x"])
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
}
