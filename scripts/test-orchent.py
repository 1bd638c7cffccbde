#!/usr/bin/env python3
"""An independent client of the INDIGO Orchestrator API: performs the calls orchent makes
(docs: indigo-api.md §7) against a running server and checks every field orchent reads.

    scripts/test-orchent.py http://127.0.0.1:8080 [TEMPLATE.yaml]

Only `requests` is used. Exit 0 when everything holds; otherwise the first failed check is
printed and the exit status is 1.
"""

import json
import os
import re
import sys
import time

import requests

BASE = sys.argv[1].rstrip("/") + "/" if len(sys.argv) > 1 else "http://127.0.0.1:8080/"
HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_PATH = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "fixtures", "server", "minimal.yaml")
with open(TEMPLATE_PATH, encoding="utf-8") as f:
    TEMPLATE = f.read()

# orchent's headers (no token: the server runs with --no-auth).
S = requests.Session()
S.headers.update({"Accept": "application/json", "User-Agent": "Orchent"})
TIMEOUT = 30
SETTLE = 60
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}\+0000$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STATUSES = {"CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_FAILED", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE",
            "UPDATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_FAILED", "UNKNOWN"}
TASKS = {"NONE", "MONITORING", "QOS", "BROKERING", "DMS", "DEPLOYER", "UNKNOWN"}
NODE_STATES = {"INITIAL", "CREATING", "CREATED", "CONFIGURING", "CONFIGURED", "STARTING", "STARTED", "STOPPING",
               "STOPPED", "DELETING", "ERROR"}
checks = 0


class Failed(Exception):
    pass


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        raise Failed(what)


def url(path):
    # orchent appends paths to the base URL (which ends with '/').
    return BASE + path


def parse_time(t, what):
    """orchent reads chars [0:4],[5:7],[8:10],[11:13],[14:16] of the date."""
    check(isinstance(t, str) and DATE.match(t), f"{what}: date {t!r} is not yyyy-MM-dd'T'HH:mmZ")
    y, mo, d, h, mi = int(t[0:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16])
    check(1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and y > 2000, f"{what}: date {t!r} out of range")


def links_of(v, what):
    links = v.get("links")
    check(isinstance(links, list), f"{what}: links is not an array: {v}")
    out = {}
    for l in links:
        check(isinstance(l, dict) and isinstance(l.get("rel"), str) and isinstance(l.get("href"), str), f"{what}: bad link {l}")
        out[l["rel"]] = l["href"]
    return out


def error_body(r, status, what):
    """orchent decodes {code,title,message}; an empty title/message would read as success."""
    check(r.status_code == status, f"{what}: expected {status}, got {r.status_code}: {r.text}")
    check(r.headers.get("Content-Type", "").startswith("application/json"), f"{what}: error content type {r.headers.get('Content-Type')}")
    e = r.json()
    check(e.get("code") == status, f"{what}: code {e}")
    check(isinstance(e.get("title"), str) and e["title"], f"{what}: empty title {e}")
    check(isinstance(e.get("message"), str) and e["message"], f"{what}: empty message {e}")
    return e["message"]


def check_deployment(d, what, links=True):
    check(isinstance(d, dict), f"{what}: not an object")
    for k, v in d.items():
        check(v is not None, f"{what}: null field {k} (must be omitted)")
    check(isinstance(d.get("uuid"), str) and UUID.match(d["uuid"]), f"{what}: uuid {d.get('uuid')}")
    parse_time(d.get("creationTime"), f"{what} creationTime")
    parse_time(d.get("updateTime"), f"{what} updateTime")
    check(d.get("status") in STATUSES, f"{what}: status {d.get('status')}")
    check(d.get("task") in TASKS, f"{what}: task {d.get('task')}")
    check(isinstance(d.get("outputs"), dict), f"{what}: outputs {d.get('outputs')}")
    for k in ["physicalId", "statusReason", "callback", "userGroup", "cloudProviderName"]:
        check(k not in d or isinstance(d[k], str), f"{what}: {k} is not a string")
    if "cloudProviderEndpoint" in d:
        check(isinstance(d["cloudProviderEndpoint"], dict), f"{what}: cloudProviderEndpoint is not a map")
    if "createdBy" in d:
        cb = d["createdBy"]
        check(isinstance(cb, dict) and isinstance(cb.get("issuer"), str) and isinstance(cb.get("subject"), str), f"{what}: createdBy {cb}")
    if links:
        l = links_of(d, what)
        me = url("deployments/" + d["uuid"])
        check(l.get("self") == me, f"{what}: self link {l.get('self')} != {me}")
        check(l.get("resources") == me + "/resources?type={type}", f"{what}: resources link {l.get('resources')}")
        check(l.get("template") == me + "/template", f"{what}: template link {l.get('template')}")


def check_resource(r, dep, what):
    for k, v in r.items():
        check(v is not None, f"{what}: null field {k}")
    check(isinstance(r.get("uuid"), str) and UUID.match(r["uuid"]), f"{what}: uuid")
    parse_time(r.get("creationTime"), f"{what} creationTime")
    parse_time(r.get("updateTime"), f"{what} updateTime")
    check(r.get("state") in NODE_STATES, f"{what}: state {r.get('state')}")
    check(isinstance(r.get("toscaNodeType"), str) and r["toscaNodeType"], f"{what}: toscaNodeType")
    check(isinstance(r.get("toscaNodeName"), str) and r["toscaNodeName"], f"{what}: toscaNodeName")
    check(r.get("requiredBy") == [] or all(isinstance(x, str) for x in r.get("requiredBy", [None])), f"{what}: requiredBy {r.get('requiredBy')}")
    check(isinstance(r.get("metadata", {}), dict), f"{what}: metadata")
    l = links_of(r, what)
    check(l.get("deployment") == url("deployments/" + dep), f"{what}: deployment link {l}")
    check(l.get("self") == url(f"deployments/{dep}/resources/{r['uuid']}"), f"{what}: self link {l}")


def check_page(p, what):
    check(isinstance(p.get("content"), list), f"{what}: content")
    page = p.get("page")
    check(isinstance(page, dict), f"{what}: page")
    for k in ["size", "totalElements", "totalPages", "number"]:
        check(isinstance(page.get(k), int) and page[k] >= 0, f"{what}: page.{k} = {page.get(k)}")
    return links_of(p, what)


def follow(first_url, what):
    """orchent's loop: GET, then follow `next` until self.href == last.href."""
    items, pages, u = [], 0, first_url
    while True:
        r = S.get(u, timeout=TIMEOUT)
        check(r.status_code == 200, f"{what}: GET {u}: {r.status_code} {r.text}")
        p = r.json()
        l = check_page(p, what)
        pages += 1
        check(pages <= 100, f"{what}: does not end")
        items.extend(p["content"])
        check("self" in l, f"{what}: no self link")
        if "last" not in l or l["self"] == l["last"]:
            check("next" not in l, f"{what}: a next link on the last page")
            return items, pages, p
        check("next" in l and "first" in l, f"{what}: page {pages} lacks next/first: {l}")
        u = l["next"]


def wait(uuid, wanted):
    start = time.time()
    while True:
        r = S.get(url("deployments/" + uuid), timeout=TIMEOUT)
        if r.status_code == 404 and wanted == "GONE":
            return None
        check(r.status_code == 200, f"show {uuid}: {r.status_code} {r.text}")
        d = r.json()
        check_deployment(d, f"show {uuid}")
        if d["status"] == wanted:
            return d
        check(not d["status"].endswith("FAILED"), f"{uuid} failed: {d.get('statusReason')}")
        check(time.time() - start < SETTLE, f"{uuid} still {d['status']} (waiting for {wanted})")
        time.sleep(0.1)


def main():
    # test: GET info; showconf: values must be strings.
    r = S.get(url("info"), timeout=TIMEOUT)
    check(r.status_code == 200, f"info: {r.status_code}")
    r = S.get(url("configuration"), timeout=TIMEOUT)
    check(r.status_code == 200, f"configuration: {r.status_code}")
    conf = r.json()
    check(isinstance(conf, dict) and all(isinstance(v, str) for v in conf.values()), f"configuration: map[string]string {conf}")

    # depcreate: keepLastAttempt is a *string*; userGroup and maxProvidersRetry as orchent sends them.
    group = "orchent-compat"
    created = []
    for i in range(12):
        body = {"template": TEMPLATE, "parameters": {"greeting": f"hello-{i}"}, "keepLastAttempt": "true" if i % 2 else "false",
                "maxProvidersRetry": 1, "userGroup": group}
        r = S.post(url("deployments"), data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
        check(r.status_code == 201, f"depcreate: {r.status_code} {r.text}")
        d = r.json()
        check_deployment(d, "depcreate")
        check(d["status"] == "CREATE_IN_PROGRESS", f"depcreate: status {d['status']}")
        check(d.get("userGroup") == group, f"depcreate: userGroup {d.get('userGroup')}")
        check("physicalId" not in d, "depcreate: physicalId before deploying")
        created.append(d["uuid"])
    check(created == sorted(created), "uuids are time-ordered")

    # depls -g group: follow next links until self == last (size 10 → 2 pages).
    items, pages, last = follow(url(f"deployments?userGroup={group}"), "depls")
    check(pages == 2, f"depls: {pages} pages for 12 deployments")
    check(last["page"]["totalElements"] == 12 and last["page"]["totalPages"] == 2, f"depls: page {last['page']}")
    check(sorted(d["uuid"] for d in items) == sorted(created), "depls: every deployment once")
    for d in items:
        check_deployment(d, "depls item")
        check(d.get("userGroup") == group, "depls: userGroup filter")
    items, _, _ = follow(url("deployments?userGroup=nobody"), "depls empty")
    check(items == [], "depls: other group is empty")

    # depshow (+ --verbose extrainfo) once complete.
    uuid = created[0]
    d = wait(uuid, "CREATE_COMPLETE")
    check(d["outputs"].get("greeting") == "hello-0", f"depshow: outputs {d['outputs']}")
    check(isinstance(d.get("physicalId"), str), "depshow: physicalId once deployed")
    r = S.get(url(f"deployments/{uuid}/extrainfo"), timeout=TIMEOUT)
    check(r.status_code == 200, f"extrainfo: {r.status_code}")
    check(isinstance(json.loads(r.text), list), "extrainfo: JSON text")

    # deptemplate: raw text as stored.
    r = S.get(url(f"deployments/{uuid}/template"), timeout=TIMEOUT)
    check(r.status_code == 200 and r.text == TEMPLATE, "deptemplate: the stored template")

    # deplog: raw text.
    r = S.get(url(f"deployments/{uuid}/log"), timeout=TIMEOUT)
    check(r.status_code == 200 and r.text.strip(), f"deplog: {r.status_code} {r.text!r}")

    # resls (+ next links) and resshow.
    items, _, _ = follow(url(f"deployments/{uuid}/resources"), "resls")
    check(len(items) == 1, f"resls: {len(items)} resources")
    for res in items:
        check_resource(res, uuid, "resls item")
        check(res["state"] == "STARTED", f"resls: state {res['state']}")
        r = S.get(url(f"deployments/{uuid}/resources/{res['uuid']}"), timeout=TIMEOUT)
        check(r.status_code == 200, f"resshow: {r.status_code}")
        check_resource(r.json(), uuid, "resshow")
        check(r.json() == res, "resshow == resls item")
    error_body(S.get(url(f"deployments/{uuid}/resources/nope"), timeout=TIMEOUT), 404, "resshow missing")

    # depupdate: same body without userGroup; any 2xx with an empty body.
    body = {"template": TEMPLATE, "parameters": {"greeting": "updated"}, "keepLastAttempt": "true", "maxProvidersRetry": 1}
    r = S.put(url(f"deployments/{uuid}"), data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    check(200 <= r.status_code < 300 and r.text == "", f"depupdate: {r.status_code} {r.text!r}")
    d = wait(uuid, "UPDATE_COMPLETE")
    check(d["outputs"].get("greeting") == "updated", f"depupdate: outputs {d['outputs']}")
    check(d.get("userGroup") == group, "depupdate keeps the userGroup")

    # depupdate on a deployment still being created, or a missing one: error bodies.
    error_body(S.put(url("deployments/does-not-exist"), data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=TIMEOUT), 404, "depupdate missing")

    # depdel --force and depdel: 204, then gone; a second delete is an error body.
    r = S.delete(url(f"deployments/{uuid}?force=true"), timeout=TIMEOUT)
    check(r.status_code == 204, f"depdel: {r.status_code} {r.text}")
    r = S.delete(url(f"deployments/{uuid}?force=false"), timeout=TIMEOUT)
    if r.status_code != 404:
        msg = error_body(r, 409, "depdel twice")
        check("DELETE_IN_PROGRESS" in msg, f"depdel twice: {msg}")
    wait(uuid, "GONE")
    error_body(S.get(url(f"deployments/{uuid}"), timeout=TIMEOUT), 404, "depshow deleted")

    # depreset: only DELETE_FAILED, only from DELETE_IN_PROGRESS (else a 409 error body).
    other = created[1]
    wait(other, "CREATE_COMPLETE")
    r = S.patch(url(f"deployments/{other}"), data=json.dumps({"status": "DELETE_FAILED"}), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    msg = error_body(r, 409, "depreset from CREATE_COMPLETE")
    check("CREATE_COMPLETE" in msg, f"depreset: {msg}")
    r = S.patch(url(f"deployments/{other}"), data=json.dumps({"status": "CREATE_FAILED"}), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    error_body(r, 400, "depreset illegal status")
    r = S.delete(url(f"deployments/{other}"), timeout=TIMEOUT)
    check(r.status_code == 204, f"depdel: {r.status_code}")
    r = S.patch(url(f"deployments/{other}"), data=json.dumps({"status": "DELETE_FAILED"}), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    if r.status_code == 204:
        d = S.get(url(f"deployments/{other}"), timeout=TIMEOUT).json()
        check_deployment(d, "after depreset")
        check(d["status"] == "DELETE_FAILED", f"depreset: status {d['status']}")
    elif r.status_code != 404:  # the delete may already have finished
        error_body(r, 409, "depreset after the delete ended")

    # Errors orchent decodes.
    error_body(S.get(url("deployments/does-not-exist"), timeout=TIMEOUT), 404, "depshow missing")
    error_body(S.delete(url("deployments/does-not-exist"), timeout=TIMEOUT), 404, "depdel missing")
    r = S.post(url("deployments"), data=json.dumps({"template": "not: [valid"}), headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    error_body(r, 400, "depcreate invalid template")

    # Clean up the rest.
    for u in created[2:]:
        wait(u, "CREATE_COMPLETE")
        check(S.delete(url(f"deployments/{u}"), timeout=TIMEOUT).status_code == 204, f"depdel {u}")
    for u in created[2:]:
        wait(u, "GONE")
    print(f"orchent compatibility: {checks} checks passed against {BASE}")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
