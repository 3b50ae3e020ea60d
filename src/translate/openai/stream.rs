//! The chat stream's decoder: each event of an OpenAI chat stream read into a chunk, or,
//! for the chunks a stream is mostly made of (one choice of plain text, under the head of
//! the chunk before), into that choice alone, without a parser.

use super::{ChatChunk, ChunkChoice, Head, Usage, UsageField};
use crate::error::StreamFailure;
use crate::translate::json_text::plain_string;
use std::sync::Arc;

/// The data of a chat stream's last event, which is no chunk.
pub(crate) const DONE: &str = "[DONE]";

/// Whether an event's data is the stream's end marker, [`DONE`].
pub(crate) fn is_done(data: &str) -> bool {
    data.trim() == DONE
}

/// The key a chunk's choices follow.
pub(super) const CHOICES_KEY: &str = "\"choices\":";

/// Where the `"choices":` key of a chunk begins, if it is there as it is written, at the
/// chunk's top level: it follows a `{` or a `,` (spaces aside), so its opening quote is no
/// escaped one (as in a key `"x\"choices":`), and no `{` or `[` opens before it outside a
/// string. Whether the text before it holds the chunk's head whole is for the decoder and
/// the gatherer to check ([`KnownHead`]).
pub(super) fn choices_at(data: &str) -> Option<usize> {
    /// The searcher, built once: building one costs more than a search.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(CHOICES_KEY));
    let at = FINDER.find(data.as_bytes())?;
    let before = data[..at].trim_end().as_bytes().last();
    let inside = data[..at].trim_start().strip_prefix('{')?;
    (matches!(before, Some(b'{' | b',')) && !opens_outside_strings(inside.as_bytes())).then_some(at)
}

/// Whether a `{` or `[` opens in `json` outside its strings. Most heads have neither byte
/// at all; a head with one only inside a string (an id `"a[b"`) is walked string by string.
fn opens_outside_strings(json: &[u8]) -> bool {
    if memchr::memchr2(b'{', b'[', json).is_none() {
        return false;
    }
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (_, b'"') => in_string = !in_string,
            (false, b'{' | b'[') => return true,
            _ => {}
        }
    }
    false
}

/// The text of a chunk whose choices are one choice of text alone, in the field order OpenAI
/// writes (`[{"index":0,"delta":{"content":"…"},"logprobs":null,"finish_reason":null}]`),
/// text with no escapes, and what follows the choices. Anything else, `None`, is left to
/// serde; the text's bytes are then what serde would have read (tested in `transcript`).
pub(super) fn plain_text(choices: &str) -> Option<(&str, &str)> {
    const HEAD: &str = r#"[{"index":0,"delta":{"content":""#;
    /// What may follow the text to the end of the choices: the delta closed, and nothing but
    /// an unfinished choice's empty fields.
    const TAILS: [&str; 3] = [
        r#""},"logprobs":null,"finish_reason":null}]"#,
        r#""},"finish_reason":null}]"#,
        r#""},"finish_reason":null,"logprobs":null}]"#,
    ];
    let rest = choices.strip_prefix(HEAD)?;
    let end = memchr::memchr(b'"', rest.as_bytes())?;
    let (text, tail) = rest.split_at(end);
    if !plain_string(text) {
        return None;
    }
    let after = TAILS.iter().find_map(|t| tail.strip_prefix(t))?;
    Some((text, after))
}

/// Whether what follows a chunk's choices ends it with nothing the decoder reads: no usage
/// (`null` is none), and at most OpenAI's `obfuscation` padding.
fn bare_end(rest: &str) -> bool {
    let rest = rest.strip_prefix(r#","usage":null"#).unwrap_or(rest);
    let rest = match rest.strip_prefix(r#","obfuscation":""#) {
        Some(padding) => match memchr::memchr(b'"', padding.as_bytes()) {
            Some(end) if plain_string(&padding[..end]) => &padding[end + 1..],
            _ => return false,
        },
        None => rest,
    };
    rest == "}"
}

/// The text of `data` if it is a chunk of plain text that begins with `prefix` (the text
/// before the choices of a chunk read before, which [`head_alone`] found holds that chunk's
/// head whole): what serde reads from it is then that head, and one choice of that text.
fn plain_chunk<'a>(data: &'a str, prefix: &str) -> Option<&'a str> {
    let choices = data.strip_prefix(prefix)?.strip_prefix(CHOICES_KEY)?;
    let (text, rest) = plain_text(choices)?;
    bare_end(rest).then_some(text)
}

/// The text of `data` if its top-level choices are one choice of plain text that is not
/// empty, whatever its head holds: for a probe, that chunk starts the content either way
/// (read whole by serde, its choice 0 has that text; not read, it is unreadable, which
/// ends a probe's hold-back too).
fn plain_content(data: &str) -> Option<&str> {
    let choices = data.get(choices_at(data)? + CHOICES_KEY.len()..)?;
    plain_text(choices)
        .map(|(text, _)| text)
        .filter(|t| !t.is_empty())
}

/// The text before a chunk's choices, closed by empty choices: what a reader parses to see
/// that this text holds the chunk's head whole (a head field written after the choices, or
/// usage, is not in it).
fn head_alone(prefix: &str) -> String {
    // Sized once: `format!` grew it as it wrote (a quarter of the probe of a relayed stream
    // in a profile).
    const CLOSE: &str = "[]}";
    let mut text = String::with_capacity(prefix.len() + CHOICES_KEY.len() + CLOSE.len());
    text.push_str(prefix);
    text.push_str(CHOICES_KEY);
    text.push_str(CLOSE);
    text
}

/// The text before the choices of the last chunk a reader parsed whole, and what that text
/// gave read alone (see [`head_alone`]): `None` when it does not hold the chunk's head whole.
/// A rejected text is kept too, so that a stream whose chunks all have it (choices written
/// first, usage in the head) pays for reading it once, not at every chunk.
pub(super) struct KnownHead<T> {
    prefix: Box<str>,
    read: Option<T>,
}

impl<T> KnownHead<T> {
    /// Notes the head of a chunk parsed whole: `read` is given the head alone, only when it
    /// is not the one known already, and says what it holds (`None`: not the head whole).
    pub(super) fn note(known: &mut Option<Self>, data: &str, read: impl FnOnce(&str) -> Option<T>) {
        let Some(prefix) = choices_at(data).map(|at| &data[..at]) else {
            return;
        };
        if known.as_ref().is_some_and(|k| *k.prefix == *prefix) {
            return;
        }
        *known = Some(KnownHead {
            prefix: prefix.into(),
            read: read(&head_alone(prefix)),
        });
    }

    /// What the head gave, if it holds a head whole.
    pub(super) fn read(&self) -> Option<&T> {
        self.read.as_ref()
    }

    /// The text of `data` if it is a chunk of plain text under this head (see
    /// [`plain_chunk`]).
    pub(super) fn plain<'a>(&self, data: &'a str) -> Option<&'a str> {
        self.read.as_ref()?;
        plain_chunk(data, &self.prefix)
    }
}

/// A provider's stream read into chat choices, most of it (its plain text) without a
/// parser: a stream's translation asks [`Self::text`] first, and gives what it did not take
/// to [`Self::parsed`], so that each event is looked at once (the Anthropic and Gemini
/// decoders).
pub trait ToChoices {
    /// The text of a plain text event, borrowed from it: the translation writes it as a
    /// choice 0 of that text alone (of empty text, none), with no choice made. `None` for
    /// any other event.
    fn text<'a>(&mut self, data: &'a str) -> Option<&'a str>;

    /// Translates an event that [`Self::text`] did not take, appending the choices it
    /// makes.
    fn parsed(&mut self, data: &str, out: &mut Vec<ChunkChoice>) -> Result<(), StreamFailure>;

    /// Both, as the stream's translation takes them (its choice of text made).
    #[cfg(test)]
    fn event(&mut self, data: &str, out: &mut Vec<ChunkChoice>) -> Result<(), StreamFailure> {
        if let Some(text) = self.text(data) {
            if !text.is_empty() {
                out.push(ChunkChoice::of_text(0, text.to_owned()));
            }
            return Ok(());
        }
        self.parsed(data, out)
    }
}

/// A chunk's `id`, `created` and `model`, kept (see [`Head`] for them borrowed).
type OwnedHead = (Arc<str>, u64, Arc<str>);

/// An OpenAI chat stream, read event by event.
#[derive(Default)]
pub struct ChunkReader {
    usage: Option<Usage>,
    done: bool,
    /// The head of the last chunk serde read, as its text before the choices reads alone: a
    /// plain chunk that begins with that text is that head and one choice (serde reads the
    /// same from it).
    head: Option<KnownHead<OwnedHead>>,
    /// Whether this reader is a probe's (see [`Self::probing`]).
    for_probe: bool,
}

impl ChunkReader {
    /// A reader for a probe, which only asks when content starts: no head is kept (nothing
    /// is written under it), and a chunk of plain text is content whatever its head holds
    /// (see [`plain_content`]).
    pub fn probing() -> Self {
        ChunkReader {
            for_probe: true,
            ..ChunkReader::default()
        }
    }

    /// Reads one event's data: `[DONE]`; a chunk of plain text under the head of the chunk
    /// before (for a probe, under any head), as its choice (into `choices`); any other
    /// chunk, whole (into `chunks`).
    pub fn event(
        &mut self,
        data: &str,
        chunks: &mut Vec<ChatChunk>,
        choices: &mut Vec<ChunkChoice>,
    ) -> Result<(), StreamFailure> {
        if is_done(data) {
            self.done = true;
            return Ok(());
        }
        if let Some(text) = self.head.as_ref().and_then(|h| h.plain(data)) {
            choices.push(ChunkChoice::of_text(0, text.to_owned()));
            return Ok(());
        }
        if self.for_probe {
            if let Some(text) = plain_content(data) {
                choices.push(ChunkChoice::of_text(0, text.to_owned()));
                return Ok(());
            }
        }
        let chunk: ChatChunk = serde_json::from_str(data)
            .map_err(|e| StreamFailure::unreadable(format!("unreadable OpenAI chunk: {e}")))?;
        if let UsageField::Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if self.for_probe {
            chunks.push(chunk);
            return Ok(());
        }
        KnownHead::note(&mut self.head, data, |alone| {
            let read = serde_json::from_str::<ChatChunk>(alone).ok()?;
            read.usage
                .is_absent()
                .then_some((read.id, read.created, read.model))
        });
        chunks.push(chunk);
        Ok(())
    }

    /// The head the choices read without a chunk belong to.
    pub fn head(&self) -> Option<Head<'_>> {
        let (id, created, model) = self.head.as_ref()?.read()?;
        Some((id, *created, model))
    }

    /// Whether `[DONE]` came.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The usage the stream reported, once it has.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Fields a chunk's head may be made of in the property tests, the odd ones included: a key
/// given twice, usage, the choices key's text inside another key or a nested object, a
/// spaced choices key before the real one.
#[cfg(test)]
pub(in crate::translate) const HEAD_FIELDS: &[&str] = &[
    r#""id":"c1""#,
    r#""id":"c2""#,
    r#""object":"chat.completion.chunk""#,
    r#""created":7"#,
    r#""model":"m""#,
    r#""usage":null"#,
    r#""usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}"#,
    r#""x\"choices":[]"#,
    // Last, it makes the choices key the end of a key `x"choices`.
    r#""x\"#,
    r#""meta":{"choices":1}"#,
    r#""choices" :[]"#,
    r#""obfuscation":"p""#,
    r#""system_fingerprint":"fp""#,
    r#""error":null"#,
];

/// Endings after the choices in the property tests.
#[cfg(test)]
pub(in crate::translate) const ENDS: &[&str] = &[
    "}",
    r#","usage":null}"#,
    r#","obfuscation":"p"}"#,
    r#","usage":null,"obfuscation":"p"}"#,
    r#","obfuscation":"p","usage":null}"#,
    r#" }"#,
    r#","x":1}"#,
    r#","id":"late"}"#,
    "",
    // A second choices key: serde refuses a key twice.
    r#","choices":[]}"#,
];

/// A chunk of one choice of `text` (escaped as JSON), after `head` and before `end`.
#[cfg(test)]
pub(in crate::translate) fn test_chunk(head: &str, text: &str, end: &str) -> String {
    let text = serde_json::to_string(text).unwrap_or_default();
    format!(
        r#"{head}"choices":[{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}]{end}"#
    )
}

/// A head of `fields`, ready for its choices (a field ending in a backslash is left open).
#[cfg(test)]
pub(in crate::translate) fn test_head(fields: &[&str]) -> String {
    let mut head = format!("{{{}", fields.join(","));
    if fields.last().is_some_and(|f| !f.ends_with('\\')) {
        head.push(',');
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::sse::SseParser;

    /// A head is read alone once while its chunks keep coming, whether it holds the head
    /// whole or not (Azure writes the choices first: its text before them is `{`).
    #[test]
    fn a_head_is_read_alone_once_accepted_or_not() {
        let chunk =
            |head: &str| format!(r#"{head}"choices":[{{"index":0,"delta":{{"content":"a"}}}}]}}"#);
        for (head, holds) in [(r#"{"id":"c","#, true), ("{", false)] {
            let (mut known, mut reads) = (None::<KnownHead<()>>, 0);
            for _ in 0..3 {
                KnownHead::note(&mut known, &chunk(head), |alone| {
                    reads += 1;
                    serde_json::from_str::<ChatChunk>(alone).ok().map(|_| ())
                });
            }
            assert_eq!(reads, 1, "{head}");
            assert_eq!(known.and_then(|k| k.read).is_some(), holds, "{head}");
        }
    }

    /// The choices key is the chunk's own only with nothing opened before it outside a
    /// string.
    #[test]
    fn the_choices_key_is_found_at_the_top_level_only() {
        for (data, top) in [
            (r#"{"id":"a{b","choices":[]}"#, true),
            (r#"{"id":"x\"[","choices":[]}"#, true),
            (r#"{"m":"\\","n":"]{","choices":[]}"#, true),
            (r#"{"a":{"choices":[]},"choices":[]}"#, false),
            (r#"{"a":"s",["choices":[]}"#, false),
            (r#"{"a":"\\",{"choices":[]}"#, false),
            (r#"{"x\"choices":[]}"#, false),
        ] {
            assert_eq!(choices_at(data).is_some(), top, "{data}");
        }
    }

    /// What a stream decodes to: every chunk, those read as a choice put in the head's chunk
    /// (a `null` usage is no usage, to the encoders and the usage tap alike); how many were
    /// read without a parser.
    fn decoded(events: &[String]) -> (Vec<String>, usize) {
        let mut reader = ChunkReader::default();
        let (mut all, mut plain) = (Vec::new(), 0);
        for data in events {
            let (mut chunks, mut choices) = (Vec::new(), Vec::new());
            reader.event(data, &mut chunks, &mut choices).unwrap();
            plain += choices.len();
            let head = reader.head();
            let around = choices
                .into_iter()
                .map(|c| ChatChunk::around(head.unwrap(), c));
            for mut chunk in chunks.into_iter().chain(around) {
                if chunk.usage == UsageField::Null {
                    chunk.usage = UsageField::Absent;
                }
                all.push(serde_json::to_string(&chunk).unwrap());
            }
        }
        (all, plain)
    }

    /// The same stream read by serde alone.
    fn by_serde(events: &[String]) -> Vec<String> {
        let spaced = |data: &String| data.replace(CHOICES_KEY, "\"choices\" :");
        decoded(&events.iter().map(spaced).collect::<Vec<_>>()).0
    }

    fn fixture(name: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openai")
            .join(name);
        let mut events = Vec::new();
        SseParser::default()
            .feed(&std::fs::read(path).unwrap(), &mut |e| {
                if e.data != "[DONE]" {
                    events.push(e.data.clone());
                }
            })
            .unwrap();
        events
    }

    use super::test_chunk as chunk;

    const HEAD: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","#;

    #[test]
    fn plain_text_chunks_are_read_as_choices_of_the_chunk_before() {
        for name in ["stream_text.sse", "stream_tool.sse"] {
            let events = fixture(name);
            let (read, _) = decoded(&events);
            assert_eq!(read, by_serde(&events), "{name}");
        }
        let (_, plain) = decoded(&fixture("stream_text.sse"));
        assert!(
            plain >= 2,
            "{plain} chunks of the fixture's text read as choices"
        );
        // The endings OpenAI writes after the choices, and text with escapes.
        let events = vec![
            chunk(HEAD, "", "}"),
            chunk(HEAD, "a", "}"),
            chunk(HEAD, "b", r#","usage":null}"#),
            chunk(HEAD, "c", r#","usage":null,"obfuscation":"Xy9"}"#),
            chunk(HEAD, "d", r#","obfuscation":"Q"}"#),
            chunk(HEAD, "e \"q\"\n", "}"),
            chunk(HEAD, "f", r#","obfuscation":"a\"b"}"#),
            chunk(
                HEAD,
                "g",
                r#","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            ),
        ];
        let (read, plain) = decoded(&events);
        assert_eq!(read, by_serde(&events));
        assert_eq!(plain, 4, "a, b, c and d");
    }

    /// A head that the text before the choices does not hold whole is not kept: every chunk
    /// after it is read by serde, as it would be without the fast path.
    #[test]
    fn a_head_is_kept_only_from_what_holds_it_whole() {
        let cases = [
            // Another head: the chunk after it is read with its own.
            vec![
                chunk(HEAD, "a", "}"),
                chunk(&HEAD.replace("c1", "c2"), "b", "}"),
            ],
            // The id after the choices.
            vec![
                chunk(r#"{"model":"m","#, "a", r#","id":"x"}"#),
                chunk(r#"{"model":"m","#, "b", "}"),
            ],
            // The key found inside a nested object.
            vec![
                r#"{"meta":{"choices":1},"id":"x","choices":[]}"#.to_string(),
                chunk(r#"{"meta":{"#, "b", "}}"),
            ],
            // The key's text inside another key, after an escaped quote.
            vec![
                r#"{"id":"a","choices" :[],"x\"choices":[]}"#.to_string(),
                r#"{"id":"a","choices" :[],"x\"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}"#.to_string(),
            ],
            // Usage before the choices.
            vec![
                chunk(&format!(r#"{HEAD}"usage":null,"#), "a", "}"),
                chunk(&format!(r#"{HEAD}"usage":null,"#), "b", r#","usage":null}"#),
            ],
        ];
        for events in cases {
            let mut reader = ChunkReader::default();
            let mut serde = ChunkReader::default();
            for data in &events {
                let (mut chunks, mut choices) = (Vec::new(), Vec::new());
                let read = reader.event(data, &mut chunks, &mut choices);
                let spaced = data.replace(CHOICES_KEY, "\"choices\" :");
                let (mut expected, mut none) = (Vec::new(), Vec::new());
                let by_serde = serde.event(&spaced, &mut expected, &mut none);
                assert_eq!(read.is_ok(), by_serde.is_ok(), "{data}");
                if read.is_ok() {
                    let around = choices
                        .into_iter()
                        .map(|c| ChatChunk::around(reader.head().unwrap(), c));
                    let read: Vec<_> = chunks.into_iter().chain(around).collect();
                    assert_eq!(
                        serde_json::to_string(&read).unwrap(),
                        serde_json::to_string(&expected).unwrap(),
                        "{data}"
                    );
                }
            }
        }
    }

    /// A probe reads a chunk of plain text without a parser: one whose head serde cannot
    /// read (no `id`) is still its content, as serde's failure would end the hold-back too.
    #[test]
    fn a_probe_takes_plain_text_under_any_head() {
        let chunk = chunk(r#"{"model":"m","#, "hi", "}");
        let (mut chunks, mut choices) = (Vec::new(), Vec::new());
        assert!(ChunkReader::default()
            .event(&chunk, &mut chunks, &mut choices)
            .is_err());
        let mut probe = ChunkReader::probing();
        // A chunk read whole first: a probe notes no head from it.
        probe
            .event(&super::test_chunk(HEAD, "", "}"), &mut chunks, &mut choices)
            .unwrap();
        assert!(probe.head.is_none(), "a probe keeps no head");
        chunks.clear();
        probe.event(&chunk, &mut chunks, &mut choices).unwrap();
        assert!(chunks.is_empty());
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].delta.content.as_deref(), Some("hi"));
    }

    proptest::proptest! {
        /// Whatever the text and what follows the choices, a chunk reads as serde reads it.
        #[test]
        fn any_chunk_reads_as_serde_reads_it(
            text in ".*",
            raw in "[^\"\\\\]{0,8}",
            end in proptest::sample::select(vec![
                "}", r#","usage":null}"#, r#","obfuscation":"p"}"#, r#","usage":null,"obfuscation":"p"}"#,
                r#","obfuscation":"p","usage":null}"#, r#" }"#, r#","x":1}"#, "",
            ]),
        ) {
            let plain = format!(
                r#"{HEAD}"choices":[{{"index":0,"delta":{{"content":"{raw}"}},"logprobs":null,"finish_reason":null}}]{end}"#
            );
            let events = vec![chunk(HEAD, "first", "}"), chunk(HEAD, &text, end), plain];
            proptest::prop_assert!(reads_as_serde(&events).is_ok());
        }

        /// Whatever the head is made of, chunks read as serde reads them.
        #[test]
        fn any_head_reads_as_serde_reads_it(
            fields in proptest::collection::vec(proptest::sample::select(HEAD_FIELDS), 0..6),
            end in proptest::sample::select(ENDS),
        ) {
            let head = test_head(&fields);
            let events = vec![chunk(&head, "a", "}"), chunk(&head, "b", end), chunk(&head, "c", "}")];
            proptest::prop_assert!(reads_as_serde(&events).is_ok(), "{events:?}");
        }
    }

    /// Whether `events` decode as serde alone decodes them (the choices key spaced out, so
    /// no fast path takes them): the same failures, and the same chunks (a choice read
    /// without a chunk put in its head's; a `null` usage is none).
    fn reads_as_serde(events: &[String]) -> Result<(), String> {
        let mut reader = ChunkReader::default();
        let mut serde = ChunkReader::default();
        for data in events {
            let (mut chunks, mut choices) = (Vec::new(), Vec::new());
            let read = reader.event(data, &mut chunks, &mut choices).is_ok();
            let spaced = data.replace(CHOICES_KEY, "\"choices\" :");
            let (mut expected, mut none) = (Vec::new(), Vec::new());
            if read != serde.event(&spaced, &mut expected, &mut none).is_ok() {
                return Err(format!("{data}: read {read}, serde {}", !read));
            }
            let head = reader.head();
            let around = choices
                .into_iter()
                .filter_map(|c| Some(ChatChunk::around(head?, c)));
            let mut read: Vec<_> = chunks.into_iter().chain(around).collect();
            for chunk in read.iter_mut().chain(expected.iter_mut()) {
                if chunk.usage == UsageField::Null {
                    chunk.usage = UsageField::Absent;
                }
            }
            let (read, expected) = (
                serde_json::to_string(&read),
                serde_json::to_string(&expected),
            );
            if read.as_ref().ok() != expected.as_ref().ok() {
                return Err(format!("{data}: {read:?} against {expected:?}"));
            }
        }
        Ok(())
    }
}
