//! What ops/ ships (the Grafana dashboard, the Prometheus rules) names only metrics the
//! server exports, with labels they have: a renamed metric or a typo in a query would
//! otherwise show up as an empty panel or an alert that never fires.
//!
//! The server is real and so is the traffic (over HTTP): metrics appear in `/metrics`
//! only once recorded, so this also checks that the traffic an operator's dashboard
//! needs does record them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use firstcome_api::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, ISSUER_KEY, client, config, eventually, send};

/// Labels Prometheus adds to every scraped series itself.
const TARGET_LABELS: &[&str] = &["instance", "job"];

fn ops_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ops")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every string in the dashboard (queries, the variable's query, descriptions), so that
/// a metric named in a panel's description is held to the same standard as a query.
fn dashboard_text() -> String {
    fn strings(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let dashboard: Value = serde_json::from_str(&ops_file("grafana/firstcome.json")).unwrap();
    // Importable: the datasource is an input, not this machine's datasource uid.
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut out = String::new();
    strings(&dashboard, &mut out);
    assert!(out.contains("${DS_PROMETHEUS}"));
    out
}

/// Series name (and histogram family name) → label names seen on it, from the text
/// exposition format.
fn exported(exposition: &str) -> HashMap<String, HashSet<String>> {
    let mut names: HashMap<String, HashSet<String>> = HashMap::new();
    let mut families = Vec::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap();
        let labels = names.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            labels.extend(label_names(&line[end + 1..]));
        }
    }
    // A histogram's family name (`x` of `x_bucket`, `x_sum`, `x_count`) is a fine name
    // to mention; its labels are those of its series but `le`.
    for family in families {
        let mut labels = HashSet::new();
        for suffix in ["", "_bucket", "_sum", "_count", "_total"] {
            if let Some(l) = names.get(&format!("{family}{suffix}")) {
                labels.extend(l.iter().filter(|l| *l != "le").cloned());
            }
        }
        names.entry(family).or_default().extend(labels);
    }
    names
}

/// The label names of `a="x",b=~"y"}...`: a label value can hold `,` and `}` (route
/// templates do), so values are skipped quote to quote, escapes included.
fn label_names(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_'))
                .collect();
        if name.is_empty() {
            return out;
        }
        out.push(name);
        while chars.peek().is_some_and(|c| " =!~".contains(*c)) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return out;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => break,
                _ => {}
            }
        }
    }
}

/// Every `firstcome_…` name in `text`, with the label names of its `{…}` selector if
/// it has one.
fn references(text: &str) -> Vec<(String, Vec<String>)> {
    // Annotations in YAML and descriptions in JSON escape their quotes.
    let text = text.replace("\\\"", "\"");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("firstcome_") {
        // Not the tail of a longer identifier.
        let before = text.len() - rest.len() + i;
        let prev = text[..before].chars().next_back();
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..len];
        rest = &tail[len..];
        if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let labels = match rest.strip_prefix('{') {
            Some(selector) => label_names(selector),
            None => Vec::new(),
        };
        out.push((name.to_string(), labels));
    }
    out
}

/// What is wrong with `refs` against `exported`, one line per problem.
fn problems(
    exported: &HashMap<String, HashSet<String>>,
    refs: &[(String, Vec<String>)],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, labels) in refs {
        match exported.get(name) {
            None => {
                out.insert(format!("{name} is not exported"));
            }
            Some(have) => {
                for l in labels {
                    if !have.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                        out.insert(format!("{name} has no label {l}"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_checker_finds_unknown_names_and_labels() {
    let exposition = "# TYPE firstcome_x_seconds histogram\n\
        firstcome_x_seconds_bucket{route=\"/v1/c/{id},x\",le=\"0.1\"} 1\n\
        firstcome_x_seconds_sum{route=\"/v1/c/{id},x\"} 1\n\
        firstcome_x_seconds_count{route=\"/v1/c/{id},x\"} 1\n\
        # TYPE firstcome_y_total counter\nfirstcome_y_total 3\n";
    let e = exported(exposition);
    let text = "rate(firstcome_x_seconds_bucket{instance=~\"$i\", route=\"a\"}[5m]) \
        firstcome_x_seconds and firstcome_y_total{le=\"1\"} + firstcome_z_total \
        + firstcome_x_seconds_count{rout=\"a\"} myfirstcome_not_a_name";
    let found = problems(&e, &references(text));
    let want: BTreeSet<String> = [
        "firstcome_y_total has no label le",
        "firstcome_z_total is not exported",
        "firstcome_x_seconds_count has no label rout",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_rules_name_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // A cap of one request in flight, so that a burst is shed and the shedding metrics
    // are recorded by real 503s. Mail is on (to .eml files in the data dir).
    let cfg = firstcome_api::Config {
        max_inflight_requests: 1,
        ..config(dir.path())
    };
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.addr);
    let c = client();
    let admin = |m: Method, p: &str| c.request(m, format!("{base}{p}")).bearer_auth(ADMIN_KEY);
    let issuer = |m: Method, p: &str| c.request(m, format!("{base}{p}")).bearer_auth(ISSUER_KEY);

    let (status, campaign) = send(
        admin(Method::POST, "/v1/campaigns")
            .json(&json!({"name": "ops", "total_stock": 100000, "coupon_valid_for_secs": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let cid = campaign["id"].as_str().unwrap().to_string();
    let issue = format!("/v1/campaigns/{cid}/issue");
    let (status, coupon) = send(
        issuer(Method::POST, &issue).json(&json!({"user_id": "alice", "email": "alice@shop.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    let coupon_id = coupon["coupon"]["id"].as_str().unwrap();
    let (status, v) = send(
        issuer(Method::POST, &format!("/v1/coupons/{coupon_id}/redeem"))
            .json(&json!({"user_id": "alice"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _) = send(c.get(format!("{base}/v1/campaigns/{cid}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(c.get(format!("{base}/no-such-route"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bursts until the cap sheds one.
    let mut shed = None;
    for round in 0..50 {
        let burst = (0..32).map(|i| {
            send(issuer(Method::POST, &issue).json(&json!({"user_id": format!("u{round}-{i}")})))
        });
        shed = futures::future::join_all(burst)
            .await
            .into_iter()
            .find(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE);
        if shed.is_some() {
            break;
        }
    }
    // The body went through the metrics middleware's look at it unchanged.
    let (_, body) = shed.expect("a burst of 32 against a cap of 1 sheds");
    assert_eq!(body["code"], "overloaded", "{body}");

    // The confirmation goes out in the background.
    let metrics_text = || async {
        let text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (text.contains("firstcome_mail_send_duration_seconds_bucket")
            && text.contains("firstcome_mail_outbox_depth"))
        .then_some(text)
    };
    let text = eventually("the confirmation to be sent", metrics_text).await;
    let exported = exported(&text);
    assert!(
        exported["firstcome_http_overloaded_total"].contains("route"),
        "{text}"
    );

    for (file, content) in [
        ("grafana/firstcome.json", dashboard_text()),
        ("prometheus/rules.yml", ops_file("prometheus/rules.yml")),
    ] {
        let refs = references(&content);
        assert!(refs.len() > 10, "{file}: only {refs:?}");
        let found = problems(&exported, &refs);
        assert!(found.is_empty(), "{file}: {found:#?}\n/metrics:\n{text}");
    }

    // And what promtool checks in CI, here too: every exported metric has help text.
    let helped: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = l.split(' ').next().unwrap();
        assert!(helped.contains(name), "{name} has no # HELP");
    }
    server.shutdown().await;
}
