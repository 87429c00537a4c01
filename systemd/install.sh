#!/usr/bin/env bash
# Install hftfeed as a systemd service (see docs/deployment.md):
#   code    -> /opt/hftfeed          (root-owned, read-only for the service; precompiled)
#   config  -> /etc/hftfeed/*.json   (never overwritten: a newer shipped copy lands as *.json.dist;
#              the demo config is never installed)
#   units   -> /etc/systemd/system/hftfeed.service and hftfeed@.service (one instance per
#              /etc/hftfeed/NAME.json), then systemctl daemon-reload
#   CAP_SYS_NICE -> a drop-in hftfeed[@NAME].service.d/50-realtime.conf only for configs that ask
#              for "scheduler": {"policy": "fifo"} (re-run the installer after changing that)
#   sysctl  -> /etc/sysctl.d/60-hftfeed.conf, applied now: ONLY with --sysctl (it raises
#              system-wide socket buffer limits, which affects every program on the host)
#   user    -> system user and group "hftfeed" (no home, no shell)
#
# Usage: sudo systemd/install.sh [--prefix DIR] [--confdir DIR] [--destdir DIR] [--enable] [--no-compile] [--sysctl]
#        sudo systemd/install.sh --uninstall      (removes code and units; keeps /etc/hftfeed and the user)
# --destdir stages everything under DIR (for packaging and tests): no user, no sysctl -p, no systemctl.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/hftfeed
CONFDIR=/etc/hftfeed
DESTDIR="${DESTDIR:-}"
ENABLE=0
COMPILE=1
UNINSTALL=0
SYSCTL_WANTED=0
SERVICE_USER=hftfeed

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --confdir) CONFDIR="${2:?--confdir needs a directory}"; shift 2 ;;
    --destdir) DESTDIR="${2:?--destdir needs a directory}"; shift 2 ;;
    --enable) ENABLE=1; shift ;;
    --no-compile) COMPILE=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --sysctl) SYSCTL_WANTED=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done

STAGED=0
[ -n "$DESTDIR" ] && STAGED=1
if [ "$STAGED" = 0 ] && [ "$(id -u)" != 0 ]; then die "run as root (or stage with --destdir DIR)"; fi
have_systemd() { [ "$STAGED" = 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

UNIT="$DESTDIR/etc/systemd/system/hftfeed.service"
TEMPLATE="$DESTDIR/etc/systemd/system/hftfeed@.service"
SYSCTL="$DESTDIR/etc/sysctl.d/60-hftfeed.conf"

if [ "$UNINSTALL" = 1 ]; then
  if have_systemd; then systemctl disable --now hftfeed.service || true; fi
  rm -f "$UNIT" "$TEMPLATE"
  rm -rf "$DESTDIR"/etc/systemd/system/hftfeed.service.d "$DESTDIR"/etc/systemd/system/hftfeed@*.service.d
  rm -rf "$DESTDIR$PREFIX"
  if have_systemd; then systemctl daemon-reload; fi
  say "removed $PREFIX and the unit; kept $CONFDIR, $SYSCTL and user $SERVICE_USER"
  exit 0
fi

# 1. the service user
if [ "$STAGED" = 0 ] && ! getent passwd "$SERVICE_USER" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin --comment "hftfeed feed handler" "$SERVICE_USER"
  say "created system user $SERVICE_USER"
fi

# 2. code: a clean copy (no tests, caches or VCS data), owned by root, readable by all
install -d -m 0755 "$DESTDIR$PREFIX"
rm -rf "$DESTDIR$PREFIX/hftfeed"
install -m 0644 "$SRC/hftfeed.py" "$DESTDIR$PREFIX/hftfeed.py"
(cd "$SRC" && find hftfeed -name __pycache__ -prune -o -type f -name '*.py' -print) |
  while read -r file; do
    install -D -m 0644 "$SRC/$file" "$DESTDIR$PREFIX/$file"
  done
if [ -d "$SRC/docs" ]; then
  install -d -m 0755 "$DESTDIR$PREFIX/docs"
  install -m 0644 "$SRC"/docs/*.md "$DESTDIR$PREFIX/docs/"
fi
if [ "$COMPILE" = 1 ]; then
  # ProtectSystem=strict makes /opt read-only for the service: precompile for each interpreter
  # (PyPy and CPython use different cache tags), with the final path embedded (-d).
  for py in pypy3 python3; do
    if command -v "$py" >/dev/null; then
      "$py" -m compileall -q -d "$PREFIX" "$DESTDIR$PREFIX" >/dev/null
    fi
  done
fi
if [ "$STAGED" = 0 ]; then chown -R root:root "$PREFIX"; fi

# 3. configuration: readable by the service group only, never overwritten
install -d -m 0750 "$DESTDIR$CONFDIR"
for conf in "$SRC"/etc/*.json; do
  [ -e "$conf" ] || continue
  # the demo config points at a loopback simulator: never a production config
  [ "$(basename "$conf")" = demo.json ] && continue
  target="$DESTDIR$CONFDIR/$(basename "$conf")"
  if [ -e "$target" ]; then
    if ! cmp -s "$conf" "$target"; then
      install -m 0640 "$conf" "$target.dist"
      say "kept your $CONFDIR/$(basename "$conf"); the shipped one is $(basename "$conf").dist"
    fi
  else
    install -m 0640 "$conf" "$target"
  fi
done
if [ "$STAGED" = 0 ]; then chown -R root:"$SERVICE_USER" "$CONFDIR"; fi

# 4. socket buffer limits: system-wide, so only when asked for
if [ "$SYSCTL_WANTED" = 1 ]; then
  install -D -m 0644 "$SRC/etc/sysctl.d/60-hftfeed.conf" "$SYSCTL"
  if [ "$STAGED" = 0 ]; then
    sysctl -q -p "$SYSCTL" || say "could not apply $SYSCTL now (container?); it applies at boot"
  fi
else
  say "system settings unchanged; socket buffers above the kernel's net.core.[rw]mem_max are"
  say "  capped (the daemon logs it): install etc/sysctl.d/60-hftfeed.conf with --sysctl"
fi

# 5. the units, with the chosen paths
install -d -m 0755 "$(dirname "$UNIT")"
for pair in "hftfeed.service:$UNIT" "hftfeed@.service:$TEMPLATE"; do
  sed -e "s#/opt/hftfeed#$PREFIX#g" -e "s#/etc/hftfeed/#$CONFDIR/#g" \
      "$SRC/systemd/${pair%%:*}" > "${pair#*:}"
  chmod 0644 "${pair#*:}"
done

# 6. CAP_SYS_NICE only for the configs that ask for SCHED_FIFO: hftfeed.json -> hftfeed.service,
#    NAME.json -> hftfeed@NAME.service
wants_fifo() {  # exit 0 if the JSON config at $1 sets "scheduler": {"policy": "fifo"}
  local py
  for py in python3 pypy3; do
    if command -v "$py" >/dev/null; then
      "$py" -c 'import json,sys; c=json.load(open(sys.argv[1])); s=c.get("scheduler") or {}
sys.exit(0 if isinstance(s, dict) and s.get("policy") == "fifo" else 1)' "$1" 2>/dev/null
      return $?
    fi
  done
  say "WARNING: no python3/pypy3 to read $1; CAP_SYS_NICE not granted"; return 1
}
for conf in "$DESTDIR$CONFDIR"/*.json; do
  [ -e "$conf" ] || continue
  name="$(basename "$conf" .json)"
  if [ "$name" = hftfeed ]; then unit_name=hftfeed.service; else unit_name="hftfeed@$name.service"; fi
  dropin="$DESTDIR/etc/systemd/system/$unit_name.d/50-realtime.conf"
  if wants_fifo "$conf"; then
    install -d -m 0755 "$(dirname "$dropin")"
    printf '%s\n' "# Written by systemd/install.sh: $CONFDIR/$name.json asks for the SCHED_FIFO scheduler." \
      "[Service]" "AmbientCapabilities=CAP_SYS_NICE" "CapabilityBoundingSet=CAP_SYS_NICE" > "$dropin"
    chmod 0644 "$dropin"
    say "$unit_name: CAP_SYS_NICE granted ($name.json asks for SCHED_FIFO)"
  elif [ -e "$dropin" ]; then
    rm -f "$dropin"
    rmdir "$(dirname "$dropin")" 2>/dev/null || true
    say "$unit_name: CAP_SYS_NICE withdrawn ($name.json no longer asks for SCHED_FIFO)"
  fi
done

if ! command -v pypy3 >/dev/null; then
  say "WARNING: pypy3 not found; the unit runs /usr/bin/pypy3: apt-get install pypy3"
fi
if have_systemd; then
  systemctl daemon-reload
  if [ "$ENABLE" = 1 ]; then systemctl enable --now hftfeed.service; fi
fi

say "installed to ${DESTDIR:-/}: code $PREFIX, config $CONFDIR, units hftfeed.service and hftfeed@.service"
if [ "$STAGED" = 0 ] && [ "$ENABLE" = 0 ]; then
  say "next: edit $CONFDIR/hftfeed.json, then: systemctl enable --now hftfeed && journalctl -u hftfeed -f"
fi
