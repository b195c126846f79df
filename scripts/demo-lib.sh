# Shared by scripts/demo.sh and scripts/demo-dynamodb.sh; sourced, never run.
# demo_init NAME: a work folder, the list of processes to stop (pids), and traps that stop
# them and remove the folder on exit, Ctrl-C or failure.
demo_init() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap demo_cleanup EXIT
  trap 'echo; echo "demo: interrupted, stopping everything"; exit 130' INT TERM
}
demo_cleanup() {
  local status=$? p
  [ "$status" -eq 0 ] || [ "$status" -eq 130 ] ||
    echo "demo: stopped early (status $status); stopping everything it started" >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $what did not come up; its log:" >&2
  cat "$work"/*.stderr >&2 2>/dev/null || true
  exit 1
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# show METHOD URL [BODY]: the request, then status, X-Cache and body of the answer
show() {
  local method=$1 url=$2 body=${3:-}
  local args=(-s -X "$method" -D "$work/headers" -o "$work/body" -w '%{http_code}')
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  echo "\$ curl -X $method $url${body:+ -d '$body'}"
  local code xcache
  code=$(curl "${args[@]}" "$url")
  xcache=$(tr -d '\r' <"$work/headers" | sed -n 's/^X-Cache: //Ip')
  echo "  -> $code${xcache:+  X-Cache: $xcache}  $(cat "$work/body")"
}
