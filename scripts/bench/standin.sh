# Sourced by the benchmark scripts (bash): a work directory removed at exit, and one AWS stand-in
# for the run on a free port, ended with the script.
#
#   bench_workdir PREFIX          WORK (removed at exit unless KEEP_WORK is set), RESULTS (empty),
#                                 LOAD_START; installs the EXIT trap that also stops the stand-in
#   bench_standin NAME AKID       starts the stand-in (ROOT, PY), waits until it answers, exports
#                                 the AWS environment for it with access key AKID, creates an ACTIVE
#                                 CA hierarchy named NAME: ENDPOINT, CA_ARN
#   switches JSON                 POST /_standin/config

STANDIN_PID=""
bench_cleanup() {
  if [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null; then
    # a stand-in busy deep-copying tables can ignore SIGTERM for a while
    for _ in $(seq 50); do kill -0 "$STANDIN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$STANDIN_PID" 2>/dev/null || true
  fi
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  trap bench_cleanup EXIT
  RESULTS=$WORK/results.jsonl
  : > "$RESULTS"
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
}

bench_standin() {
  PYTHONPATH=$ROOT/standin "$PY" -m hsm_demo_standin --host 127.0.0.1 --port 0 --parent-pid $$ --quiet \
    > "$WORK/standin.out" 2>"$WORK/standin.err" &
  STANDIN_PID=$!
  for _ in $(seq 300); do   # bounded: 30 s
    grep -q "listening on " "$WORK/standin.out" 2>/dev/null && break
    kill -0 $STANDIN_PID 2>/dev/null || { echo "error: stand-in exited: $(tail -1 "$WORK/standin.err")" >&2; exit 1; }
    sleep 0.1
  done
  ENDPOINT=$(sed -n 's/.*listening on //p' "$WORK/standin.out" | head -1)
  [ -n "$ENDPOINT" ] || { echo "error: stand-in did not start within 30 s" >&2; exit 1; }
  export AWS_ENDPOINT_URL=$ENDPOINT AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=$2 AWS_SECRET_ACCESS_KEY=bench
  unset AWS_PROFILE
  "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1]+"/moto-api/", timeout=10)' "$ENDPOINT"
  CA_ARN=$(PYTHONPATH=$ROOT/standin "$PY" -m hsm_demo_standin.testing hierarchy --endpoint "$ENDPOINT" --name "$1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuing_arn"])')
}

switches() { # JSON body
  "$PY" - "$ENDPOINT" "$1" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/_standin/config", data=sys.argv[2].encode(), method="POST")
urllib.request.urlopen(req, timeout=10).read()
PY
}
