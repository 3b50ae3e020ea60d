//! Hot reload: file changes (an editor's rename, a kubelet `..data` swap) and SIGHUP put a
//! new config in force without a restart; a bad one is refused whole.

use crate::support::{Mock, Reply, Sidecar};
use crate::{route, status_of, stream, two_providers, within};
use std::os::unix::fs::symlink;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_new_route_serves_within_a_second_and_20_reloads_are_timed() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let sidecar = Sidecar::start(&two_providers(&a, &b, &route("gpt-*", "a"))).await;
    assert_eq!(status_of(&sidecar, "new-0").await, 404);
    let version = sidecar.admin_json("/config").await["version"].clone();
    let mut took = Vec::new();
    for i in 1..=20 {
        let routes = format!("{}{}", route(&format!("new-{i}"), "b"), route("gpt-*", "a"));
        sidecar.rewrite_config(&two_providers(&a, &b, &routes));
        let served = b.count();
        took.push(
            within(SECOND, "the new route", || async {
                status_of(&sidecar, &format!("new-{i}")).await == 200 && b.count() > served
            })
            .await,
        );
    }
    took.sort();
    eprintln!(
        "file change to new config serving, 20 reloads: p50 {:?}, max {:?}",
        took[10], took[19]
    );
    let view = sidecar.admin_json("/config").await;
    assert_ne!(view["version"], version);
    assert!(view["last_reload_error"].is_null());
    let reloads = sidecar
        .metric("respan_config_reloads_total", &[("result", "success")])
        .await;
    assert_eq!(reloads, 20.0);
    assert!(sidecar.log().contains("config reloaded: routes: 1 -> 2"));
}

#[tokio::test]
async fn a_bad_config_is_refused_whole_and_the_old_one_serves() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let good = two_providers(&a, &b, &route("*", "a"));
    let sidecar = Sidecar::start(&good).await;
    let failures = || sidecar.metric("respan_config_reloads_total", &[("result", "failure")]);
    sidecar.rewrite_config("providers: [");
    within(SECOND, "a refused reload", || async {
        failures().await == 1.0
    })
    .await;
    let error = sidecar.admin_json("/config").await["last_reload_error"].clone();
    assert!(
        error.as_str().unwrap().contains("not valid YAML"),
        "{error}"
    );
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    // Every problem, each at its YAML path; none is half applied.
    let bad = two_providers(&a, &b, &route("*", "missing"))
        .replace("type: openai\n    base_url", "type: nope\n    base_url");
    sidecar.rewrite_config(&bad);
    within(SECOND, "a second refusal", || async {
        failures().await == 2.0
    })
    .await;
    let error = sidecar.admin_json("/config").await["last_reload_error"].clone();
    let error = error.as_str().unwrap();
    assert!(error.contains("providers.a.type"), "{error}");
    assert!(error.contains("routes[0].provider"), "{error}");
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    assert_eq!(a.count(), 2);
    assert!(sidecar.log().contains("config reload refused"));
    // A good config again clears the error.
    sidecar.rewrite_config(&two_providers(&a, &b, &route("*", "b")));
    within(SECOND, "the fixed config", || async {
        sidecar.admin_json("/config").await["last_reload_error"].is_null()
    })
    .await;
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    assert_eq!(b.count(), 1);
}

/// What the kubelet does to a mounted Secret: the new files in a new timestamped directory,
/// a `..data_tmp` symlink to it renamed over `..data`, the old directory removed.
fn kubelet_update(dir: &std::path::Path, version: &str, key: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api-key"), key).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(format!("..{version}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test]
async fn a_key_rotated_by_a_kubelet_symlink_swap_reaches_the_upstream() {
    let mock = Mock::start().await;
    let secret = tempfile::tempdir().unwrap();
    kubelet_update(secret.path(), "2026_12_01", "sk-first\n");
    symlink("..data/api-key", secret.path().join("api-key")).unwrap();
    let key_file = secret.path().join("api-key");
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key_file: \"{}\"\n",
        mock.url("/v1"),
        key_file.display()
    );
    let sidecar = Sidecar::start(&config).await;
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    assert_eq!(mock.last().header("authorization"), Some("Bearer sk-first"));
    kubelet_update(secret.path(), "2026_12_02", "sk-second\n");
    within(SECOND, "the rotated key", || async {
        status_of(&sidecar, "gpt-4o").await == 200
            && mock.last().header("authorization") == Some("Bearer sk-second")
    })
    .await;
    assert!(sidecar.log().contains("keys rotated: oa"));
    assert!(!sidecar.log().contains("sk-second"));
    // A key file caught empty is a refused reload, not a provider without a key.
    kubelet_update(secret.path(), "2026_12_03", "");
    within(SECOND, "the refused empty key", || async {
        let view = sidecar.admin_json("/config").await;
        view["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("providers.oa.api_key_file") && e.contains("is empty"))
    })
    .await;
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    assert_eq!(
        mock.last().header("authorization"),
        Some("Bearer sk-second")
    );
}

#[tokio::test]
async fn sighup_reloads_what_no_watch_sees() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let sidecar = Sidecar::start(&two_providers(&a, &b, &route("*", "a"))).await;
    // The config becomes a link to a file elsewhere: edits there raise no event here.
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("config.yaml");
    std::fs::copy(sidecar.config_path(), &real).unwrap();
    let link = sidecar.dir().join("link.tmp");
    symlink(&real, &link).unwrap();
    std::fs::rename(&link, sidecar.config_path()).unwrap();
    // That rename is seen (and found to change nothing) before the edit below.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let text = std::fs::read_to_string(&real).unwrap();
    std::fs::write(&real, text.replace("provider: a", "provider: b")).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    assert_eq!((a.count(), b.count()), (1, 0), "reloaded without SIGHUP");
    sidecar.signal("HUP");
    within(SECOND, "the reload on SIGHUP", || async {
        status_of(&sidecar, "gpt-4o").await == 200 && b.count() == 1
    })
    .await;
    assert!(sidecar.log().contains("SIGHUP: reloading the config"));
    // With nothing changed, SIGHUP still reloads: counted, logged, `loaded_at` moved.
    let reloaded = || sidecar.metric("respan_config_reloads_total", &[("result", "success")]);
    let (count, loaded_at) = (
        reloaded().await,
        sidecar.admin_json("/config").await["loaded_at"].clone(),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    sidecar.signal("HUP");
    within(SECOND, "the reload of an unchanged config", || async {
        reloaded().await == count + 1.0
    })
    .await;
    assert_ne!(sidecar.admin_json("/config").await["loaded_at"], loaded_at);
    assert!(sidecar
        .log()
        .contains("config reloaded: no setting changed"));
}

#[tokio::test]
async fn a_stream_begun_before_a_reload_finishes_on_the_old_route() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let pieces: Vec<String> = (0..8).map(|i| format!("p{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    a.push(Reply::openai_stream(
        "gpt-4o",
        &pieces,
        Duration::from_millis(100),
    ));
    let sidecar = Sidecar::start(&two_providers(&a, &b, &route("*", "a"))).await;
    let mut response = crate::support::post_chat(&sidecar, &stream("gpt-4o")).await;
    let mut text = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    sidecar.rewrite_config(&two_providers(&a, &b, &route("*", "b")));
    within(SECOND, "the new route", || async {
        status_of(&sidecar, "gpt-4o").await == 200 && b.count() > 0
    })
    .await;
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for piece in &pieces {
        assert!(text.contains(piece), "{piece} missing from {text}");
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

/// Requests in a loop until `stop`: every answer must be whole (streams to `[DONE]`).
async fn steady_load(
    sidecar: std::sync::Arc<Sidecar>,
    streaming: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let client = crate::support::client();
    let mut served = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let body = if streaming {
            stream("gpt-4o")
        } else {
            crate::support::chat("gpt-4o", "hi")
        };
        let response = client
            .post(sidecar.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        if streaming {
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        } else {
            assert!(text.contains("mock answer"), "{text}");
        }
        served += 1;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_fail_nothing_and_leak_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (a, b) = (Mock::start().await, Mock::start().await);
    // Big enough (200 routes) that a snapshot kept alive by mistake shows in the RSS.
    let config = |n: usize| {
        let routes: String = (0..200)
            .map(|i| {
                route(
                    &format!("model-{n}-{i}"),
                    if i % 2 == 0 { "a" } else { "b" },
                )
            })
            .collect();
        let provider = if n % 2 == 0 { "a" } else { "b" };
        two_providers(&a, &b, &format!("{routes}{}", route("*", provider)))
    };
    let sidecar = Arc::new(Sidecar::start(&config(0)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..6)
        .map(|i| tokio::spawn(steady_load(sidecar.clone(), i % 2 == 1, stop.clone())))
        .collect();
    let mut rss_at_20 = 0;
    for n in 1..=100 {
        sidecar.rewrite_config(&config(n));
        // SIGHUP reloads at once (the file watch may count one more, or find nothing new).
        let reloaded = || sidecar.metric("respan_config_reloads_total", &[("result", "success")]);
        let before = reloaded().await;
        sidecar.signal("HUP");
        within(SECOND, "the reload", || async { reloaded().await > before }).await;
        if n == 20 {
            rss_at_20 = sidecar.rss_kib();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for task in load {
        served += task.await.unwrap();
    }
    let rss_at_100 = sidecar.rss_kib();
    eprintln!("{served} requests during 100 reloads; RSS after 20: {rss_at_20} KiB, after 100: {rss_at_100} KiB");
    assert!(served > 100, "{served}");
    assert!(
        rss_at_100 < rss_at_20 + 4096,
        "RSS grew from {rss_at_20} to {rss_at_100} KiB"
    );
    assert_eq!(
        sidecar
            .metric("respan_config_reloads_total", &[("result", "failure")])
            .await,
        0.0
    );
}
