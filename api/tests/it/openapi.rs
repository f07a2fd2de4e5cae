//! The OpenAPI document over real HTTP: it lists exactly the API's operations, every
//! operation it lists is routed, no method is routed on a documented path without being
//! documented, and the reference UI is served from the binary.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{ADMIN_KEY, TestServer, send};

/// Every operation of the API. The router is built from the documented handlers, so a
/// route added, removed or moved changes the document, and this list has to follow.
const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/v1/campaigns"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{id}"),
    ("PATCH", "/v1/campaigns/{id}"),
    ("DELETE", "/v1/campaigns/{id}"),
    ("POST", "/v1/campaigns/{id}/close"),
    ("GET", "/v1/campaigns/{id}/stats"),
    ("POST", "/v1/campaigns/{id}/issue"),
    ("POST", "/v1/campaigns/{id}/issue-batch"),
    ("GET", "/v1/campaigns/{id}/coupons"),
    ("GET", "/v1/campaigns/{id}/events"),
    ("GET", "/v1/stores/{store_id}/events"),
    ("GET", "/v1/coupons/{id}"),
    ("POST", "/v1/coupons/{id}/redeem"),
    ("POST", "/v1/coupons/{id}/cancel-redemption"),
    ("GET", "/v1/codes/{code}"),
    ("POST", "/v1/codes/{code}/redeem"),
    ("POST", "/v1/codes/{code}/cancel-redemption"),
    ("GET", "/v1/users/{user_id}/coupons"),
    ("GET", "/v1/users/{user_id}/contact"),
    ("PUT", "/v1/users/{user_id}/contact"),
    ("DELETE", "/v1/users/{user_id}/contact"),
    ("GET", "/v1/users/{user_id}/subscriptions"),
    ("POST", "/v1/subscriptions"),
    ("DELETE", "/v1/subscriptions/{user_id}/{store_id}"),
    ("GET", "/v1/mail/dead"),
    ("POST", "/v1/mail/dead/{id}/retry"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

async fn served_document(s: &TestServer) -> Value {
    // No key: the document is public.
    let resp = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// A concrete path for a template: every `{param}` becomes a value of the right shape.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "0123456789abcdef-0")
        .replace("{user_id}", "u1")
        .replace("{store_id}", "s1")
        .replace("{code}", "7Q2M-K9XD-3HWT-AR")
}

#[tokio::test]
async fn the_document_lists_exactly_the_apis_operations() {
    let s = TestServer::start().await;
    let doc = served_document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let want: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let got = documented_operations(&doc);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not documented: {missing:?}; documented but not expected: {extra:?}"
    );
    // One operation id each, for links to name.
    let ids: BTreeSet<_> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), OPERATIONS.len());
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_on_its_path() {
    let s = TestServer::start().await;
    let doc = served_document(&s).await;
    let documented = documented_operations(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            let url = format!("{}{}", s.base, concrete(path));
            let req = s
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
                .bearer_auth(ADMIN_KEY);
            let resp = req.send().await.unwrap();
            let status = resp.status();
            // An event stream never ends by itself: its headers say enough.
            let body = if resp
                .headers()
                .get("content-type")
                .is_some_and(|t| t == "text/event-stream")
            {
                serde_json::Value::Null
            } else {
                resp.json().await.unwrap_or(serde_json::Value::Null)
            };
            let routed = !(status == StatusCode::NOT_FOUND && body["code"] == "not_found")
                && status != StatusCode::METHOD_NOT_ALLOWED;
            let is_documented = documented.contains(&(method.to_string(), path.to_string()));
            assert_eq!(
                routed, is_documented,
                "{method} {path}: {status} {body} (documented: {is_documented})"
            );
        }
    }
    // The probe tells routes from non-routes.
    let (status, body) = send(s.admin(Method::GET, "/v1/no-such-route")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn every_operation_documents_its_security_and_errors() {
    let s = TestServer::start().await;
    let doc = served_document(&s).await;
    let open = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/campaigns/{id}/events",
        "/v1/stores/{store_id}/events",
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if open.contains(&path.as_str()) {
                assert_eq!(op["security"], serde_json::json!([{}]), "{method} {path}");
                continue;
            }
            let role = op["security"][0]["bearer"][0].as_str();
            assert!(
                matches!(role, Some("admin" | "issuer")),
                "{method} {path}: {}",
                op["security"]
            );
            let unauthorized = &responses["401"];
            assert!(
                unauthorized["headers"]["WWW-Authenticate"].is_object(),
                "{method} {path}"
            );
            if role == Some("admin") {
                assert!(responses.contains_key("403"), "{method} {path}");
            }
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = &r["content"]["application/problem+json"];
                    assert!(content["schema"].is_object(), "{method} {path} {status}");
                }
                if status == "503" {
                    assert!(r["headers"]["Retry-After"].is_object(), "{method} {path}");
                }
            }
        }
    }
    let issue = &doc["paths"]["/v1/campaigns/{id}/issue"]["post"];
    let params: Vec<_> = issue["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert!(
        params.contains(&("Idempotency-Key", "header")),
        "{params:?}"
    );
    assert!(issue["responses"]["201"]["headers"]["idempotent-replayed"].is_object());
    let codes = &issue["responses"]["409"]["content"]["application/problem+json"]["schema"]["allOf"]
        [1]["properties"]["code"]["enum"];
    assert_eq!(
        codes,
        &serde_json::json!(["already_issued", "sold_out", "not_active"])
    );
    // The link chain the stateful fuzzer follows.
    let link = |path: &str, method: &str, status: &str, name: &str| {
        doc["paths"][path][method]["responses"][status]["links"][name]["operationId"].clone()
    };
    assert_eq!(
        link("/v1/campaigns", "post", "201", "issue"),
        "issue_coupon"
    );
    assert_eq!(
        link("/v1/campaigns/{id}/issue", "post", "201", "redeem"),
        "redeem_coupon"
    );
    assert_eq!(
        link(
            "/v1/coupons/{id}/redeem",
            "post",
            "200",
            "cancel_redemption"
        ),
        "cancel_redemption"
    );
    // `deny_unknown_fields` reaches the document.
    let create = &doc["components"]["schemas"]["CreateCampaign"]["allOf"][0];
    assert_eq!(create["additionalProperties"], false);
    // Amounts state the bound the engine enforces: a u64 field documented as `int64`
    // with no maximum lets a client send 2^63 and up, which the format says is invalid.
    let discount = &doc["components"]["schemas"]["Discount"]["allOf"][0]["properties"];
    for field in ["value", "min_order_amount", "max_discount_amount"] {
        let max = discount[field]["maximum"].as_f64();
        assert_eq!(
            max,
            Some(firstcome_engine::MAX_AMOUNT as f64),
            "{field}: {}",
            discount[field]
        );
    }
}

#[tokio::test]
async fn the_reference_ui_is_served_by_the_binary() {
    let s = TestServer::start().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect
        .get(format!("{}/docs", s.base))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/docs/");
    for (file, contains) in [
        ("/docs/", "swagger-ui"),
        ("/docs/swagger-ui-bundle.js", "SwaggerUIBundle"),
        ("/docs/swagger-initializer.js", "/openapi.json"),
    ] {
        let resp = s
            .client
            .get(format!("{}{file}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{file}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(contains), "{file}");
        // No CDN: the page loads nothing from another origin.
        if file == "/docs/" {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{text}"
            );
        }
    }
}
