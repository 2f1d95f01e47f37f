//! docs/openapi.yaml against the live server: the same routes, and the documented required
//! fields present in real answers.

use std::collections::BTreeSet;

use councild::yaml;
use saphyr::{ScalarOwned, YamlDataOwned};
use serde_json::{Value, json};

use crate::cycle::QUICK;
use crate::harness::{Council, ROSTER, repo};

/// The YAML document as JSON, for easy walking.
fn to_json(node: &yaml::Node) -> Value {
    match &node.data {
        YamlDataOwned::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (yaml::scalar(k).unwrap_or_default(), to_json(v)))
                .collect(),
        ),
        YamlDataOwned::Sequence(s) => Value::Array(s.iter().map(to_json).collect()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => json!(i),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => json!(b),
        YamlDataOwned::Value(ScalarOwned::Null) => Value::Null,
        _ => yaml::scalar(node).map_or(Value::Null, Value::String),
    }
}

fn spec() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/openapi.yaml")).unwrap();
    to_json(&yaml::parse(&text).unwrap().unwrap())
}

/// Follows `$ref` within the document.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(path) => resolve(spec, path.split('/').fold(spec, |n, part| &n[part])),
        None => node,
    }
}

/// Every key a schema requires, through `allOf`.
fn required(spec: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(spec, schema);
    let mut keys: BTreeSet<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        keys.extend(required(spec, part));
    }
    keys
}

#[test]
fn the_spec_lists_exactly_the_routes_the_server_has() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if ops.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut served: BTreeSet<(String, String)> = councild::http::protected_route_table()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    for (m, p) in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/dashboard/login"),
        ("POST", "/dashboard/login"),
        ("POST", "/dashboard/logout"),
        ("GET", "/ballot/{token}"),
        ("POST", "/ballot/{token}"),
        ("GET", "/propose/{token}"),
        ("POST", "/propose/{token}"),
        ("GET", "/texts/{token}/{sha256}"),
        ("GET", "/amend/{token}"),
        ("POST", "/amend/{token}"),
        ("GET", "/nominate/{token}"),
        ("POST", "/nominate/{token}"),
        ("GET", "/trustee/{token}"),
        ("POST", "/trustee/{token}"),
        ("GET", "/elections/{item}"),
        ("GET", "/elections/{item}/record.json"),
        ("GET", "/assets/secret-ballot.js"),
    ] {
        served.insert((m.to_string(), p.to_string()));
    }
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not documented: {missing:?}; documented but not served: {extra:?}"
    );
}

#[tokio::test]
async fn live_answers_have_every_documented_required_field() {
    let spec = spec();
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Checked against the spec"}),
        )
        .await;
    daemon
        .wait_item(&id, "the ballot", |i| i["ballots"][0]["eligible"] == 3)
        .await;
    for (path, live) in [
        ("/status", "/status".to_string()),
        ("/api/items", "/api/items".to_string()),
        ("/api/items/{id}", format!("/api/items/{id}")),
        ("/api/outbox", "/api/outbox".to_string()),
        ("/api/registers", "/api/registers".to_string()),
    ] {
        let op = &spec["paths"][path]["get"];
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "no 200 JSON schema for GET {path}");
        let (status, body) = daemon.admin(reqwest::Method::GET, &live, None).await;
        assert_eq!(status, 200, "GET {live}: {body}");
        let keys = required(&spec, schema);
        assert!(!keys.is_empty(), "GET {path}: the schema requires nothing");
        for key in &keys {
            assert!(
                body.get(key).is_some(),
                "GET {path}: documented `{key}` missing from {body:#}"
            );
        }
        // One level down: the first element of each documented list.
        for (key, prop) in resolve(&spec, schema)["properties"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let items = resolve(&spec, prop);
            if items["type"] == "array"
                && let Some(first) = body[key].as_array().and_then(|a| a.first())
            {
                for inner in required(&spec, &items["items"]) {
                    assert!(
                        first.get(&inner).is_some(),
                        "GET {path}: `{key}[0].{inner}` missing from {first:#}"
                    );
                }
            }
        }
    }
    // Every documented status of the refusals we can provoke is listed.
    let op = &spec["paths"]["/api/items"]["post"]["responses"];
    for code in ["201", "400", "401", "404", "422"] {
        assert!(
            op.get(code).is_some(),
            "POST /api/items does not document {code}"
        );
    }
}
