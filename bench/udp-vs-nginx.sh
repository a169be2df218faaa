#!/usr/bin/env bash
# DNS-style UDP load (many small datagrams, a new source port per query) through halb's userspace
# UDP proxy and through nginx's stream UDP proxy, on loopback, against the same two responders.
# Each side runs RUNS times; the median queries/s is reported with the ratio halb/nginx.
#
#   bench/udp-vs-nginx.sh [CLIENTS] [DURATION] [RUNS]        (defaults 64 10s 3)
#
# Needs nginx with the stream module: nginx-full, or nginx-light plus libnginx-mod-stream
# (NGINX_STREAM_MODULE= points at ngx_stream_module.so when it is not in /usr/lib/nginx/modules).
# Starts everything itself, on 127.0.0.1 ports 15353, 15354 (responders), 25353 (halb),
# 35353 (nginx), and stops exactly what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-64} duration=${2:-10s} runs=${3:-3}
mod=${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/halb" ./cmd/halb
go build -o "$tmp/udpload" ./bench/udpload
"$tmp/udpload" -serve 127.0.0.1:15353 & pids+=($!)
"$tmp/udpload" -serve 127.0.0.1:15354 & pids+=($!)
cat >"$tmp/halb.conf" <<CONF
virtual_server 127.0.0.1 25353 {
    protocol UDP
    lb_algo rr
    ops
    real_server 127.0.0.1 15353 {
    }
    real_server 127.0.0.1 15354 {
    }
}
CONF
"$tmp/halb" run -f "$tmp/halb.conf" --admin-socket - >"$tmp/halb.log" 2>&1 & pids+=($!)
load_module=""
if [ -e "$mod" ]; then load_module="load_module $mod;"; fi  # Debian builds stream as a module
cat >"$tmp/nginx.conf" <<CONF
$load_module
worker_processes $(nproc);
error_log $tmp/nginx-error.log warn;
pid $tmp/nginx.pid;
events { worker_connections 65536; }
stream {
    upstream dns { server 127.0.0.1:15353; server 127.0.0.1:15354; }
    server {
        listen 127.0.0.1:35353 udp reuseport;
        proxy_pass dns;
        proxy_responses 1;
        proxy_timeout 2s;
    }
}
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' & pids+=($!)
for port in 25353 35353; do   # wait until each proxy answers
  ok=
  for _ in $(seq 50); do
    if "$tmp/udpload" -target 127.0.0.1:$port -clients 1 -duration 100ms | grep -q 'lost 0'; then ok=1; break; fi
    sleep 0.2
  done
  if [ -z "$ok" ]; then echo "nothing answers on 127.0.0.1:$port" >&2; cat "$tmp"/*.log >&2; exit 1; fi
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A q
: >"$tmp/halb.runs"; : >"$tmp/nginx.runs"
for _ in $(seq "$runs"); do   # alternate, so that load from elsewhere hits both alike
  for name in halb:25353 nginx:35353; do
    out=$("$tmp/udpload" -target 127.0.0.1:${name#*:} -clients "$clients" -duration "$duration")
    echo "${name%%:*}: $out"
    echo "$out" | awk '{print $2}' >>"$tmp/${name%%:*}.runs"
  done
done
for n in halb nginx; do q[$n]=$(median <"$tmp/$n.runs"); done
echo "median qps: halb ${q[halb]}, nginx ${q[nginx]}; halb/nginx $(awk -v a="${q[halb]}" -v b="${q[nginx]}" 'BEGIN {printf "%.2f", a/b}')"
