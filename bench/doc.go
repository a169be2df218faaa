// Package bench is the side-by-side harness behind `halb bench`.
//
// It starts two HTTP/1.1 backends on 127.0.0.1 (nginx from Debian's package when present,
// else a built-in fasthttp server), then one proxy at a time (halb, HAProxy, nginx as reverse
// proxy) with equal settings, drives the same closed-loop load at each with its own load
// generator (or wrk, with --loadgen wrk), and prints one Markdown table with req/s, latency
// percentiles, errors, the proxy's RSS and CPU time, and ratios to HAProxy and to "direct"
// (no proxy). With --idle N it measures the proxy's resident memory per idle keep-alive
// connection instead.
//
// Everything listens and connects on 127.0.0.1 only. Every process the harness starts runs in
// its own process group and is stopped (TERM, then KILL) when the harness returns, including
// after Ctrl-C.
//
// The package imports nothing of the project: halb is driven as an external command
// (`halb run -f GENERATED.conf`).
package bench
