//! Describe: the global object list, per-object basic info and the field-level
//! describe (names, types, writability, references), all read from the schema.

use axum::http::StatusCode;
use serde_json::{Value as Json, json};

use super::super::schema::ObjType;
use super::super::server::Resp;

fn urls(obj: ObjType, version: &str) -> Json {
    let base = format!("/services/data/v{version}/sobjects/{}", obj.name());
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
    })
}

fn summary(obj: ObjType, version: &str) -> Json {
    json!({
        "name": obj.name(),
        "label": obj.label(),
        "labelPlural": format!("{}s", obj.label()),
        "keyPrefix": obj.key_prefix(),
        "custom": false,
        "queryable": true,
        "retrieveable": true,
        "searchable": obj.updateable(),
        "createable": obj.updateable(),
        "updateable": obj.updateable(),
        "deletable": obj.soft_deletes(),
        "undeletable": obj.soft_deletes(),
        "replicateable": true,
        "urls": urls(obj, version),
    })
}

/// `GET sobjects`
pub(crate) fn global(version: &str) -> Resp {
    let sobjects: Vec<Json> = ObjType::ALL.iter().map(|o| summary(*o, version)).collect();
    Resp::ok(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}))
}

fn unknown(name: &str) -> Resp {
    Resp::error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("The requested resource does not exist: sObject type '{name}' is not supported."),
    )
}

/// `GET sobjects/{Type}`
pub(crate) fn basic(name: &str, version: &str) -> Resp {
    match ObjType::parse(name) {
        Some(obj) => Resp::ok(json!({"objectDescribe": summary(obj, version), "recentItems": []})),
        None => unknown(name),
    }
}

/// `GET sobjects/{Type}/describe`
pub(crate) fn describe(name: &str, version: &str) -> Resp {
    let Some(obj) = ObjType::parse(name) else {
        return unknown(name);
    };
    let fields: Vec<Json> = obj
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "label": f.label,
                "type": f.ty.describe_name(),
                "soapType": f.ty.soap_type(),
                "length": f.length,
                "nillable": f.nillable,
                "updateable": f.updateable,
                "createable": f.updateable,
                "custom": f.name.ends_with("__c"),
                "filterable": true,
                "sortable": true,
                "idLookup": f.name == "Id",
                "referenceTo": f.reference_to.iter().map(|o| o.name()).collect::<Vec<_>>(),
                "relationshipName": f.relationship,
                "polymorphicForeignKey": f.reference_to.len() > 1,
            })
        })
        .collect();
    let mut out = summary(obj, version);
    out["fields"] = Json::Array(fields);
    out["childRelationships"] = json!([]);
    out["recordTypeInfos"] = json!([]);
    Resp::ok(out)
}
