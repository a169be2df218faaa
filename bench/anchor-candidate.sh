#!/usr/bin/env bash
# halb as the candidate of ../shared/bench/anchor-bench.sh:
#   CANDIDATE_NAME=halb-http CANDIDATE_CMD="MODE=http $PWD/bench/anchor-candidate.sh" ../shared/bench/anchor-bench.sh
# anchor-bench sets BENCH_LISTEN, BENCH_BACKENDS and BENCH_THREADS; MODE is http (default) or tcp.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
halb=${HALB_BIN:-$root/bin/halb}
conf=$(mktemp /tmp/halb-anchor.XXXXXX)
trap 'rm -f "$conf"' EXIT
{
  echo "global_defs {"
  echo "    log_level warn"
  echo "}"
  echo "virtual_server ${BENCH_LISTEN%:*} ${BENCH_LISTEN##*:} {"
  echo "    proxy_mode ${MODE:-http}"
  echo "    lb_algo rr"
  IFS=, read -r -a bes <<<"$BENCH_BACKENDS"
  for be in "${bes[@]}"; do
    echo "    real_server ${be%:*} ${be##*:} {"
    echo "        weight 1"
    echo "    }"
  done
  echo "}"
} >"$conf"
GOMAXPROCS=${BENCH_THREADS:-$(nproc)} "$halb" run -f "$conf" --admin-socket - &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$conf"' EXIT TERM INT
wait $pid
