//! `GET /account-info/v3/details`: the portal's id and settings, in the shape HubSpot's
//! Account Information API documents (`portalId`, `timeZone`, `companyCurrency`,
//! `additionalCurrencies`, `utcOffset`, `utcOffsetMilliseconds`, `uiDomain`,
//! `dataHostingLocation`, `accountType`). Connectors read `portalId` to tell which
//! portal a store mirrors.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Offset, Utc};
use serde_json::json;

use super::Inner;
use super::wire::json_response;

/// `GET /account-info/v3/details`.
pub(crate) async fn details(State(inner): State<Arc<Inner>>) -> Response {
    let config = &inner.config;
    let offset_secs = config
        .portal_time_zone
        .parse::<chrono_tz::Tz>()
        .map(|tz| {
            Utc::now()
                .with_timezone(&tz)
                .offset()
                .fix()
                .local_minus_utc()
        })
        .unwrap_or(0);
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let minutes = offset_secs.unsigned_abs() / 60;
    json_response(
        StatusCode::OK,
        json!({
            "portalId": config.portal_id,
            "timeZone": config.portal_time_zone,
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60),
            "utcOffsetMilliseconds": i64::from(offset_secs) * 1000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
            "accountType": "STANDARD",
        }),
    )
}
