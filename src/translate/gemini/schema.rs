//! A JSON Schema as Gemini's OpenAPI-subset `Schema` takes it, cleaned as it is read from the
//! app's schema: keywords Gemini refuses (`additionalProperties`, `$schema`, `$ref`,
//! `strict`, ...) dropped, `"type": [T, "null"]` turned into `type: T, nullable: true`, and
//! `const` into a one-value `enum`, through `properties`, `items` and `anyOf`. Read in one
//! pass, never built into a tree (a coding agent's tools are tens of kilobytes of schemas, on
//! every turn): the values it keeps are copied as the app wrote them.

use crate::translate::json_text::{ByShape, Shaped};
use indexmap::IndexMap;
use serde::de::{IgnoredAny, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// The schema keywords Gemini's `Schema` accepts; others are refused by it and dropped.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// A schema: an object's kept keywords, in the order they were written (one given twice
/// holds the place of its first and the value of its last, as a tree keeps it), or anything
/// else as it was.
#[derive(Debug, Clone)]
pub enum Schema {
    Object(Vec<(String, Keyword)>),
    Other(Value),
}

/// A kept keyword's value.
#[derive(Debug, Clone)]
pub enum Keyword {
    /// As the app wrote it.
    Text(Box<RawValue>),
    /// What the cleaning made, or a `type` (a word).
    Made(Value),
    /// `items`: a schema.
    Items(Box<Schema>),
    /// `properties`: each property's schema, by name.
    Properties(IndexMap<String, Schema>),
    /// `anyOf`'s schemas.
    Schemas(Vec<Schema>),
    /// A `const`, as the one value of an `enum`.
    Only(Box<RawValue>),
}

/// A keyword as it was read, before the object's keywords are cleaned: `type` and `const`
/// are cleaned by what the object holds once each key has its last value.
enum Read {
    Type(Value),
    Const(Box<RawValue>),
    Kept(Keyword),
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByShape::new())
    }
}

impl<'de> Shaped<'de> for Schema {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Schema, A::Error> {
        let mut read = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "type" => Read::Type(map.next_value()?),
                "const" => Read::Const(map.next_value()?),
                "properties" => {
                    let Properties(properties) = map.next_value_seed(ByShape::new())?;
                    Read::Kept(Keyword::Properties(properties))
                }
                "items" => Read::Kept(Keyword::Items(Box::new(map.next_value()?))),
                "anyOf" => {
                    let AnyOf(schemas) = map.next_value_seed(ByShape::new())?;
                    Read::Kept(Keyword::Schemas(schemas))
                }
                word if SCHEMA_KEYS.contains(&word) => Read::Kept(Keyword::Text(map.next_value()?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            keep(&mut read, key, value);
        }
        Ok(Schema::Object(cleaned(read)))
    }

    fn other(value: Value) -> Schema {
        Schema::Other(value)
    }
}

/// An object's keywords, each with its last value, cleaned in their order: a `type` list
/// becomes `nullable` and its first other type, a `const` the `enum`.
fn cleaned(read: Vec<(String, Read)>) -> Vec<(String, Keyword)> {
    let mut kept = Vec::with_capacity(read.len() + 1);
    for (key, value) in read {
        match value {
            Read::Type(Value::Array(types)) => {
                keep(
                    &mut kept,
                    "nullable".into(),
                    Keyword::Made(Value::Bool(true)),
                );
                if let Some(first) = types.into_iter().find(|t| t != "null") {
                    keep(&mut kept, key, Keyword::Made(first));
                }
            }
            Read::Type(one) => keep(&mut kept, key, Keyword::Made(one)),
            Read::Const(only) => keep(&mut kept, "enum".into(), Keyword::Only(only)),
            Read::Kept(keyword) => keep(&mut kept, key, keyword),
        }
    }
    kept
}

/// Sets `key` to `value`: in place if it is there (a key given twice holds the place of its
/// first), else after the others. Searched in turn: a schema object's list holds one entry
/// per keyword the cleaning reads, two dozen at most, however many keys it was given.
fn keep<V>(fields: &mut Vec<(String, V)>, key: String, value: V) {
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some((_, at)) => *at = value,
        None => fields.push((key, value)),
    }
}

/// `properties`: a schema by name; anything but an object is none.
struct Properties(IndexMap<String, Schema>);

impl<'de> Shaped<'de> for Properties {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Properties, A::Error> {
        let mut properties = IndexMap::new();
        while let Some((name, schema)) = map.next_entry()? {
            properties.insert(name, schema);
        }
        Ok(Properties(properties))
    }

    fn other(_: Value) -> Properties {
        Properties(IndexMap::new())
    }
}

/// `anyOf`: a list of schemas; anything else is the one variant, as it was.
struct AnyOf(Vec<Schema>);

impl<'de> Shaped<'de> for AnyOf {
    fn list<A: SeqAccess<'de>>(mut seq: A) -> Result<AnyOf, A::Error> {
        let mut schemas = Vec::new();
        while let Some(schema) = seq.next_element()? {
            schemas.push(schema);
        }
        Ok(AnyOf(schemas))
    }

    fn other(value: Value) -> AnyOf {
        AnyOf(vec![Schema::Other(value)])
    }
}

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Schema::Object(kept) => s.collect_map(kept.iter().map(|(k, v)| (k, v))),
            Schema::Other(value) => value.serialize(s),
        }
    }
}

impl Serialize for Keyword {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keyword::Text(text) => text.serialize(s),
            Keyword::Made(value) => value.serialize(s),
            Keyword::Items(schema) => schema.serialize(s),
            Keyword::Properties(properties) => properties.serialize(s),
            Keyword::Schemas(schemas) => schemas.serialize(s),
            Keyword::Only(value) => std::slice::from_ref(value).serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map};

    /// The cleaning done on a tree, as the translation did it before it read schemas as
    /// text: what [`Schema`] must write.
    fn cleaned_tree(schema: Value) -> Value {
        let Value::Object(object) = schema else {
            return schema;
        };
        let mut out = Map::new();
        for (key, value) in object {
            match key.as_str() {
                "type" => match value {
                    Value::Array(types) => {
                        let non_null: Vec<Value> =
                            types.into_iter().filter(|t| t != "null").collect();
                        out.insert("nullable".into(), Value::Bool(true));
                        if let Some(first) = non_null.into_iter().next() {
                            out.insert("type".into(), first);
                        }
                    }
                    other => {
                        out.insert(key, other);
                    }
                },
                "properties" => {
                    let props = match value {
                        Value::Object(props) => props
                            .into_iter()
                            .map(|(name, s)| (name, cleaned_tree(s)))
                            .collect(),
                        _ => Map::new(),
                    };
                    out.insert(key, Value::Object(props));
                }
                "items" => {
                    out.insert(key, cleaned_tree(value));
                }
                "anyOf" => {
                    let variants = match value {
                        Value::Array(v) => v.into_iter().map(cleaned_tree).collect(),
                        other => vec![other],
                    };
                    out.insert(key, Value::Array(variants));
                }
                "const" => {
                    out.insert("enum".into(), Value::Array(vec![value]));
                }
                k if SCHEMA_KEYS.contains(&k) => {
                    out.insert(key, value);
                }
                _ => {}
            }
        }
        Value::Object(out)
    }

    /// The schema read as text and written, beside the tree's cleaning written: the same
    /// JSON, key order included. (What it keeps is the app's text, spelling, spacing and any
    /// key given twice in it included: read back as a tree, as the tree read it.)
    fn both(text: &str) -> (String, String) {
        let schema: Schema = serde_json::from_str(text).unwrap();
        let read: Value = serde_json::from_str(&serde_json::to_string(&schema).unwrap()).unwrap();
        let tree: Value = serde_json::from_str(text).unwrap();
        (read.to_string(), cleaned_tree(tree).to_string())
    }

    #[test]
    fn a_schema_is_cleaned_as_it_is_read() {
        let text = r#"{"$schema": "x", "type": "object", "additionalProperties": false,
            "properties": {"a": {"type": ["string", "null"], "description": "A \"quoted\" word"},
                "b": {"type": "array", "items": {"const": 3, "title": "t"}},
                "c": {"anyOf": [{"type": "integer", "strict": true}, {"type": "null"}]}},
            "required": ["a"]}"#;
        let (read, tree) = both(text);
        assert_eq!(read, tree);
        assert_eq!(
            serde_json::from_str::<Value>(&read).unwrap(),
            json!({"type": "object",
                "properties": {"a": {"nullable": true, "type": "string", "description": "A \"quoted\" word"},
                    "b": {"type": "array", "items": {"enum": [3], "title": "t"}},
                    "c": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
                "required": ["a"]})
        );
    }

    /// A keyword's value is copied as the app wrote it, spelling and spacing included.
    #[test]
    fn kept_values_are_the_apps_text() {
        let schema: Schema = serde_json::from_str(r#"{"maximum": 1.50, "enum": [ "a" ]}"#).unwrap();
        let written = serde_json::to_string(&schema).unwrap();
        assert_eq!(written, r#"{"maximum":1.50,"enum":[ "a" ]}"#);
    }

    /// Odd shapes are cleaned as the tree was: a schema that is not an object, properties
    /// that are not one, an `anyOf` that is not a list, a keyword given twice, a `type`
    /// list of nulls only.
    #[test]
    fn odd_shapes_are_cleaned_as_the_tree_was() {
        for text in [
            "true",
            "[1, {\"a\": 2}]",
            r#"{"properties": 3}"#,
            r#"{"properties": [{"type": "x"}]}"#,
            r##"{"anyOf": {"type": "string", "$ref": "#"}}"##,
            r#"{"type": "string", "title": "a", "type": "integer"}"#,
            r#"{"type": ["null"], "nullable": false}"#,
            r#"{"items": [{"type": "string", "x": 1}]}"#,
            r#"{"const": null, "enum": [1], "const": {"a": [1]}}"#,
            r#"{"type": ["string", "null"], "type": "integer"}"#,
            r#"{"type": "string", "type": ["null"]}"#,
            r#"{"nullable": false, "type": ["string", "null"], "nullable": false}"#,
            r#"{"properties": {"a": {"type": "x"}, "b": {}, "a": {"const": 1}}}"#,
        ] {
            let (read, tree) = both(text);
            assert_eq!(read, tree, "{text}");
        }
    }

    /// Schema-like JSON text: the keywords the cleaning reads, one it keeps as it is, one it
    /// drops, nested through `properties`, `items` and `anyOf`, and keys given twice (the
    /// text is written from the fields as generated: a tree would merge them).
    fn schema_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(json!("string")),
            Just(json!(null)),
            Just(json!(["integer", "null"])),
            Just(json!(["null"])),
            Just(json!([1, "null", "a"])),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            "[a-z\"\\\\ ]{0,6}".prop_map(Value::from),
        ]
        .prop_map(|v| v.to_string());
        leaf.prop_recursive(4, 64, 6, |inner| {
            let keys = prop_oneof![
                Just("type"),
                Just("properties"),
                Just("items"),
                Just("anyOf"),
                Just("const"),
                Just("enum"),
                Just("nullable"),
                Just("description"),
                Just("additionalProperties"),
            ];
            prop_oneof![
                prop::collection::vec((keys, inner.clone()), 0..7).prop_map(|fields| {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
                prop::collection::vec(inner, 0..3)
                    .prop_map(|items| format!("[{}]", items.join(","))),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_schema_is_cleaned_as_the_tree_was(text in schema_text()) {
            let (read, cleaned) = both(&text);
            prop_assert_eq!(read, cleaned);
        }
    }
}
