#!/usr/bin/env bash
# make demo: one historical day from the bundled archive sample, then the next day live
# against a local fake Reddit API serving the same sample. Called by the Makefile (env set).
set -euo pipefail
PORT=${1:-8765}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
SAMPLE=$ROOT/tests/data/sample_archive.ndjson.zst
BASE=http://127.0.0.1:$PORT
LOG=$AIRFLOW_HOME/demo
mkdir -p "$LOG"

# Demo credentials: only the fake API accepts them.
export SMPP_REDDIT__CLIENT_ID=smpp-demo SMPP_REDDIT__CLIENT_SECRET=smpp-demo-secret
export SMPP_REDDIT__OAUTH_URL=$BASE SMPP_REDDIT__REDDIT_URL=$BASE SMPP_REDDIT__SHORT_URL=$BASE
export SMPP_IMAGES__ALLOWED_PRIVATE_HOSTS='["127.0.0.1"]'
export SMPP_IMAGES__OFFLINE=true  # the demo contacts nothing but 127.0.0.1, not even DNS
# every subreddit of the sample's live day
export SMPP_SUBREDDITS=$("$PY" -c "import json, sys; from smpp.devtools.fake_reddit import load_posts; print(json.dumps(sorted({p['subreddit'] for p in load_posts(sys.argv[1])})))" "$SAMPLE")

# a generous budget: prawcore spreads requests over the window, which is slow for a demo
"$PY" -m smpp.devtools.fake_reddit --sample "$SAMPLE" --port "$PORT" --rate-limit 100000 \
  --client-id "$SMPP_REDDIT__CLIENT_ID" --client-secret "$SMPP_REDDIT__CLIENT_SECRET" >"$LOG/fake_reddit.log" 2>&1 &
FAKE_PID=$!
trap 'kill $FAKE_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "$BASE/" && break; sleep 0.2; done

run_day() {  # $1 = interval end (airflow dags test treats the date as the interval end), $2 = conf
  echo ">> airflow dags test smpp_pipeline $1 (interval ends $1, conf $2)"
  start=$(date +%s)
  if ! "$ROOT/.venv/bin/airflow" dags test smpp_pipeline "$1" -c "$2" >"$LOG/run-$1.log" 2>&1; then
    tail -40 "$LOG/run-$1.log"; echo "!! run failed; full log: $LOG/run-$1.log"; exit 1
  fi
  grep -E "Marking run .* (successful|failed)|state=failed" "$LOG/run-$1.log" | tail -2 || true
  # dags test records the logical date as the run's start (apache/airflow#66127): fix the runs list
  "$PY" "$ROOT/scripts/dags_test_dates.py" smpp_pipeline >>"$LOG/run-$1.log" 2>&1 \
    || echo "!! could not correct the runs' start dates (see $LOG/run-$1.log)"
  echo "   done in $(( $(date +%s) - start ))s (log: $LOG/run-$1.log)"
}

run_day 2013-07-31 "{\"source\": \"archive\", \"archive_path\": \"$SAMPLE\"}"
run_day 2013-08-01 '{"source": "reddit"}'
echo
"$PY" -m smpp summary --day 2013-07-31
echo
UI="http://${UI_HOST:-127.0.0.1}:${UI_PORT:-8080}"
echo ">> to look at it: make up (user admin, password printed on start), then open"
"$ROOT/.venv/bin/airflow" dags list-runs smpp_pipeline --output json 2>/dev/null | "$PY" -c '
import json, sys, urllib.parse
ui = sys.argv[1]
# the CLI may log warnings to stdout before its JSON: the JSON is the last line starting with [
lines = [line for line in sys.stdin.read().splitlines() if line.startswith("[")]
for run in sorted(json.loads(lines[-1]), key=lambda r: r["logical_date"]):
    rid = urllib.parse.quote(run["run_id"], safe="")
    day, state = run["logical_date"][:10], run["state"]
    print(f"   {day} ({state}): {ui}/dags/smpp_pipeline/runs/{rid}/plugin/smpp-metrics")
print(f"   every model version: {ui}/plugin/smpp-models")
' "$UI" || echo "   $UI (Dags -> smpp_pipeline -> a run -> Metrics)"
