//! `${VAR}` and `${VAR:-default}` expansion in the config's string values.
//!
//! Expansion runs on the parsed YAML tree, string by string, never on the raw text: a value
//! taken from the environment (an API key with a `#` or `: ` in it) can then never change the
//! structure of the document.

use serde_yaml::Value;

/// A variable referenced with `${VAR}` (no default) that is not set: expanded to "" and
/// reported, so `check` can warn without refusing configs that leave optional keys unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVariable {
    pub path: String,
    pub name: String,
}

/// Expands every string in `value` in place, using `lookup` for variables.
///
/// Returns the variables that were referenced without a default and are not set, and the
/// paths of strings whose `${` is never closed (an error).
pub fn expand_tree(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<UnsetVariable>, Vec<String>> {
    let mut unset = Vec::new();
    let mut malformed = Vec::new();
    walk(value, "", lookup, &mut unset, &mut malformed);
    if malformed.is_empty() {
        Ok(unset)
    } else {
        Err(malformed)
    }
}

fn walk(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<UnsetVariable>,
    malformed: &mut Vec<String>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok((expanded, missing)) => {
                *s = expanded;
                unset.extend(missing.into_iter().map(|name| UnsetVariable {
                    path: path.to_string(),
                    name,
                }));
            }
            Err(()) => malformed.push(path.to_string()),
        },
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let key = key
                    .as_str()
                    .map_or_else(|| format!("{key:?}"), str::to_string);
                walk(child, &join(path, &key), lookup, unset, malformed);
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                walk(child, &format!("{path}[{i}]"), lookup, unset, malformed);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, lookup, unset, malformed),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Expands one string. `$$` is a literal `$`; a `$` not followed by `{` is kept as is.
/// Returns the expanded text and the names of unset variables that had no default.
fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), ()> {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(())?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            match (lookup(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(name.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_defaults() {
        assert_eq!(expand("${KEY}", &env).unwrap().0, "sk-1");
        assert_eq!(expand("a-${NOPE:-dflt}-b", &env).unwrap().0, "a-dflt-b");
        assert_eq!(expand("${EMPTY:-dflt}", &env).unwrap().0, "dflt");
        assert_eq!(expand("$$HOME and $x", &env).unwrap().0, "$HOME and $x");
        let (text, missing) = expand("x${NOPE}y", &env).unwrap();
        assert_eq!((text.as_str(), missing), ("xy", vec!["NOPE".to_string()]));
        assert!(expand("${KEY", &env).is_err());
    }

    #[test]
    fn walks_the_tree_and_names_paths() {
        let mut v: Value = serde_yaml::from_str(
            "providers:\n  openai:\n    api_key: \"${NOPE}\"\nlist: [\"${KEY}\"]",
        )
        .unwrap();
        let unset = expand_tree(&mut v, &env).unwrap();
        assert_eq!(unset[0].path, "providers.openai.api_key");
        assert_eq!(v["list"][0], Value::String("sk-1".into()));
        let mut bad: Value = serde_yaml::from_str("a: {b: \"${OOPS\"}").unwrap();
        assert_eq!(
            expand_tree(&mut bad, &env).unwrap_err(),
            vec!["a.b".to_string()]
        );
    }
}
