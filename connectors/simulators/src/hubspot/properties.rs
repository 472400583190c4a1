//! `GET /crm/v3/properties/{objectType}` (and one property by name) and
//! `GET /crm/v3/schemas`: the property definitions the simulator validates writes
//! against, served in the shape of HubSpot's `Property` (properties spec), so portal
//! extractors and the vendor's client can read them. The portal has no custom objects,
//! so `schemas` lists none.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Inner;
use super::objects::{object_type, pairs};
use super::schema::{ObjectType, PropertyDef, PropertyType};
use super::state::Store;
use super::wire::{self, json_response, query_one};

/// When HubSpot created its default properties (as the live API reports them).
const DEFINED_AT: &str = "2019-08-06T02:41:52.261Z";

fn label(name: &str) -> String {
    let known = match name {
        "hs_object_id" => Some("Record ID"),
        "createdate" => Some("Create Date"),
        "lastmodifieddate" | "hs_lastmodifieddate" => Some("Last Modified Date"),
        "hubspot_owner_id" => Some("Contact owner"),
        "hubspot_team_id" => Some("HubSpot Team"),
        "hubspot_owner_assigneddate" => Some("Owner Assigned Date"),
        "firstname" => Some("First Name"),
        "lastname" => Some("Last Name"),
        "jobtitle" => Some("Job Title"),
        "lifecyclestage" => Some("Lifecycle Stage"),
        "hs_lead_status" => Some("Lead Status"),
        "numberofemployees" => Some("Number of Employees"),
        "annualrevenue" => Some("Annual Revenue"),
        "mobilephone" => Some("Mobile Phone Number"),
        "zip" => Some("Postal Code"),
        "associatedcompanyid" => Some("Primary Associated Company ID"),
        "hs_parent_company_id" => Some("Parent Company"),
        _ => None,
    };
    known.map(str::to_owned).unwrap_or_else(|| {
        let words = name.trim_start_matches("hs_").replace('_', " ");
        let mut chars = words.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    })
}

fn option(label: &str, value: &str, order: usize) -> Value {
    json!({
        "label": label,
        "value": value,
        "description": "",
        "displayOrder": order,
        "hidden": false,
    })
}

/// One definition as HubSpot's `Property`.
fn property_json(object: ObjectType, def: PropertyDef, order: usize, store: &Store) -> Value {
    let (kind, field, options, external): (&str, &str, Vec<Value>, bool) = match def.kind {
        PropertyType::Text => ("string", "text", Vec::new(), false),
        PropertyType::Email => ("string", "text", Vec::new(), false),
        PropertyType::Number => ("number", "number", Vec::new(), false),
        PropertyType::DateTime => ("datetime", "date", Vec::new(), false),
        PropertyType::Enumeration(values) => (
            "enumeration",
            "select",
            values
                .iter()
                .enumerate()
                .map(|(i, v)| option(&label(&v.to_lowercase()), v, i))
                .collect(),
            false,
        ),
        PropertyType::Owner => (
            "enumeration",
            "select",
            store
                .owners
                .values()
                .filter(|o| !o.archived)
                .enumerate()
                .map(|(i, o)| {
                    option(
                        &format!("{} {}", o.first_name, o.last_name),
                        &o.id.to_string(),
                        i,
                    )
                })
                .collect(),
            true,
        ),
        PropertyType::Team => {
            let mut teams: Vec<(String, String)> = store
                .owners
                .values()
                .flat_map(|o| o.teams.iter().map(|t| (t.id.clone(), t.name.clone())))
                .collect();
            teams.sort();
            teams.dedup();
            let options = teams
                .iter()
                .enumerate()
                .map(|(i, (id, name))| option(name, id, i))
                .collect();
            ("enumeration", "select", options, true)
        }
    };
    let group = match object {
        ObjectType::Contacts => "contactinformation",
        ObjectType::Companies => "companyinformation",
    };
    let mut value = json!({
        "updatedAt": DEFINED_AT,
        "createdAt": DEFINED_AT,
        "name": def.name,
        "label": label(def.name),
        "type": kind,
        "fieldType": field,
        "description": "",
        "groupName": group,
        "options": options,
        "displayOrder": order,
        "calculated": false,
        "externalOptions": external,
        "hasUniqueValue": def.name == "hs_object_id",
        "hidden": false,
        "hubspotDefined": true,
        "modificationMetadata": {
            "archivable": false,
            "readOnlyDefinition": true,
            "readOnlyValue": def.read_only,
        },
        "formField": !def.read_only,
        "archived": false,
    });
    if def.kind == PropertyType::Owner {
        value["referencedObjectType"] = json!("OWNER");
    }
    value
}

/// `GET /crm/v3/properties/{objectType}`: every definition (`archived=true`: none).
pub(crate) async fn list(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let q = pairs(raw);
    if query_one(&q, "archived") == Some("true") {
        return json_response(StatusCode::OK, json!({ "results": [] }));
    }
    let store = inner.store.read();
    let results: Vec<Value> = super::schema::properties(object)
        .enumerate()
        .map(|(i, def)| property_json(object, def, i, &store))
        .collect();
    json_response(StatusCode::OK, json!({ "results": results }))
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub(crate) async fn get_one(
    State(inner): State<Arc<Inner>>,
    Path((object, name)): Path<(String, String)>,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let store = inner.store.read();
    match super::schema::properties(object)
        .enumerate()
        .find(|(_, def)| def.name == name)
    {
        Some((i, def)) => json_response(StatusCode::OK, property_json(object, def, i, &store)),
        None => wire::error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!(
                "Unable to find property with name '{name}' for object type '{}'",
                object.as_str()
            ),
        ),
    }
}

/// `GET /crm/v3/schemas`: the portal's custom object schemas (none here).
pub(crate) async fn schemas() -> Response {
    json_response(StatusCode::OK, json!({ "results": [] }))
}
