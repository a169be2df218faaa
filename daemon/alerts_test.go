package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"halb/health"
	"halb/vrrp"
)

// smtpMail is one mail the sink took.
type smtpMail struct {
	helo, from string
	to         []string
	data       string
}

// smtpSink is a small SMTP server on loopback: it takes mails and hands them to the channel.
func smtpSink(t *testing.T) (port int, mails <-chan smtpMail) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan smtpMail, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				w := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
				w("220 sink ESMTP")
				var m smtpMail
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					l = strings.TrimRight(l, "\r\n")
					up := strings.ToUpper(l)
					switch {
					case strings.HasPrefix(up, "EHLO "), strings.HasPrefix(up, "HELO "):
						m.helo = l[5:]
						w("250 sink")
					case strings.HasPrefix(up, "MAIL FROM:"):
						m.from = strings.Trim(l[10:], "<>")
						w("250 ok")
					case strings.HasPrefix(up, "RCPT TO:"):
						m.to = append(m.to, strings.Trim(l[8:], "<>"))
						w("250 ok")
					case up == "DATA":
						w("354 go on")
						var b strings.Builder
						for {
							dl, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if dl == ".\r\n" {
								break
							}
							b.WriteString(dl)
						}
						m.data = b.String()
						ch <- m
						w("250 queued")
					case up == "QUIT":
						w("221 bye")
						return
					default:
						w("502 no")
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port, ch
}

func waitMail(t *testing.T, mails <-chan smtpMail) smtpMail {
	t.Helper()
	select {
	case m := <-mails:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail")
	}
	return smtpMail{}
}

// TestAlertMails: smtp_alert sends keepalived's mails, through the configured server, on a VRRP
// state change and on a real server going down and up; servers without smtp_alert send none.
func TestAlertMails(t *testing.T) {
	port, mails := smtpSink(t)
	src := fmt.Sprintf(`global_defs {
    router_id LB1
    notification_email {
        ops@example.com
        noc@example.com
    }
    notification_email_from halb@example.com
    smtp_server 127.0.0.1 %d
    smtp_connect_timeout 5
    smtp_helo_name lb1.example.com
}
vrrp_instance VI_1 {
    interface lo
    virtual_router_id 51
    smtp_alert
    virtual_ipaddress {
        198.18.0.10/32
    }
}
vrrp_instance VI_2 {
    interface lo
    virtual_router_id 52
    virtual_ipaddress {
        198.18.0.11/32
    }
}
virtual_server 198.18.0.10 80 {
    real_server 198.18.0.21 80 {
        smtp_alert
    }
    real_server 198.18.0.22 80 {
    }
}
`, port)
	d, err := New(Options{ConfigPath: "alerts.conf", Source: []byte(src), Log: testLogger(t), AdminSocket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.alerts.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	d.onVRRPTransition("VI_2", vrrp.StateMaster) // no smtp_alert: no mail
	d.onVRRPTransition("VI_1", vrrp.StateMaster)
	m := waitMail(t, mails)
	if m.helo != "lb1.example.com" || m.from != "halb@example.com" || strings.Join(m.to, ",") != "ops@example.com,noc@example.com" {
		t.Errorf("envelope: %+v", m)
	}
	for _, want := range []string{"Subject: [LB1] VRRP Instance VI_1 - Entering MASTER state\r\n", "From: halb@example.com\r\n",
		"To: ops@example.com, noc@example.com\r\n", "\r\n\r\n=> VRRP Instance is now owning VRRP VIPs <=\r\n"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("VRRP mail lacks %q:\n%s", want, m.data)
		}
	}

	svc := "198.18.0.10:80"
	silent := netip.MustParseAddrPort("198.18.0.22:80")
	d.onHealth(health.Transition{ID: targetID(svc, silent.String()), Service: svc, Addr: silent, Kind: health.KindDown, Reason: "connection refused"})
	rs := netip.MustParseAddrPort("198.18.0.21:80")
	d.onHealth(health.Transition{ID: targetID(svc, rs.String()), Service: svc, Addr: rs, Kind: health.KindDown, Reason: "connection refused"})
	m = waitMail(t, mails)
	if !strings.Contains(m.data, "Subject: [LB1] Realserver [198.18.0.21]:80 of virtual server 198.18.0.10:80 - DOWN\r\n") ||
		!strings.Contains(m.data, "connection refused") {
		t.Errorf("DOWN mail:\n%s", m.data)
	}
	d.onHealth(health.Transition{ID: targetID(svc, rs.String()), Service: svc, Addr: rs, Kind: health.KindUp, Up: true})
	m = waitMail(t, mails)
	if !strings.Contains(m.data, "Realserver [198.18.0.21]:80 of virtual server 198.18.0.10:80 - UP\r\n") {
		t.Errorf("UP mail:\n%s", m.data)
	}
	select {
	case m := <-mails:
		t.Errorf("a mail for a server or instance without smtp_alert:\n%s", m.data)
	default:
	}
}

// TestAlertMailServerDown: an unreachable smtp_server costs a logged error, not a hang.
func TestAlertMailServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := mustParse(t, fmt.Sprintf("global_defs {\n notification_email {\n  a@example.com\n }\n smtp_server 127.0.0.1 %d\n smtp_connect_timeout 2\n}\n", port))
	start := time.Now()
	err = sendAlert(context.Background(), cfg, alertMail{subject: "s", body: "b"}, start)
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}
