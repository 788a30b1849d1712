#!/bin/sh
# The last step of `make demo`: the server with its collector and continuous ingestion
# (`eventpipe serve --ingest`), an event sent with curl (the demo's write key) and read back
# with GET /v1/events (its read key) as soon as the ingester has committed it; then stop.
#   sh scripts/demo_live.sh [LAKE] [BIN]
set -eu
LAKE=${1:-lake}
BIN=${2:-.venv/bin}
key() { "$BIN/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["key"])' "$1"; }
WRITE_KEY=$(key "$LAKE/_demo_write_key.json")
READ_KEY=$(key "$LAKE/_demo_read_key.json")
rm -f "$LAKE/_demo_port"
"$BIN/eventpipe" serve --lake "$LAKE" --port 0 --port-file "$LAKE/_demo_port" --ingest \
  > "$LAKE/_demo_serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
until [ -s "$LAKE/_demo_port" ]; do
  kill -0 "$SERVER" 2>/dev/null || { cat "$LAKE/_demo_serve.log"; exit 1; }
  sleep 0.2
done
URL="http://127.0.0.1:$(cat "$LAKE/_demo_port")"
until curl -s -o /dev/null "$URL/docs"; do sleep 0.2; done
MESSAGE="demo-$(date +%s)"
EVENT="{\"type\": \"track\", \"event\": \"Demo Button Clicked\", \"anonymousId\": \"demo-visitor\", \"messageId\": \"$MESSAGE\", \"properties\": {\"button\": \"buy\"}}"
echo "POST $URL/v1/events  $EVENT"
curl -sS -X POST "$URL/v1/events" -H "Authorization: Bearer $WRITE_KEY" \
  -H 'Content-Type: application/json' -d "$EVENT"
echo
FILTER="{\"logical\": \"and\", \"conditions\": [{\"property\": \"messageId\", \"operator\": \"is\", \"values\": [\"$MESSAGE\"]}]}"
START=$(date +%s)
while :; do
  FOUND=$(curl -sS -G "$URL/v1/events" -H "Authorization: Bearer $READ_KEY" \
    --data-urlencode "filter=$FILTER" --data-urlencode 'properties=messageId,event,timestamp,receivedAt,kpid,context')
  case $FOUND in *"$MESSAGE"*) break ;; esac
  if [ $(($(date +%s) - START)) -gt 120 ]; then
    echo "not visible after 120 s; the server's log:"; tail -20 "$LAKE/_demo_serve.log"; exit 1
  fi
  sleep 0.3
done
echo "GET $URL/v1/events?filter=messageId is $MESSAGE  (visible ~$(($(date +%s) - START)) s after the POST was answered)"
echo "$FOUND"
