package main

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAdmin answers one request on a unix socket with reply and records the request line.
func fakeAdmin(t *testing.T, reply string) (string, chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "n.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
		c.Write([]byte(reply + "\n"))
	}()
	return sock, got
}

func TestLabVRRPColumn(t *testing.T) {
	sock, got := fakeAdmin(t, `{"ok":true,"data":[{"name":"VI_1","state":"master"},{"name":"VI_2","state":"backup"}]}`)
	if s := labVRRP(sock); s != "VI_1 master, VI_2 backup" {
		t.Fatalf("column %q", s)
	}
	if line := <-got; strings.TrimSpace(line) != "show vrrp" {
		t.Fatalf("request %q", line)
	}
	sock, _ = fakeAdmin(t, `{"ok":false,"error":"no"}`)
	if s := labVRRP(sock); s != "?" {
		t.Fatalf("refused: %q", s)
	}
	if s := labVRRP(filepath.Join(t.TempDir(), "none.sock")); s != "-" {
		t.Fatalf("no node: %q", s)
	}
}
