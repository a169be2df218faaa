package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// netReason turns a network error into a short reason without addresses.
// what names the phase ("connect", "read response", ...); timeout is the
// attempt's limit, quoted in timeout reasons.
func netReason(what string, err error, timeout time.Duration) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		if what == "connect" {
			return "connection reset"
		}
		return what + ": connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return what + ": address not available (bindto?)"
	case errors.Is(err, syscall.EPIPE):
		return what + ": broken pipe"
	case isTimeout(err):
		return fmt.Sprintf("timeout after %s (%s)", timeout, what)
	case errors.Is(err, context.Canceled):
		return what + ": canceled"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return what + ": connection closed mid-message"
	case errors.Is(err, io.EOF):
		return what + ": connection closed"
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		return what + ": " + ne.Err.Error()
	}
	return what + ": " + err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// tlsReason names a TLS handshake failure: certificate expired, name
// mismatch, unknown authority, or the handshake failure itself.
func tlsReason(err error, timeout time.Duration) string {
	var (
		inv   x509.CertificateInvalidError
		host  x509.HostnameError
		ua    x509.UnknownAuthorityError
		rec   tls.RecordHeaderError
		alert tls.AlertError
		verr  *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			return "TLS: certificate expired or not yet valid"
		case x509.NameMismatch:
			return "TLS: name mismatch"
		}
		return "TLS: invalid certificate: " + inv.Error()
	case errors.As(err, &host):
		return fmt.Sprintf("TLS: name mismatch (certificate not valid for %q)", host.Host)
	case errors.As(err, &ua):
		return "TLS: unknown authority"
	case errors.As(err, &verr):
		return "TLS: certificate verification failed: " + verr.Err.Error()
	case errors.As(err, &rec):
		return "TLS: handshake failure: server did not answer with TLS"
	case errors.As(err, &alert):
		return "TLS: handshake failure: remote alert: " + alert.Error()
	case isTimeout(err):
		return fmt.Sprintf("TLS: handshake timeout after %s", timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "TLS: handshake failure: connection closed by server"
	}
	return "TLS: handshake failure: " + err.Error()
}

// deadlineFromContext gives conn ctx's deadline and makes ctx's cancellation end any I/O in
// progress at once; the returned func stops the latter (defer it).
func deadlineFromContext(ctx context.Context, conn interface{ SetDeadline(time.Time) error }) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}
