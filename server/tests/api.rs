//! The HTTP API against indigo-api.md (the INDIGO PaaS Orchestrator contract) and the issue:
//! wire details, pagination, the status and resource-state machines, update/scale, delete,
//! reset, validation, callbacks, Rosca's additions (log, extrainfo, state, plan, events,
//! openapi, healthz) and request limits. In-process: router + engine workers over SQLite.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const INITIAL_OR_LATER: &[&str] = &["INITIAL", "CREATING", "CREATED", "CONFIGURING", "CONFIGURED", "STARTING", "STARTED"];

fn minimal() -> String {
    fixture("server/minimal.yaml")
}

fn scaled() -> String {
    fixture("server/scaled.yaml")
}

fn assert_deployment_shape(d: &Value, base: &str) {
    let o = d.as_object().expect("object");
    for (k, v) in o {
        assert!(!v.is_null(), "null field {k} must be omitted: {d}");
    }
    let id = d["uuid"].as_str().unwrap();
    assert!(uuid_re().is_match(id), "{id}");
    for k in ["creationTime", "updateTime"] {
        assert!(date_re().is_match(d[k].as_str().unwrap()), "{k}: {}", d[k]);
    }
    assert!(d["outputs"].is_object(), "{d}");
    assert!(["NONE", "DEPLOYER"].contains(&d["task"].as_str().unwrap()), "{d}");
    let me = format!("{base}/deployments/{id}");
    let links: Vec<(String, String)> = d["links"].as_array().unwrap().iter().map(|l| (l["rel"].as_str().unwrap().to_string(), l["href"].as_str().unwrap().to_string())).collect();
    assert_eq!(links, vec![("self".into(), me.clone()), ("resources".into(), format!("{me}/resources?type={{type}}")), ("template".into(), format!("{me}/template"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_show_and_the_wire_format() {
    let s = start().await;
    let template = minimal();
    // Lenient parsing: unknown fields ignored, booleans and numbers as strings (orchent).
    let body = json!({"template": template, "parameters": {"greeting": "hi"}, "keepLastAttempt": "true", "maxProvidersRetry": "1", "somethingNew": {"x": 1}});
    let r = s.send(Method::POST, "/deployments", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.content_type().starts_with("application/json"), "{}", r.content_type());
    assert!(r.headers.get("location").is_none(), "upstream sends no Location");
    let d = r.json();
    assert_deployment_shape(&d, &s.base);
    assert_eq!(d["status"], "CREATE_IN_PROGRESS");
    assert_eq!(d["task"], "NONE");
    assert_eq!(d["outputs"], json!({}));
    for absent in ["physicalId", "statusReason", "callback", "userGroup", "createdBy", "cloudProviderName", "cloudProviderEndpoint"] {
        assert!(d.get(absent).is_none(), "{absent} must be omitted: {d}");
    }
    let id = d["uuid"].as_str().unwrap().to_string();

    // One resource row per instance right away (INITIAL, or already further along).
    let rows = s.resources(&id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(INITIAL_OR_LATER.contains(&rows[0]["state"].as_str().unwrap()), "{}", rows[0]);

    let done = s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    assert_deployment_shape(&done, &s.base);
    assert_eq!(done["task"], "NONE");
    assert_eq!(done["outputs"], json!({"greeting": "hi"}));
    assert!(done.get("statusReason").is_none(), "{done}");
    assert!(done["physicalId"].as_str().is_some_and(|p| !p.is_empty()), "{done}");
    assert_eq!(done["creationTime"], d["creationTime"]);

    // Resource wire format after completion.
    let rows = s.resources(&id).await;
    assert_eq!(rows.len(), 1);
    let res = &rows[0];
    assert_eq!(res["state"], "STARTED", "{res}");
    assert_eq!(res["toscaNodeName"], "app");
    assert_eq!(res["toscaNodeType"], "rosca.test.App");
    assert_eq!(res["requiredBy"], json!([]));
    assert!(res["metadata"].is_object());
    assert!(uuid_re().is_match(res["uuid"].as_str().unwrap()));
    assert!(date_re().is_match(res["creationTime"].as_str().unwrap()));
    let rid = res["uuid"].as_str().unwrap();
    assert_eq!(link(res, "deployment").unwrap(), format!("{}/deployments/{id}", s.base));
    assert_eq!(link(res, "self").unwrap(), format!("{}/deployments/{id}/resources/{rid}", s.base));
    let one = s.get_json(&format!("/deployments/{id}/resources/{rid}")).await;
    assert_eq!(&one, res);

    // The template as stored, as text.
    let t = s.get(&format!("/deployments/{id}/template")).await;
    assert_eq!(t.status, StatusCode::OK);
    assert!(t.content_type().starts_with("text/plain"), "{}", t.content_type());
    assert_eq!(t.text, template);

    // Time-ordered ids: later deployments sort after earlier ones.
    let mut ids = vec![id.clone()];
    for _ in 0..3 {
        ids.push(s.create(&template, json!({})).await["uuid"].as_str().unwrap().to_string());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "uuids are time-ordered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pagination_follows_next_until_self_is_last() {
    let s = start_with(Options { workers: false, ..Options::default() }).await;
    let template = minimal();
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(s.create(&template, json!({})).await["uuid"].as_str().unwrap().to_string());
    }
    // Default page: size 10, page 0, newest first; links first/self/next/last.
    let p = s.get_json("/deployments").await;
    assert_eq!(p["page"], json!({"size": 10, "totalElements": 25, "totalPages": 3, "number": 0}));
    assert_eq!(p["content"].as_array().unwrap().len(), 10);
    let rels: Vec<&str> = p["links"].as_array().unwrap().iter().map(|l| l["rel"].as_str().unwrap()).collect();
    assert_eq!(rels, vec!["first", "self", "next", "last"]);

    // orchent: follow `next` until self == last.
    let mut url = s.url("/deployments?size=10");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = s.client.get(&url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        assert!(pages <= 3, "too many pages");
        assert_eq!(page["page"]["number"], json!(pages - 1));
        assert!(link(&page, "first").is_some(), "{page}");
        assert!(link(&page, "last").is_some(), "{page}");
        assert_eq!(link(&page, "prev").is_some(), pages > 1, "{page}");
        for d in page["content"].as_array().unwrap() {
            assert_deployment_shape(d, &s.base);
            seen.push(d["uuid"].as_str().unwrap().to_string());
        }
        if link(&page, "self") == link(&page, "last") {
            assert!(link(&page, "next").is_none());
            break;
        }
        url = link(&page, "next").expect("next link");
        assert!(url.contains("page=") && url.contains("size=10") && url.contains("sort=createdAt,desc"), "{url}");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "sorted by createdAt desc");

    // Ascending sort and an explicit page.
    let asc = s.get_json("/deployments?page=2&size=10&sort=createdAt,asc").await;
    let ids: Vec<&str> = asc["content"].as_array().unwrap().iter().map(|d| d["uuid"].as_str().unwrap()).collect();
    assert_eq!(ids, created[20..].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(link(&asc, "next").is_none());
    assert_eq!(link(&asc, "self"), link(&asc, "last"));
    // Past the end: an empty page, not an error.
    let past = s.get_json("/deployments?page=9&size=10").await;
    assert_eq!(past["content"], json!([]));
    // Bad paging values are 400s.
    s.get("/deployments?page=-1").await.error(400);
    s.get("/deployments?size=abc").await.error(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resources_filter_by_type_and_ancestor_type() {
    let s = start().await;
    let id = s.create(&fixture("examples/web_app.yaml"), json!({"db_password": "pw-1234567"})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let all = s.resources(&id).await;
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all.iter().all(|r| r["state"] == "STARTED"), "{all:?}");
    let names: BTreeSet<&str> = all.iter().map(|r| r["toscaNodeName"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["web_host", "web_server", "site", "db_host", "dbms", "database"]));

    let computes = s.get_json(&format!("/deployments/{id}/resources?type=tosca.nodes.Compute")).await;
    assert_eq!(computes["page"]["totalElements"], json!(2));
    assert!(computes["content"].as_array().unwrap().iter().all(|r| r["toscaNodeType"] == "tosca.nodes.Compute"));
    let self_link = link(&computes, "self").unwrap();
    assert!(self_link.contains("type=tosca.nodes.Compute") && self_link.contains("page=0") && self_link.contains("size=10"), "{self_link}");
    // An ancestor type matches every descendant.
    let root = s.get_json(&format!("/deployments/{id}/resources?type=tosca.nodes.Root")).await;
    assert_eq!(root["page"]["totalElements"], json!(6));
    let sw = s.get_json(&format!("/deployments/{id}/resources?type=tosca.nodes.SoftwareComponent")).await;
    let sw_names: BTreeSet<&str> = sw["content"].as_array().unwrap().iter().map(|r| r["toscaNodeName"].as_str().unwrap()).collect();
    assert_eq!(sw_names, BTreeSet::from(["web_server", "dbms"]), "WebServer and DBMS derive from SoftwareComponent");
    let none = s.get_json(&format!("/deployments/{id}/resources?type=tosca.nodes.Nope")).await;
    assert_eq!(none["page"]["totalElements"], json!(0));

    // /resources/filter: a plain array; type required.
    let f = s.get_json(&format!("/deployments/{id}/resources/filter?type=tosca.nodes.Compute")).await;
    assert_eq!(f.as_array().unwrap().len(), 2, "{f}");
    s.get(&format!("/deployments/{id}/resources/filter")).await.error(400);
    s.get(&format!("/deployments/{id}/resources/filter?type=")).await.error(400);

    // Paged resources.
    let p = s.get_json(&format!("/deployments/{id}/resources?size=4")).await;
    assert_eq!(p["page"], json!({"size": 4, "totalElements": 6, "totalPages": 2, "number": 0}));
    assert!(link(&p, "next").is_some());

    // 404s.
    let m = s.get(&format!("/deployments/{id}/resources/nope")).await.error(404);
    assert_eq!(m, format!("The resource <nope> in deployment <{id}> doesn't exist"));
    let m = s.get("/deployments/missing-id/resources").await.error(404);
    assert_eq!(m, "The deployment <missing-id> doesn't exist");
    let m = s.get("/deployments/missing-id").await.error(404);
    assert_eq!(m, "The deployment <missing-id> doesn't exist");
    // Sandboxes of the computes live in the data dir, under the deployment.
    assert!(s.dir.path().join("data/deployments").join(&id).is_dir());
    // Outputs of the example resolve.
    let d = s.get_json(&format!("/deployments/{id}")).await;
    assert!(d["outputs"]["url"].as_str().is_some_and(|u| u.starts_with("http://") && u.ends_with(":8080/app")), "{d}");
}

fn workers_of(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().filter(|r| r["toscaNodeName"] == "worker").map(|r| r["uuid"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_scales_out_and_in_with_a_removal_list() {
    let s = start().await;
    let template = scaled();
    let id = s.create(&template, json!({"count": 2})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let rows = s.resources(&id).await;
    let first = workers_of(&rows);
    assert_eq!(first.len(), 2, "{rows:?}");
    assert_eq!(rows.len(), 4, "two workers, two agents: {rows:?}");

    // Scale out to 4: a 202 with an empty body, then UPDATE_COMPLETE; old instances keep their uuids.
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": template, "parameters": {"count": 4}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.text, "");
    let d = s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    assert_eq!(d["task"], "NONE");
    let rows = s.resources(&id).await;
    let four = workers_of(&rows);
    assert_eq!(four.len(), 4, "{rows:?}");
    assert!(first.is_subset(&four), "existing workers keep their uuids");
    assert!(rows.iter().all(|r| r["state"] == "STARTED"), "{rows:?}");
    assert_eq!(rows.len(), 8);

    // Scale in to 2 naming the victims by resource uuid: exactly those go.
    let victims: Vec<String> = four.iter().filter(|u| !first.contains(*u)).take(1).chain(first.iter().take(1)).cloned().collect();
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": template, "parameters": {"count": 2, "removal_list": victims}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    let rows = s.resources(&id).await;
    let two = workers_of(&rows);
    let expected: BTreeSet<String> = four.iter().filter(|u| !victims.contains(u)).cloned().collect();
    assert_eq!(two, expected, "exactly the listed instances are removed");
    assert_eq!(rows.len(), 4, "agents follow their workers: {rows:?}");
    assert!(rows.iter().all(|r| r["state"] == "STARTED"), "{rows:?}");

    // Later updates do not carry the old removal_list (its instances are gone): scale out
    // and in again without naming victims.
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": template, "parameters": {"count": 3}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    let three = workers_of(&s.resources(&id).await);
    assert_eq!(three.len(), 3);
    assert!(two.is_subset(&three));
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": template, "parameters": {"count": 2}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    let rows = s.resources(&id).await;
    assert_eq!(workers_of(&rows).len(), 2, "{rows:?}");
    assert_eq!(rows.len(), 4, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_merges_parameters_and_replaces_the_template() {
    let s = start().await;
    let template = minimal();
    let id = s.create(&template, json!({"greeting": "hi", "api_key": "k1-secret-value"})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    // Only api_key is sent: greeting stays "hi" (merged, not reset to its default).
    let t2 = format!("{template}\n# revision 2\n");
    let r = s.send(Method::PUT, &format!("/deployments/{id}/"), Some(json!({"template": t2, "parameters": {"api_key": "k2-secret-value"}, "keepLastAttempt": "false"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let d = s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    assert_eq!(d["outputs"], json!({"greeting": "hi"}), "{d}");
    assert_eq!(s.get(&format!("/deployments/{id}/template")).await.text, t2);
    // Another update from UPDATE_COMPLETE is allowed.
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": t2, "parameters": {"greeting": "hey"}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let d = s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    assert_eq!(d["outputs"], json!({"greeting": "hey"}));
    // An invalid template in a PUT is a 400 and changes nothing.
    let before = s.get_json(&format!("/deployments/{id}")).await;
    let m = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": fixture("server/invalid.yaml")}))).await.error(400);
    assert!(regex::Regex::new(r"template:\d+:\d+").unwrap().is_match(&m), "{m}");
    assert_eq!(s.get_json(&format!("/deployments/{id}")).await, before);
    assert_eq!(s.get(&format!("/deployments/{id}/template")).await.text, t2);
    // PUT of a missing deployment.
    s.send(Method::PUT, "/deployments/nope", Some(json!({"template": template}))).await.error(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_machine_conflicts_reset_and_delete_without_workers() {
    // No workers: every deployment stays where the API put it.
    let s = start_with(Options { workers: false, ..Options::default() }).await;
    let template = minimal();
    let id = s.create(&template, json!({})).await["uuid"].as_str().unwrap().to_string();
    let path = format!("/deployments/{id}");

    // PUT from CREATE_IN_PROGRESS: 409, nothing changes.
    let before = s.get_json(&path).await;
    let m = s.send(Method::PUT, &path, Some(json!({"template": template}))).await.error(409);
    assert_eq!(m, "Cannot update a deployment in CREATE_IN_PROGRESS state");
    assert_eq!(s.get_json(&path).await, before);

    // PATCH: only DELETE_FAILED, only from DELETE_IN_PROGRESS.
    let m = s.send(Method::PATCH, &path, Some(json!({"status": "CREATE_COMPLETE"}))).await.error(400);
    assert_eq!(m, "Cannot reset deployment: illegal status CREATE_COMPLETE.");
    let m = s.send(Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await.error(409);
    assert_eq!(m, "Cannot reset a deployment in CREATE_IN_PROGRESS state");

    // DELETE from CREATE_IN_PROGRESS is allowed (upstream kills the running process).
    let r = s.send(Method::DELETE, &format!("{path}?force=false"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(s.get_json(&path).await["status"], "DELETE_IN_PROGRESS");
    let rows = s.resources(&id).await;
    assert!(!rows.is_empty());
    // A second DELETE: 409.
    let m = s.send(Method::DELETE, &path, None).await.error(409);
    assert_eq!(m, "Deployment already in DELETE_IN_PROGRESS state.");
    // PUT while deleting: 409.
    s.send(Method::PUT, &path, Some(json!({"template": template}))).await.error(409);

    // Reset a stuck delete.
    let r = s.send(Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let d = s.get_json(&path).await;
    assert_eq!(d["status"], "DELETE_FAILED");
    assert_eq!(d["task"], "NONE");
    assert!(d.get("statusReason").is_none());
    let m = s.send(Method::PATCH, &path, Some(json!({"status": "DELETE_FAILED"}))).await.error(409);
    assert_eq!(m, "Cannot reset a deployment in DELETE_FAILED state");
    // PUT from DELETE_FAILED: 409; DELETE from DELETE_FAILED: allowed again.
    s.send(Method::PUT, &path, Some(json!({"template": template}))).await.error(409);
    assert_eq!(s.send(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    // 404s for a missing deployment.
    s.send(Method::DELETE, "/deployments/nope", None).await.error(404);
    s.send(Method::PATCH, "/deployments/nope", Some(json!({"status": "DELETE_FAILED"}))).await.error(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_while_an_update_runs_is_a_conflict() {
    let s = start().await;
    let template = scaled();
    let id = s.create(&template, json!({"count": 1})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let path = format!("/deployments/{id}");
    // Two PUTs back to back: the second finds UPDATE_IN_PROGRESS (or, if the first already
    // finished, is accepted; the first must never be refused).
    let a = s.send(Method::PUT, &path, Some(json!({"template": template, "parameters": {"count": 3}}))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let b = s.send(Method::PUT, &path, Some(json!({"template": template, "parameters": {"count": 2}}))).await;
    if b.status == StatusCode::CONFLICT {
        let m = b.error(409);
        assert_eq!(m, "Cannot update a deployment in UPDATE_IN_PROGRESS state");
    } else {
        assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text);
    }
    s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_destroys_then_removes_the_deployment() {
    let s = start().await;
    let id = s.create(&fixture("examples/web_app.yaml"), json!({})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let sandbox = s.dir.path().join("data/deployments").join(&id);
    assert!(sandbox.is_dir());
    let r = s.send(Method::DELETE, &format!("/deployments/{id}?force=true"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    s.wait_gone(&id).await;
    let m = s.get(&format!("/deployments/{id}")).await.error(404);
    assert_eq!(m, format!("The deployment <{id}> doesn't exist"));
    s.get(&format!("/deployments/{id}/resources")).await.error(404);
    s.get(&format!("/deployments/{id}/template")).await.error(404);
    s.get(&format!("/deployments/{id}/log")).await.error(404);
    s.send(Method::DELETE, &format!("/deployments/{id}"), None).await.error(404);
    assert!(!sandbox.exists(), "the local resources are destroyed");
    assert_eq!(s.count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_requests_store_nothing() {
    let s = start_with(Options { limits: server::api::Limits { max_body: 64 * 1024, ..Default::default() }, ..Options::default() }).await;
    let template = minimal();
    let post = |body: Value| s.send(Method::POST, "/deployments", Some(body));

    // Invalid TOSCA: 400, every diagnostic with template:LINE:COL.
    let m = post(json!({"template": fixture("server/invalid.yaml")})).await.error(400);
    let re = regex::Regex::new(r"template:(\d+):(\d+)").unwrap();
    let lines: Vec<u32> = re.captures_iter(&m).map(|c| c[1].parse().unwrap()).collect();
    assert!(lines.len() >= 2, "every diagnostic: {m}");
    assert!(lines.contains(&6), "NoSuchType is on line 6: {m}");
    assert!(m.contains("NoSuchType"), "{m}");
    // Not YAML at all.
    let m = post(json!({"template": "a: [1, 2\n"})).await.error(400);
    assert!(re.is_match(&m), "{m}");
    // Missing required input.
    let m = post(json!({"template": fixture("server/required_input.yaml"), "parameters": {}})).await.error(400);
    assert!(m.contains("name"), "{m}");
    // A parameter of the wrong type.
    post(json!({"template": template, "parameters": {"greeting": [1, 2]}})).await.error(400);
    // Missing template.
    let m = post(json!({"parameters": {}})).await.error(400);
    assert_eq!(m, "A TOSCA template must be provided");
    // Bad options.
    let m = post(json!({"template": template, "callback": "ftp://example.org/x"})).await.error(400);
    assert_eq!(m, "Callback value, if provided, must be a valid HTTP or HTTPS URL");
    let m = post(json!({"template": template, "timeoutMins": 5, "providerTimeoutMins": 10})).await.error(400);
    assert_eq!(m, "ProviderTimeout must be <= Timeout");
    post(json!({"template": template, "timeoutMins": 0})).await.error(400);
    post(json!({"template": template, "keepLastAttempt": "maybe"})).await.error(400);

    // Invalid JSON: 400 naming the JSON path.
    let m = post(json!({"template": template, "parameters": [1, 2]})).await.error(400);
    assert!(m.contains("$.parameters"), "{m}");
    let m = post(json!({"template": 42})).await.error(400);
    assert!(m.contains("$.template"), "{m}");
    let m = s.raw(Method::POST, "/deployments", "application/json", "{\"template\": ").await.error(400);
    assert!(m.contains('$'), "{m}");
    // Wrong content type: 415; no content type: 415.
    let m = s.raw(Method::POST, "/deployments", "text/plain", serde_json::to_string(&json!({"template": template})).unwrap()).await.error(415);
    assert!(m.contains("text/plain"), "{m}");
    let r = s.client.post(s.url("/deployments")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over the configured limit: 413 (with and without a Content-Length).
    let big = json!({"template": format!("{template}\n#{}\n", "x".repeat(70 * 1024))});
    let m = post(big.clone()).await.error(413);
    assert!(m.contains("65536"), "{m}");
    assert_eq!(chunked_post(&s, 80 * 1024).await, 413, "a chunked body has no Content-Length");

    assert_eq!(s.count().await, 0, "nothing stored for a rejected request");
    // And a valid one still works under the limit.
    s.create(&template, json!({})).await;
    assert_eq!(s.count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callbacks_at_submit_and_completion_and_a_dead_callback_is_harmless() {
    let s = start().await;
    let hook = CallbackReceiver::start().await;
    let r = s.send(Method::POST, "/deployments", Some(json!({"template": minimal(), "callback": hook.url}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let d = r.json();
    assert_eq!(d["callback"], json!(hook.url));
    let id = d["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let got = hook.wait_for("CREATE_COMPLETE").await;
    assert!(got.len() >= 2, "submit and completion: {got:?}");
    assert_eq!(got[0]["status"], "CREATE_IN_PROGRESS", "{got:?}");
    for b in &got {
        assert_eq!(b["uuid"], json!(id));
        assert!(b.get("links").is_none(), "callback bodies carry no links: {b}");
        assert!(date_re().is_match(b["updateTime"].as_str().unwrap()));
        assert_eq!(b["callback"], json!(hook.url));
    }
    assert_eq!(got.last().unwrap()["outputs"], json!({"greeting": "hello"}));

    // An update notifies too (submit and completion).
    let n = got.len();
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": minimal(), "parameters": {"greeting": "again"}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    s.wait_status(&id, &["UPDATE_COMPLETE"]).await;
    let got = hook.wait_for("UPDATE_COMPLETE").await;
    assert!(got[n..].iter().any(|b| b["status"] == "UPDATE_IN_PROGRESS"), "{got:?}");
    // A successful delete does not notify.
    let before = hook.received().len();
    assert_eq!(s.send(Method::DELETE, &format!("/deployments/{id}"), None).await.status, StatusCode::NO_CONTENT);
    s.wait_gone(&id).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(hook.received().len(), before, "{:?}", hook.received());

    // Nothing listens there: the deployment still completes.
    let dead = format!("http://127.0.0.1:{}/hook", dead_port());
    let r = s.send(Method::POST, "/deployments", Some(json!({"template": minimal(), "callback": dead}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["uuid"].as_str().unwrap().to_string();
    let d = s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    assert!(d.get("statusReason").is_none(), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_extrainfo_state_and_plan() {
    let s = start().await;
    let secret = "s3cr3t-VALUE-4242";
    let template = minimal();
    let id = s.create(&template, json!({"api_key": secret})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;

    let log = s.get(&format!("/deployments/{id}/log")).await;
    assert_eq!(log.status, StatusCode::OK);
    assert!(log.content_type().starts_with("text/plain"), "{}", log.content_type());
    assert!(!log.text.trim().is_empty());
    assert!(!log.text.contains(secret), "{}", log.text);

    let extra = s.get(&format!("/deployments/{id}/extrainfo")).await;
    assert_eq!(extra.status, StatusCode::OK);
    assert!(extra.content_type().starts_with("text/plain"), "{}", extra.content_type());
    let v: Value = serde_json::from_str(&extra.text).expect("extrainfo is JSON text");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "one entry per instance: {v}");
    assert!(!extra.text.contains(secret));

    let st = s.get(&format!("/deployments/{id}/state")).await;
    assert_eq!(st.status, StatusCode::OK, "{}", st.text);
    let doc = st.json();
    assert!(doc.is_object());
    assert!(st.text.contains("app"), "{}", st.text);
    assert!(!st.text.contains(secret), "the sensitive value is masked: {}", st.text);

    // Resource metadata never carries the secret either.
    let rows = s.get(&format!("/deployments/{id}/resources")).await;
    assert!(!rows.text.contains(secret));

    // Plan: nothing changes.
    let before = s.get_json(&format!("/deployments/{id}")).await;
    let body = json!({"template": template, "parameters": {"greeting": "changed"}});
    for (format, ct) in [("", "application/json"), ("?format=json", "application/json"), ("?format=markdown", "text/markdown"), ("?format=text", "text/plain")] {
        let r = s.send(Method::POST, &format!("/deployments/{id}/plan{format}"), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{format}: {}", r.text);
        assert!(r.content_type().starts_with(ct), "{format}: {}", r.content_type());
        assert!(!r.text.contains(secret), "{format}: {}", r.text);
        if ct == "application/json" {
            let plan = r.json();
            assert!(plan.is_object(), "{plan}");
            assert!(r.text.contains("app"), "the plan names the changed node: {}", r.text);
        } else {
            assert!(!r.text.trim().is_empty());
        }
    }
    s.send(Method::POST, &format!("/deployments/{id}/plan?format=yaml"), Some(body.clone())).await.error(400);
    s.send(Method::POST, "/deployments/nope/plan", Some(body.clone())).await.error(404);
    s.raw(Method::POST, &format!("/deployments/{id}/plan"), "text/plain", "x").await.error(415);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let after = s.get_json(&format!("/deployments/{id}")).await;
    assert_eq!(after, before, "a plan changes nothing");
    assert_eq!(s.get(&format!("/deployments/{id}/template")).await.text, template);
    assert_eq!(s.get_json(&format!("/deployments/{id}/state")).await, doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_stream_status_changes() {
    let s = start().await;
    let template = minimal();
    let id = s.create(&template, json!({})).await["uuid"].as_str().unwrap().to_string();
    s.wait_status(&id, &["CREATE_COMPLETE"]).await;
    let r = s.client.get(s.url(&format!("/deployments/{id}/events"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut sse = r;
    let mut text = String::new();
    // The current status first.
    let deadline = tokio::time::Instant::now() + common::SETTLE;
    while !text.contains("CREATE_COMPLETE") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk()).await.expect("an event in time").unwrap().expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: status"), "{text}");
    // A change is pushed.
    let r = s.send(Method::PUT, &format!("/deployments/{id}"), Some(json!({"template": template, "parameters": {"greeting": "x"}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    while !text.contains("UPDATE_COMPLETE") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk()).await.expect("an event in time").unwrap().expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("UPDATE_IN_PROGRESS"), "{text}");
    s.get("/deployments/nope/events").await.error(404);
}

/// Every route of `server::api::router`, with its methods (kept in sync by hand: a new route
/// must be added here and to the OpenAPI document).
const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["get"]),
    ("/info", &["get"]),
    ("/configuration", &["get"]),
    ("/healthz", &["get"]),
    ("/openapi.json", &["get"]),
    ("/deployments", &["get", "post"]),
    ("/deployments/{id}", &["get", "put", "patch", "delete"]),
    ("/deployments/{id}/template", &["get"]),
    ("/deployments/{id}/log", &["get"]),
    ("/deployments/{id}/extrainfo", &["get"]),
    ("/deployments/{id}/plan", &["post"]),
    ("/deployments/{id}/state", &["get"]),
    ("/deployments/{id}/events", &["get"]),
    ("/deployments/{id}/resources", &["get"]),
    ("/deployments/{id}/resources/filter", &["get"]),
    ("/deployments/{id}/resources/{rid}", &["get"]),
    ("/deployments/{id}/resources/{rid}/actions", &["post"]),
    ("/schedules", &["get", "post"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_lists_every_route_and_schema() {
    let s = start().await;
    let doc = s.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let p = paths.get(*path).unwrap_or_else(|| panic!("{path} missing from /openapi.json"));
        for m in *methods {
            let op = p.get(*m).unwrap_or_else(|| panic!("{m} {path} missing from /openapi.json"));
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{m} {path}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["Deployment", "Resource", "ErrorBody", "DeploymentRequest", "Status", "NodeState", "Link", "PageMeta"] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for cap in regex::Regex::new(r##""\$ref":"#/components/schemas/([^"]+)""##).unwrap().captures_iter(&text) {
        assert!(schemas.contains_key(&cap[1]), "dangling $ref {}", &cap[1]);
    }
    // Every route answers (no 404 from the router for a documented path).
    for (path, methods) in ROUTES {
        let concrete = path.replace("{id}", "nope").replace("{rid}", "nope");
        for m in *methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = s.send(method.clone(), &concrete, if matches!(*m, "get" | "delete") { None } else { Some(json!({})) }).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {concrete}");
            if r.status == StatusCode::NOT_FOUND {
                assert!(r.text.contains("nope"), "{m} {concrete}: a 404 from the router, not the handler: {}", r.text);
            }
            assert!(r.status.as_u16() < 500 || r.status == StatusCode::NOT_IMPLEMENTED, "{m} {concrete}: {}", r.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_endpoints_errors_and_trailing_slashes() {
    let s = start().await;
    let root = s.get("/").await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.text, "INDIGO-Orchestrator");
    assert_eq!(s.get_json("/healthz").await["status"], "ok");
    assert!(s.get_json("/info").await.is_object());
    let conf = s.get_json("/configuration").await;
    assert!(conf.as_object().unwrap().values().all(Value::is_string), "orchent decodes map[string]string: {conf}");

    let m = s.get("/no/such/path").await.error(404);
    assert!(m.contains("/no/such/path"), "{m}");
    let m = s.send(Method::DELETE, "/deployments", None).await.error(405);
    assert!(m.contains("DELETE"), "{m}");
    s.send(Method::PUT, "/healthz", Some(json!({}))).await.error(405);

    // Trailing slashes are tolerated.
    let id = s.create(&minimal(), json!({})).await["uuid"].as_str().unwrap().to_string();
    let page = s.get_json("/deployments/").await;
    assert_eq!(page["page"]["totalElements"], json!(1));
    assert_eq!(s.get_json(&format!("/deployments/{id}/")).await["uuid"], json!(id));
    assert!(s.get_json(&format!("/deployments/{id}/resources/")).await["content"].is_array());
    let r = s.send(Method::POST, "/deployments/", Some(json!({"template": minimal()}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Forwarded headers shape the links.
    let r = s.client.get(s.url(&format!("/deployments/{id}"))).header("x-forwarded-proto", "https").header("x-forwarded-host", "paas.example.org").header("x-forwarded-prefix", "/orchestrator").send().await.unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(link(&d, "self").unwrap(), format!("https://paas.example.org/orchestrator/deployments/{id}"));
    // Schedules are not implemented: an error body, never a crash.
    s.get("/schedules").await.error(501);
}

/// POSTs `len` bytes of JSON whitespace to /deployments with chunked transfer encoding (no
/// Content-Length); returns the status code.
async fn chunked_post(s: &TestServer, len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("POST /deployments HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    c.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1024];
    for _ in 0..len / 1024 {
        if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err() || c.write_all(&chunk).await.is_err() || c.write_all(b"\r\n").await.is_err() {
            break; // the server answered and closed early
        }
    }
    let _ = c.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line: {text}"))
}
