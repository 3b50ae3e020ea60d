//! A JSON request body parsed one level deep.
//!
//! Routing needs `model`, `stream` and the Respan parameters, all top-level keys; the
//! conversation (often most of the bytes) only has to be checked and carried. So the body is
//! parsed into its top-level keys with each value kept as raw JSON text, validated but never
//! built into a tree, and written back out in the original key order with only the touched
//! keys changed.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A value the gateway makes, as JSON text: for a field carried as text (a schema, an
/// output item) or set on a body. Its own values always serialise (`null` if one did not).
pub(crate) fn raw_json(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_default()
}

/// A JSON object, one level deep, in document order. Keys and values are borrowed from the
/// request bytes it was parsed from (the conversation is never copied); set ones are owned.
#[derive(Debug, Clone, Default)]
pub struct JsonBody<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, RawValue>)>,
}

/// Why a request body is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("request body is nested deeper than {0} levels")]
    TooDeep(usize),
}

impl<'a> JsonBody<'a> {
    /// Parses in one pass: the conversation is validated, never copied or built into a tree.
    pub fn parse(bytes: &'a [u8]) -> Result<JsonBody<'a>, BodyError> {
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            // Valid JSON of another type than an object.
            serde_json::error::Category::Data => BodyError::NotObject,
            _ => BodyError::NotJson(e.to_string()),
        })
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// A key's value unless it is `null`: as serde reads a field that is an `Option`.
    pub fn get_non_null(&self, key: &str) -> Option<&RawValue> {
        self.get(key).filter(|v| v.get() != "null")
    }

    /// Removes and returns a key.
    pub fn take(&mut self, key: &str) -> Option<Cow<'a, RawValue>> {
        let pos = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(pos).1)
    }

    /// Sets a key, keeping its position if it exists, appending it otherwise.
    pub fn set(&mut self, key: impl Into<Cow<'a, str>>, value: Cow<'a, RawValue>) {
        let key = key.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key, value)),
        }
    }

    /// The keys and values in document order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The keys and values in document order, handed over.
    pub fn into_fields(self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, RawValue>)> {
        self.fields.into_iter()
    }

    /// A copy that borrows nothing (for bodies parsed from short-lived bytes).
    pub fn into_owned(self) -> JsonBody<'static> {
        let fields = self.fields.into_iter();
        JsonBody {
            fields: fields
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }

    /// Reads a key as a typed value; `Ok(None)` when absent, `Err` (the serde message) when it
    /// has another type.
    pub fn get_as<'b, T: Deserialize<'b>>(&'b self, key: &str) -> Result<Option<T>, String> {
        self.get(key)
            .map(|raw| serde_json::from_str(raw.get()).map_err(|e| e.to_string()))
            .transpose()
    }

    /// The whole object as a typed value: each top-level value is parsed once, straight from
    /// its raw text (the respan parameters are already gone by then).
    pub fn to_typed<'b, T: Deserialize<'b>>(&'b self) -> Result<T, serde_json::Error> {
        T::deserialize(serde::de::value::MapDeserializer::new(self.fields()))
    }

    /// Writes the object out, replacing (or appending) `overrides` and leaving out `skip`.
    pub fn encode(&self, overrides: &[(&str, &RawValue)], skip: &[&str]) -> Vec<u8> {
        let size = self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4);
        let mut out = Vec::with_capacity(size.sum::<usize>() + 64);
        out.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, key: &str, value: &RawValue| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json_string(out, key);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        };
        for (key, value) in &self.fields {
            if skip.contains(&&**key) {
                continue;
            }
            let value = overrides
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&**value, |(_, v)| *v);
            put(&mut out, key, value);
        }
        for (key, value) in overrides {
            if self.get(key).is_none() && !skip.contains(key) {
                put(&mut out, key, value);
            }
        }
        out.push(b'}');
        out
    }
}

/// Whether the arrays and objects of a JSON text nest at most `max_depth` deep (brackets
/// inside strings do not count). Text that is not JSON may pass: the parser refuses it.
/// A body's fields are bounded so (the parse skips a value's text without recursing, so
/// serde's own recursion limit never sees a deep conversation that a provider's parser
/// would then be handed).
pub fn nesting_within(bytes: &[u8], max_depth: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(found) = memchr::memchr3(b'"', b'[', b'{', &bytes[at..]) {
        // Closers between here and the opener found only lower the depth.
        depth = depth.saturating_sub(closers(&bytes[at..at + found]));
        at += found;
        if bytes[at] == b'"' {
            at = string_end(bytes, at + 1);
            continue;
        }
        depth += 1;
        if depth > max_depth {
            return false;
        }
        at += 1;
    }
    true
}

fn closers(text: &[u8]) -> usize {
    memchr::memchr2_iter(b']', b'}', text).count()
}

/// The index just past the string whose contents start at `from`: past the first quote
/// not escaped, one after an even run of backslashes (none, `\\`, ...) within the string.
/// Quotes are searched for alone: a file's text has an escape every few bytes (`\n`), and
/// stopping at each cost more than the rest of the scan.
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(found) = memchr::memchr(b'"', &bytes[at..]) {
        let quote = at + found;
        let run = bytes[from..quote]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if run % 2 == 0 {
            return quote + 1;
        }
        at = quote + 1;
    }
    bytes.len()
}

/// The index just past the value that begins at `at` in JSON text known to be valid (a
/// [`JsonBody`]'s values are checked when the body is parsed), and how deep its arrays and
/// objects nest (0 for a string, a number, ...), found without reading it: strings are
/// skipped by their quotes, brackets counted between them. For scanning a conversation's
/// outline, where parsing every string again was most of the cost.
pub(crate) fn value_end(bytes: &[u8], at: usize) -> (usize, usize) {
    match bytes.get(at) {
        Some(b'"') => (string_end(bytes, at + 1), 0),
        Some(b'[' | b'{') => {
            let (mut depth, mut deepest, mut i) = (0usize, 0, at);
            while let Some(&byte) = bytes.get(i) {
                match byte {
                    b'"' => {
                        i = string_end(bytes, i + 1);
                        continue;
                    }
                    b'[' | b'{' => {
                        depth += 1;
                        deepest = deepest.max(depth);
                    }
                    b']' | b'}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return (i + 1, deepest);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            (bytes.len(), deepest)
        }
        // A number, `true`, `false` or `null`: up to what may follow a value.
        _ => {
            let end = bytes[at.min(bytes.len())..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t'))
                .map_or(bytes.len(), |n| at + n);
            (end, 0)
        }
    }
}

/// Appends `s` as a JSON string literal.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Raw JSON for a string value (for overrides such as a renamed `model`).
pub fn raw_string(s: &str) -> Box<RawValue> {
    // Written by serde_json, the text is not checked again (a second and a third pass over
    // what may be a whole file's text). Writing a string cannot fail; "" if it did.
    serde_json::value::to_raw_value(s).unwrap_or_else(|_| empty_string())
}

fn empty_string() -> Box<RawValue> {
    RawValue::from_string("\"\"".to_string()).unwrap_or_default()
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonBody<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
            type Value = JsonBody<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonBody<'a>, A::Error> {
                // Room for a typical request's top level without growing.
                let mut body = JsonBody {
                    fields: Vec::with_capacity(map.size_hint().unwrap_or(8)),
                };
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    // Duplicate keys: the last one wins, as in serde_json's own maps.
                    body.set(key, Cow::Borrowed(value));
                }
                Ok(body)
            }
        }
        d.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

/// An object key: borrowed from the input unless it has escapes to undo (serde's own
/// `Cow<str>` always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string's end as it was found before: at each quote or backslash, a backslash
    /// skipping the byte after it.
    fn string_end_by_escapes(bytes: &[u8], mut from: usize) -> usize {
        while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[from..]) {
            from += found;
            if bytes[from] == b'"' {
                return from + 1;
            }
            from += 2;
            if from >= bytes.len() {
                break;
            }
        }
        bytes.len()
    }

    proptest::proptest! {
        /// Any bytes, from any place: the string ends where it did, escapes in runs of any
        /// length (`\\\"`) included.
        #[test]
        fn a_string_ends_where_its_escapes_say(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'"', b'\\', b'a', b'n', b'[', b'{', 0xc3]),
                0..64,
            ),
            from in 0usize..64,
        ) {
            let from = from.min(bytes.len());
            proptest::prop_assert_eq!(string_end(&bytes, from), string_end_by_escapes(&bytes, from));
        }
    }

    #[test]
    fn a_value_ends_where_its_text_does() {
        for value in [
            r#""a\"]}""#,
            r#"{"a":["]",{"b":"}\\"}],"c":{}}"#,
            "[[1,2],[]]",
            "-1.5e3",
            "true",
            "null",
        ] {
            for after in ["", ",1", "]", "}", " ,"] {
                let text = format!("{value}{after}");
                assert_eq!(value_end(text.as_bytes(), 0).0, value.len(), "{text}");
            }
        }
        assert_eq!(value_end(br#"[1,"x"]"#, 3), (6, 0));
        // How deep it nests, brackets in strings not counted.
        assert_eq!(value_end(br#"{"a":["]",{"b":"}\\"}],"c":{}}"#, 0).1, 3);
        assert_eq!(value_end(b"[[1,2],[]]", 0).1, 2);
        assert_eq!(value_end(br#""[[""#, 0).1, 0);
    }

    #[test]
    fn round_trips_untouched_values_byte_for_byte() {
        let text = r#"{"model":"a","messages":[{"role":"user","content":"hi \u00e9"}],"n": 1}"#;
        let body = JsonBody::parse(text.as_bytes()).unwrap();
        let out = String::from_utf8(body.encode(&[], &[])).unwrap();
        assert_eq!(
            out,
            r#"{"model":"a","messages":[{"role":"user","content":"hi \u00e9"}],"n":1}"#
        );
    }

    #[test]
    fn overrides_skips_and_appends() {
        let mut body = JsonBody::parse(br#"{"model":"a","x":1,"y":2}"#).unwrap();
        assert_eq!(body.take("y").unwrap().get(), "2");
        let model = raw_string("b\"c");
        let extra = raw_string("z");
        let out = body.encode(&[("model", &model), ("new", &extra)], &["x"]);
        assert_eq!(out, br#"{"model":"b\"c","new":"z"}"#);
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert_eq!(JsonBody::parse(b"[1]").unwrap_err(), BodyError::NotObject);
        assert!(matches!(
            JsonBody::parse(b"{\"a\":"),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(JsonBody::parse(b""), Err(BodyError::NotJson(_))));
        assert!(matches!(
            JsonBody::parse(b"{} x"),
            Err(BodyError::NotJson(_))
        ));
    }

    #[test]
    fn nesting_is_bounded_outside_strings() {
        let deep = |n: usize| format!("{{\"m\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(nesting_within(deep(63).as_bytes(), 64));
        assert!(!nesting_within(deep(64).as_bytes(), 64));
        assert!(!nesting_within(deep(100_000).as_bytes(), 64));
        // Siblings do not add up; brackets and escaped quotes in strings do not count.
        let wide = format!("{{\"a\":[{}]}}", vec!["[[1]]"; 1000].join(","));
        assert!(nesting_within(wide.as_bytes(), 4));
        let text = r#"{"a":"[[[[\"{{{{\\","b":[1]}"#;
        assert!(nesting_within(text.as_bytes(), 2));
        assert!(nesting_within(b"{\"a\":\"unterminated \\", 1));
        // The parse skips a value's text without recursing: however deep, it is bounded
        // after (`dispatch::shape::bound`).
        assert!(JsonBody::parse(deep(100_000).as_bytes()).is_ok());
    }

    #[test]
    fn whole_typed_reads() {
        #[derive(Deserialize)]
        struct T {
            model: String,
            n: Option<u32>,
        }
        let body = JsonBody::parse(br#"{"model":"m","extra":[1,{"a":2}],"n":3}"#).unwrap();
        let t: T = body.to_typed().unwrap();
        assert_eq!((t.model.as_str(), t.n), ("m", Some(3)));
        assert!(body.to_typed::<T>().is_ok());
        let bad = JsonBody::parse(br#"{"model":1}"#).unwrap();
        assert!(bad.to_typed::<T>().is_err());
    }

    #[test]
    fn keys_with_escapes_are_read_unescaped() {
        let body = JsonBody::parse(br#"{"mo\u0064el":"m","a\"b":1}"#).unwrap();
        assert_eq!(body.get("model").unwrap().get(), r#""m""#);
        assert_eq!(body.encode(&[], &[]), br#"{"model":"m","a\"b":1}"#);
    }

    #[test]
    fn typed_reads() {
        let body = JsonBody::parse(br#"{"model":"m","stream":"yes","last":1,"last":2}"#).unwrap();
        assert_eq!(
            body.get_as::<String>("model").unwrap().as_deref(),
            Some("m")
        );
        assert!(body.get_as::<bool>("stream").is_err());
        assert_eq!(body.get_as::<bool>("absent").unwrap(), None);
        assert_eq!(body.get_as::<u32>("last").unwrap(), Some(2));
    }
}
