#!/usr/bin/env bash
# valgrind memcheck over a short run of the example server: kinesalite and a stream on
# loopback, users_server under valgrind (--error-exitcode), a few PUT / GET / DELETE
# (refused bodies too), /metrics, then SIGTERM. Passes when the server exits 0 after
# SIGTERM with memcheck reporting no error: no invalid read or write, no use of
# uninitialised memory, nothing definitely lost. Reachable and possibly lost blocks
# (library caches, threads' stacks) are not errors.
#
#   scripts/valgrind-run.sh [BUILDDIR]     (default build/; the meson test passes its own)
# Exits 0 on success, 1 on failure, 77 (skipped, saying why) without valgrind or node.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
server=$build/example_server/users_server
kinesalite=$root/.deps/node_modules/kinesalite

skip() { echo "valgrind-run: skipped: $*"; exit 77; }
command -v valgrind >/dev/null || skip "valgrind is not installed (scripts/install-deps.sh)"
command -v node >/dev/null || skip "node is not installed (scripts/install-deps.sh)"
[ -d "$kinesalite" ] || skip "kinesalite is not installed in .deps (scripts/install-deps.sh)"
[ -x "$server" ] || { echo "valgrind-run: $server not built"; exit 1; }

tmp=$(mktemp -d /tmp/scache-valgrind.XXXXXX)
kpid='' spid=''
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [ -n "$kpid" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "valgrind-run: FAILED: $*"
  [ -f "$tmp/valgrind.log" ] && tail -n 60 "$tmp/valgrind.log"
  [ -f "$tmp/server.stderr" ] && tail -n 20 "$tmp/server.stderr"
  exit 1
}

# A free loopback port below the kernel's ephemeral range (see tests/integration_server.py).
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

kport=$(free_port) || fail "no free port"
kinesis() { # operation, JSON body
  curl -s --max-time 10 -X POST "http://127.0.0.1:$kport/" \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: Kinesis_20131202.$1" \
    -H 'X-Amz-Date: 20261124T000000Z' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20261124/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0' \
    -d "$2"
}
wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}

node -e "require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0}).listen(+process.argv[2], '127.0.0.1')" \
  "$kinesalite" "$kport" >/dev/null 2>"$tmp/kinesalite.stderr" &
kpid=$!
listing() { kinesis ListStreams '{}' | grep -q StreamNames; }
wait_for "kinesalite" 30 listing
kinesis CreateStream '{"StreamName":"users","ShardCount":2}' >/dev/null
active() { kinesis DescribeStreamSummary '{"StreamName":"users"}' | grep -q '"ACTIVE"'; }
wait_for "the stream" 30 active

sport=$(free_port) || fail "no free port"
start=$(date +%s)
AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 \
  valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 \
  --log-file="$tmp/valgrind.log" \
  "$server" --port "$sport" --db "$tmp/users.db" --stream users \
  --endpoint "http://127.0.0.1:$kport" --threads 2 --log "$tmp/efficiency.log" \
  >"$tmp/server.stderr" 2>&1 &
spid=$!
healthy() { kill -0 "$spid" && curl -sf --max-time 5 "http://127.0.0.1:$sport/healthz"; }
wait_for "users_server under valgrind to answer /healthz" 90 healthy

base=http://127.0.0.1:$sport
check() { # expected status, method, path, [body]
  local want=$1 method=$2 path=$3 got
  if [ $# -ge 4 ]; then
    got=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 -X "$method" \
      -H 'Content-Type: application/json' --data-binary "$4" "$base$path")
  else
    got=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 -X "$method" "$base$path")
  fi
  [ "$got" = "$want" ] || fail "$method $path: HTTP $got, expected $want ($(head -c 300 "$tmp/body"))"
  echo "  $method $path -> $got"
}
check 200 PUT /users/ada '{"name":"Ada","email":"ada@example.com"}'
check 200 GET /users/ada
check 200 GET /users/ada
grep -q '"name":"Ada"' "$tmp/body" || fail "GET /users/ada: $(cat "$tmp/body")"
check 200 PUT /users/ada '{"name":"Ada L.","email":"ada@example.com","x":[1,{"y":null}]}'
check 200 GET /users/ada
grep -q '"name":"Ada L."' "$tmp/body" || fail "GET /users/ada after the PUT: $(cat "$tmp/body")"
check 200 PUT /users/bob '{"name":"Bob \ud83d\ude00","email":"bob@example.com"}'
check 400 PUT /users/bob '{"name":"\ud800","email":"e"}'
check 400 PUT /users/bob "$(printf '{"name":"\xc0\xaf","email":"e"}')"
check 400 PUT /users/bob '{"name":"a","email":"e"} trailing'
check 400 PUT /users/bob '["not","an","object"]'
check 400 GET '/users/no%20spaces'
check 404 GET /users/nobody
check 200 DELETE /users/ada
check 404 GET /users/ada
check 404 DELETE /users/ada
check 200 GET /users/bob
check 200 GET /metrics
check 200 GET /healthz

kill -TERM "$spid"
wait "$spid"
rc=$?
spid=''
secs=$(($(date +%s) - start))
grep -E "in use at exit|total heap usage|All heap blocks|definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY" \
  "$tmp/valgrind.log" | sed 's/^==[0-9]*== /  /'
[ $rc = 99 ] && fail "memcheck reported errors (exit 99)"
[ $rc = 0 ] || fail "users_server exited with $rc after SIGTERM"
grep -q "ERROR SUMMARY: 0 errors" "$tmp/valgrind.log" || fail "memcheck's summary is not 0 errors"
echo "valgrind-run: ok: users_server under memcheck, $secs s, exit 0 after SIGTERM, 0 errors"
