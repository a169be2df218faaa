#!/usr/bin/env bash
# TLS-terminated HTTP/1.1 and HTTP/2 through HAProxy (bind ... ssl crt, nbthread 1) and halb
# (tls_certificate, GOMAXPROCS=1), both pinned to CPU 0, the same ECDSA P-256 certificate and the
# same nginx backend; h2load (Debian's nghttp2-client) and nginx on CPU 1.
#
#   bench/tls-vs-haproxy.sh [RUNS] [DURATION]          (defaults 3 5)
#
# Keep-alive rows: h2load -c C -m 10 -D DURATION --warm-up-time 1 [--h1]; the handshake row:
# h2load --h1 -c 64 -n 2560 -H 'Connection: close' (a new TLS connection per request). Prints
# one line per run, then per row the median req/s of each and the median of the per-run ratios,
# and the same for req/s per proxy core (req/s over the CPU the proxy used during the h2load run,
# from /proc/PID/stat: what the proxy does with its core, whichever side limits the rate).
# HAProxy sets the three forwarding fields halb always sets (X-Forwarded-For, X-Forwarded-Proto,
# Forwarded), so both send nginx the same request (since 2026-12-07 16:50 UTC).
# The HTTP/2 rows also measure bench/h2floor: x/net/http2's server alone (with halb's limits,
# pinned the same way) answering from memory with no backend, the ceiling of any proxy built on
# that server (halb used it until 2026-12-07 and now has its own, on x/net/http2's Framer). Starts everything itself on 127.0.0.1 ports 19101 (nginx), 19443 (HAProxy), 19444
# (halb), 19445 (h2floor), and stops exactly what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} dur=${2:-5}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$tmp/halb" ./cmd/halb
CGO_ENABLED=0 go build -o "$tmp/h2floor" ./bench/h2floor
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench.test \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/both.pem"
head -c 128 /dev/zero | tr '\0' x >"$tmp/128"
head -c 65536 /dev/zero | tr '\0' x >"$tmp/64k"
chmod 755 "$tmp" && chmod 644 "$tmp/128" "$tmp/64k" # nginx's workers run as nobody
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:19101; root $tmp; }
}
CONF
cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse safe
frontend f
  bind 127.0.0.1:19443 ssl crt $tmp/both.pem alpn h2,http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header Forwarded for=%[src];proto=https
  default_backend b
backend b
  server s1 127.0.0.1:19101
CONF
cat >"$tmp/halb.conf" <<CONF
global_defs {
    log_level warn
}
virtual_server 127.0.0.1 19444 {
    proxy_mode http
    tls_certificate $tmp/both.pem
    alpn h2 http/1.1
    real_server 127.0.0.1 19101 {
    }
}
CONF
taskset -c 1 nginx -c "$tmp/nginx.conf" & pids+=($!)
taskset -c 0 haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$tmp/halb" run -f "$tmp/halb.conf" >"$tmp/halb.log" 2>&1 & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$tmp/h2floor" -cert "$tmp/both.pem" >"$tmp/h2floor.log" 2>&1 & pids+=($!)
for port in 19101 19443 19444 19445; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
hz=$(getconf CLK_TCK)
one() { # proto size conns kind port pid
	local args=(-c "$3" -m 10 -D "$dur" --warm-up-time 1)
	[ "$4" = new ] && args=(-c "$3" -n $(($3 * 40)) -H "Connection: close")
	[ "$1" = h1 ] && args+=(--h1)
	local a t0 out b t1
	a=$(ticks "$6") t0=$(date +%s.%N)
	# req/s, and the requests that did not get a 2xx (h2load's "failed" and "errored")
	out=$(taskset -c 1 h2load "${args[@]}" "https://127.0.0.1:$5/$2" 2>&1 |
		awk '/^finished in/ {r=$4} /^requests:/ {f=$10 + $12} END {print r, f}')
	b=$(ticks "$6") t1=$(date +%s.%N)
	# and req/s per proxy core: req/s over the cores the proxy used during
	# the whole h2load run (its warm-up included, the same for every proxy)
	echo "$out" | awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
		'{ c = (b - a) / hz / (t1 - t0); printf "%s %s %.0f\n", $1, $2, (c > 0) ? $1 / c : 0 }'
}
rows=()
for proto in h1 h2; do for size in 128 64k; do for c in 64 256; do rows+=("$proto $size $c keep"); done; done; done
rows+=("h1 128 64 new")
out=$tmp/out
for run in $(seq "$runs"); do
	for row in "${rows[@]}"; do
		set -- $row
		read -r hp hpf hpc < <(one "$1" "$2" "$3" "$4" 19443 "${pids[1]}")
		read -r hb hbf hbc < <(one "$1" "$2" "$3" "$4" 19444 "${pids[2]}")
		fl=0
		[ "$1" = h2 ] && read -r fl _ _ < <(one "$1" "$2" "$3" "$4" 19445 "${pids[3]}")
		echo "run $run: $row haproxy=$hp halb=$hb ratio=$(awk "BEGIN{printf \"%.2f\", $hb/$hp}") failed=$hbf/$hpf floor=$fl haproxy_core=$hpc halb_core=$hbc core_ratio=$(awk "BEGIN{printf \"%.2f\", ($hpc > 0) ? $hbc/$hpc : 0}")" | tee -a "$out"
	done
done
echo
echo "| protocol | body | conns | kind | HAProxy req/s | halb req/s | ratios | median ratio | HAProxy req/s per proxy core | halb req/s per proxy core | per-core ratios | median per-core ratio | failed (halb/HAProxy) | x/net/http2 alone req/s (/ HAProxy) |"
echo "|---|---|---:|---|---:|---:|---|---:|---:|---:|---|---:|---|---:|"
for row in "${rows[@]}"; do
	grep -F ": $row " "$out" | awk -v row="$row" '
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
	{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	  n++; hp[n] = v["haproxy"]; hb[n] = v["halb"]; r[n] = v["ratio"]; fl[n] = v["floor"]; fr[n] = (v["haproxy"] > 0) ? v["floor"] / v["haproxy"] : 0; rs = rs (n > 1 ? ", " : "") v["ratio"]; f = f (n > 1 ? " " : "") v["failed"]
	  hc[n] = v["haproxy_core"]; bc[n] = v["halb_core"]; cr[n] = v["core_ratio"]; cs = cs (n > 1 ? ", " : "") v["core_ratio"] }
	END { split(row, w, " "); p = (w[1] == "h1") ? "HTTP/1.1" : "HTTP/2"; k = (w[4] == "new") ? "new TLS handshake per request" : "keep-alive"
	  fc = (w[1] == "h2") ? sprintf("%.0f (%.2f)", med(fl, n), med(fr, n)) : "-"
	  printf "| %s | %s | %s | %s | %.0f | %.0f | %s | %.2f | %.0f | %.0f | %s | %.2f | %s | %s |\n", p, w[2], w[3], k, med(hp, n), med(hb, n), rs, med(r, n), med(hc, n), med(bc, n), cs, med(cr, n), f, fc }'
done
