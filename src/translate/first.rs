//! The first wanted element of a JSON array, the rest skipped: a transcript reads the choice
//! of index 0 or `candidates[0]` and needs no `Vec` per stream chunk for it.

use serde::de::{Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

pub struct First<T>(pub Option<T>);

/// An element [`First`] reads, which may say it is not the one wanted (an OpenAI choice of
/// another index, in an answer with `n` > 1).
pub trait Element {
    fn wanted(&self) -> bool {
        true
    }
}

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: Deserialize<'de> + Element> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Element> Visitor<'de> for Visit<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<T>, A::Error> {
                let mut first = None;
                while let Some(element) = seq.next_element::<T>()? {
                    if element.wanted() {
                        first = Some(element);
                        break;
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        deserializer.deserialize_seq(Visit(PhantomData))
    }
}
