//! The OpenAPI 3 document, built from the route table, and a self-contained docs page.

use crate::{Body, Operation, RouteDoc};
use serde_json::{json, Map, Value};

/// The `openapi` version the document declares: its schemas are JSON Schema 2020-12 (utoipa
/// 5's style: `"type": ["string", "null"]` for an optional value), which is OpenAPI 3.1's.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// An OpenAPI document (`GET /api/openapi.json`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
pub(crate) struct OpenApiDocument {
    openapi: String,
    info: Value,
    paths: Value,
    components: Value,
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The `content` of a body; JSON schemas are added to `schemas`.
fn content(body: &Body, schemas: &mut Map<String, Value>) -> Value {
    match body {
        Body::Json(s) => {
            for (name, schema) in s.schemas() {
                if !schemas.contains_key(&name) {
                    let v = serde_json::to_value(&schema).unwrap_or(Value::Null);
                    schemas.insert(name, v);
                }
            }
            json!({"application/json": {"schema": schema_ref(&s.name())}})
        }
        Body::Raw(types) => Value::Object(
            types
                .iter()
                .map(|t| {
                    let schema = if t.starts_with("text/") {
                        json!({"type": "string"})
                    } else {
                        json!({"type": "string", "format": "binary"})
                    };
                    (t.to_string(), json!({ "schema": schema }))
                })
                .collect(),
        ),
    }
}

pub(crate) fn document(routes: &[(RouteDoc, Operation)]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let error = crate::Body::json::<crate::error::ErrorBody>();
    content(&error, &mut schemas);
    for (r, o) in routes {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let roles: Vec<&str> = r
            .roles
            .map(|rs| rs.iter().map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let mut op = json!({
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": o.operation_id,
            "parameters": params,
            "x-roles": roles,
            "responses": {
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"},
                "413": {"$ref": "#/components/responses/Error"},
                "415": {"$ref": "#/components/responses/Error"},
                "422": {"$ref": "#/components/responses/Error"}
            }
        });
        let mut ok = json!({"description": if o.status == 201 { "Created" } else { "OK" }});
        if let Some(b) = &o.response {
            ok["content"] = content(b, &mut schemas);
        }
        op["responses"][o.status.to_string()] = ok;
        if let Some(b) = &o.request {
            op["requestBody"] = json!({"required": true, "content": content(b, &mut schemas)});
        }
        if r.roles.is_none() {
            op["security"] = json!([]);
        }
        if r.path.ends_with("/login") && r.method == "POST" {
            op["responses"]["429"] = json!({
                "description": "too many failed logins for the username or from the address (Retry-After: seconds)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            });
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(r.method.to_ascii_lowercase(), op);
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "rollcall API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Attendance, review queue, packages and ledger, alerts. Errors: {\"error\":{\"code\",\"message\"}}. Authenticate with a session cookie (POST /api/v1/auth/login; send X-CSRF-Token on changes) or a bearer API token. x-roles lists the roles allowed on each operation; every account is also limited to its campuses."
        },
        "paths": paths,
        "security": [{"bearer": []}, {"cookie": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}
            },
            "schemas": schemas,
            "responses": {
                "Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        }
    })
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A browsable page of the document (no external assets: works offline).
pub(crate) fn docs_page(doc: &Value) -> String {
    let mut rows = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(ops) = item.as_object() {
                for (method, op) in ops {
                    let roles = op["x-roles"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    rows += &format!(
                        "<tr><td class=m>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&method.to_ascii_uppercase()),
                        esc(path),
                        esc(op["tags"][0].as_str().unwrap_or("")),
                        esc(op["summary"].as_str().unwrap_or("")),
                        if roles.is_empty() { "public".into() } else { esc(&roles) }
                    );
                }
            }
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width'><title>rollcall API</title>\
<style>body{{font-family:system-ui,sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left}}.m{{font-weight:bold}}</style></head>\
<body><h1>rollcall API {}</h1><p>{}</p><p><a href=/api/openapi.json>openapi.json</a></p>\
<table><tr><th>method</th><th>path</th><th>tag</th><th>what</th><th>roles</th></tr>{rows}</table></body></html>",
        esc(doc["info"]["version"].as_str().unwrap_or("")),
        esc(doc["info"]["description"].as_str().unwrap_or(""))
    )
}
