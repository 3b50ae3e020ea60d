//! The API formats the sidecar speaks: what a caller sends it (a request's ingress) and what a
//! provider is spoken to in. One enum for both, so that "the same format" is an `==`.

/// An API's wire format: its request, answer, stream and error shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions, and every OpenAI-compatible API.
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API: spoken only by OpenAI itself, to a Responses ingress. Its
    /// errors are OpenAI's.
    Responses,
}
