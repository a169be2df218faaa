package daemon

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"halb/config"
	"halb/health"
	"halb/vrrp"
)

// keepalived's alert mails (smtp_alert): one mail to every notification_email address, through
// smtp_server, on a VRRP instance's state change and on a real server going up or down, with
// keepalived's subjects and bodies. Mails are queued and sent by one goroutine, so a slow or
// dead mail server never holds the VRRP or health-check paths; when the queue is full the mail
// is dropped and logged.

const alertQueue = 64

// alertMail is one mail to send.
type alertMail struct {
	subject, body string
}

// alerter sends queued mails with the settings of the config current at sending time.
type alerter struct {
	log   *zap.Logger
	cfg   func() *config.Config
	queue chan alertMail
	// sent is called after each attempt (tests); nil: none.
	sent func(alertMail, error)
}

func newAlerter(log *zap.Logger, cfg func() *config.Config) *alerter {
	return &alerter{log: log, cfg: cfg, queue: make(chan alertMail, alertQueue)}
}

// run sends queued mails until ctx is done.
func (a *alerter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.queue:
			err := sendAlert(ctx, a.cfg(), m, time.Now())
			if err != nil {
				a.log.Warn("alert mail not sent", zap.String("subject", m.subject), zap.Error(err))
			} else {
				a.log.Debug("alert mail sent", zap.String("subject", m.subject))
			}
			if a.sent != nil {
				a.sent(m, err)
			}
		}
	}
}

func (a *alerter) enqueue(m alertMail) {
	select {
	case a.queue <- m:
	default:
		a.log.Warn("alert mail dropped: queue full (is smtp_server answering?)", zap.String("subject", m.subject))
	}
}

// routerID is keepalived's router_id (lvs_id), else the host name.
func routerID(cfg *config.Config) string {
	switch {
	case cfg.Global.RouterID != "":
		return cfg.Global.RouterID
	case cfg.Global.LVSID != "":
		return cfg.Global.LVSID
	}
	h, _ := os.Hostname()
	return h
}

// vrrpAlert is keepalived's mail for an instance entering state to; ok is false for states that
// send none.
func vrrpAlert(cfg *config.Config, instance string, to vrrp.State) (alertMail, bool) {
	var state, body string
	switch to {
	case vrrp.StateMaster:
		state, body = "MASTER", "=> VRRP Instance is now owning VRRP VIPs <="
	case vrrp.StateBackup:
		state, body = "BACKUP", "=> VRRP Instance is nolonger owning VRRP VIPs <="
	case vrrp.StateFault:
		state, body = "FAULT", "=> VRRP Instance is nolonger owning VRRP VIPs <="
	default:
		return alertMail{}, false
	}
	return alertMail{subject: fmt.Sprintf("[%s] VRRP Instance %s - Entering %s state", routerID(cfg), instance, state), body: body}, true
}

// checkerAlert is keepalived's mail for a real server going up or down.
func checkerAlert(cfg *config.Config, tr health.Transition) alertMail {
	state, body := "UP", "=> CHECK succeed on service <="
	if !tr.Up {
		state, body = "DOWN", "=> CHECK failed on service <="
		if tr.Reason != "" {
			body = "=> CHECK failed on service: " + tr.Reason + " <="
		}
	}
	return alertMail{subject: fmt.Sprintf("[%s] Realserver [%s]:%d of virtual server %s - %s", routerID(cfg), tr.Addr.Addr(), tr.Addr.Port(), tr.Service, state),
		body: body}
}

// alertVRRP queues the mail for an instance's state change when the instance asks for it.
func (d *Daemon) alertVRRP(instance string, to vrrp.State) {
	cfg := d.gen.Load().cfg
	for _, in := range cfg.Instances {
		if in.Name == instance && cfg.AlertVRRP(in) {
			if m, ok := vrrpAlert(cfg, instance, to); ok {
				d.alerts.enqueue(m)
			}
		}
	}
}

// alertChecker queues the mail for a real server's up or down when its server asks for it.
func (d *Daemon) alertChecker(tr health.Transition) {
	if tr.Kind != health.KindUp && tr.Kind != health.KindDown {
		return
	}
	cfg := d.gen.Load().cfg
	vs := findVS(cfg, tr.Service)
	if vs == nil {
		return
	}
	for _, rs := range vs.RealServers {
		if rs.Addr == tr.Addr && cfg.AlertChecker(vs, rs) {
			d.alerts.enqueue(checkerAlert(cfg, tr))
			return
		}
	}
}

// sendAlert sends m to every notification_email address through smtp_server, within
// smtp_connect_timeout for the connection and the same again for the dialog.
func sendAlert(ctx context.Context, cfg *config.Config, m alertMail, now time.Time) error {
	g := cfg.Global
	if g.SMTPServer == "" || len(g.NotificationEmail) == 0 {
		return fmt.Errorf("daemon: alert: no smtp_server or notification_email")
	}
	timeout := g.SMTPConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	port := g.SMTPPort
	if port == 0 {
		port = 25
	}
	addr := net.JoinHostPort(g.SMTPServer, strconv.Itoa(port))
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("daemon: alert: connect %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, err := smtp.NewClient(conn, g.SMTPServer)
	if err != nil {
		return fmt.Errorf("daemon: alert: %s: greeting: %w", addr, err)
	}
	defer c.Close()
	helo := g.SMTPHeloName
	if helo == "" {
		helo, _ = os.Hostname()
	}
	from := g.NotificationEmailFrom
	if from == "" {
		h, _ := os.Hostname()
		from = "keepalived@" + h // keepalived's default
	}
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("daemon: alert: %s: HELO: %w", addr, err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("daemon: alert: %s: MAIL FROM: %w", addr, err)
	}
	for _, to := range g.NotificationEmail {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("daemon: alert: %s: RCPT TO %s: %w", addr, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("daemon: alert: %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(alertMessage(from, g.NotificationEmail, m, now)); err != nil {
		return fmt.Errorf("daemon: alert: %s: write: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("daemon: alert: %s: end of DATA: %w", addr, err)
	}
	return c.Quit()
}

// alertMessage is the mail as keepalived writes it: From, Subject, X-Mailer, To, Date, body.
func alertMessage(from string, to []string, m alertMail, now time.Time) []byte {
	clean := func(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", clean(from))
	fmt.Fprintf(&b, "Subject: %s\r\n", clean(m.subject))
	b.WriteString("X-Mailer: halb (keepalived-compatible)\r\n")
	fmt.Fprintf(&b, "To: %s\r\n", clean(strings.Join(to, ", ")))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	b.WriteString(clean(m.body))
	b.WriteString("\r\n")
	return []byte(b.String())
}
