#!/usr/bin/env bash
# The DynamoDB story on local parts: two users servers caching items of one DynamoDB
# table, kept coherent by the table's change records on a Kinesis stream.
#
# Starts dynalite (the local DynamoDB) and kinesalite (the local Kinesis) on 127.0.0.1,
# creates the table 'users' and the stream 'users-changes', and starts two users servers
# in DynamoDB mode in one run: A in refresh mode (a change record stores the new item)
# and B in invalidate mode (a change record removes the cached item). Then, with curl:
#   GET (MISS, from dynalite), GET (HIT), a change made outside the servers (PutItem on
#   dynalite, then its change record), GET on A (HIT, the new value) and on B (MISS, the
#   new value, then HIT), a PUT through B and a DELETE through A, each followed by its
#   change record.
# On AWS, Kinesis Data Streams for DynamoDB writes each change record; locally nothing
# does, so after each write this script puts the record on kinesalite in AWS's exact
# shape, with Debian's AWS CLI v2 (`aws kinesis put-record`), and says so each time.
#
#   scripts/demo-dynamodb.sh
#
# SCACHE_BUILD_DIR=DIR uses the users_server already built in DIR (the test suite does;
# nothing is installed or built then); otherwise missing dependencies are installed and
# build/ is set up and built, as scripts/demo.sh does.
# Every process it starts is stopped at the end, also on Ctrl-C or an error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ -n "${SCACHE_BUILD_DIR:-}" ]; then
  build=$(cd "$SCACHE_BUILD_DIR" && pwd)
else
  ./scripts/install-deps.sh
  if [ ! -f build/build.ninja ]; then
    meson setup build >/dev/null
  fi
  ninja -C build example_server/users_server >/dev/null
  build=$root/build
fi
server=$build/example_server/users_server
# Debian's AWS CLI v2 (scripts/install-deps.sh installs it): a v1 earlier on PATH (pyenv)
# would not know --cli-binary-format.
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "demo: $AWS is missing: run scripts/install-deps.sh" >&2; exit 1; }

. scripts/demo-lib.sh
demo_init scache-demo-ddb

dport=$(free_port); kport=$(free_port); aport=$(free_port); bport=$(free_port)
DDB=http://127.0.0.1:$dport KIN=http://127.0.0.1:$kport
TABLE=users STREAM=users-changes
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_PAGER=
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
ddb() { "$AWS" dynamodb --endpoint-url "$DDB" --output json "$@"; }
kinesis() { "$AWS" kinesis --endpoint-url "$KIN" --output json "$@"; }

# change_record EVENT ID NEW_IMAGE OLD_IMAGE: what Kinesis Data Streams for DynamoDB
# writes for a change of item ID (images: DynamoDB JSON, or "" when absent), put on the
# stream as AWS would.
change_record() {
  local event=$1 id=$2 new=$3 old=$4 rec
  rec=$(python3 - "$event" "$TABLE" "$id" "$new" "$old" <<'PY'
import json, sys, time, uuid
event, table, ident, new, old = sys.argv[1:]
d = {"ApproximateCreationDateTime": int(time.time() * 1000), "Keys": {"id": {"S": ident}}}
if new:
    d["NewImage"] = json.loads(new)
if old:
    d["OldImage"] = json.loads(old)
d["SizeBytes"] = len(json.dumps(d["Keys"])) + len(new) + len(old)
print(json.dumps({"awsRegion": "us-east-1", "eventID": str(uuid.uuid4()), "eventName": event,
                  "userIdentity": None, "recordFormat": "application/json", "tableName": table,
                  "dynamodb": d, "eventSource": "aws:dynamodb"}, separators=(",", ":")))
PY
)
  echo "[stand-in for AWS] DynamoDB would put this $event change record on the stream"
  echo "  itself; locally nothing does, so the demo puts it there with aws kinesis put-record:"
  echo "  $rec"
  kinesis put-record --stream-name "$STREAM" --partition-key "$TABLE/$id" \
    --cli-binary-format base64 --data "$(printf '%s' "$rec" | base64 -w0)" >/dev/null
}
# item ID: the item as DynamoDB JSON, or "" (a strongly consistent read, as DynamoDB's
# own images are exact)
item() {
  ddb get-item --table-name "$TABLE" --key "{\"id\":{\"S\":\"$1\"}}" --consistent-read |
    python3 -c 'import json, sys; t = sys.stdin.read().strip(); print(json.dumps(json.loads(t)["Item"]) if t and "Item" in json.loads(t) else "")'
}

step "dynalite (local DynamoDB) on :$dport and kinesalite (local Kinesis) on :$kport"
node -e "require(process.argv[1])({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0})
         .listen(+process.argv[2], '127.0.0.1')" "$root/.deps/node_modules/dynalite" "$dport" \
  >"$work/dynalite.stderr" 2>&1 &
pids+=($!)
node -e "require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0})
         .listen(+process.argv[2], '127.0.0.1')" "$root/.deps/node_modules/kinesalite" "$kport" \
  >"$work/kinesalite.stderr" 2>&1 &
pids+=($!)
wait_for dynalite curl -s "$DDB/"
wait_for kinesalite curl -s "$KIN/"
ddb create-table --table-name "$TABLE" --key-schema AttributeName=id,KeyType=HASH \
  --attribute-definitions AttributeName=id,AttributeType=S \
  --provisioned-throughput ReadCapacityUnits=5,WriteCapacityUnits=5 >/dev/null
kinesis create-stream --stream-name "$STREAM" --shard-count 1
wait_for "stream $STREAM" sh -c "'$AWS' kinesis --endpoint-url '$KIN' describe-stream-summary \
  --stream-name '$STREAM' --output text --query StreamDescriptionSummary.StreamStatus | grep -qx ACTIVE"
echo "table '$TABLE' (key id, a string) and stream '$STREAM' (1 shard) created"
echo "(on AWS: aws dynamodb enable-kinesis-streaming-destination --table-name $TABLE --stream-arn <$STREAM's ARN>)"

step "user 1 written to DynamoDB before the servers start (they read the stream from its end)"
ada='{"id":{"S":"1"},"name":{"S":"Ada"},"email":{"S":"ada@example.com"}}'
ddb put-item --table-name "$TABLE" --item "$ada"
change_record INSERT 1 "$ada" ""

step "two users servers in DynamoDB mode: A (refresh mode) on :$aport, B (invalidate mode) on :$bport"
for s in a b; do
  port=$aport mode=refresh
  [ $s = b ] && port=$bport mode=invalidate
  echo "\$ users_server --port $port --stream $STREAM --endpoint $KIN --dynamodb-table $TABLE --dynamodb-endpoint $DDB --dynamodb-mode $mode"
  "$server" --port "$port" --stream "$STREAM" --endpoint "$KIN" --dynamodb-table "$TABLE" \
    --dynamodb-endpoint "$DDB" --dynamodb-mode "$mode" --log "$work/$s.log" \
    2>"$work/$s.stderr" &
  pids+=($!)
  wait_for "server ${s^^}" curl -sf "http://127.0.0.1:$port/healthz"
done
A=http://127.0.0.1:$aport B=http://127.0.0.1:$bport

step "GET on A and on B: a MISS (GetItem on dynalite), then a HIT (the cache)"
show GET "$A/users/1"
show GET "$A/users/1"
show GET "$B/users/1"
show GET "$B/users/1"

step "a change made outside the servers: PutItem on dynalite (a batch job, say)"
old=$(item 1)
ada2='{"id":{"S":"1"},"name":{"S":"Ada Lovelace"},"email":{"S":"ada@example.com"}}'
echo "\$ aws dynamodb put-item --table-name $TABLE --item '$ada2'"
ddb put-item --table-name "$TABLE" --item "$ada2"
echo "no change record yet: both servers still serve their copies"
show GET "$A/users/1"
show GET "$B/users/1"
new=$(item 1)
change_record MODIFY 1 "$new" "$old"

step "GET on A (refresh mode): a HIT, already the new value, stored from the record's NewImage"
show GET "$A/users/1"
step "GET on B (invalidate mode): the record removed B's copy: a MISS with the new value, then a HIT"
show GET "$B/users/1"
show GET "$B/users/1"

step "PUT on B: B writes with PutItem and publishes nothing; the table's change record tells A"
old=$(item 1)
show PUT "$B/users/1" '{"name":"Countess of Lovelace","email":"ada@example.com"}'
new=$(item 1)
change_record MODIFY 1 "$new" "$old"
show GET "$A/users/1"

step "DELETE on A: DeleteItem; the REMOVE record (no NewImage) removes the user everywhere"
old=$(item 1)
show DELETE "$A/users/1"
change_record REMOVE 1 "" "$old"
show GET "$B/users/1"
show GET "$A/users/1"

step "what the stream did (GET /metrics)"
for s in A B; do
  url=$A; [ $s = B ] && url=$B
  echo "$s: $(curl -s "$url/metrics" | grep -E '^scache_(stream_keys|refreshed)_total ' | tr '\n' ' ')"
done

echo
echo "demo: done (every process stopped, $work removed)"
