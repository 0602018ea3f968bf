#!/usr/bin/env bash
# The stolen-laptop drill, measured (docs/BENCHMARKS.md): three devices
# with running agents, `pgp install` and `smime install` done on the phone
# and the tablet; the laptop (administrator) revokes the phone. For each
# channel, the time from the start of `mesh device revoke` until it is cut,
# probed the way its peer sees it:
#   portal   `mesh device revoke` returned: the access list is committed
#   keys     sshd's AuthorizedKeysCommand (`authorized-keys --user root`) no longer prints the phone's key
#   certs    sshd's AuthorizedPrincipalsCommand (`authorized-principals --cert %k`) refuses the phone's certificate
#   krl      the fetched KRL (`mesh ssh krl --account`) revokes the phone's key (`ssh-keygen -Q`)
#   pgp      the tablet's GnuGP home shows the phone's subkey revoked (`gpg -k`: one more `sub:r`)
#   smime    the tablet's NSS database was re-provisioned with the new encryption key
#   agent    the phone's agent lists no Mesh key (`ssh-add -l`), or has exited (a revoked agent wipes and exits)
#   wipe     the phone wiped its secrets (state `wiped`)
# Usage: tests/bench/drill.sh [RUNS] (default 5); MESH_BIN_DIR picks the
# binaries (default target/release, else target/debug). MESH_BENCH_SMOKE=1
# (CI): one run on the debug build, and a channel never cut fails it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${MESH_BENCH_SMOKE:-}" ]; then
  RUNS=${1:-1}
  (cd "$ROOT" && cargo build -q -p mesh-agent -p mesh-portal)
  BIN=${MESH_BIN_DIR:-$ROOT/target/debug}
else
  RUNS=${1:-5}
  BIN=${MESH_BIN_DIR:-$ROOT/target/release}
fi
[ -x "$BIN/mesh" ] || BIN=$ROOT/target/debug
MESH=$BIN/mesh
PORTAL=$BIN/mesh-portal
export MESH_KEYSTORE=file
ADDR=alice@example.com
now() { date +%s%3N; }

probe() { # $1 = channel: 0 when it is cut
  case $1 in
    keys) ! "$MESH" ssh authorized-keys --account "$UDF" --portal "$URL" --user root | grep -qF "$BKEY" ;;
    certs) [ -z "$("$MESH" ssh authorized-principals --account "$UDF" --portal "$URL" --user root --cert "$BCERT")" ] ;;
    krl) "$MESH" ssh krl --account "$UDF" --portal "$URL" --output "$D/krl-$$" >/dev/null 2>&1 &&
      { ssh-keygen -Q -f "$D/krl-$$" "$D/b.pub" || true; } | grep -q REVOKED ;;
    pgp) [ "$(gpg --homedir "$D/c-gnupg" --with-colons -k 2>/dev/null | grep -c '^sub:r:' || true)" -gt "$SUB0" ] ;;
    smime) [ "$(cat "$D/c/plugins/smime.json")" != "$NSS0" ] ;;
    agent) [ ! -S "$BSOCK" ] || { SSH_AUTH_SOCK=$BSOCK ssh-add -l 2>&1 || true; } | grep -q 'no identities' ;;
    wipe) grep -q '"wiped": true' "$D/b/state.json" ;;
  esac
}

# Every channel is probed by its own loop, at once: each reports the first
# time it sees its channel cut (a probe costs one process start, 5-100 ms).
probe_all() {
  local t0=$1 ch
  for ch in keys certs krl pgp smime agent wipe; do
    (
      deadline=$(( $(now) + 30000 ))
      while [ "$(now)" -lt "$deadline" ]; do
        if probe "$ch"; then echo "$ch $(( $(now) - t0 ))"; exit 0; fi
        sleep 0.05  # leave the CPU to what is measured
      done
      echo "$ch never"
    ) &
  done
  wait
}

# Stop what one run started and remove its directory (also when it broke).
run_cleanup() { # $1 = directory, $2 = the portal's pid
  for h in b c; do "$MESH" --home "$1/$h" agent stop >/dev/null 2>&1 || true; done
  gpgconf --homedir "$1/b-gnupg" --kill all 2>/dev/null || true
  gpgconf --homedir "$1/c-gnupg" --kill all 2>/dev/null || true
  kill "$2" 2>/dev/null || true; wait "$2" 2>/dev/null || true
  rm -rf "$1"
}

one_run() {
  local d; d=$(mktemp -d /tmp/mesh-drill.XXXXXX); chmod 700 "$d"
  "$PORTAL" serve --data "$d/portal" --listen 127.0.0.1:0 > "$d/portal.url" 2>"$d/portal.log" &
  local ppid=$!
  # one_run is a subshell (the loop reads it): its EXIT trap is its own.
  trap 'run_cleanup "$d" "$ppid"' EXIT
  for _ in $(seq 100); do [ -s "$d/portal.url" ] && break; sleep 0.05; done
  URL=$(head -1 "$d/portal.url")
  "$MESH" --home "$d/a" account create "$ADDR" --portal "$URL" --device laptop \
    --recovery "$d/kit-1,$d/kit-2,$d/kit-3" >/dev/null 2>"$d/create.log" ||
    { cat "$d/create.log" >&2; exit 1; }
  UDF=$("$MESH" --home "$d/a" --json account show | python3 -c 'import json,sys; print(json.load(sys.stdin)["profile_udf"])')
  for dev in b:phone c:tablet; do
    local h=${dev%%:*} n=${dev#*:} w
    w=$("$MESH" --home "$d/$h" device request "$ADDR" --portal "$URL" --name "$n" 2>/dev/null)
    "$MESH" --home "$d/a" device accept "$w" >/dev/null 2>&1
    "$MESH" --home "$d/$h" sync >/dev/null 2>&1
  done
  "$MESH" --home "$d/a" ssh principals root alice >/dev/null 2>&1
  for h in b c; do
    mkdir -m 700 "$d/$h-gnupg"
    "$MESH" --home "$d/$h" sync >/dev/null 2>&1
    "$MESH" --home "$d/$h" pgp install --gnupghome "$d/$h-gnupg" >/dev/null 2>&1
    "$MESH" --home "$d/$h" smime install --nssdb "$d/$h-nss" >/dev/null 2>&1
    "$MESH" --home "$d/$h" agent start --interval 1s >/dev/null 2>&1
  done
  BSOCK=$("$MESH" --home "$d/b" --json agent status | python3 -c 'import json,sys; print(json.load(sys.stdin)["ssh_auth_sock"])')
  "$MESH" --home "$d/b" ssh public-key > "$d/b.pub"
  BKEY=$(cut -d' ' -f2 "$d/b.pub")
  BCERT=$("$MESH" --home "$d/b" ssh cert | cut -d' ' -f2)
  D=$d
  SUB0=$(gpg --homedir "$d/c-gnupg" --with-colons -k 2>/dev/null | grep -c '^sub:r:' || true)
  NSS0=$(cat "$d/c/plugins/smime.json")
  local t0; t0=$(now)
  probe_all "$t0" > "$d/probes" &
  local probes=$!
  "$MESH" --home "$d/a" device revoke phone >/dev/null 2>&1
  echo "portal $(( $(now) - t0 ))"
  wait "$probes"
  cat "$d/probes"
  trap - EXIT
  run_cleanup "$d" "$ppid"
}

declare -A RES
for r in $(seq "$RUNS"); do
  while read -r ch ms; do RES[$ch]="${RES[$ch]:-} $ms"; echo "run $r: $ch $ms ms" >&2; done < <(one_run)
done
echo "| channel | runs (ms) | p50 | worst |"
echo "|---|---|---|---|"
for ch in portal keys certs krl pgp smime agent wipe; do
  vals=$(tr ' ' '\n' <<<"${RES[$ch]:-}" | { grep -v '^$' || true; } | sort -n)
  p50=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' <<<"$vals")
  worst=$(tail -1 <<<"$vals")
  echo "| $ch | $(xargs <<<"${RES[$ch]:-}") | $p50 | $worst |"
done
# A run that broke reports nothing (its errors are above); in the smoke
# run, a channel never cut is a failure too.
BAD=0
for ch in portal keys certs krl pgp smime agent wipe; do
  n=$(wc -w <<<"${RES[$ch]:-}")
  if [ "$n" -ne "$RUNS" ]; then echo "drill.sh: $ch measured in $n of $RUNS runs" >&2; BAD=1; fi
  if [ -n "${MESH_BENCH_SMOKE:-}" ] && grep -qw never <<<"${RES[$ch]:-}"; then
    echo "drill.sh: $ch was never cut" >&2; BAD=1
  fi
done
exit "$BAD"
