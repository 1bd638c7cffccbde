#!/usr/bin/python3
"""Keystone catalog, health checks, fixtures and a functional check for the test bed.

Run by scripts/services/openstack.sh with Debian's /usr/bin/python3 (it needs Debian's
python3-keystoneauth1). One process does what would take dozens of `openstack` CLI calls
(about 6 s each here). Progress goes to stderr; exit status 0 = done.

    os_setup.py catalog    service project/users, catalog entries, the tiny-quota project
    os_setup.py wait       wait until every API answers, nova-compute and the hypervisor
                           are up (and cinder-volume when ROSCA_OPENSTACK_CINDER=real)
    os_setup.py health     the same checks once, no waiting (exit 1 if one fails)
    os_setup.py fixtures   flavors, images, networks/router, quotas (idempotent)
    os_setup.py verify     boot a server on "private", floating IP, volume attach, clean up

Settings come from the environment: OS_ADMIN_PASSWORD (admin), ROSCA_OPENSTACK_CINDER
(real|none), ROSCA_OPENSTACK_DIR (state dir, for the image file), ROSCA_OS_HOST (the
compute host name).
"""
import concurrent.futures
import json
import os
import sys
import time

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

AUTH_URL = "http://127.0.0.1:5000/v3"
REGION = "RegionOne"
ADMIN_PASSWORD = os.environ.get("OS_ADMIN_PASSWORD", "admin")
CINDER = os.environ.get("ROSCA_OPENSTACK_CINDER", "real") == "real"
STATE = os.environ.get("ROSCA_OPENSTACK_DIR", "/tmp/rosca-openstack")
HOST = os.environ.get("ROSCA_OS_HOST", "rosca-ci")
T0 = time.time()

SERVICE_USERS = ["nova", "placement", "glance", "neutron"] + (["cinder"] if CINDER else [])
# (service name, type, url)
CATALOG = [
    ("nova", "compute", "http://127.0.0.1:8774/v2.1"),
    ("placement", "placement", "http://127.0.0.1:8778"),
    ("glance", "image", "http://127.0.0.1:9292"),
    ("neutron", "network", "http://127.0.0.1:9696"),
]
CINDER_CATALOG = [
    ("cinderv3", "volumev3", "http://127.0.0.1:8776/v3/%(project_id)s"),
    ("cinder", "block-storage", "http://127.0.0.1:8776/v3/%(project_id)s"),
]
FLAVORS = [  # name, id, vcpus, ram MiB, disk GB
    ("m1.tiny", "1", 1, 128, 1),
    ("m1.small", "2", 1, 512, 5),
    ("m1.medium", "3", 2, 1024, 10),
    ("m1.large", "4", 4, 2048, 20),
]
IMAGES = [  # name, properties
    ("cirros-fake", {"os_distro": "cirros", "os_version": "0.6.2"}),
    ("ubuntu-fake", {"os_distro": "ubuntu", "os_version": "22.04"}),
]
ADMIN_QUOTAS = {
    "compute": {"instances": 100, "cores": 400, "ram": 409600},
    "volume": {"volumes": 100, "gigabytes": 2000, "snapshots": 100},
    "network": {"network": 100, "subnet": 100, "port": 500, "router": 50, "floatingip": 100,
                "security_group": 100, "security_group_rule": 1000},
}
TINY_QUOTAS = {"compute": {"instances": 1}}


def log(msg):
    print("[os_setup +%.1fs] %s" % (time.time() - T0, msg), file=sys.stderr, flush=True)


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def session(user="admin", password=None, project="admin"):
    auth = v3.Password(auth_url=AUTH_URL, username=user, password=password or ADMIN_PASSWORD,
                       project_name=project, user_domain_id="default", project_domain_id="default")
    return ks_session.Session(auth=auth, timeout=60)


def api(sess, service_type, **kw):
    kw.setdefault("raise_exc", True)
    return adapter.Adapter(sess, service_type=service_type, interface="public",
                           region_name=REGION, **kw)


def one(items):
    return items[0] if items else None


# ----------------------------------------------------------------------------------------------
def catalog():
    sess = session()
    ks = api(sess, "identity")

    def find(kind, key, **params):
        return ks.get("/%s" % kind, params=params).json()[key]

    def ensure(kind, key, match, body):
        got = one(find(kind, key, **match))
        if got:
            return got
        return ks.post("/%s" % kind, json={key[:-1]: body}).json()[key[:-1]]

    dom = "default"
    roles = {r["name"]: r["id"] for r in find("roles", "roles")}
    for r in ("admin", "member", "reader", "service"):
        if r not in roles:
            roles[r] = ks.post("/roles", json={"role": {"name": r}}).json()["role"]["id"]
    service = ensure("projects", "projects", {"name": "service", "domain_id": dom},
                     {"name": "service", "domain_id": dom, "description": "OpenStack services"})
    for name in SERVICE_USERS:
        u = ensure("users", "users", {"name": name, "domain_id": dom},
                   {"name": name, "domain_id": dom, "password": name, "enabled": True})
        for r in ("admin", "service"):
            ks.put("/projects/%s/users/%s/roles/%s" % (service["id"], u["id"], roles[r]))
    tiny = ensure("projects", "projects", {"name": "tiny-quota", "domain_id": dom},
                  {"name": "tiny-quota", "domain_id": dom, "description": "quota-error tests"})
    quser = ensure("users", "users", {"name": "quota", "domain_id": dom},
                   {"name": "quota", "domain_id": dom, "password": "quota", "enabled": True,
                    "default_project_id": tiny["id"]})
    ks.put("/projects/%s/users/%s/roles/%s" % (tiny["id"], quser["id"], roles["member"]))

    wanted = list(CATALOG) + (CINDER_CATALOG if CINDER else [])
    services = find("services", "services")
    for name, typ, url in wanted:
        svc = next((s for s in services if s["type"] == typ), None)
        if svc is None:
            svc = ks.post("/services", json={"service": {"name": name, "type": typ, "enabled": True}}).json()["service"]
        eps = find("endpoints", "endpoints", service_id=svc["id"])
        for iface in ("public", "internal", "admin"):
            mine = [e for e in eps if e["interface"] == iface]
            if mine and mine[0]["url"] == url and mine[0].get("region_id") == REGION:
                continue
            for e in mine:
                ks.delete("/endpoints/%s" % e["id"])
            ks.post("/endpoints", json={"endpoint": {"service_id": svc["id"], "interface": iface,
                                                      "url": url, "region_id": REGION, "enabled": True}})
    if not CINDER:  # ROSCA_OPENSTACK_CINDER=none: no block storage in the catalog
        for s in services:
            if s["type"] in ("volumev3", "block-storage", "volumev2", "volume"):
                for e in find("endpoints", "endpoints", service_id=s["id"]):
                    ks.delete("/endpoints/%s" % e["id"])
                ks.delete("/services/%s" % s["id"])
    log("keystone: service users, catalog, project tiny-quota/user quota ok")


# ----------------------------------------------------------------------------------------------
def checks(sess):
    """Returns a list of what is not (yet) right; [] when healthy."""
    bad = []
    for typ, path in (("placement", "/"), ("image", "/v2/images?limit=1"), ("compute", "/os-hypervisors"),
                      ("network", "/v2.0/networks?limit=1")) + ((("volumev3", "/os-services"),) if CINDER else ()):
        try:
            r = api(sess, typ, raise_exc=False).get(path)
            if r.status_code >= 300:
                bad.append("%s %s -> %s" % (typ, path, r.status_code))
                continue
            if typ == "compute":
                hyps = [h for h in r.json()["hypervisors"] if h.get("state") == "up" and h.get("status") == "enabled"]
                if not hyps:
                    bad.append("no hypervisor up yet")
                svcs = api(sess, "compute").get("/os-services?binary=nova-compute").json()["services"]
                if not any(s["state"] == "up" for s in svcs):
                    bad.append("nova-compute not up yet")
            if typ == "volumev3":
                svcs = r.json()["services"]
                for binary in ("cinder-scheduler", "cinder-volume"):
                    if not any(s["binary"] == binary and s["state"] == "up" for s in svcs):
                        bad.append("%s not up yet" % binary)
                # "up" is not enough: until cinder-volume has published its capabilities, the
                # scheduler knows no backend and every volume create fails (NoValidBackend).
                pools = api(sess, "volumev3", raise_exc=False).get("/scheduler-stats/get_pools")
                if pools.status_code >= 300 or not pools.json().get("pools"):
                    bad.append("the cinder scheduler knows no backend yet")
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.EndpointNotFound,
                ks_exc.DiscoveryFailure, ks_exc.HttpError, ks_exc.RetriableConnectionFailure) as e:
            bad.append("%s: %s" % (typ, type(e).__name__))
    return bad


def health():
    try:
        sess = session()
        sess.get_token()
    except Exception as e:  # noqa: BLE001 - any failure means "not healthy"
        die("keystone: %s" % e)
    bad = checks(sess)
    if bad:
        die("; ".join(bad))
    log("healthy")


def wait(timeout=float(os.environ.get("ROSCA_OS_WAIT", "300"))):
    end = time.time() + timeout
    last = None
    sess = None
    while True:
        try:
            if sess is None:
                sess = session()
                sess.get_token()
            bad = checks(sess)
        except Exception as e:  # noqa: BLE001 - keystone still starting
            sess, bad = None, ["keystone: %s: %s" % (type(e).__name__, e)]
        if not bad:
            log("all APIs answer, nova-compute and hypervisor up" + (", cinder-volume up" if CINDER else ""))
            return
        if bad != last:
            log("waiting: " + "; ".join(bad))
            last = bad
        if time.time() > end:
            die("not healthy after %ds: %s" % (timeout, "; ".join(bad)))
        time.sleep(1)


# ----------------------------------------------------------------------------------------------
def project_id(ks, name):
    p = one(ks.get("/projects", params={"name": name, "domain_id": "default"}).json()["projects"])
    if not p:
        die("project %s missing (run catalog first)" % name)
    return p["id"]


def fixtures():
    sess = session()
    ks, nova, glance, neutron = (api(sess, t) for t in ("identity", "compute", "image", "network"))
    admin_pid, tiny_pid = project_id(ks, "admin"), project_id(ks, "tiny-quota")

    # flavors
    def do_flavors():
        have = {f["name"] for f in nova.get("/flavors?is_public=None").json()["flavors"]}
        for name, fid, vcpus, ram, disk in FLAVORS:
            if name not in have:
                nova.post("/flavors", json={"flavor": {"name": name, "id": fid, "vcpus": vcpus, "ram": ram,
                                                       "disk": disk, "os-flavor-access:is_public": True}})
                log("flavor %s created" % name)

    # images (tiny raw files in glance's file store)
    def do_images():
        data = b"\0" * 65536
        for name, props in IMAGES:
            imgs = glance.get("/v2/images", params={"name": name}).json()["images"]
            keep = next((i for i in imgs if i["status"] == "active"), None)
            for i in imgs:  # half-uploaded leftovers and duplicates
                if keep is None or i["id"] != keep["id"]:
                    glance.delete("/v2/images/%s" % i["id"])
            if keep:
                continue
            body = {"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public",
                    "min_disk": 0, "min_ram": 0}
            body.update(props)
            img = glance.post("/v2/images", json=body).json()
            glance.put("/v2/images/%s/file" % img["id"], data=data,
                       headers={"Content-Type": "application/octet-stream"})
            log("image %s uploaded (%d bytes)" % (name, len(data)))

    # networks: shared tenant network "private" (vxlan) + external flat "public" + router1
    def do_networks():
        def find(kind, **params):
            return neutron.get("/v2.0/%s" % kind, params=params).json()[kind]

        def ensure(kind, match, body):
            got = one(find(kind, **match))
            if got:
                return got, False
            key = kind[:-1]
            return neutron.post("/v2.0/%s" % kind, json={key: body}).json()[key], True

        priv, _ = ensure("networks", {"name": "private"},
                         {"name": "private", "shared": True, "provider:network_type": "vxlan"})
        psub, _ = ensure("subnets", {"name": "private-subnet", "network_id": priv["id"]},
                         {"name": "private-subnet", "network_id": priv["id"], "ip_version": 4,
                          "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "enable_dhcp": True})
        pub, _ = ensure("networks", {"name": "public"},
                        {"name": "public", "router:external": True, "provider:network_type": "flat",
                         "provider:physical_network": "public"})
        ensure("subnets", {"name": "public-subnet", "network_id": pub["id"]},
               {"name": "public-subnet", "network_id": pub["id"], "ip_version": 4, "cidr": "172.24.4.0/24",
                "gateway_ip": "172.24.4.1", "enable_dhcp": False,
                "allocation_pools": [{"start": "172.24.4.10", "end": "172.24.4.250"}]})
        router, _ = ensure("routers", {"name": "router1"},
                           {"name": "router1", "external_gateway_info": {"network_id": pub["id"]}})
        if not (router.get("external_gateway_info") or {}).get("network_id"):
            neutron.put("/v2.0/routers/%s" % router["id"],
                        json={"router": {"external_gateway_info": {"network_id": pub["id"]}}})
        if not find("ports", device_id=router["id"], network_id=priv["id"]):
            neutron.put("/v2.0/routers/%s/add_router_interface" % router["id"], json={"subnet_id": psub["id"]})
            log("router1: gateway on public, interface on private-subnet")

    # quotas
    def do_quotas():
        nova.put("/os-quota-sets/%s" % admin_pid, json={"quota_set": ADMIN_QUOTAS["compute"]})
        neutron.put("/v2.0/quotas/%s" % admin_pid, json={"quota": ADMIN_QUOTAS["network"]})
        nova.put("/os-quota-sets/%s" % tiny_pid, json={"quota_set": TINY_QUOTAS["compute"]})
        if CINDER:
            cinder = api(sess, "volumev3")
            cinder.put("/os-quota-sets/%s" % admin_pid, json={"quota_set": ADMIN_QUOTAS["volume"]})
    # independent groups in parallel: a re-run on a healthy stack is mostly GETs
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(g) for g in (do_flavors, do_images, do_networks, do_quotas)]:
            f.result()
    log("fixtures ok: flavors %s, images %s, networks private/public, router1, quotas"
        % ("/".join(f[0] for f in FLAVORS), "/".join(i[0] for i in IMAGES)))


# ----------------------------------------------------------------------------------------------
def poll(what, fn, ok, bad=(), timeout=120, interval=0.5):
    end = time.time() + timeout
    while True:
        v = fn()
        if v in ok:
            return v
        if v in bad:
            die("%s: %s" % (what, v))
        if time.time() > end:
            die("%s: still %s after %ds" % (what, v, timeout))
        time.sleep(interval)


def verify():
    """Server on "private" -> ACTIVE with an address, floating IP, volume attach/detach, cleanup."""
    sess = session()
    nova = api(sess, "compute", default_microversion="2.79")
    glance, neutron = api(sess, "image"), api(sess, "network")
    img = glance.get("/v2/images", params={"name": "cirros-fake"}).json()["images"][0]["id"]
    net = neutron.get("/v2.0/networks", params={"name": "private"}).json()["networks"][0]["id"]
    pub = neutron.get("/v2.0/networks", params={"name": "public"}).json()["networks"][0]["id"]
    cleanup_verify(sess)
    t = time.time()
    srv = nova.post("/servers", json={"server": {"name": "rosca-verify", "imageRef": img, "flavorRef": "1",
                                                "networks": [{"uuid": net}]}}).json()["server"]["id"]
    sid = srv
    try:
        def status():
            return nova.get("/servers/%s" % sid).json()["server"]["status"]
        poll("server", status, ("ACTIVE",), ("ERROR",))
        addrs = nova.get("/servers/%s" % sid).json()["server"]["addresses"]
        fixed = [a["addr"] for a in addrs.get("private", [])]
        if not fixed:
            die("server ACTIVE but no address on private: %s" % json.dumps(addrs))
        log("server ACTIVE in %.1fs with %s" % (time.time() - t, fixed[0]))
        port = neutron.get("/v2.0/ports", params={"device_id": sid}).json()["ports"][0]
        fip = neutron.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": pub,
                                                                       "port_id": port["id"]}}).json()["floatingip"]
        try:
            if fip["fixed_ip_address"] != fixed[0]:
                die("floating IP not associated: %s" % fip)
            log("port %s (%s, vif %s), floating IP %s -> %s" % (port["id"][:8], port["status"],
                port["binding:vif_type"], fip["floating_ip_address"], fip["fixed_ip_address"]))
        finally:
            neutron.delete("/v2.0/floatingips/%s" % fip["id"])
        if CINDER:
            cinder = api(sess, "volumev3", default_microversion="3.44")
            vid = cinder.post("/volumes", json={"volume": {"size": 1, "name": "rosca-verify"}}).json()["volume"]["id"]
            try:
                def vstatus():
                    return cinder.get("/volumes/%s" % vid).json()["volume"]["status"]
                poll("volume", vstatus, ("available",), ("error",))
                nova.post("/servers/%s/os-volume_attachments" % sid, json={"volumeAttachment": {"volumeId": vid}})
                poll("volume attach", vstatus, ("in-use",), ("error", "error_attaching", "available"), timeout=120)
                log("volume %s in-use on the server" % vid[:8])
                nova.delete("/servers/%s/os-volume_attachments/%s" % (sid, vid))
                poll("volume detach", vstatus, ("available",), ("error", "error_detaching"))
                log("volume detached")
            finally:
                try:
                    poll("volume settle", vstatus, ("available", "error"), timeout=30)
                    cinder.delete("/volumes/%s" % vid)
                except (SystemExit, ks_exc.HttpError) as e:
                    log("could not delete volume %s (%s); the next verify removes it" % (vid, e))
    finally:
        nova.delete("/servers/%s" % sid)

        def gone():
            r = api(sess, "compute", raise_exc=False).get("/servers/%s" % sid)
            return r.status_code
        poll("server delete", gone, (404,), timeout=120)
    log("verify ok: server with port ACTIVE + address, floating IP"
        + (", volume attach/detach" if CINDER else "") + ", all deleted")


def cleanup_verify(sess):
    """Removes what an interrupted verify left behind (server and volume named rosca-verify)."""
    nova = api(sess, "compute")
    for s in nova.get("/servers", params={"name": "^rosca-verify$"}).json()["servers"]:
        log("removing leftover server %s" % s["id"])
        nova.delete("/servers/%s" % s["id"])
        poll("leftover server delete",
             lambda: api(sess, "compute", raise_exc=False).get("/servers/%s" % s["id"]).status_code,
             (404,), timeout=120)
    if not CINDER:
        return
    cinder = api(sess, "volumev3", default_microversion="3.44")
    for v in cinder.get("/volumes/detail", params={"name": "rosca-verify"}).json()["volumes"]:
        log("removing leftover volume %s (%s)" % (v["id"], v["status"]))
        if v["status"] not in ("available", "error"):
            cinder.post("/volumes/%s/action" % v["id"], json={"os-reset_status": {
                "status": "available", "attach_status": "detached"}})
            for a in v.get("attachments") or []:
                try:
                    cinder.delete("/attachments/%s" % a["attachment_id"])
                except ks_exc.HttpError:
                    pass
        cinder.delete("/volumes/%s" % v["id"])


if __name__ == "__main__":
    cmds = {"catalog": catalog, "wait": wait, "health": health, "fixtures": fixtures, "verify": verify}
    if len(sys.argv) < 2 or any(a not in cmds for a in sys.argv[1:]):
        die("usage: os_setup.py %s..." % "|".join(cmds))
    for a in sys.argv[1:]:
        cmds[a]()
