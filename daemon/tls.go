package daemon

import (
	"context"
	"sync"

	"halb/admin"
	"halb/proxy"
)

// ticketRotation runs the session-ticket key rotation of every certificate store in use
// (proxy.CertStore.Run), starting the new ones after a reload and stopping those no service
// uses any more.
type ticketRotation struct {
	mu   sync.Mutex
	runs map[*proxy.CertStore]context.CancelFunc
}

// sync makes the running set the stores of g.
func (t *ticketRotation) sync(g *generation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs == nil {
		t.runs = map[*proxy.CertStore]context.CancelFunc{}
	}
	live := map[*proxy.CertStore]bool{}
	for _, svc := range g.services {
		if svc.l7 == nil || svc.l7.TLS == nil {
			continue
		}
		s := svc.l7.TLS
		live[s] = true
		if _, ok := t.runs[s]; !ok {
			ctx, cancel := context.WithCancel(context.Background())
			t.runs[s] = cancel
			go s.Run(ctx)
		}
	}
	for s, cancel := range t.runs {
		if !live[s] {
			cancel()
			delete(t.runs, s)
		}
	}
}

// stop ends every rotation.
func (t *ticketRotation) stop() { t.sync(&generation{}) }

// Certificates implements admin.CertSource: every certificate a service terminates TLS with.
func (s source) Certificates() []admin.Certificate {
	var out []admin.Certificate
	g := s.d.gen.Load()
	if g == nil {
		return nil
	}
	for _, svc := range g.services {
		if svc.l7 == nil || svc.l7.TLS == nil {
			continue
		}
		for _, c := range svc.l7.TLS.Certificates() {
			out = append(out, admin.Certificate{Service: svc.name, File: c.File, Names: c.Names, NotAfter: c.NotAfter, Stapled: c.Stapled})
		}
	}
	return out
}
