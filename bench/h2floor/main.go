// Command h2floor is the HTTP/2 floor that bench/tls-vs-haproxy.sh measures next to the proxies:
// golang.org/x/net/http2's server alone, with halb's HTTP/2 limits, answering GET /128 and GET /64k
// from memory over TLS, with no backend and no proxying. What it serves per second on one core
// bounds what any proxy built on that server can serve: the measure that led halb to its own
// HTTP/2 server on x/net/http2's Framer (docs/dataplane.md), which as a full proxy now serves more.
//
//	h2floor -listen 127.0.0.1:19445 -cert both.pem
package main

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"

	"golang.org/x/net/http2"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19445", "address")
	pem := flag.String("cert", "", "certificate chain and key in one PEM file")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*pem, *pem)
	if err != nil {
		log.Fatal(err)
	}
	bodies := map[string][]byte{"/128": bytes.Repeat([]byte("x"), 128), "/64k": bytes.Repeat([]byte("x"), 64<<10)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header()["Content-Type"] = nil
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	// halb's limits (proxy/l7_h2.go defaults).
	srv := &http2.Server{MaxConcurrentStreams: 100, MaxReadFrameSize: 16 << 10,
		MaxUploadBufferPerStream: 256 << 10, MaxUploadBufferPerConnection: 1 << 20}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("h2floor: listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			tc := tls.Server(c, cfg)
			if tc.Handshake() != nil {
				return
			}
			srv.ServeConn(tc, &http2.ServeConnOpts{Handler: h})
		}()
	}
}
