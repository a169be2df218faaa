package demo

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestBackendsServeNamedPages(t *testing.T) {
	b, err := Start([]string{"127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, a := range b.Addrs {
		resp, err := http.Get("http://" + a + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "hello from web" + string(rune('1'+i))
		if !strings.HasPrefix(string(body), want) || resp.Header.Get("X-Backend") != want[len("hello from "):] {
			t.Fatalf("backend %d: body %q header %q", i, body, resp.Header.Get("X-Backend"))
		}
		resp, err = http.Get("http://" + a + "/big")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 64<<10 {
			t.Fatalf("/big = %d bytes", n)
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	if _, err := Start([]string{"192.0.2.1:0"}); err == nil || !strings.Contains(err.Error(), "loopback or lab addresses") {
		t.Fatalf("err = %v, want loopback-only refusal", err)
	}
}
