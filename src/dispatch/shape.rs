//! The conversation's shape, checked before any provider is asked: a request whose
//! `messages` (or `input`, or `contents`) a provider cannot read is the caller's 400, not a
//! provider's error, and never a translation that guesses.
//!
//! Only the outline is read (each turn an object, with a string `role` where the API
//! requires one); what a turn holds is left to the translators and providers.

use crate::body::{nesting_within, value_end, BodyError, JsonBody};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::translate::json_text::OptionalStr;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Bounds a model call's body as parsed: every field nested at most `max_depth` deep (the
/// body's own object is the first level), the conversation, most of a long session's bytes,
/// by the same scan that looks at its turns. Returns what is left of the conversation's
/// check, told after the body's other fields (as it always was: a body too deep is told
/// first, a conversation out of shape last).
pub fn bound(
    endpoint: Endpoint,
    body: &JsonBody<'_>,
    max_depth: usize,
) -> Result<Shape, GatewayError> {
    let too_deep = || GatewayError::Body(BodyError::TooDeep(max_depth));
    // A field's own text is a level below the body's object.
    let within = max_depth.saturating_sub(1);
    let mut scanned = None;
    if let Some((_, raw, need)) = conversation(endpoint, body) {
        match Outline::scanned(raw.get().as_bytes(), need, within) {
            Scanned::Holds => scanned = Some(raw),
            Scanned::TooDeep => return Err(too_deep()),
            Scanned::Unsure => {}
        }
    }
    for (_, raw) in body.fields() {
        let known = scanned.is_some_and(|s| std::ptr::eq(s, raw));
        if !known && !nesting_within(raw.get().as_bytes(), within) {
            return Err(too_deep());
        }
    }
    Ok(Shape {
        endpoint,
        holds: scanned.is_some(),
    })
}

/// The conversation's shape, as far as [`bound`] found it.
#[must_use]
pub struct Shape {
    endpoint: Endpoint,
    /// The scan found every turn as it must be.
    holds: bool,
}

impl Shape {
    /// Checks the conversation field of the body [`bound`] looked at, where it is present (a
    /// `prompt` may still provide it; an absent required field is the provider's to name).
    pub fn check(self, body: &JsonBody<'_>) -> Result<(), GatewayError> {
        if self.endpoint == Endpoint::Embeddings {
            return embeddings_input(body);
        }
        match conversation(self.endpoint, body) {
            Some((field, raw, need)) if !self.holds => parsed_turns(raw, field, need),
            _ => Ok(()),
        }
    }
}

/// The body's list of turns, where it has one to check: its field, its text, and what each
/// turn must have. A Responses `input` given as a string is none.
fn conversation<'b>(
    endpoint: Endpoint,
    body: &'b JsonBody<'_>,
) -> Option<(&'static str, &'b RawValue, Need)> {
    let (field, need) = match endpoint {
        Endpoint::ChatCompletions
        | Endpoint::AnthropicMessages
        | Endpoint::AnthropicCountTokens => ("messages", Need::Role),
        Endpoint::Gemini => ("contents", Need::Object),
        Endpoint::Responses => ("input", Need::RoleOrType),
        _ => return None,
    };
    let raw = body.get(field)?;
    let text_input = endpoint == Endpoint::Responses && raw.get().starts_with('"');
    (!text_input).then_some((field, raw, need))
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

/// Checks a list of turns (`raw`, the body's `field`) in one pass over them, each read where
/// it is for what `need` asks, no list made: where the scan of its outline was unsure.
fn parsed_turns(raw: &RawValue, field: &str, need: Need) -> Result<(), GatewayError> {
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

/// What a scan of a conversation's outline found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanned {
    /// Every turn has what is needed, and the list nests within the bound.
    Holds,
    TooDeep,
    /// A turn has not what is needed, or the scan cannot tell (see [`Outline::scanned`]).
    Unsure,
}

impl Outline<'_> {
    /// Whether every turn of `list`, valid JSON text (the body's parse checked it), surely
    /// has what `need` asks, and the list nests at most `within` deep, found by scanning
    /// its outline alone: a parser went over every string of the conversation again (a long
    /// agent session's body is hundreds of kilobytes of file text). Unsure when a turn does
    /// not have what is needed, and where the scan cannot tell (a key or a `role` or `type`
    /// with an escape, a `role` or `type` given twice or neither a string nor null): the
    /// parser then reads the list, and names the turn.
    fn scanned(list: &[u8], need: Need, within: usize) -> Scanned {
        let mut scan = Scan {
            bytes: list,
            at: 0,
            deepest: 0,
        };
        let verdict = scan.list(need);
        if scan.deepest > within {
            Scanned::TooDeep
        } else {
            verdict
        }
    }
}

/// A place in valid JSON text, and the deepest its scan has been.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    deepest: usize,
}

impl Scan<'_> {
    /// Steps over a list of turns (see [`Outline::scanned`]); it stops where it is unsure.
    fn list(&mut self, need: Need) -> Scanned {
        if !self.eat(b'[') {
            return Scanned::Unsure;
        }
        self.deepest = 1;
        if self.eat(b']') {
            return Scanned::Holds;
        }
        loop {
            match self.turn() {
                Some((role, kind)) if need.met_by(role, kind) => {}
                _ => return Scanned::Unsure,
            }
            if !self.eat(b',') {
                return if self.eat(b']') {
                    Scanned::Holds
                } else {
                    Scanned::Unsure
                };
            }
        }
    }

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

    /// Steps over the value here, a turn's (a level below the turn); returns where it began.
    fn value(&mut self) -> usize {
        let start = self.at;
        let (end, depth) = value_end(self.bytes, start);
        self.at = end;
        self.deepest = self.deepest.max(2 + depth);
        start
    }

    /// Steps over an object, telling whether its `role` and its `type` are strings; `None`
    /// when it is not an object or the scan is unsure of it (see [`Outline::scanned`]).
    fn turn(&mut self) -> Option<(bool, bool)> {
        if !self.eat(b'{') {
            return None;
        }
        self.deepest = self.deepest.max(2);
        let (mut role, mut kind) = (None, None);
        if self.eat(b'}') {
            return Some((false, false));
        }
        loop {
            self.skip_space();
            let key = self.value();
            // The key's text between its quotes.
            let key = self.bytes.get(key..self.at)?.strip_prefix(b"\"")?;
            if key.contains(&b'\\') || !self.eat(b':') {
                return None;
            }
            self.skip_space();
            let value = self.value();
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
        bound(endpoint, &body, 64)
            .and_then(|shape| shape.check(&body))
            .map_err(|e| e.to_string())
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
        // What a turn holds is not read, only bounded in its nesting (below).
        let deep = format!(
            r#"{{"messages":[{{"role":"user","content":{}1{}}}]}}"#,
            "[".repeat(61),
            "]".repeat(61)
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
        /// Whatever the turns, the scan never passes a list the parser would refuse or the
        /// nesting bound would, finds a list too deep only where the bound does, and passes
        /// every list both take whose keys, roles and types are plain (no escapes) and given
        /// once.
        #[test]
        fn the_scan_agrees_with_the_parser(
            turns in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..4)),
                0..4,
            ),
            space in proptest::sample::select(vec!["", " ", "\n\t"]),
            need in proptest::sample::select(vec![0, 1, 2]),
            within in 0usize..6,
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
            let scanned = Outline::scanned(list.as_bytes(), need, within);
            let (parsed, shallow) = (parsed(&list, need), nesting_within(list.as_bytes(), within));
            match scanned {
                Scanned::Holds => proptest::prop_assert!(parsed && shallow, "{list}"),
                Scanned::TooDeep => proptest::prop_assert!(!shallow, "{list}"),
                Scanned::Unsure => proptest::prop_assert!(!parsed || !plain || !shallow, "{list}"),
            }
        }
    }

    /// Any JSON value: strings with quotes, escapes and brackets, keys of turns among them.
    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(Value::from),
            r#"[a-z"\\\[\]{}:, \n\u{1}é]{0,8}"#.prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("role".to_string()),
                            Just("type".to_string()),
                            "[a-z\"]{1,4}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any list of any values, written by serde: the scan agrees with the parser and the
        /// nesting bound as above, and a value ends where its text does, as deep as it is.
        #[test]
        fn any_list_is_scanned_as_the_parser_reads_it(
            turns in proptest::collection::vec(any_json(), 0..4),
            need in proptest::sample::select(vec![0, 1, 2]),
            within in 0usize..8,
        ) {
            let need = [Need::Object, Need::Role, Need::RoleOrType][need];
            let list = serde_json::to_string(&turns).unwrap();
            let (parsed, shallow) = (parsed(&list, need), nesting_within(list.as_bytes(), within));
            match Outline::scanned(list.as_bytes(), need, within) {
                Scanned::Holds => proptest::prop_assert!(parsed && shallow, "{list}"),
                Scanned::TooDeep => proptest::prop_assert!(!shallow, "{list}"),
                Scanned::Unsure => {}
            }
            let (end, depth) = value_end(list.as_bytes(), 0);
            proptest::prop_assert_eq!(end, list.len());
            proptest::prop_assert!(nesting_within(list.as_bytes(), depth), "{list}");
            proptest::prop_assert!(!nesting_within(list.as_bytes(), depth - 1), "{list}");
        }
    }

    proptest::proptest! {
        /// Any body of any fields, the conversation's among them: bounded after its parse
        /// exactly as the scan of the whole body before it bounded it, on every endpoint.
        #[test]
        fn a_body_is_bounded_as_the_scan_of_it_whole_bounds_it(
            fields in proptest::collection::vec(
                (proptest::sample::select(vec!["messages", "input", "contents", "model", "x"]), any_json()),
                0..4,
            ),
            turns in proptest::collection::vec(any_json(), 0..3),
            max_depth in 1usize..8,
        ) {
            let mut body: serde_json::Map<String, serde_json::Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            body.insert("messages".into(), serde_json::Value::Array(turns));
            let text = serde_json::to_string(&body).unwrap();
            let parsed = JsonBody::parse(text.as_bytes()).unwrap();
            let whole = nesting_within(text.as_bytes(), max_depth);
            for endpoint in [
                Endpoint::ChatCompletions,
                Endpoint::Responses,
                Endpoint::Gemini,
                Endpoint::Embeddings,
            ] {
                let bounded = bound(endpoint, &parsed, max_depth);
                let too_deep = matches!(bounded, Err(GatewayError::Body(BodyError::TooDeep(_))));
                proptest::prop_assert_eq!(too_deep, !whole, "{:?} {}", endpoint, text);
                if let Ok(shape) = bounded {
                    let _ = shape.check(&parsed);
                }
            }
        }
    }

    #[test]
    fn every_field_is_bounded_in_its_nesting() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let too_deep = "request body is nested deeper than 64 levels";
        let chat = |content: usize, role: &str, other: usize| {
            let turn = format!(r#"{{{role}"content":{}}}"#, deep(content));
            let body = format!(r#"{{"messages":[{turn}],"x":{}}}"#, deep(other));
            checked(Endpoint::ChatCompletions, &body)
        };
        // The body's object, the list and the turn are three levels.
        assert_eq!(chat(61, r#""role":"user","#, 63), Ok(()));
        assert_eq!(chat(62, r#""role":"user","#, 0).unwrap_err(), too_deep);
        assert_eq!(chat(0, r#""role":"user","#, 64).unwrap_err(), too_deep);
        // Too deep is told before a turn's shape: found by the scan, or by the bound where
        // the scan was unsure (a key with an escape).
        assert_eq!(chat(62, "", 0).unwrap_err(), too_deep);
        assert_eq!(chat(61, r#""r\u006fle":"user","#, 0), Ok(()));
        assert_eq!(chat(62, r#""r\u006fle":"user","#, 0).unwrap_err(), too_deep);
        let embeddings = format!(r#"{{"input":{}}}"#, deep(64));
        assert_eq!(
            checked(Endpoint::Embeddings, &embeddings).unwrap_err(),
            too_deep
        );
        let input = format!(r#"{{"input":"hi","x":{}}}"#, deep(64));
        assert_eq!(checked(Endpoint::Responses, &input).unwrap_err(), too_deep);
    }

    #[test]
    fn a_plain_conversation_is_passed_by_the_scan() {
        let list = r#"[{"role":"user","content":[{"type":"text","text":"a \"b\" \\"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function"}]},
            {"type":"function_call_output","output":"{\"x\":[1]}"}]"#;
        let scanned = |list: &str, need, within| Outline::scanned(list.as_bytes(), need, within);
        assert_eq!(scanned(list, Need::RoleOrType, 4), Scanned::Holds);
        assert_eq!(scanned(list, Need::RoleOrType, 3), Scanned::TooDeep);
        assert_eq!(scanned(list, Need::Role, 4), Scanned::Unsure);
        assert_eq!(scanned(" [ ] ", Need::Role, 1), Scanned::Holds);
        assert_eq!(scanned("[]", Need::Role, 0), Scanned::TooDeep);
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
