//! JSON text read without a parser, where a fast path takes the bytes of a string as its
//! value: only when they need no unescaping and serde would accept them.

/// Whether `text`, the bytes between a JSON string's quotes, is the string itself: no quote
/// or escape in it, and no raw control character (which serde refuses).
pub(crate) fn plain_string(text: &str) -> bool {
    !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

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
