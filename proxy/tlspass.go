package proxy

import (
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"halb/proxy/balance"
)

// serveTLS peeks at the ClientHello, picks the pool by SNI and proxies the
// bytes untouched.
func (svc *service) serveTLS(se *session) {
	c := se.client
	c.SetReadDeadline(time.Now().Add(svc.to.HTTPRequest))
	buf := se.prefix
	var name string
	for {
		var err error
		name, err = ParseClientHello(buf)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrHelloIncomplete) || len(buf) > maxHelloSize+64<<10 {
			se.shard.errs.Add(1)
			c.Close()
			svc.logSession(se, nil, int64(len(buf)), 0, "bad TLS ClientHello", err)
			se.end()
			return
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(1024, len(buf)))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && n == 0 {
			if _, err := ParseClientHello(buf); err == nil {
				continue
			}
			se.shard.errs.Add(1)
			c.Close()
			svc.logSession(se, nil, int64(len(buf)), 0, "client closed or timed out before ClientHello", rerr)
			se.end()
			return
		}
	}
	c.SetReadDeadline(time.Time{})
	se.prefix = buf
	pool := svc.route(name)
	if pool == nil {
		se.shard.errs.Add(1)
		c.Close()
		svc.logSession(se, nil, int64(len(buf)), 0, "no route for SNI", errNoServer, zap.String("sni", name))
		se.end()
		return
	}
	svc.serveTCP(se, pool, name)
}

// route returns the pool for a server name: exact match, then one-label
// wildcard, then the default pool.
func (svc *service) route(name string) *balance.Pool {
	if name != "" {
		if p, ok := svc.exact[name]; ok {
			return p
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if p, ok := svc.wild[name[i+1:]]; ok {
				return p
			}
		}
	}
	return svc.spec.Pool
}

// sniField is the log field for a TLS server name, none for plain TCP.
func sniField(sni string) []zap.Field {
	if sni == "" {
		return nil
	}
	return []zap.Field{zap.String("sni", sni)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
