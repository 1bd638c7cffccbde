#!/usr/bin/env python3
"""Driver of scripts/bench-server.sh (stdlib only): `rosca serve` under load (wrk), and create +
delete of N-node templates on Rosca and on the Infrastructure Manager (IM) side by side.

Not meant to be run alone: bench-server.sh sets it up (wrk, the IM venv, the release binary).
"""
import argparse
import concurrent.futures as cf
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

IM_AUTH = "id = im; type = InfrastructureManager; username = u; password = p\\nid = dummy; type = Dummy"

SMALL = """tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  bench.Thing:
    derived_from: tosca.nodes.Root
topology_template:
  node_templates:
    thing:
      type: bench.Thing
"""


def compute_template(n):
    """N Compute nodes: a sandbox directory each for Rosca's local provider, a VM each for
    IM's Dummy connector (no interfaces, so IM does no contextualization)."""
    lines = ["tosca_definitions_version: tosca_simple_yaml_1_0", "topology_template:", "  node_templates:"]
    for i in range(n):
        lines += [
            f"    node{i}:",
            "      type: tosca.nodes.Compute",
            "      capabilities:",
            "        host:",
            "          properties: { num_cpus: 1, mem_size: 1 GB }",
            "        os:",
            "          properties: { type: linux }",
        ]
    return "\n".join(lines) + "\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(method, url, body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url, proc, what, timeout=120):
    until = time.time() + timeout
    while time.time() < until:
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start ({proc.returncode})")
        try:
            status, _ = request("GET", url, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not answer {url} within {timeout} s")


# ---- Rosca ---------------------------------------------------------------------------------

def start_rosca(binary, work):
    port = free_port()
    data = os.path.join(work, "rosca-data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    log = open(os.path.join(work, "rosca.log"), "w")
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen([binary, "serve", "--no-auth", "--listen", f"127.0.0.1:{port}", "--data-dir", data], stdout=log, stderr=log, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc, "rosca serve")
    return proc, base, os.path.join(data, "rosca.db")


def rosca_post(base, template):
    body = json.dumps({"template": template, "parameters": {}}).encode()
    status, out = request("POST", base + "/deployments", body, {"Content-Type": "application/json"})
    if status != 201:
        raise RuntimeError(f"POST /deployments: {status} {out[:300]!r}")
    return json.loads(out)["uuid"]


def active_jobs(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
    finally:
        con.close()


def deployment_ids(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [r[0] for r in con.execute("SELECT id FROM deployments")]
    finally:
        con.close()


def wait_jobs(db, timeout=900):
    until = time.time() + timeout
    while active_jobs(db) > 0:
        if time.time() > until:
            sys.exit("jobs still active after the fill")
        time.sleep(0.5)


def fill(base, db, target, clients=16):
    have = len(deployment_ids(db))
    need = target - have
    if need > 0:
        t0 = time.time()
        with cf.ThreadPoolExecutor(clients) as ex:
            list(ex.map(lambda _: rosca_post(base, SMALL), range(need)))
        print(f"  filled {need} deployments in {time.time() - t0:.1f} s", file=sys.stderr)
    t0 = time.time()
    wait_jobs(db)
    print(f"  jobs drained in {time.time() - t0:.1f} s", file=sys.stderr)


def rosca_cycle(base, template):
    t0 = time.perf_counter()
    id_ = rosca_post(base, template)
    while True:
        status, out = request("GET", f"{base}/deployments/{id_}")
        st = json.loads(out)["status"]
        if st == "CREATE_COMPLETE":
            break
        if st.endswith("FAILED"):
            raise RuntimeError(f"rosca deployment {id_}: {st}: {json.loads(out).get('statusReason')}")
        time.sleep(0.005)
    t1 = time.perf_counter()
    status, out = request("DELETE", f"{base}/deployments/{id_}")
    if status != 204:
        raise RuntimeError(f"DELETE: {status} {out!r}")
    while True:
        status, out = request("GET", f"{base}/deployments/{id_}")
        if status == 404:
            break
        if json.loads(out)["status"] == "DELETE_FAILED":
            raise RuntimeError(f"rosca delete of {id_} failed")
        time.sleep(0.005)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


# ---- IM ------------------------------------------------------------------------------------

IM_RUNNER = """
import sys
from IM.config import Config
Config.DATA_DB = "sqlite://" + sys.argv[2]
Config.REST_PORT = int(sys.argv[1]); Config.REST_ADDRESS = "127.0.0.1"
Config.ACTIVATE_REST = True; Config.ACTIVATE_XMLRPC = False
Config.LOG_FILE = sys.argv[3]; Config.LOG_LEVEL = "WARNING"
Config.USER_DB = ""
from IM import im_service
sys.argv = sys.argv[:1]
im_service.main()
"""


def start_im(python, work):
    port = free_port()
    db = os.path.join(work, "im-inf.dat")
    if os.path.exists(db):
        os.remove(db)
    runner = os.path.join(work, "run_im.py")
    with open(runner, "w") as f:
        f.write(IM_RUNNER)
    log = open(os.path.join(work, "im.out"), "w")
    proc = subprocess.Popen([python, runner, str(port), db, os.path.join(work, "im.log")], stdout=log, stderr=log, cwd=work)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/version", proc, "IM")
    return proc, base


def im_cycle(base, template):
    h = {"Authorization": IM_AUTH}
    t0 = time.perf_counter()
    status, out = request("POST", base + "/infrastructures", template.encode(), dict(h, **{"Content-Type": "text/yaml"}), timeout=600)
    if status != 200:
        raise RuntimeError(f"IM create: {status} {out[:300]!r}")
    url = out.decode().strip()
    while True:
        status, out = request("GET", url + "/state", headers=dict(h, Accept="application/json"))
        st = json.loads(out)["state"]["state"]
        if st == "configured":
            break
        if st in ("failed", "unconfigured"):
            raise RuntimeError(f"IM infrastructure {url}: {st}")
        time.sleep(0.005)
    t1 = time.perf_counter()
    status, out = request("DELETE", url, headers=h, timeout=600)
    if status != 200:
        raise RuntimeError(f"IM destroy: {status} {out[:300]!r}")
    status, _ = request("GET", url + "/state", headers=dict(h, Accept="application/json"))
    if status != 404:
        raise RuntimeError(f"IM infrastructure {url} still there after DELETE ({status})")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


# ---- wrk -----------------------------------------------------------------------------------

WRK_GET_IDS = """
local ids = {}
for line in io.lines(os.getenv("ROSCA_IDS")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/deployments/" .. ids[math.random(#ids)])
end
"""

WRK_LIST = """
local pages = tonumber(os.getenv("ROSCA_PAGES"))
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/deployments?page=" .. math.random(0, pages - 1) .. "&size=10")
end
"""

WRK_POST = """
local f = io.open(os.getenv("ROSCA_BODY"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = "/deployments"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
"""

WRK_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("ROSCA-WRK %d %d %d %d %.3f %.3f %.3f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def wrk(base, script, env, duration, threads, conns, work, name):
    path = os.path.join(work, f"{name}.lua")
    with open(path, "w") as f:
        f.write(script + WRK_REPORT)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", path, base]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env), check=True).stdout
    with open(os.path.join(work, f"{name}.wrk.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n" + out)
    m = re.search(r"ROSCA-WRK (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not m:
        sys.exit(f"cannot read wrk's output:\n{out}")
    reqs, bad_status, sock_err, dur_us = (int(m.group(i)) for i in range(1, 5))
    return {"requests": reqs, "non2xx": bad_status, "socket_errors": sock_err, "rps": reqs / (dur_us / 1e6), "p50": float(m.group(5)), "p99": float(m.group(6)), "mean": float(m.group(7))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rosca", required=True)
    ap.add_argument("--im-python")
    ap.add_argument("--work", required=True)
    ap.add_argument("--deployments", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    procs = []

    def stop_all(*_):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()

    results = {"load": {}, "cycles": {}}
    try:
        print("rosca serve (SQLite, local provider)...", file=sys.stderr)
        rp, base, db = start_rosca(a.rosca, a.work)
        procs.append(rp)

        print(f"filling to {a.deployments} deployments...", file=sys.stderr)
        fill(base, db, a.deployments)
        ids = deployment_ids(db)
        n = len(ids)
        results["stored"] = n
        idfile = os.path.join(a.work, "ids.txt")
        with open(idfile, "w") as f:
            f.write("\n".join(ids) + "\n")
        print(f"wrk GET /deployments/{{id}} over {n} deployments...", file=sys.stderr)
        results["load"]["GET /deployments/{id}"] = wrk(base, WRK_GET_IDS, {"ROSCA_IDS": idfile}, a.duration, a.threads, a.conns, a.work, "get-id")
        print("wrk GET /deployments?page=...", file=sys.stderr)
        results["load"]["GET /deployments?page=P&size=10"] = wrk(base, WRK_LIST, {"ROSCA_PAGES": str(max(1, n // 10))}, a.duration, a.threads, a.conns, a.work, "list")
        # POST accept rate (each accepted POST is a stored deployment and a queued job; the
        # workers run them meanwhile): shorter, then the queue drains before the timings.
        body = os.path.join(a.work, "post-body.json")
        with open(body, "w") as f:
            json.dump({"template": SMALL, "parameters": {}}, f)
        post_s = min(a.duration, 10)
        print(f"wrk POST /deployments ({post_s} s)...", file=sys.stderr)
        results["load"]["POST /deployments"] = wrk(base, WRK_POST, {"ROSCA_BODY": body}, post_s, a.threads, a.conns, a.work, "post")
        t0 = time.time()
        wait_jobs(db)
        print(f"  queue drained in {time.time() - t0:.1f} s", file=sys.stderr)

        for size in sizes:
            tpl = compute_template(size)
            reps = a.repeat
            rosca_times = [rosca_cycle(base, tpl) for _ in range(reps)]
            results["cycles"].setdefault(size, {})["rosca"] = rosca_times
            print(f"  rosca N={size}: {rosca_times}", file=sys.stderr)
        stop_all()
        procs.clear()

        if a.im_python:
            print("Infrastructure Manager (REST, Dummy connector, SQLite)...", file=sys.stderr)
            ip, ibase = start_im(a.im_python, a.work)
            procs.append(ip)
            for size in sizes:
                tpl = compute_template(size)
                im_times = [im_cycle(ibase, tpl) for _ in range(a.repeat)]
                results["cycles"][size]["im"] = im_times
                print(f"  IM N={size}: {im_times}", file=sys.stderr)
    finally:
        stop_all()

    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    md = render(results, a)
    with open(a.out, "w") as f:
        f.write(md)
    print(md)


def render(r, a):
    out = []
    out.append(f"Load: wrk -t{a.threads} -c{a.conns} -d{a.duration}s (POST: -d{min(a.duration, 10)}s), {r.get('stored', 0)} stored deployments, SQLite, no-op (local/null) provider, {os.cpu_count()} cores.\n")
    out.append("| request | requests/s | p50 ms | p99 ms | non-2xx | socket errors |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for name, x in r["load"].items():
        out.append(f"| `{name}` | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {x['non2xx']} | {x['socket_errors']} |")
    out.append("")
    out.append(f"Create + delete of N `tosca.nodes.Compute` nodes, median of {a.repeat} (create = POST until CREATE_COMPLETE / IM `configured`; delete = DELETE until gone).\n")
    out.append("| N | Rosca create s | Rosca delete s | IM create s | IM delete s | IM / Rosca (create + delete) |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for size, c in r["cycles"].items():
        rc = statistics.median(t[0] for t in c["rosca"])
        rd = statistics.median(t[1] for t in c["rosca"])
        if "im" in c:
            ic = statistics.median(t[0] for t in c["im"])
            idl = statistics.median(t[1] for t in c["im"])
            out.append(f"| {size} | {rc:.3f} | {rd:.3f} | {ic:.3f} | {idl:.3f} | {(ic + idl) / (rc + rd):.1f}× |")
        else:
            out.append(f"| {size} | {rc:.3f} | {rd:.3f} | – | – | – |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
