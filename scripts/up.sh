#!/usr/bin/env bash
# make up: `airflow standalone` for this laptop only, and every process it starts stops with it.
# standalone binds 0.0.0.0 and leaves scheduler, api-server and triggerer running when it gets
# TERM, so it runs in a session of its own and the whole session is stopped here.
set -uo pipefail
AIRFLOW=${AIRFLOW:-airflow}
GRACE_S=${SMPP_UP_STOP_GRACE_S:-20}  # TERM first (clean shutdown), KILL what is left after this
export AIRFLOW__API__HOST=${UI_HOST:-127.0.0.1}
export AIRFLOW__API__PORT=${UI_PORT:-8080}

setsid "$AIRFLOW" standalone &
LEADER=$!  # setsid execs in place: its pid is the session id

# by session, not process group: a component that starts a group of its own is still caught
alive() { pgrep -s "$LEADER" >/dev/null; }
stop() {
  trap '' INT TERM
  alive || return 0
  echo ">> stopping airflow standalone (session $LEADER)"
  pkill -TERM -s "$LEADER"
  for _ in $(seq "$GRACE_S"); do alive || return 0; sleep 1; done
  echo ">> still running after ${GRACE_S}s: KILL"
  pkill -KILL -s "$LEADER"
}
trap 'stop; exit 130' INT TERM
echo ">> Airflow UI: http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT (UI_HOST=0.0.0.0 make up opens it to the network)"
wait "$LEADER"
status=$?
stop  # standalone exited by itself: its children must not outlive it
exit "$status"
