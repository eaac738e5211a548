//! Checking real answers against the OpenAPI document: a small JSON Schema validator (the
//! keywords the document uses) and the lookup of an answer's documented schema.

use serde_json::Value;
use std::sync::LazyLock;

/// The document as the server ships it.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../src/api/openapi.json")).expect("openapi.json")
});

/// Whether `value` fits `schema`, resolving `$ref`s in `doc`; the error says where and why.
/// Keywords: `$ref`, `type` (one or a list, so `["string", "null"]` is nullable),
/// `properties`, `required`, `additionalProperties`, `items`, `enum`, `oneOf`, `minimum`,
/// `maximum`, `maxLength`, `minItems`, `maxItems`. Anything else is ignored, as JSON Schema
/// does with unknown keywords.
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = target
            .strip_prefix('#')
            .ok_or_else(|| format!("{at}: non-local $ref {target}"))?;
        let resolved = doc
            .pointer(pointer)
            .ok_or_else(|| format!("{at}: unresolved $ref {target}"))?;
        return validate(doc, resolved, value, at);
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: malformed type {types}")),
        };
        if !allowed.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{at}: expected {}, got {value}",
                allowed.join(" or ")
            ));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let fitting = options
            .iter()
            .filter(|option| validate(doc, option, value, at).is_ok())
            .count();
        if fitting != 1 {
            return Err(format!("{at}: fits {fitting} of the oneOf options, not 1"));
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
            if number < minimum {
                return Err(format!("{at}: {number} is below {minimum}"));
            }
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
            if number > maximum {
                return Err(format!("{at}: {number} is above {maximum}"));
            }
        }
    }
    if let (Some(text), Some(limit)) = (
        value.as_str(),
        schema.get("maxLength").and_then(Value::as_u64),
    ) {
        if text.chars().count() as u64 > limit {
            return Err(format!("{at}: longer than {limit} characters"));
        }
    }
    if let Value::Array(items) = value {
        let count = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|min| count < min)
            || schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|max| count > max)
        {
            return Err(format!("{at}: {count} items is out of bounds"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(doc, item_schema, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                return Err(format!("{at}: missing required {name}"));
            }
        }
        for (name, field) in fields {
            let path = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => validate(doc, field_schema, field, &path)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{path}: not in the schema"));
                    }
                    Some(extra @ Value::Object(_)) => validate(doc, extra, field, &path)?,
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// The documented path template a request path falls under, for `method` if several fit
/// (`/api/v1/users/login` is both sign-in and a user named `login`). `{name}` is a
/// repository name: one or more segments, up to the `/-/` of a sub-resource.
pub fn template_for(path: &str, method: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_suffix('/').unwrap_or(path);
    let paths = DOCUMENT["paths"].as_object()?;
    let mut fitting: Vec<&String> = paths
        .keys()
        .filter(|template| fits(template, path))
        .collect();
    // Literal segments before parameters.
    fitting.sort_by_key(|template| template.matches('{').count());
    fitting
        .iter()
        .find(|template| paths[template.as_str()].get(method).is_some())
        .or_else(|| fitting.first())
        .map(|template| (*template).clone())
}

fn fits(template: &str, path: &str) -> bool {
    let (template, path) = match template.split_once("{name}") {
        None => (template, path),
        Some((before, after)) => {
            let Some(rest) = path.strip_prefix(before) else {
                return false;
            };
            match (rest.split_once("/-/"), after.strip_prefix("/-/")) {
                (None, None) => return after.is_empty() && !rest.is_empty(),
                (Some((name, sub)), Some(template_sub)) if !name.is_empty() => (template_sub, sub),
                _ => return false,
            }
        }
    };
    let pieces: Vec<&str> = template.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    pieces.len() == segments.len()
        && pieces
            .iter()
            .zip(&segments)
            .all(|(piece, segment)| piece.starts_with('{') || piece == segment)
}

/// Checks an answer against the document: a success must be documented for the operation
/// and fit its schema; an error fits the documented schema for its status, or else the
/// error envelope every endpoint uses. Paths the document does not describe are not checked.
pub fn check_answer(method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
    let method = method.to_ascii_lowercase();
    let Some(template) = template_for(path, &method) else {
        return Ok(());
    };
    let doc = &*DOCUMENT;
    let Some(operation) = doc["paths"][&template].get(&method) else {
        return Ok(()); // 405: the error envelope is checked by the API's own tests.
    };
    let at = format!("{} {template} → {status}", method.to_ascii_uppercase());
    let documented = resolve(doc, &operation["responses"][status.to_string()]);
    let schema = match documented {
        Some(response) => match response.pointer("/content/application~1json/schema") {
            Some(schema) => schema.clone(),
            None if body.is_null() => return Ok(()),
            None => return Err(format!("{at}: documented without a body, but has one")),
        },
        None if status < 400 => return Err(format!("{at}: status not documented")),
        None => serde_json::json!({ "$ref": "#/components/schemas/Error" }),
    };
    validate(doc, &schema, body, &at)
}

/// A response object, following a `$ref` to `components/responses`.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> Option<&'a Value> {
    if response.is_null() {
        return None;
    }
    match response.get("$ref").and_then(Value::as_str) {
        Some(target) => doc.pointer(target.strip_prefix('#')?),
        None => Some(response),
    }
}

#[test]
fn the_validator_refuses_what_does_not_fit() {
    use serde_json::json;
    let doc = json!({ "components": { "schemas": {
        "Item": { "type": "object", "properties": {
            "id": { "type": "integer", "minimum": 0 },
            "label": { "type": ["string", "null"], "maxLength": 3 },
            "kind": { "type": "string", "enum": ["a", "b"] }
        }, "required": ["id"], "additionalProperties": false },
        "List": { "type": "array", "items": { "$ref": "#/components/schemas/Item" } }
    }}});
    let list = json!({ "$ref": "#/components/schemas/List" });
    let good = json!([{ "id": 1, "label": null, "kind": "a" }, { "id": 2, "label": "abc" }]);
    assert_eq!(validate(&doc, &list, &good, "$"), Ok(()));
    let bad = [
        (json!([{ "label": "x" }]), "missing required id"),
        (json!([{ "id": "1" }]), "expected integer"),
        (json!([{ "id": 1.5 }]), "expected integer"),
        (json!([{ "id": -1 }]), "below"),
        (json!([{ "id": 1, "label": "abcd" }]), "longer than"),
        (json!([{ "id": 1, "kind": "c" }]), "not one of"),
        (
            json!([{ "id": 1, "extra": true }]),
            "$[0].extra: not in the schema",
        ),
        (json!({ "id": 1 }), "expected array"),
    ];
    for (value, wanted) in bad {
        let err = validate(&doc, &list, &value, "$").unwrap_err();
        assert!(err.contains(wanted), "{value}: {err}");
    }
    let missing = json!({ "$ref": "#/components/schemas/Nothing" });
    assert!(validate(&doc, &missing, &json!(1), "$").is_err());
}

#[test]
fn request_paths_find_their_templates() {
    let cases = [
        ("/api/v1/users/login", "post", Some("/api/v1/users/login")),
        (
            "/api/v1/users/login",
            "get",
            Some("/api/v1/users/{username}"),
        ),
        ("/api/v1/users/", "get", Some("/api/v1/users")),
        (
            "/api/v1/repositories/acme/app/api?x=1",
            "get",
            Some("/api/v1/repositories/{name}"),
        ),
        (
            "/api/v1/repositories/acme/app/-/groups/devs",
            "delete",
            Some("/api/v1/repositories/{name}/-/groups/{team}"),
        ),
        (
            "/api/v1/repositories/acme/app/-/star",
            "put",
            Some("/api/v1/repositories/{name}/-/star"),
        ),
        ("/api/v1/repositories/acme/app/-/nothing", "get", None),
        ("/v2/acme/app/manifests/v1", "get", None),
        ("/v1/search?q=x", "get", Some("/v1/search")),
    ];
    for (path, method, template) in cases {
        assert_eq!(template_for(path, method).as_deref(), template, "{path}");
    }
}
