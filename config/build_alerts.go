package config

// alertKeywords adds global_defs' alert mail keywords (the daemon sends the mails: daemon/alerts.go).
func alertKeywords(t table[Global]) {
	t["smtp_helo_name"] = func(b *builder, g *Global, n *node) { b.str(n, &g.SMTPHeloName) }
	t["smtp_alert"] = func(b *builder, g *Global, n *node) { b.flag(n, &g.SMTPAlert) }
	t["smtp_alert_vrrp"] = func(b *builder, g *Global, n *node) {
		v := false
		b.flag(n, &v)
		g.SMTPAlertVRRP = &v
	}
	t["smtp_alert_checker"] = func(b *builder, g *Global, n *node) {
		v := false
		b.flag(n, &v)
		g.SMTPAlertChecker = &v
	}
}

// AlertVRRP reports whether instance in sends alert mails on its state changes.
func (c *Config) AlertVRRP(in *Instance) bool {
	if in.SMTPAlert {
		return true
	}
	for _, sg := range c.SyncGroups {
		if sg.SMTPAlert && sg.Name == in.SyncGroup {
			return true
		}
	}
	if v := c.Global.SMTPAlertVRRP; v != nil {
		return *v
	}
	return c.Global.SMTPAlert
}

// AlertChecker reports whether real server rs of vs sends alert mails when it goes up or down.
func (c *Config) AlertChecker(vs *VirtualServer, rs *RealServer) bool {
	if rs.SMTPAlert || vs.SMTPAlert {
		return true
	}
	if v := c.Global.SMTPAlertChecker; v != nil {
		return *v
	}
	return c.Global.SMTPAlert
}

// validateAlerts warns when alert mails are asked for but cannot be sent.
func (b *builder) validateAlerts() {
	g := &b.cfg.Global
	want := g.SMTPAlert || g.SMTPAlertVRRP != nil && *g.SMTPAlertVRRP || g.SMTPAlertChecker != nil && *g.SMTPAlertChecker
	for _, in := range b.cfg.Instances {
		want = want || in.SMTPAlert
	}
	for _, vs := range b.cfg.VirtualServers {
		want = want || vs.SMTPAlert
		for _, rs := range vs.RealServers {
			want = want || rs.SMTPAlert
		}
	}
	if !want {
		return
	}
	switch {
	case g.SMTPServer == "":
		b.d.warnf(g.Pos, "smtp_alert", "alert mails are asked for but global_defs has no smtp_server; none will be sent")
	case len(g.NotificationEmail) == 0:
		b.d.warnf(g.Pos, "smtp_alert", "alert mails are asked for but global_defs has no notification_email; none will be sent")
	}
}
