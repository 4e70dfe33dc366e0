//! `GET /openapi.json`: an OpenAPI 3 document of the whole API, built from [`ENDPOINTS`], the
//! table the tests walk against the live routes (so an endpoint cannot be documented and missing,
//! or the other way round, unnoticed).

use serde_json::{json, Map, Value as Json};

/// One documented endpoint.
pub struct Endpoint {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path with `{parameters}`.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Success status.
    pub ok: u16,
    /// Error statuses it can answer (besides 401 with authentication on, and 500).
    pub errors: &'static [u16],
    /// Whether it takes a JSON body.
    pub body: bool,
}

const fn e(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    ok: u16,
    errors: &'static [u16],
    body: bool,
) -> Endpoint {
    Endpoint { method, path, summary, ok, errors, body }
}

/// Every endpoint the API serves.
pub const ENDPOINTS: &[Endpoint] = &[
    e("get", "/", "Worker version, commit and Kafka cluster id", 200, &[], false),
    e("get", "/health", "200 when the worker can serve, 503 while starting (KIP-1017)", 200, &[503], false),
    e("get", "/metrics", "Prometheus text: connector and task counts, rebalances, per-task counters", 200, &[], false),
    e("get", "/admin/cluster", "This worker's view of its group (sluice's own)", 200, &[], false),
    e("get", "/connectors", "Connector names; with ?expand=status and/or ?expand=info a map", 200, &[], false),
    e(
        "post",
        "/connectors",
        "Creates a connector ({name, config, initial_state}); Location header",
        201,
        &[400, 409],
        true,
    ),
    e("get", "/connectors/{connector}", "Connector info: config, tasks, type", 200, &[404], false),
    e("delete", "/connectors/{connector}", "Deletes a connector", 204, &[404, 409], false),
    e("get", "/connectors/{connector}/config", "Connector config (secrets hidden)", 200, &[404], false),
    e("put", "/connectors/{connector}/config", "Creates or replaces a connector config", 200, &[400, 409], true),
    e(
        "patch",
        "/connectors/{connector}/config",
        "Merge patch of the config; null removes a key",
        200,
        &[400, 404],
        true,
    ),
    e("get", "/connectors/{connector}/status", "Connector and task states", 200, &[404], false),
    e("get", "/connectors/{connector}/tasks", "Task configs", 200, &[404], false),
    e("get", "/connectors/{connector}/tasks-config", "Task configs by task id (deprecated in Kafka Connect)", 200, &[404], false),
    e("get", "/connectors/{connector}/tasks/{task}/status", "One task's state", 200, &[404], false),
    e("post", "/connectors/{connector}/tasks/{task}/restart", "Restarts one task", 204, &[404, 409], false),
    e(
        "post",
        "/connectors/{connector}/restart",
        "Restarts the connector (?includeTasks=&onlyFailed=)",
        204,
        &[404, 409],
        false,
    ),
    e("put", "/connectors/{connector}/pause", "Target state PAUSED", 202, &[404], false),
    e("put", "/connectors/{connector}/resume", "Target state STARTED", 202, &[404], false),
    e("put", "/connectors/{connector}/stop", "Target state STOPPED: tasks shut down", 204, &[404], false),
    e("get", "/connectors/{connector}/topics", "Topics the connector has used (KIP-558)", 200, &[403, 404], false),
    e("put", "/connectors/{connector}/topics/reset", "Forgets the connector's active topics", 202, &[403, 404], false),
    e("get", "/connectors/{connector}/offsets", "Committed offsets", 200, &[404], false),
    e("patch", "/connectors/{connector}/offsets", "Alters offsets (connector STOPPED only)", 200, &[400, 404], true),
    e("delete", "/connectors/{connector}/offsets", "Resets offsets (connector STOPPED only)", 200, &[400, 404], false),
    e("get", "/connector-plugins", "Installed plugins (?connectorsOnly=false adds converters)", 200, &[], false),
    e(
        "get",
        "/connector-plugins/{plugin}/config",
        "The plugin's config definitions (ConfigKeyInfo)",
        200,
        &[404],
        false,
    ),
    e(
        "put",
        "/connector-plugins/{plugin}/config/validate",
        "Validates a config: every key, value and error",
        200,
        &[400, 404],
        true,
    ),
    e("get", "/admin/loggers", "Log levels", 200, &[], false),
    e("get", "/admin/loggers/{logger}", "One logger's level", 200, &[404], false),
    e(
        "put",
        "/admin/loggers/{logger}",
        "Sets a level ({\"level\"}): ?scope=worker (default) answers 200 with the loggers changed; ?scope=cluster sets it on every worker and answers 204",
        200,
        &[204, 400, 404],
        true,
    ),
    e("get", "/openapi.json", "This document", 200, &[], false),
];

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad request: the message says which field and why",
        401 => "Credentials required (rest.auth.type)",
        404 => "Not found",
        409 => "Conflict (e.g. a rebalance is under way, or the connector exists)",
        503 => "Not ready",
        _ => "Error",
    }
}

/// The OpenAPI 3 document.
pub fn document() -> Json {
    let error =
        json!({"type": "object", "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}}});
    let mut paths = Map::new();
    for ep in ENDPOINTS {
        let params: Vec<Json> = ep
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "task" { "integer" } else { "string" }}}))
            .collect();
        let mut responses = Map::new();
        responses.insert(ep.ok.to_string(), json!({"description": reason(ep.ok)}));
        for code in ep.errors.iter().chain(&[401u16, 500]) {
            responses.insert(
                code.to_string(),
                json!({"description": reason(*code), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            );
        }
        let mut op = json!({"summary": ep.summary, "parameters": params, "responses": responses});
        if ep.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(ep.path.to_string()).or_insert_with(|| json!({}));
        entry[ep.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sluice REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kafka Connect's REST API (same paths, codes and bodies), plus /health, /metrics and /admin/cluster."
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": error},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}, "bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_in_the_document_once() {
        let doc = document();
        let count: usize =
            doc["paths"].as_object().expect("paths").values().map(|p| p.as_object().map_or(0, Map::len)).sum();
        assert_eq!(count, ENDPOINTS.len(), "no method listed twice for a path");
        assert_eq!(
            doc["paths"]["/connectors/{connector}/tasks/{task}/status"]["get"]["parameters"][1]["schema"]["type"],
            "integer"
        );
    }
}
