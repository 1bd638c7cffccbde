//! The federation case (`v3oidcaccesstoken`): the user's IAM access token is exchanged at
//! Keystone's OS-FEDERATION endpoint for an unscoped token, then scoped to the project. This
//! testbed's Keystone has no OIDC identity provider (that needs mod_auth_openidc in front of it),
//! so a Keystone double on 127.0.0.1 checks what the provider sends.

#![cfg(feature = "openstack")]

use providers::openstack::{OpenStackProvider, SiteConfig};
use providers::Provider;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn token(project: bool) -> serde_json::Value {
    let mut t = json!({"token": {
        "methods": ["mapped"],
        "user": {"id": "u1", "name": "alice@egi.eu", "domain": {"id": "d1", "name": "federated"}},
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-11-22T00:00:00.000000Z"
    }});
    if project {
        t["token"]["project"] = json!({"id": "p1", "name": "vo.example.eu", "domain": {"id": "d1", "name": "federated"}});
        t["token"]["catalog"] = json!([]);
    }
    t
}

#[tokio::test]
async fn an_oidc_access_token_is_exchanged_at_keystone_and_scoped_to_the_project() {
    let keystone = MockServer::start().await;
    let base = keystone.uri();
    let version = json!({"version": {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": format!("{base}/v3/")}]}});
    Mock::given(method("GET")).and(path("/v3")).respond_with(ResponseTemplate::new(200).set_body_json(&version)).mount(&keystone).await;
    Mock::given(method("GET")).and(path("/v3/")).respond_with(ResponseTemplate::new(200).set_body_json(&version)).mount(&keystone).await;
    Mock::given(method("POST"))
        .and(path("/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"))
        .and(header("authorization", "Bearer iam-access-token-123"))
        .respond_with(ResponseTemplate::new(201).insert_header("x-subject-token", "unscoped-token").set_body_json(token(false)))
        .expect(1)
        .mount(&keystone)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(201).insert_header("x-subject-token", "scoped-token").set_body_json(token(true)))
        .mount(&keystone)
        .await;

    std::env::set_var("ROSCA_TEST_IAM_TOKEN", "iam-access-token-123");
    let site = SiteConfig {
        auth_url: Some(format!("{base}/v3")),
        auth_type: Some("v3oidcaccesstoken".into()),
        identity_provider: Some("egi.eu".into()),
        protocol: Some("openid".into()),
        project_id: Some("p1".into()),
        secret_env: Some("ROSCA_TEST_IAM_TOKEN".into()),
        ..SiteConfig::default()
    };
    let provider = OpenStackProvider::new("fedcloud", site).unwrap();
    provider.preflight().await.unwrap_or_else(|e| panic!("{}", e.message));

    let requests = keystone.received_requests().await.unwrap();
    let scoping = requests.iter().find(|r| r.url.path() == "/v3/auth/tokens").expect("the unscoped token is scoped");
    let body: serde_json::Value = serde_json::from_slice(&scoping.body).unwrap();
    assert_eq!(body["auth"]["identity"]["methods"], json!(["token"]), "{body}");
    assert_eq!(body["auth"]["identity"]["token"]["id"], "unscoped-token");
    assert_eq!(body["auth"]["scope"]["project"]["id"], "p1");
}

#[tokio::test]
async fn a_refused_access_token_is_an_authentication_error_without_the_token() {
    let keystone = MockServer::start().await;
    let base = keystone.uri();
    let version = json!({"version": {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": format!("{base}/v3/")}]}});
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_json(&version)).mount(&keystone).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})))
        .mount(&keystone)
        .await;
    std::env::set_var("ROSCA_TEST_IAM_TOKEN_EXPIRED", "expired-iam-token-456");
    let site = SiteConfig {
        auth_url: Some(format!("{base}/v3")),
        auth_type: Some("v3oidcaccesstoken".into()),
        identity_provider: Some("egi.eu".into()),
        protocol: Some("openid".into()),
        project_id: Some("p1".into()),
        secret_env: Some("ROSCA_TEST_IAM_TOKEN_EXPIRED".into()),
        ..SiteConfig::default()
    };
    let e = OpenStackProvider::new("fedcloud", site).unwrap().preflight().await.unwrap_err();
    assert!(e.message.starts_with(&format!("OpenStack site fedcloud: authentication at {base}/v3 failed")), "{}", e.message);
    assert!(!e.message.contains("expired-iam-token-456"), "{}", e.message);
}
