//! What a reload changed, for its log line: names and counts only, never a value (keys are
//! said to be rotated, not shown).

use crate::config::{Config, ProviderConfig};
use std::collections::BTreeMap;

/// E.g. `providers added: b; keys rotated: a; routes: 2 -> 3`, or `no setting changed` (a
/// file rewritten with an equivalent config).
pub fn describe(old: &Config, new: &Config) -> String {
    let mut parts = Vec::new();
    providers(old, new, &mut parts);
    if old.routes != new.routes {
        let count = |c: &Config| c.routes.as_ref().map_or(0, Vec::len);
        parts.push(format!("routes: {} -> {}", count(old), count(new)));
    }
    names(
        "load_balance_groups",
        &old.load_balance_groups,
        &new.load_balance_groups,
        &mut parts,
    );
    names("prompts", &old.prompts, &new.prompts, &mut parts);
    let sections = [
        ("server", old.server != new.server),
        ("auth", old.auth != new.auth),
        ("respan_prompts", old.respan_prompts != new.respan_prompts),
        ("cache", old.cache != new.cache),
        ("retry", old.retry != new.retry),
        ("responses", old.responses != new.responses),
    ];
    for (name, changed) in sections {
        if changed {
            parts.push(format!("{name} changed"));
        }
    }
    if parts.is_empty() {
        "no setting changed".to_string()
    } else {
        parts.join("; ")
    }
}

fn providers(old: &Config, new: &Config, parts: &mut Vec<String>) {
    let by_name = |c: &Config| -> BTreeMap<String, ProviderConfig> {
        c.providers
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (old, new) = (by_name(old), by_name(new));
    let mut changed = Vec::new();
    let mut rotated = Vec::new();
    for (name, n) in &new {
        let Some(o) = old.get(name) else { continue };
        if !same_endpoint(o, n) {
            changed.push(name.as_str());
        }
        if o.api_key != n.api_key {
            rotated.push(name.as_str());
        }
    }
    list(
        "providers added",
        new.keys().filter(|k| !old.contains_key(*k)),
        parts,
    );
    list(
        "providers removed",
        old.keys().filter(|k| !new.contains_key(*k)),
        parts,
    );
    list("providers changed", changed, parts);
    list("keys rotated", rotated, parts);
}

/// Everything about a provider but its key.
fn same_endpoint(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    a.kind == b.kind
        && a.base_url == b.base_url
        && a.api_key_file == b.api_key_file
        && a.api_version == b.api_version
        && a.headers == b.headers
}

/// Added, removed and changed entries of a named section.
fn names<V: PartialEq>(
    section: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    parts: &mut Vec<String>,
) {
    let added = new.keys().filter(|k| !old.contains_key(*k));
    let removed = old.keys().filter(|k| !new.contains_key(*k));
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k);
    list(&format!("{section} added"), added, parts);
    list(&format!("{section} removed"), removed, parts);
    list(&format!("{section} changed"), changed, parts);
}

fn list<S: AsRef<str>>(label: &str, names: impl IntoIterator<Item = S>, parts: &mut Vec<String>) {
    let names: Vec<S> = names.into_iter().collect();
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        parts.push(format!("{label}: {}", names.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, std::path::Path::new("."), &|_| None)
            .unwrap()
            .config
    }

    #[test]
    fn names_what_changed_and_never_a_key() {
        let old = config(
            "providers:\n  a:\n    type: openai\n    api_key: sk-old-1\n  b:\n    type: echo\n\
             routes:\n  - match: \"*\"\n    provider: a\n",
        );
        let new = config(
            "providers:\n  a:\n    type: openai\n    api_key: sk-new-2\n  c:\n    type: echo\n\
             routes:\n  - match: x\n    provider: c\n  - match: \"*\"\n    provider: a\n\
             retry:\n  num_retries: 5\n",
        );
        let text = describe(&old, &new);
        assert_eq!(
            text,
            "providers added: c; providers removed: b; keys rotated: a; routes: 1 -> 2; retry changed"
        );
        assert_eq!(describe(&old, &old), "no setting changed");
    }
}
