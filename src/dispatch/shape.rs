//! The conversation's shape, checked before any provider is asked: a request whose
//! `messages` (or `input`, or `contents`) a provider cannot read is the caller's 400, not a
//! provider's error, and never a translation that guesses.
//!
//! Only the outline is read (each turn an object, with a string `role` where the API
//! requires one); what a turn holds is left to the translators and providers.

use crate::body::{value_end, JsonBody};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::translate::json_text::OptionalStr;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Checks the conversation field of a model call's body, where it is present (a `prompt`
/// may still provide it; an absent required field is the provider's to name).
pub fn check(endpoint: Endpoint, body: &JsonBody<'_>) -> Result<(), GatewayError> {
    match endpoint {
        Endpoint::ChatCompletions
        | Endpoint::AnthropicMessages
        | Endpoint::AnthropicCountTokens => turns(body, "messages", Need::Role),
        Endpoint::Gemini => turns(body, "contents", Need::Object),
        Endpoint::Responses => match body.get("input") {
            Some(input) if input.get().starts_with('"') => Ok(()),
            Some(_) => turns(body, "input", Need::RoleOrType),
            None => Ok(()),
        },
        Endpoint::Embeddings => embeddings_input(body),
        _ => Ok(()),
    }
}

/// What each turn must have besides being an object.
#[derive(Clone, Copy)]
enum Need {
    Object,
    Role,
    /// A Responses input item: a message (`role`) or a typed item (`type`).
    RoleOrType,
}

/// The fields of a turn that its outline needs.
#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: OptionalStr<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: OptionalStr<'a>,
}

impl Need {
    /// Whether a turn with a string `role` (or not), and a string `type` (or not), has
    /// what is needed.
    fn met_by(self, role: bool, kind: bool) -> bool {
        match self {
            Need::Object => true,
            Need::Role => role,
            Need::RoleOrType => role || kind,
        }
    }
}

impl Turn<'_> {
    fn has(&self, need: Need) -> bool {
        need.met_by(self.role.is_some(), self.kind.is_some())
    }
}

/// Checks the turns of `body`'s `field` in one pass over them, each read where it is for
/// what `need` asks: a long conversation's text is gone over once, and no list is made.
fn turns(body: &JsonBody<'_>, field: &str, need: Need) -> Result<(), GatewayError> {
    let Some(raw) = body.get(field) else {
        return Ok(());
    };
    if Outline::scanned(raw.get().as_bytes(), need) {
        return Ok(());
    }
    let mut bad = None;
    let mut reader = serde_json::Deserializer::from_str(raw.get());
    if reader
        .deserialize_seq(Outline {
            need,
            bad: &mut bad,
        })
        .is_ok()
    {
        return Ok(());
    }
    Err(match bad {
        Some(i) => {
            let what = match need {
                Need::Object => "an object",
                Need::Role => "an object with a string `role`",
                Need::RoleOrType => "an object with a string `role` or `type`",
            };
            GatewayError::invalid_field(field, format!("`{field}[{i}]` must be {what}"))
        }
        None => GatewayError::invalid_field(field, "must be an array of objects"),
    })
}

/// Reads a list of turns, stopping at the first that is not an object with what `need` asks
/// (its index is put in `bad`).
struct Outline<'b> {
    need: Need,
    bad: &'b mut Option<usize>,
}

impl<'de> Visitor<'de> for Outline<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut turns: A) -> Result<(), A::Error> {
        for i in 0.. {
            match turns.next_element::<ObjectTurn>() {
                Ok(None) => break,
                Ok(Some(ObjectTurn(turn))) if turn.has(self.need) => {}
                Ok(Some(_)) | Err(_) => {
                    *self.bad = Some(i);
                    return Err(de::Error::custom("a turn is not what it must be"));
                }
            }
        }
        Ok(())
    }
}

impl Outline<'_> {
    /// Whether every turn of `list`, valid JSON text (the body's parse checked it), surely
    /// has what `need` asks, found by scanning the outline alone: the parser went over every
    /// string of the conversation again (a long agent session's body is hundreds of
    /// kilobytes of file text). False when a turn does not, and where the scan is unsure (a
    /// key or a `role` or `type` with an escape, a `role` or `type` given twice or neither a
    /// string nor null): the parser then reads the list, and names the turn.
    fn scanned(list: &[u8], need: Need) -> bool {
        let mut scan = Scan { bytes: list, at: 0 };
        if !scan.eat(b'[') {
            return false;
        }
        if scan.eat(b']') {
            return true;
        }
        loop {
            match scan.turn() {
                Some((role, kind)) if need.met_by(role, kind) => {}
                _ => return false,
            }
            if !scan.eat(b',') {
                return scan.eat(b']');
            }
        }
    }
}

/// A place in valid JSON text.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    /// Steps over `byte`, after any whitespace, if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let next = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(next);
        next
    }

    fn skip_space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// Steps over an object, telling whether its `role` and its `type` are strings; `None`
    /// when it is not an object or the scan is unsure of it (see [`Outline::scanned`]).
    fn turn(&mut self) -> Option<(bool, bool)> {
        if !self.eat(b'{') {
            return None;
        }
        let (mut role, mut kind) = (None, None);
        if self.eat(b'}') {
            return Some((false, false));
        }
        loop {
            self.skip_space();
            let key = self.at;
            self.at = value_end(self.bytes, key);
            // The key's text between its quotes.
            let key = self.bytes.get(key..self.at)?.strip_prefix(b"\"")?;
            if key.contains(&b'\\') || !self.eat(b':') {
                return None;
            }
            self.skip_space();
            let value = self.at;
            self.at = value_end(self.bytes, value);
            let slot = match key {
                b"role\"" => Some(&mut role),
                b"type\"" => Some(&mut kind),
                _ => None,
            };
            if let Some(slot) = slot {
                // A string is a role or type (one with an escape is the parser's to read: it
                // refuses a lone surrogate); null is none; anything else the parser refuses.
                let string = match self.bytes.get(value..self.at)? {
                    [b'"', text @ ..] if !text.contains(&b'\\') => true,
                    [b'n', ..] => false,
                    _ => return None,
                };
                if slot.replace(string).is_some() {
                    return None;
                }
            }
            if !self.eat(b',') {
                return self
                    .eat(b'}')
                    .then_some((role == Some(true), kind == Some(true)));
            }
        }
    }
}

/// A turn read only from an object: [`Turn`] would also read an array, field by position.
struct ObjectTurn<'a>(Turn<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for ObjectTurn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Turn<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Turn<'de>, M::Error> {
                Turn::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Object).map(ObjectTurn)
    }
}

/// Embeddings' `input`: a string, or an array of strings, of token ids, or of arrays of
/// token ids.
fn embeddings_input(body: &JsonBody<'_>) -> Result<(), GatewayError> {
    let Some(raw) = body.get("input") else {
        return Ok(());
    };
    let item = |text: &str| {
        text.starts_with('"')
            || text.bytes().all(|b| b.is_ascii_digit())
            || serde_json::from_str::<Vec<u64>>(text).is_ok()
    };
    let valid = raw.get().starts_with('"')
        || serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .is_ok_and(|items| items.iter().all(|i| item(i.get())));
    if valid {
        return Ok(());
    }
    Err(GatewayError::invalid_field(
        "input",
        "must be a string, an array of strings, or an array of token ids (or of arrays of them)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(endpoint: Endpoint, text: &str) -> Result<(), String> {
        let body = JsonBody::parse(text.as_bytes()).unwrap();
        check(endpoint, &body).map_err(|e| e.to_string())
    }

    #[test]
    fn chat_and_anthropic_turns_need_a_role() {
        for endpoint in [Endpoint::ChatCompletions, Endpoint::AnthropicMessages] {
            assert!(checked(endpoint, r#"{"messages":[{"role":"user","content":"hi"}]}"#).is_ok());
            assert!(checked(endpoint, r#"{"model":"m"}"#).is_ok());
            for bad in [
                r#"{"messages":"hi"}"#,
                r#"{"messages":{"role":"user"}}"#,
                r#"{"messages":[[{"role":"user"}]]}"#,
                r#"{"messages":[{"role":"user"},{"content":"no role"}]}"#,
                r#"{"messages":[{"role":1}]}"#,
                r#"{"messages":[{"role":"\ud800"}]}"#,
                r#"{"messages":[null]}"#,
            ] {
                let e = checked(endpoint, bad).unwrap_err();
                assert!(e.starts_with("`messages` is invalid"), "{bad}: {e}");
            }
        }
        let e = checked(
            Endpoint::ChatCompletions,
            r#"{"messages":[{"role":"user"},{}]}"#,
        );
        assert!(e.unwrap_err().contains("`messages[1]` must be"));
        // A key given twice, or a role of null, is no role; a null list is no list.
        for (bad, says) in [
            (
                r#"{"messages":[{"role":"user","role":"user"}]}"#,
                "`messages[0]`",
            ),
            (
                r#"{"messages":[{"role":"user"},{"role":null}]}"#,
                "`messages[1]`",
            ),
            (r#"{"messages":[{"role":"user"},7]}"#, "`messages[1]`"),
            (r#"{"messages":null}"#, "must be an array of objects"),
        ] {
            let e = checked(Endpoint::ChatCompletions, bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // What a turn holds is not read, however deep.
        let deep = format!(
            r#"{{"messages":[{{"role":"user","content":{}1{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(checked(Endpoint::ChatCompletions, &deep).is_ok());
    }

    /// The parser's reading of a list of turns alone, as every list was read before the scan.
    fn parsed(list: &str, need: Need) -> bool {
        let mut bad = None;
        let outline = Outline {
            need,
            bad: &mut bad,
        };
        serde_json::Deserializer::from_str(list)
            .deserialize_seq(outline)
            .is_ok()
    }

    const KEYS: [&str; 5] = [
        r#""role""#,
        r#""type""#,
        r#""content""#,
        r#""r\u006fle""#,
        r#""ty\"pe""#,
    ];
    const VALUES: [&str; 9] = [
        r#""user""#,
        "null",
        "1",
        r#"[{"type":"text","text":"a]}\"{"},{"role":7}]"#,
        "{}",
        r#""a\\""#,
        r#""\ud800""#,
        "true",
        r#"{"role":"x"}"#,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Whatever the turns, the scan never passes a list the parser would refuse, and
        /// passes every list the parser takes whose keys, roles and types are plain (no
        /// escapes) and given once.
        #[test]
        fn the_scan_agrees_with_the_parser(
            turns in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..4)),
                0..4,
            ),
            space in proptest::sample::select(vec!["", " ", "\n\t"]),
            need in proptest::sample::select(vec![0, 1, 2]),
        ) {
            let need = [Need::Object, Need::Role, Need::RoleOrType][need];
            let mut plain = true;
            let turns: Vec<String> = turns
                .iter()
                .map(|turn| match turn {
                    None => "7".to_string(),
                    Some(fields) => {
                        let keys: Vec<usize> = fields.iter().map(|f| f.0).collect();
                        plain &= !keys.iter().any(|&k| k > 2)
                            && keys.iter().filter(|&&k| k == 0).count() < 2
                            && keys.iter().filter(|&&k| k == 1).count() < 2
                            && !fields.iter().any(|&(k, v)| k < 2 && VALUES[v].contains('\\'));
                        let fields: Vec<String> = fields
                            .iter()
                            .map(|&(k, v)| format!("{space}{}{space}:{space}{}", KEYS[k], VALUES[v]))
                            .collect();
                        format!("{{{}{space}}}", fields.join(","))
                    }
                })
                .collect();
            let list = format!("{space}[{space}{}{space}]", turns.join(&format!("{space},")));
            let (scanned, parsed) = (Outline::scanned(list.as_bytes(), need), parsed(&list, need));
            proptest::prop_assert!(!scanned || parsed, "{list}");
            proptest::prop_assert!(scanned || !parsed || !plain, "{list}");
        }
    }

    #[test]
    fn a_plain_conversation_is_passed_by_the_scan() {
        let list = r#"[{"role":"user","content":[{"type":"text","text":"a \"b\" \\"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function"}]},
            {"type":"function_call_output","output":"{\"x\":[1]}"}]"#;
        assert!(Outline::scanned(list.as_bytes(), Need::RoleOrType));
        assert!(!Outline::scanned(list.as_bytes(), Need::Role));
        assert!(Outline::scanned(b" [ ] ", Need::Role));
    }

    #[test]
    fn responses_gemini_and_embeddings() {
        fn ok(e: Endpoint, t: &str) {
            assert!(checked(e, t).is_ok(), "{t}");
        }
        fn bad(e: Endpoint, t: &str) {
            assert!(checked(e, t).is_err(), "{t}");
        }
        ok(Endpoint::Responses, r#"{"input":"hi"}"#);
        ok(
            Endpoint::Responses,
            r#"{"input":[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"c","output":"x"}]}"#,
        );
        bad(Endpoint::Responses, r#"{"input":[["deep"]]}"#);
        bad(Endpoint::Responses, r#"{"input":[{"content":"x"}]}"#);
        ok(
            Endpoint::Gemini,
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        );
        bad(Endpoint::Gemini, r#"{"contents":[[[]]]}"#);
        for input in [r#""a""#, r#"["a","b"]"#, "[1,2]", "[[1],[2,3]]"] {
            ok(Endpoint::Embeddings, &format!(r#"{{"input":{input}}}"#));
        }
        for input in ["[[[1]]]", r#"[{"a":1}]"#, "1", "[[-1]]"] {
            bad(Endpoint::Embeddings, &format!(r#"{{"input":{input}}}"#));
        }
    }
}
