//! Who may call which endpoint with OIDC on (indigo-api.md §5): the deployment's owner,
//! another user of the same organisation, a user of another organisation, an admin of the
//! issuer, and a request without a token; tokens from a fake identity provider (JWKS).

mod common;
#[path = "common_auth/mod.rs"]
mod common_auth;

use common::*;
use common_auth::{keys, sign, Idp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use server::auth::{Auth, AuthConfig, IssuerConfig};

const ADMINS: &str = "orchestrator-admins";

struct World {
    s: TestServer,
    idp: Idp,
    owner: String,
    same_org: String,
    other_org: String,
    admin: String,
}

impl World {
    async fn new(workers: bool) -> World {
        let idp = Idp::start(vec![keys()[0].jwk(Some("RS256"))]).await;
        let issuer = IssuerConfig {
            admin_group: Some(ADMINS.into()),
            required_scopes: vec!["openid".into(), "profile".into()],
            write_scopes: vec!["offline_access".into(), "fts:submit-transfer".into()],
            ..IssuerConfig::new(idp.issuer.clone())
        };
        let auth = Auth::oidc(AuthConfig::new(vec![issuer]), reqwest::Client::new());
        let s = start_with(Options { auth, workers, ..Options::default() }).await;
        let token = |sub: &str, org: &str, groups: &[&str]| {
            let mut c = idp.claims(sub);
            c["organisation_name"] = json!(org);
            c["groups"] = json!(groups);
            sign(&keys()[0], &c)
        };
        World {
            owner: token("alice", "egi.eu", &[]),
            same_org: token("bob", "egi.eu", &[]),
            other_org: token("carol", "other.org", &[]),
            admin: token("root", "egi.eu", &[ADMINS]),
            s,
            idp,
        }
    }

    /// The five callers, in the order of the expectation arrays.
    fn callers(&self) -> [(&'static str, Option<&str>); 5] {
        [("owner", Some(&self.owner)), ("same org", Some(&self.same_org)), ("other org", Some(&self.other_org)), ("admin", Some(&self.admin)), ("anonymous", None)]
    }

    async fn create(&self, token: &str) -> String {
        let r = self.s.send_as(Some(token), Method::POST, "/deployments", Some(json!({"template": fixture("server/minimal.yaml")}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()["uuid"].as_str().unwrap().to_string()
    }
}

/// Only the status of a (possibly endless) response.
async fn status_only(s: &TestServer, token: Option<&str>, path: &str) -> u16 {
    let mut req = s.client.get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

fn check(who: &str, what: &str, r: &Reply, want: u16) {
    assert_eq!(r.status.as_u16(), want, "{what} as {who}: {}", r.text);
    if want >= 400 {
        r.error(want);
    }
    if want == 401 {
        assert!(r.headers.get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")), "{what}: {:?}", r.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_by_principal() {
    let w = World::new(true).await;
    let id = w.create(&w.owner).await;
    let d = w.s.wait_status_as(Some(&w.owner), &id, "CREATE_COMPLETE").await;
    assert_eq!(d["createdBy"], json!({"issuer": w.idp.issuer, "subject": "alice"}));
    let rid = w.s.send_as(Some(&w.owner), Method::GET, &format!("/deployments/{id}/resources"), None).await.json()["content"][0]["uuid"].as_str().unwrap().to_string();

    // owner, same org, other org, admin, anonymous
    const READ: [u16; 5] = [200, 200, 403, 200, 401];
    const OWNER_ONLY: [u16; 5] = [200, 403, 403, 403, 401];
    let cases: Vec<(String, [u16; 5])> = vec![
        (format!("/deployments/{id}"), READ),
        (format!("/deployments/{id}/template"), READ),
        (format!("/deployments/{id}/resources"), READ),
        (format!("/deployments/{id}/resources/{rid}"), READ),
        (format!("/deployments/{id}/resources/filter?type=tosca.nodes.Root"), READ),
        (format!("/deployments/{id}/log"), OWNER_ONLY),
        (format!("/deployments/{id}/extrainfo"), OWNER_ONLY),
        (format!("/deployments/{id}/state"), OWNER_ONLY),
        ("/configuration".to_string(), [200, 200, 200, 200, 401]),
        ("/".to_string(), [200; 5]),
        ("/healthz".to_string(), [200; 5]),
        ("/openapi.json".to_string(), [200; 5]),
    ];
    for (path, want) in &cases {
        for ((who, token), want) in w.callers().into_iter().zip(want) {
            let r = w.s.send_as(token, Method::GET, path, None).await;
            check(who, &format!("GET {path}"), &r, *want);
        }
    }
    // A plan reads the deployment; the event stream too.
    for ((who, token), want) in w.callers().into_iter().zip(READ) {
        let r = w.s.send_as(token, Method::POST, &format!("/deployments/{id}/plan"), Some(json!({"template": fixture("server/minimal.yaml")}))).await;
        check(who, "POST plan", &r, want);
        assert_eq!(status_only(&w.s, token, &format!("/deployments/{id}/events")).await, want, "events as {who}");
    }
    // A bad token is a 401, not anonymous access.
    let r = w.s.send_as(Some("not.a.jwt"), Method::GET, &format!("/deployments/{id}"), None).await;
    check("bad token", "GET deployment", &r, 401);

    // Lists: own deployments; an admin sees the organisation's.
    let total = |r: &Reply| r.json()["page"]["totalElements"].as_u64().unwrap();
    let _bobs = w.create(&w.same_org).await;
    let _carols = w.create(&w.other_org).await;
    for ((who, token), want) in w.callers().into_iter().zip([Some(1), Some(1), Some(1), Some(2), None]) {
        let r = w.s.send_as(token, Method::GET, "/deployments", None).await;
        match want {
            Some(n) => assert_eq!(total(&r), n, "list as {who}: {}", r.text),
            None => check(who, "list", &r, 401),
        }
    }
    let me = w.s.send_as(Some(&w.owner), Method::GET, "/deployments?createdBy=me", None).await;
    assert_eq!(me.json()["content"][0]["uuid"], json!(id));
    let alice = format!("/deployments?createdBy=alice@{}", w.idp.issuer);
    check("same org", "list alice's", &w.s.send_as(Some(&w.same_org), Method::GET, &alice, None).await, 403);
    let r = w.s.send_as(Some(&w.admin), Method::GET, &alice, None).await;
    assert_eq!(total(&r), 1, "{}", r.text);
    check("owner", "createdBy garbage", &w.s.send_as(Some(&w.owner), Method::GET, "/deployments?createdBy=garbage", None).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutations_by_principal() {
    // No workers: statuses stay where the API puts them, so each answer is deterministic.
    let w = World::new(false).await;
    let template = fixture("server/minimal.yaml");
    // Creating needs a token with a write scope.
    let r = w.s.send_as(None, Method::POST, "/deployments", Some(json!({"template": template}))).await;
    check("anonymous", "POST", &r, 401);
    let mut c = w.idp.claims("dave");
    c["scope"] = json!("openid profile");
    let read_only = sign(&keys()[0], &c);
    let r = w.s.send_as(Some(&read_only), Method::POST, "/deployments", Some(json!({"template": template}))).await;
    check("read-only token", "POST", &r, 403);
    assert_eq!(w.s.send_as(Some(&w.admin), Method::GET, "/deployments", None).await.json()["page"]["totalElements"], json!(0));

    let id = w.create(&w.owner).await;
    let path = format!("/deployments/{id}");
    // Everyone but the owner is refused before any state check (admins too, as upstream).
    let refused = [403, 403, 403, 401];
    for ((who, token), want) in w.callers().into_iter().skip(1).zip(refused) {
        check(who, "PUT", &w.s.send_as(token, Method::PUT, &path, Some(json!({"template": template}))).await, want);
        check(who, "PATCH", &w.s.send_as(token, Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await, want);
        check(who, "DELETE", &w.s.send_as(token, Method::DELETE, &path, None).await, want);
    }
    check("read-only owner", "DELETE", &w.s.send_as(Some(&read_only), Method::DELETE, &path, None).await, 403);
    assert_eq!(w.s.send_as(Some(&w.owner), Method::GET, &path, None).await.json()["status"], "CREATE_IN_PROGRESS");
    // The owner gets the state machine's answers.
    check("owner", "PUT", &w.s.send_as(Some(&w.owner), Method::PUT, &path, Some(json!({"template": template}))).await, 409);
    check("owner", "PATCH", &w.s.send_as(Some(&w.owner), Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await, 409);
    assert_eq!(w.s.send_as(Some(&w.owner), Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(w.s.send_as(Some(&w.owner), Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await.status, StatusCode::NO_CONTENT);
}
