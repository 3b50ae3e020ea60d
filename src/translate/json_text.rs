//! JSON text read without a parser, where a fast path takes the bytes of a string as its
//! value: only when they need no unescaping and serde would accept them; optional strings
//! serde reads borrowed from the text; and values read in one pass by their shape
//! (`Shaped`), never built into a tree.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
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
}
