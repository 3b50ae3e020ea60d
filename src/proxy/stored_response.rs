//! `GET` and `DELETE /v1/responses/{id}`, and `GET /v1/responses/{id}/input_items`, answered
//! from the responses the sidecar kept (`responses.store`). One it did not keep is not
//! answered here: an OpenAI provider may hold it.

use super::ctx::RequestCtx;
use super::respond;
use crate::endpoint::StoredResponseCall;
use crate::state::Snapshot;
use crate::stored_responses::StoredResponses;
use pingora::proxy::Session;
use serde_json::json;

/// Whether the request was answered (the response is kept here, or was and is deleted now).
pub async fn serve(
    stored: &StoredResponses,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
) -> bool {
    if !snapshot.config.responses.store {
        return false;
    }
    let req = session.req_header();
    let Some(call) = StoredResponseCall::parse(&req.method, req.uri.path()) else {
        return false;
    };
    let id = call.id().to_string();
    let body = match call {
        StoredResponseCall::Delete(_) => stored
            .delete(&id)
            .await
            .then(|| json!({"id": id, "object": "response.deleted", "deleted": true})),
        StoredResponseCall::Get(_) => stored.get(&id).await.map(|kept| kept.response),
        StoredResponseCall::InputItems(_) => stored.get(&id).await.map(|kept| kept.input_items()),
    };
    let Some(body) = body else {
        return false;
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    respond::json(session, ctx, 200, bytes).await;
    true
}
