//! Fields the APIs give either as a string or as an array (OpenAI's `content` and `stop`,
//! Anthropic's `content` and `system`, the Responses API's `input`), read straight into one
//! of two variants.
//!
//! serde's `untagged` enums first read such a field into a buffer of their own, then try
//! each variant on that buffer in turn: a string was copied twice, an array read twice, and
//! an array given where the string variant came first built an error (its message
//! formatted) before the second variant was tried.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Reads a string as `text(..)` and an array of `T` as `list(..)`; anything else is an error
/// that names both.
pub(crate) fn text_or_list<'de, D, T, R>(
    d: D,
    text: fn(String) -> R,
    list: fn(Vec<T>) -> R,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(Either { text, list })
}

/// The visitor of [`text_or_list`]: what to make of each shape.
struct Either<T, R> {
    text: fn(String) -> R,
    list: fn(Vec<T>) -> R,
}

impl<'de, T: Deserialize<'de>, R> Visitor<'de> for Either<T, R> {
    type Value = R;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<R, E> {
        Ok((self.text)(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<R, E> {
        Ok((self.text)(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
        Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Field {
        Text(String),
        List(Vec<u32>),
    }

    impl<'de> Deserialize<'de> for Field {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            text_or_list(d, Field::Text, Field::List)
        }
    }

    #[test]
    fn a_string_or_an_array_and_nothing_else() {
        let read = |json: &str| serde_json::from_str::<Field>(json);
        assert_eq!(read(r#""a\"b""#).unwrap(), Field::Text("a\"b".into()));
        assert_eq!(read(r#""plain""#).unwrap(), Field::Text("plain".into()));
        assert_eq!(read("[1,2]").unwrap(), Field::List(vec![1, 2]));
        assert_eq!(read("[]").unwrap(), Field::List(vec![]));
        for bad in ["5", "{}", "null", "true"] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains("expected a string or an array"), "{bad}: {e}");
        }
        // An item of the wrong type is named as such, not as a mismatch of the whole.
        let e = read(r#"[1,"x"]"#).unwrap_err().to_string();
        assert!(e.contains("expected u32"), "{e}");
        // Read from a tree too (as a stored body is).
        let tree = serde_json::json!(["7"]);
        assert!(serde_json::from_value::<Field>(tree).is_err());
        let tree = serde_json::json!("t");
        assert_eq!(
            serde_json::from_value::<Field>(tree).unwrap(),
            Field::Text("t".into())
        );
    }

    #[test]
    fn a_request_body_reads_through_it() {
        use crate::body::JsonBody;
        use crate::translate::openai::{ChatRequest, Content, Stop};
        let typed = |json: &[u8]| JsonBody::parse(json).unwrap().to_typed::<ChatRequest>();
        let ok =
            typed(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"]}"#);
        let ok = ok.unwrap();
        assert!(matches!(&ok.messages[0].content, Some(Content::Text(t)) if t.text() == "hi"));
        assert!(matches!(&ok.stop, Some(Stop::Many(v)) if v == &["a", "b"]));
        let e = typed(br#"{"model":"m","messages":[{"role":"user","content":5}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid type: integer `5`, expected a string or an array"),
            "{e}"
        );
    }
}
