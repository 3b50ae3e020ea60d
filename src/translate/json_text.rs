//! JSON text read without a parser, where a fast path takes the bytes of a string as its
//! value: only when they need no unescaping and serde would accept them; optional strings
//! serde reads borrowed from the text; strings carried as their JSON text (`JsonString`);
//! and values read in one pass by their shape (`Shaped`), never built into a tree.

use crate::body::raw_json;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// Whether `text`, the bytes between a JSON string's quotes, is the string itself: no quote
/// or escape in it, and no raw control character (which serde refuses).
pub(crate) fn plain_string(text: &str) -> bool {
    !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// A type read in one pass by the shape of its JSON (with [`ByShape`], as a seed or as its
/// `Deserialize`'s visitor): an object key by key, or a list element by element,
/// where it reads that shape itself; anything else as a tree, as it was written (a tool
/// that is not an object is still refused as a tool, a schema that is not one is kept).
pub(crate) trait Shaped<'de>: Sized {
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Self::other)
    }

    fn list<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Self::other)
    }

    fn other(value: Value) -> Self;
}

/// The visitor of a [`Shaped`] type, and the seed that reads one where a value is read
/// (`next_value_seed`), for a type that is never a field of its own.
pub(crate) struct ByShape<T>(PhantomData<T>);

impl<'de, T: Shaped<'de>> DeserializeSeed<'de> for ByShape<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<T> ByShape<T> {
    pub(crate) fn new() -> Self {
        ByShape(PhantomData)
    }
}

impl<'de, T: Shaped<'de>> Visitor<'de> for ByShape<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::list(seq)
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::other(Value::Null))
    }

    fn visit_bool<E>(self, v: bool) -> Result<T, E> {
        Ok(T::other(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<T, E> {
        Ok(T::other(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<T, E> {
        Ok(T::other(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<T, E> {
        Ok(T::other(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::other(v.into()))
    }
}

/// An optional string that serde reads borrowed from the JSON text when it has no escapes.
/// serde borrows a field that is a `Cow<str>` itself, but copies every string of an
/// `Option<Cow<str>>`, `borrow` attribute or not; a field of this type (with
/// `#[serde(borrow)]`) is read as that option was, absent and `null` as `None`, and borrows.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct OptionalStr<'a>(pub Option<Cow<'a, str>>);

impl<'a> std::ops::Deref for OptionalStr<'a> {
    type Target = Option<Cow<'a, str>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for OptionalStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A `Cow<str>` field, which serde does borrow.
        #[derive(Deserialize)]
        struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
        Ok(OptionalStr(
            Option::<Borrowed>::deserialize(d)?.map(|b| b.0),
        ))
    }
}

/// A JSON string kept as its text, quotes and escapes included: a conversation's text goes
/// from the app's format into the provider's as it came, never unescaped and escaped again
/// (a coding agent's turn carries tens of kilobytes of file text in its tool results, and
/// the two copies were most of the cost of translating it). Read as text only where the
/// gateway looks into it.
#[derive(Debug, Clone)]
pub struct JsonString(Box<RawValue>);

impl JsonString {
    /// The string's text, unescaped: borrowed when it has no escapes.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        let raw = self.0.get();
        let inner = &raw[1..raw.len() - 1];
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        // The text is a JSON string (checked when it was made), so it reads as one.
        Cow::Owned(serde_json::from_str(raw).unwrap_or_default())
    }

    /// The string's JSON text, quotes included.
    pub(crate) fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The string as JSON text, to be written where a JSON value goes.
    pub(crate) fn into_raw(self) -> Box<RawValue> {
        self.0
    }

    /// A value given as JSON text, as a string: a string as it came, anything else as
    /// `of_tree` writes it, nothing as an empty string (a tool's result, which may come as
    /// text or as parts).
    pub(crate) fn of_value(raw: Option<Box<RawValue>>, of_tree: fn(Value) -> String) -> JsonString {
        let raw = match raw.map(JsonString::of_raw) {
            Some(Ok(text)) => return text,
            Some(Err(raw)) => raw,
            None => return JsonString::default(),
        };
        match serde_json::from_str(raw.get()) {
            Ok(tree) => of_tree(tree).into(),
            Err(_) => raw.get().into(),
        }
    }

    /// A JSON value's text as a string, if it is one.
    pub(crate) fn of_raw(raw: Box<RawValue>) -> Result<JsonString, Box<RawValue>> {
        if raw.get().starts_with('"') {
            Ok(JsonString(raw))
        } else {
            Err(raw)
        }
    }
}

impl From<&str> for JsonString {
    fn from(text: &str) -> JsonString {
        JsonString(crate::body::raw_string(text))
    }
}

impl From<String> for JsonString {
    fn from(text: String) -> JsonString {
        JsonString::from(text.as_str())
    }
}

impl Default for JsonString {
    fn default() -> JsonString {
        JsonString::from("")
    }
}

impl Serialize for JsonString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// JSON text read as it came, refused where serde refuses to read it as a value: serde_json
/// keeps a lone surrogate escape (`"\ud800"`) in text it skips but refuses it in a string it
/// reads, and these fields were read as strings before they were kept as text.
pub(crate) struct CheckedRaw(pub(crate) Box<RawValue>);

impl<'de> Deserialize<'de> for CheckedRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if may_hold_surrogate(raw.get()) {
            // Read as a value, which reads each string (skipping it does not check them).
            serde_json::from_str::<Value>(raw.get()).map_err(serde::de::Error::custom)?;
        }
        Ok(CheckedRaw(raw))
    }
}

/// Whether JSON text has an escape of a UTF-16 surrogate (`\uD800` to `\uDFFF`), or
/// something that looks like one.
fn may_hold_surrogate(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, br"\u").any(|at| {
        matches!(
            bytes.get(at + 2..at + 4),
            Some([b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])
        )
    })
}

/// What a value is, as serde names it in an error: "integer `5`", "map", ...
pub(crate) fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (_, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// A value read as a tree and kept as its JSON text: for a field serde may read from a
/// buffer of its own (a tagged enum's), which cannot give JSON text as it came.
pub(crate) fn tree_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<Box<RawValue>, D::Error> {
    Ok(raw_json(&Value::deserialize(d)?))
}

/// [`tree_as_text`] for an optional field (absent or `null`: `None`).
pub(crate) fn optional_tree_as_text<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.map(|tree| raw_json(&tree)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Fields<'a> {
        #[serde(borrow)]
        a: OptionalStr<'a>,
    }

    #[test]
    fn optional_strings_are_borrowed_when_they_have_no_escapes() {
        let read = |json| serde_json::from_str::<Fields>(json).map(|f| f.a.0);
        assert!(matches!(
            read(r#"{"a":"tok é"}"#),
            Ok(Some(Cow::Borrowed("tok é")))
        ));
        let escaped = read(r#"{"a":"a\"b\n"}"#).unwrap();
        assert!(matches!(&escaped, Some(Cow::Owned(s)) if s == "a\"b\n"));
        assert!(matches!(read(r#"{"a":null}"#), Ok(None)));
        assert!(matches!(read("{}"), Ok(None)));
        assert!(read(r#"{"a":1}"#).is_err());
        // Read as an Option<Cow<str>> field is: a struct written as an array must have it.
        assert!(read("[]").is_err());
        assert!(matches!(read(r#"["x"]"#), Ok(Some(_))));
    }

    #[test]
    fn only_text_that_reads_as_itself_is_plain() {
        for plain in ["", "tok é 🦊", "a/b <c> {d}", "\u{7f}"] {
            assert!(plain_string(plain), "{plain:?}");
            let quoted = format!("\"{plain}\"");
            assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), plain);
        }
        for not in ["a\"b", "a\\nb", "raw\u{1}", "tab\t"] {
            assert!(!plain_string(not), "{not:?}");
        }
    }

    #[test]
    fn a_json_string_is_kept_as_written_and_read_as_its_text() {
        let raw = |text: &str| RawValue::from_string(text.to_string()).unwrap();
        let written = JsonString::of_raw(raw(r#""caf\u00e9 \"q\"\n""#)).unwrap();
        assert_eq!(written.text(), "café \"q\"\n");
        assert_eq!(written.raw().get(), r#""caf\u00e9 \"q\"\n""#);
        // The same text written otherwise.
        assert_eq!(JsonString::from("café \"q\"\n").text(), written.text());
        let plain = JsonString::of_raw(raw(r#""tok é""#)).unwrap();
        assert!(matches!(plain.text(), Cow::Borrowed("tok é")));
        assert_eq!(JsonString::default().raw().get(), r#""""#);
        assert_eq!(JsonString::default().text(), "");
        for not_a_string in ["1", "null", "[\"a\"]", r#"{"a":"b"}"#] {
            assert!(
                JsonString::of_raw(raw(not_a_string)).is_err(),
                "{not_a_string}"
            );
        }
        let out = serde_json::to_string(&vec![written]).unwrap();
        assert_eq!(out, r#"["caf\u00e9 \"q\"\n"]"#);
    }
}
