//! `GET /crm/v3/owners` and `/crm/v3/owners/{id}`: owner ids (strings) vs
//! user ids (integers), teams with one primary, `archived=true` listing only
//! deactivated owners (whose `userId` is gone while `userIdIncludingInactive`
//! keeps the number), pages of up to 500.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Inner;
use super::clock::iso;
use super::objects::pairs;
use super::state::SimOwner;
use super::wire::{self, json_response, query_flag, query_one, validation};

const OWNER_LIMIT: usize = 500;

/// The `PublicOwner` shape.
pub(crate) fn render_owner(owner: &SimOwner) -> Value {
    let mut body = json!({
        "id": owner.id.to_string(),
        "userIdIncludingInactive": owner.user_id,
        "email": owner.email,
        "firstName": owner.first_name,
        "lastName": owner.last_name,
        "type": owner.owner_type,
        "archived": owner.archived,
        "createdAt": iso(owner.created_at_ms),
        "updatedAt": iso(owner.updated_at_ms),
    });
    if !owner.archived {
        body["userId"] = json!(owner.user_id);
    }
    if !owner.teams.is_empty() {
        body["teams"] = json!(
            owner
                .teams
                .iter()
                .map(|t| json!({"id": t.id, "name": t.name, "primary": t.primary}))
                .collect::<Vec<_>>()
        );
    }
    body
}

/// `GET /crm/v3/owners`.
pub(crate) async fn list(State(inner): State<Arc<Inner>>, RawQuery(raw): RawQuery) -> Response {
    let q = pairs(raw);
    let limit = match query_one(&q, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=OWNER_LIMIT).contains(&n) => n,
        Some(_) => return validation(format!("limit must be between 1 and {OWNER_LIMIT}")),
    };
    let after = match query_one(&q, "after") {
        None | Some("") => 0,
        Some(a) => match a.parse::<u64>() {
            Ok(a) => a,
            Err(_) => return validation(format!("Invalid after cursor: {a}")),
        },
    };
    let archived = query_flag(&q, "archived");
    let email = query_one(&q, "email").map(str::to_ascii_lowercase);
    let store = inner.store.read();
    let mut owners = store
        .owners
        .range(after..)
        .map(|(_, o)| o)
        .filter(|o| o.archived == archived)
        .filter(|o| {
            email
                .as_ref()
                .is_none_or(|e| o.email.eq_ignore_ascii_case(e))
        });
    let results: Vec<Value> = owners.by_ref().take(limit).map(render_owner).collect();
    let mut body = json!({ "results": results });
    if let Some(next) = owners.next() {
        let after = next.id.to_string();
        body["paging"] = json!({"next": {
            "after": after,
            "link": format!("{}/crm/v3/owners/?after={after}", inner.base_url),
        }});
    }
    json_response(StatusCode::OK, body)
}

/// `GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived=`.
pub(crate) async fn get_one(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = pairs(raw);
    let archived = query_flag(&q, "archived");
    let by_user = query_one(&q, "idProperty") == Some("userId");
    let store = inner.store.read();
    let wanted = id.parse::<u64>().ok();
    let found = wanted.and_then(|n| {
        if by_user {
            store.owners.values().find(|o| o.user_id == n)
        } else {
            store.owners.get(&n)
        }
    });
    match found.filter(|o| o.archived == archived) {
        Some(owner) => json_response(StatusCode::OK, render_owner(owner)),
        None => wire::error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Owner {id} not found"),
        ),
    }
}
