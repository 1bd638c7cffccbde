#!/usr/bin/env bash
# openstack.sh - a real OpenStack Zed (Debian bookworm packages) on 127.0.0.1 for the
# integration tests of the OpenStack provider. Prints on stdout only the path of the env file:
#
#   . "$(scripts/services/openstack.sh)"      # OS_* for admin/admin, project admin
#   # clouds.yaml beside it: clouds "rosca-test" (admin) and "rosca-quota" (quota user)
#
# What runs (all on 127.0.0.1; see docs/providers/openstack-testbed.md):
#   keystone :5000 (uwsgi, fernet)  placement :8778 (uwsgi)  glance :9292 (file store)
#   nova-api :8774 (uwsgi), nova-conductor, nova-scheduler, nova-compute (compute_driver =
#     fake.FakeDriver, run from python3-nova: the nova-compute deb would pull in libvirt/qemu)
#   neutron-server :9696 (ML2, no agents; mechanism driver rosca_fake binds every port)
#   cinder-api :8776 (uwsgi), cinder-scheduler, cinder-volume (driver with no backing storage)
#   PostgreSQL and RabbitMQ: the ones already answering on 127.0.0.1:5432/5672 are used;
#   only when none answers, Debian's are installed and started (scripts/services/postgres.sh
#   for PostgreSQL, a private RabbitMQ node under the state dir).
#
# Idempotent: packages, databases, configs and fixtures are only made when missing or changed;
# a second run on a healthy stack only checks health and fixtures (a few seconds).
# Knobs: ROSCA_OPENSTACK_DIR (state dir: logs, pid files, env; /tmp/rosca-openstack),
#   ROSCA_OPENSTACK_CINDER=real|none (real), ROSCA_OPENSTACK_VERIFY=auto|1|0 (auto: boot a
#   server with a port + floating IP + volume attach whenever a service was (re)started),
#   ROSCA_RABBIT_URL (rabbit://guest:guest@127.0.0.1:5672/), PG_HOST/PG_PORT/PGUSER/PGPASSWORD
#   (passed to postgres.sh). Stop with openstack-down.sh. Must run as root.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/openstack"
STATE="${ROSCA_OPENSTACK_DIR:-/tmp/rosca-openstack}"
CINDER="${ROSCA_OPENSTACK_CINDER:-real}"
VERIFY="${ROSCA_OPENSTACK_VERIFY:-auto}"
RABBIT_URL="${ROSCA_RABBIT_URL:-rabbit://guest:guest@127.0.0.1:5672/}"
OSHOST=rosca-ci                       # nova/cinder service host and the fake hypervisor's name
KS=http://127.0.0.1:5000/v3
PY=/usr/bin/python3                   # Debian's python (python3 on PATH may be pyenv's)
RUN="$STATE/run"; LOGD="$STATE/log"
export ROSCA_OPENSTACK_DIR="$STATE" ROSCA_OPENSTACK_CINDER="$CINDER" ROSCA_OS_HOST="$OSHOST"

log() { echo "[openstack.sh +${SECONDS}s] $*" >&2; }
die() { echo "[openstack.sh] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, writes /etc/{keystone,nova,...})"
case "$CINDER" in real|none) ;; *) die "ROSCA_OPENSTACK_CINDER must be real or none" ;; esac
mkdir -p "$STATE" "$RUN" "$LOGD"
chmod 0755 "$STATE" "$RUN"; chmod 1777 "$LOGD"   # every service user writes its own log
exec 8>"$STATE/.lock"
flock -w 900 8 || die "another openstack.sh holds $STATE/.lock"

alive() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_for() { # wait_for SECONDS WHAT CMD... (CMD exiting 99 means: give up, it died)
  local t=$1 what=$2 rc; shift 2
  local end=$(( $(date +%s) + t ))
  while :; do
    rc=0; "$@" >/dev/null 2>&1 || rc=$?
    [ $rc = 0 ] && return 0
    [ $rc = 99 ] && { log "$what: the process died"; return 1; }
    [ "$(date +%s)" -lt "$end" ] || { log "timeout ($t s) waiting for $what"; return 1; }
    sleep 0.5
  done
}

SERVICES=(keystone placement-api glance-api nova-api nova-conductor nova-scheduler nova-compute neutron-server)
[ "$CINDER" = real ] && SERVICES+=(cinder-api cinder-scheduler cinder-volume)

write_env() {
  cat > "$STATE/env" <<EOF
# written by scripts/services/openstack.sh
export OS_AUTH_URL=$KS OS_USERNAME=admin OS_PASSWORD=admin OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne OS_IDENTITY_API_VERSION=3 OS_INTERFACE=public
EOF
  cat > "$STATE/clouds.yaml" <<EOF
# written by scripts/services/openstack.sh (OS_CLIENT_CONFIG_FILE=$STATE/clouds.yaml)
clouds:
  rosca-test:
    auth:
      auth_url: $KS
      username: admin
      password: admin
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  rosca-quota:
    auth:
      auth_url: $KS
      username: quota
      password: quota
      project_name: tiny-quota
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
  chmod 0644 "$STATE/env" "$STATE/clouds.yaml"
}

# ---- fast path: everything of ours alive, same scripts and settings -> health + fixtures -------
stamp() {
  { cat "${BASH_SOURCE[0]}" "$LIB"/os_setup.py "$LIB"/rosca_os_testbed/*.py "$LIB"/rosca_os_testbed-0.1.dist-info/*
    echo "$CINDER $RABBIT_URL ${PG_HOST:-} ${PG_PORT:-} ${PGUSER:-}"; } | sha256sum | cut -c1-32
}
all_alive() { local s; for s in "${SERVICES[@]}"; do alive "$s" || return 1; done; }
if [ -f "$STATE/.stamp" ] && [ "$(cat "$STATE/.stamp")" = "$(stamp)" ] && all_alive \
   && [ -x "$PY" ] && "$PY" "$LIB/os_setup.py" health fixtures $([ "$VERIFY" = 1 ] && echo verify) 2>"$LOGD/fast-path.log"; then
  write_env
  log "already up and healthy (fixtures checked)"
  echo "$STATE/env"
  exit 0
fi
rm -f "$STATE/.stamp"

# ---- packages -----------------------------------------------------------------------------------
# openstack-pkg-tools postinst scripts: touch no database, rabbit, keystone or endpoint.
APT_LOG="$LOGD/apt.log" APT_PRESEED="$LIB/debconf-preseed.txt" APT_LOCK_WAIT=600 APT_INSTALL_TIMEOUT=2400
. "$(dirname "$0")/apt.sh"
PKGS=(keystone placement-api glance-api nova-api nova-conductor nova-scheduler
      neutron-server uwsgi-plugin-python3 python3-psycopg2 curl)
[ "$CINDER" = real ] && PKGS+=(cinder-api cinder-scheduler)   # cinder-volume's deb wants lvm2/tgt: not installed
apt_install "${PKGS[@]}"

# ---- PostgreSQL: the one answering, else Debian's (postgres.sh decides) ---------------------------
PGH="${PG_HOST:-127.0.0.1}"; PGP="${PG_PORT:-5432}"
if ! tcp_open "$PGH" "$PGP"; then
  log "no PostgreSQL on $PGH:$PGP: starting one with postgres.sh"
  echo "${ROSCA_PG_DIR:-/tmp/rosca-postgres}" > "$STATE/started-postgres"
fi
PG_URL=$(bash "$HERE/postgres.sh") || die "postgres.sh failed"
psql_su() { psql "$PG_URL" -v ON_ERROR_STOP=1 -qtA "$@"; }
DBUSER=rosca_openstack
[ "$(psql_su -c "select 1 from pg_roles where rolname='$DBUSER'")" = 1 ] || \
  psql_su -c "create role $DBUSER login password '$DBUSER'" >/dev/null
DBS=(keystone placement glance nova_api nova nova_cell0 neutron cinder)
for db in "${DBS[@]}"; do
  if [ "$(psql_su -c "select 1 from pg_database where datname='rosca_os_$db'")" != 1 ]; then
    psql_su -c "create database rosca_os_$db owner $DBUSER" >/dev/null
    rm -f "$STATE/.synced-${db%%_*}"   # a new (empty) database needs its schema
  fi
done
DBURL="postgresql+psycopg2://$DBUSER:$DBUSER@$PGH:$PGP"

# ---- RabbitMQ: the one answering, else our own node under $STATE/rabbitmq --------------------------
RHOSTPORT=${RABBIT_URL#*@}; RHOSTPORT=${RHOSTPORT%%/*}
RHOST=${RHOSTPORT%:*}; RPORT=${RHOSTPORT##*:}
rabbit_login() { "$PY" -c 'import sys, kombu; c = kombu.Connection(sys.argv[1].replace("rabbit://", "amqp://"), connect_timeout=5); c.connect(); c.release()' "$RABBIT_URL"; }
if tcp_open "$RHOST" "$RPORT"; then
  :
else
  apt_install rabbitmq-server
  RD="$STATE/rabbitmq"; mkdir -p "$RD"; chown rabbitmq:rabbitmq "$RD"
  if ! tcp_open 127.0.0.1 4369 && ! alive epmd; then
    rm -f "$RUN/epmd.pid"
    start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/epmd.pid" --chuid rabbitmq \
      --output "$LOGD/epmd.log" --exec /usr/bin/epmd -- -address 127.0.0.1 -port 4369
    wait_for 20 epmd tcp_open 127.0.0.1 4369 || die "epmd did not start"
  fi
  if ! alive rabbitmq-wrapper; then
    log "no RabbitMQ on $RHOST:$RPORT: starting our own node"
    rm -f "$RD/beam.pid" "$RUN/rabbitmq-wrapper.pid"
    # own config and env files: the machine's /etc/rabbitmq ones may name another node/port
    echo "listeners.tcp.default = 127.0.0.1:$RPORT" > "$RD/rabbitmq.conf"
    : > "$RD/rabbitmq-env.conf"; : > "$RD/enabled_plugins"
    chown rabbitmq:rabbitmq "$RD"/*
    echo 1 > "$STATE/started-rabbitmq"
    env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=rosca-openstack@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$RPORT" RABBITMQ_DIST_PORT=$((RPORT + 20000)) ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        RABBITMQ_CONFIG_FILE="$RD/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$RD/rabbitmq-env.conf" \
        RABBITMQ_MNESIA_BASE="$RD/mnesia" RABBITMQ_LOG_BASE="$RD" RABBITMQ_PID_FILE="$RD/beam.pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$RD/enabled_plugins" \
      start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/rabbitmq-wrapper.pid" \
        --chuid rabbitmq --chdir /var/lib/rabbitmq \
        --output "$LOGD/rabbitmq-startup.log" --exec /usr/lib/rabbitmq/bin/rabbitmq-server
  fi
  rabbit_listening() { alive rabbitmq-wrapper || return 99; tcp_open "$RHOST" "$RPORT"; }
  wait_for 120 "rabbitmq on $RPORT" rabbit_listening && tcp_open "$RHOST" "$RPORT" \
    || { tail -n 5 "$LOGD/rabbitmq-startup.log" >&2; die "rabbitmq did not start (see $RD, $LOGD/rabbitmq-startup.log)"; }
fi
wait_for 60 "rabbitmq login" rabbit_login || die "cannot log in to RabbitMQ at $RABBIT_URL (set ROSCA_RABBIT_URL)"

# ---- our Python plugins (ML2 mechanism driver, cinder driver) on /usr/bin/python3's path ---------
SITE=$("$PY" -c 'import site; print(site.getsitepackages()[0])')   # /usr/local/lib/python3.11/dist-packages
mkdir -p "$SITE"
CHANGED_PLUGINS=0
for d in rosca_os_testbed rosca_os_testbed-0.1.dist-info; do
  if ! diff -rq -x __pycache__ "$LIB/$d" "$SITE/$d" >/dev/null 2>&1; then
    rm -rf "${SITE:?}/$d"; cp -r "$LIB/$d" "$SITE/$d"; chmod -R a+rX "$SITE/$d"; CHANGED_PLUGINS=1
  fi
done

# ---- configs (written only when their content changes; a change restarts the service) -----------
declare -A RESTART=()
put() { # put FILE OWNER-GROUP SERVICES... < content
  local f=$1 grp=$2; shift 2
  local tmp; tmp=$(mktemp)
  cat > "$tmp"
  [ -f "$f" ] && [ ! -f "$f.debian" ] && cp -p "$f" "$f.debian"
  if ! cmp -s "$tmp" "$f"; then
    install -m 0640 -o root -g "$grp" "$tmp" "$f"
    local s; for s in "$@"; do RESTART[$s]=1; done
  fi
  rm -f "$tmp"
}
authtoken() { # authtoken USER
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $1
region_name = RegionOne
service_token_roles_required = true
EOF
}
svcauth() { # svcauth SECTION USER: keystoneauth password plugin options
  cat <<EOF
[$1]
auth_type = password
auth_url = $KS
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $2
region_name = RegionOne
valid_interfaces = public
EOF
}
dbsec() { printf '[%s]\nconnection = %s\nmax_pool_size = 2\nmax_overflow = 10\n' "${2:-database}" "$DBURL/rosca_os_$1"; }
HEAD="# written by scripts/services/openstack.sh (Debian's original beside it as *.debian)"

put /etc/keystone/keystone.conf keystone keystone <<EOF
$HEAD
[DEFAULT]
log_dir = $LOGD
log_file = keystone.log
$(dbsec keystone)
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
[credential]
key_repository = /etc/keystone/credential-keys/
[oslo_policy]
policy_dirs = /etc/keystone/policy.d
EOF

put /etc/placement/placement.conf placement placement-api <<EOF
$HEAD
[DEFAULT]
log_dir = $LOGD
log_file = placement.log
[api]
auth_strategy = keystone
$(dbsec placement placement_database)
$(authtoken placement)
EOF

mkdir -p /var/lib/glance/images /var/lib/glance/staging /var/lib/glance/tasks /var/lib/glance/tmp
chown -R glance:glance /var/lib/glance
put /etc/glance/glance-api.conf glance glance-api <<EOF
$HEAD
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
log_dir = $LOGD
log_file = glance-api.log
enabled_backends = fs:file
transport_url = $RABBIT_URL
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks/
$(dbsec glance)
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lib/glance/tmp
$(authtoken glance)
EOF

CINDER_NOVA=""
[ "$CINDER" = real ] && CINDER_NOVA="$(svcauth cinder cinder)
os_region_name = RegionOne
catalog_info = volumev3:cinderv3:publicURL"
put /etc/nova/nova.conf nova nova-api nova-conductor nova-scheduler nova-compute <<EOF
$HEAD
[DEFAULT]
host = $OSHOST
my_ip = 127.0.0.1
transport_url = $RABBIT_URL
compute_driver = fake.FakeDriver
# One compute host: a resize has to land on the host the server is on.
allow_resize_to_same_host = true
state_path = /var/lib/nova
log_dir = $LOGD
enabled_apis = osapi_compute
heal_instance_info_cache_interval = -1
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
[api]
auth_strategy = keystone
$(dbsec nova_api api_database)
$(dbsec nova)
[scheduler]
discover_hosts_in_cells_interval = 5
workers = 1
[conductor]
workers = 1
$(svcauth placement placement)
[glance]
region_name = RegionOne
valid_interfaces = public
$(svcauth neutron neutron)
$CINDER_NOVA
# a service token with nova's requests: cinder (since the 2023 CVE-2023-2088 fix) lets only
# nova delete the attachments of a server (detach, server delete)
$(svcauth service_user nova)
send_service_user_token = true
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
$(authtoken nova)
EOF

mkdir -p /var/lib/neutron/tmp && chown -R neutron:neutron /var/lib/neutron
put /etc/neutron/neutron.conf neutron neutron-server <<EOF
$HEAD
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9696
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $RABBIT_URL
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 0
log_dir = $LOGD
log_file = neutron-server.log
$(dbsec neutron)
[oslo_concurrency]
lock_path = /var/lib/neutron/tmp
[oslo_messaging_notifications]
driver = noop
$(authtoken neutron)
EOF
put /etc/neutron/plugins/ml2/ml2_conf.ini neutron neutron-server <<EOF
$HEAD
# No agents: the rosca_fake mechanism driver (scripts/services/openstack/rosca_os_testbed)
# binds every port (vif_type ovs) so that nova can boot servers with ports. No data plane.
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = rosca_fake
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:200
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
firewall_driver = noop
EOF

if [ "$CINDER" = real ]; then
  mkdir -p /var/lib/cinder/tmp && chown -R cinder:cinder /var/lib/cinder
  put /etc/cinder/cinder.conf cinder cinder-api cinder-scheduler cinder-volume <<EOF
$HEAD
[DEFAULT]
host = $OSHOST
my_ip = 127.0.0.1
transport_url = $RABBIT_URL
auth_strategy = keystone
state_path = /var/lib/cinder
log_dir = $LOGD
enabled_backends = fake
glance_api_servers = http://127.0.0.1:9292
# cinder-volume publishes its capabilities to the scheduler on this period, after a random
# delay of up to periodic_fuzzy_delay: until then no volume can be scheduled.
periodic_interval = 5
periodic_fuzzy_delay = 0
$(dbsec cinder)
[fake]
# no LVM, no iSCSI: volumes exist only in cinder's database
volume_driver = rosca_os_testbed.cinder_fake.RoscaFakeVolumeDriver
volume_backend_name = fake
$(svcauth nova nova)
[oslo_concurrency]
lock_path = /var/lib/cinder/tmp
[oslo_messaging_notifications]
driver = noop
$(authtoken cinder)
EOF
fi
if [ $CHANGED_PLUGINS = 1 ]; then RESTART[neutron-server]=1; RESTART[cinder-volume]=1; fi

# ---- schema (once per database URL; the syncs are idempotent anyway) -----------------------------
sync_key() { if [ "$1" = nova ]; then echo "$DBURL $RABBIT_URL"; else echo "$DBURL"; fi; }
synced() { [ "$(cat "$STATE/.synced-$1" 2>/dev/null)" = "$(sync_key "$1")" ]; }
mark() { sync_key "$1" > "$STATE/.synced-$1"; }
as() { local u=$1; shift; runuser -u "$u" -- "$@" >>"$LOGD/manage.log" 2>&1; }
if ! synced keystone; then
  log "keystone: db_sync, fernet/credential keys, bootstrap"
  as keystone keystone-manage db_sync || die "keystone db_sync (see $LOGD/manage.log)"
  [ -e /etc/keystone/fernet-keys/0 ] || keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone >>"$LOGD/manage.log" 2>&1
  [ -e /etc/keystone/credential-keys/0 ] || keystone-manage credential_setup --keystone-user keystone --keystone-group keystone >>"$LOGD/manage.log" 2>&1
  as keystone keystone-manage bootstrap --bootstrap-password admin --bootstrap-username admin \
    --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-admin-url "$KS/" --bootstrap-internal-url "$KS/" --bootstrap-public-url "$KS/" \
    --bootstrap-region-id RegionOne || die "keystone bootstrap (see $LOGD/manage.log)"
  mark keystone
fi
SYNC_PIDS=()
bgsync() { # bgsync NAME CMD... : runs in the background, marks on success
  local name=$1; shift
  synced "$name" && return 0
  ( "$@" && mark "$name" ) & SYNC_PIDS+=($!)
}
nova_sync() { # cell1's mapping stores the rabbit URL: the conductor casts to compute through it
  local cell1
  as nova nova-manage api_db sync &&
  as nova nova-manage cell_v2 map_cell0 --database_connection "$DBURL/rosca_os_nova_cell0" &&
  cell1=$(runuser -u nova -- nova-manage cell_v2 list_cells 2>/dev/null | awk -F'|' '$2 ~ / cell1 / {gsub(/ /, "", $3); print $3}') &&
  if [ -n "$cell1" ]; then
    as nova nova-manage cell_v2 update_cell --cell_uuid "$cell1" --transport-url "$RABBIT_URL" \
      --database_connection "$DBURL/rosca_os_nova"
  else
    as nova nova-manage cell_v2 create_cell --name=cell1 --transport-url "$RABBIT_URL" \
      --database_connection "$DBURL/rosca_os_nova" --verbose
  fi &&
  as nova nova-manage db sync
}
for s in placement glance nova neutron $([ "$CINDER" = real ] && echo cinder); do
  synced $s || { log "db syncs (first time only; about a minute)"; break; }
done
bgsync placement as placement placement-manage db sync
bgsync glance as glance glance-manage db_sync
# nova-api and nova-conductor cache the cell mappings: restart them when cell1 changes
synced nova || { RESTART[nova-api]=1; RESTART[nova-conductor]=1; RESTART[nova-scheduler]=1; }
bgsync nova nova_sync
bgsync neutron as neutron neutron-db-manage --config-file /etc/neutron/neutron.conf \
  --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads
[ "$CINDER" = real ] && bgsync cinder as cinder cinder-manage db sync

# ---- services ---------------------------------------------------------------------------------------
stop_svc() { # by PID file only
  local f="$RUN/$1.pid" pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
}
STARTED=0
start_bg() { # start_bg NAME USER PORT|- EXEC ARGS...
  local name=$1 user=$2 port=$3; shift 3
  local args="$user $*"
  [ "$(cat "$RUN/$name.args" 2>/dev/null)" = "$args" ] || RESTART[$name]=1
  if alive "$name" && [ -z "${RESTART[$name]:-}" ]; then return 0; fi
  if alive "$name"; then log "restarting $name (config or command line changed)"; stop_svc "$name"; fi
  rm -f "$RUN/$name.pid"
  echo "$args" > "$RUN/$name.args"
  if [ "$port" != - ] && tcp_open 127.0.0.1 "$port"; then
    die "127.0.0.1:$port is taken by a process that is not ours ($name): stop it first"
  fi
  log "starting $name"
  start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/$name.pid" --chuid "$user" \
    --chdir /tmp --output "$LOGD/$name.out" --exec "$1" -- "${@:2}"
  STARTED=1
}
start_uwsgi() { # start_uwsgi NAME USER PORT WSGI-SCRIPT [PROCESSES THREADS]
  # "Connection: close": uwsgi's http-socket does no keep-alive without saying so, and
  # keystoneauth/requests then get ConnectionResetError on reused connections.
  start_bg "$1" "$2" "$3" /usr/bin/uwsgi_python3 --http-socket "127.0.0.1:$3" --wsgi-file "$4" \
    --master --die-on-term --processes "${5:-1}" --threads "${6:-8}" --enable-threads --lazy-apps \
    --buffer-size 65535 --add-header "Connection: close"
}
pycmd() { echo "import sys; from $1 import main; sys.argv[0] = '$2'; sys.exit(main())"; }

start_uwsgi keystone keystone 5000 /usr/bin/keystone-wsgi-public
token_ok() { curl -sf -o /dev/null -H 'Content-Type: application/json' "$KS/auth/tokens" -d \
  '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}'; }
wait_for 180 "keystone tokens" token_ok || { tail -n 20 "$LOGD/keystone.out" >&2; die "keystone does not issue tokens"; }
log "keystone up; registering service users and catalog"
"$PY" "$LIB/os_setup.py" catalog || die "keystone catalog registration failed"

for p in "${SYNC_PIDS[@]}"; do wait "$p" || die "a db sync failed (see $LOGD/manage.log)"; done
for s in placement glance nova neutron; do synced $s || die "db sync of $s failed (see $LOGD/manage.log)"; done
[ "$CINDER" = real ] && { synced cinder || die "cinder db sync failed (see $LOGD/manage.log)"; }

start_uwsgi placement-api placement 8778 /usr/bin/placement-api
start_bg glance-api glance 9292 /usr/bin/glance-api --config-file /etc/glance/glance-api.conf
start_bg neutron-server neutron 9696 /usr/bin/neutron-server --config-file /etc/neutron/neutron.conf \
  --config-file /etc/neutron/plugins/ml2/ml2_conf.ini
# nova-api monkey-patches eventlet: uwsgi threads then hang it ("cannot switch to a different
# thread"), so one thread per process and two processes
start_uwsgi nova-api nova 8774 /usr/bin/nova-api-wsgi 2 1
start_bg nova-conductor nova - /usr/bin/nova-conductor --config-file /etc/nova/nova.conf
start_bg nova-scheduler nova - /usr/bin/nova-scheduler --config-file /etc/nova/nova.conf
# nova-compute from python3-nova (the nova-compute deb drags in libvirt, qemu, lxc, open-iscsi)
start_bg nova-compute nova - "$PY" -c "$(pycmd nova.cmd.compute nova-compute)" \
  --config-file /etc/nova/nova.conf --log-file "$LOGD/nova-compute.log"
if [ "$CINDER" = real ]; then
  start_uwsgi cinder-api cinder 8776 /usr/bin/cinder-wsgi
  start_bg cinder-scheduler cinder - /usr/bin/cinder-scheduler --config-file /etc/cinder/cinder.conf
  # cinder-volume from python3-cinder (its deb wants lvm2, tgt, open-iscsi, qemu-utils)
  start_bg cinder-volume cinder - "$PY" -c "$(pycmd cinder.cmd.volume cinder-volume)" \
    --config-file /etc/cinder/cinder.conf --log-file "$LOGD/cinder-volume.log"
else
  for s in cinder-api cinder-scheduler cinder-volume; do stop_svc "$s"; done
fi

log "waiting for the APIs, nova-compute and the hypervisor"
# nova-scheduler maps new compute hosts into cell1 every 5 s (discover_hosts_in_cells_interval);
# nova-manage is the fallback when that has not happened within a minute
if ! ROSCA_OS_WAIT=60 "$PY" "$LIB/os_setup.py" wait; then
  log "running nova-manage cell_v2 discover_hosts, waiting again"
  as nova nova-manage cell_v2 discover_hosts || true
  ROSCA_OS_WAIT=240 "$PY" "$LIB/os_setup.py" wait || die "stack not healthy (logs in $LOGD)"
fi
"$PY" "$LIB/os_setup.py" fixtures || die "fixtures failed (logs in $LOGD)"
if [ "$VERIFY" = 1 ] || { [ "$VERIFY" = auto ] && [ $STARTED = 1 ]; }; then
  log "verifying: server with a port, floating IP$([ "$CINDER" = real ] && echo ', volume attach')"
  "$PY" "$LIB/os_setup.py" verify || die "verification failed (logs in $LOGD)"
fi
stamp > "$STATE/.stamp"
write_env
log "up: keystone :5000, placement :8778, glance :9292, nova :8774, neutron :9696$([ "$CINDER" = real ] && echo ', cinder :8776')"
echo "$STATE/env"
