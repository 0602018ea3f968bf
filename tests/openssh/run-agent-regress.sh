#!/bin/sh
# Run OpenSSH's own ssh-agent regression tests against `mesh ssh-agent`.
#
# usage: tests/openssh/run-agent-regress.sh TEST...
#   e.g. tests/openssh/run-agent-regress.sh agent agent-timeout agent-subprocess
#
# The tests are the installed client's (Debian's openssh-tests package:
# /usr/lib/openssh/regress); nothing of them is in this repository. They are
# copied to a scratch directory and run one by one through their Makefile's
# t-exec target with the real ssh, ssh-add, ssh-keygen and sshd, and with
# TEST_SSH_SSHAGENT pointing at a one-line wrapper that runs `mesh ssh-agent`
# with an empty Mesh home (a plain ssh-agent).
#
# Environment:
#   MESH_BIN            the mesh binary (default: target/debug/mesh of this checkout)
#   AGENT_UNDER_TEST    another agent to run them against instead (e.g. /usr/bin/ssh-agent)
#   OSSH_REGRESS        where the tests are installed (default: /usr/lib/openssh/regress)
#   OSSH_WORKDIR        scratch directory, kept for the logs (default: a fresh mktemp -d)
#
# DSA is left out of the key types (OpenSSH 10 removed it; Mesh refuses it):
# TEST_SSH_SSH is a wrapper whose `ssh -Q key-plain` drops ssh-dss.
# As root, SUDO is empty (the tests would otherwise try to sudo).
# Exit status: 0 when every test passed; otherwise 1, after printing the
# failed tests' failed-*.log.
set -u

here=$(cd "$(dirname "$0")/../.." && pwd)
regress_src=${OSSH_REGRESS:-/usr/lib/openssh/regress}
mesh=${MESH_BIN:-$here/target/debug/mesh}

if [ $# -eq 0 ]; then
    echo "usage: $0 TEST... (e.g. agent agent-timeout agent-subprocess)" >&2
    exit 2
fi
if [ ! -d "$regress_src" ]; then
    echo "$regress_src is missing: install Debian's openssh-tests package" >&2
    exit 2
fi
if [ -z "${AGENT_UNDER_TEST:-}" ] && [ ! -x "$mesh" ]; then
    echo "$mesh is missing: cargo build -p mesh-agent (or set MESH_BIN)" >&2
    exit 2
fi

work=${OSSH_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/ossh-regress.XXXXXX")}
rm -rf "$work/regress"
mkdir -p "$work/mesh-home"
chmod 700 "$work/mesh-home"
cp -a "$regress_src" "$work/regress"

cat > "$work/ssh-nodsa" <<'W'
#!/bin/sh
# -Q anywhere: the tests' log wrapper puts -E LOGFILE first.
for a in "$@"; do
    if [ "$a" = "-Q" ]; then /usr/bin/ssh "$@" | grep -v '^ssh-dss'; exit; fi
done
exec /usr/bin/ssh "$@"
W
chmod +x "$work/ssh-nodsa"

if [ -n "${AGENT_UNDER_TEST:-}" ]; then
    agent=$AGENT_UNDER_TEST
else
    agent=$work/mesh-ssh-agent
    printf '#!/bin/sh\nMESH_HOME=%s exec %s ssh-agent "$@"\n' "$work/mesh-home" "$mesh" > "$agent"
    chmod +x "$agent"
fi

sudo_cmd=${SUDO:-}
[ "$(id -u)" -eq 0 ] && sudo_cmd=

r="$work/regress"
failed=""
for t in "$@"; do
    t=${t%.sh}
    if [ ! -f "$r/$t.sh" ]; then
        echo "no such test: $t" >&2
        failed="$failed $t"
        continue
    fi
    rm -f "$r"/failed-*.log
    echo "== $t" >&2
    if make -s -C "$r" .OBJDIR="$r" .CURDIR="$r" BUILDDIR="$r" OBJ="$r" \
        SUDO="$sudo_cmd" TEST_SHELL=sh TEST_SSH_SSH="$work/ssh-nodsa" \
        TEST_SSH_SSHAGENT="$agent" TEST_SSH_SFTPSERVER=/usr/lib/openssh/sftp-server \
        TEST_SSH_ECC=yes TEST_SSH_UNSAFE_PERMISSIONS=1 t-exec LTESTS="$t" </dev/null; then
        echo "== $t: passed" >&2
    else
        echo "== $t: FAILED" >&2
        failed="$failed $t"
        for log in "$r"/failed-*.log; do
            [ -f "$log" ] || continue
            echo "---- $log" >&2
            cat "$log" >&2
            cp "$log" "$work/$t.$(basename "$log")"
        done
    fi
done

if [ -n "$failed" ]; then
    echo "failed:$failed (logs in $work)" >&2
    exit 1
fi
echo "all passed: $* (logs in $work)" >&2
