# Sourced by the service scripts: `apt_install PKG...` installs the Debian packages that are
# missing, without letting their postinst scripts start daemons (there is no init system here).
# The caller defines `log` and `die`, and sets APT_LOG (where apt's output goes); optional:
# APT_PRESEED (a debconf selections file), APT_LOCK_WAIT and APT_INSTALL_TIMEOUT (seconds).
apt_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}): run as root, or install them (apt-get install ${missing[*]})"
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get (Debian bookworm needed)"
  log "installing: ${missing[*]}"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "${APT_PRESEED:-}" ]; then debconf-set-selections < "$APT_PRESEED"; fi
  local wait="${APT_LOCK_WAIT:-300}" rc=0
  timeout "$wait" apt-get -o DPkg::Lock::Timeout="$wait" update -qq >&2 || log "apt-get update failed (continuing)"
  timeout "${APT_INSTALL_TIMEOUT:-900}" apt-get -o DPkg::Lock::Timeout="$wait" install -y -qq --no-install-recommends "${missing[@]}" \
    >"$APT_LOG" 2>&1 || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { tail -n 30 "$APT_LOG" >&2; die "apt-get install failed ($rc), see $APT_LOG"; }
}
