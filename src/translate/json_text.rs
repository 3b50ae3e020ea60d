//! JSON text read without a parser, where a fast path takes the bytes of a string as its
//! value: only when they need no unescaping and serde would accept them; and optional
//! strings serde reads borrowed from the text.

use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// Whether `text`, the bytes between a JSON string's quotes, is the string itself: no quote
/// or escape in it, and no raw control character (which serde refuses).
pub(crate) fn plain_string(text: &str) -> bool {
    !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// An optional string, borrowed from the JSON text when it has no escapes: for a field
/// `#[serde(borrow, default, deserialize_with = "optional")]`. serde borrows a field that is
/// a `Cow<str>` itself, but copies every string of an `Option<Cow<str>>`.
pub(crate) fn optional<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    /// A `Cow<str>` field, which serde does borrow.
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed>::deserialize(d)?.map(|b| b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Fields<'a> {
        #[serde(borrow, default, deserialize_with = "optional")]
        a: Option<Cow<'a, str>>,
    }

    #[test]
    fn optional_strings_are_borrowed_when_they_have_no_escapes() {
        let read = |json| serde_json::from_str::<Fields>(json).map(|f| f.a);
        assert!(matches!(
            read(r#"{"a":"tok é"}"#),
            Ok(Some(Cow::Borrowed("tok é")))
        ));
        let escaped = read(r#"{"a":"a\"b\n"}"#).unwrap();
        assert!(matches!(&escaped, Some(Cow::Owned(s)) if s == "a\"b\n"));
        assert!(matches!(read(r#"{"a":null}"#), Ok(None)));
        assert!(matches!(read("{}"), Ok(None)));
        assert!(read(r#"{"a":1}"#).is_err());
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
