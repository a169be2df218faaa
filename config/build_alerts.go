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

// validateAlerts warns when alert mails are asked for but cannot be sent, at the first block
// that asks for them.
func (b *builder) validateAlerts() {
	g := &b.cfg.Global
	var at Pos
	want := func(on bool, p Pos) {
		if on && at.File == "" {
			at = p
		}
	}
	want(g.SMTPAlert || g.SMTPAlertVRRP != nil && *g.SMTPAlertVRRP || g.SMTPAlertChecker != nil && *g.SMTPAlertChecker, g.Pos)
	for _, in := range b.cfg.Instances {
		want(in.SMTPAlert, in.Pos)
	}
	for _, sg := range b.cfg.SyncGroups {
		want(sg.SMTPAlert, sg.Pos)
	}
	for _, vs := range b.cfg.VirtualServers {
		want(vs.SMTPAlert, vs.Pos)
		for _, rs := range vs.RealServers {
			want(rs.SMTPAlert, rs.Pos)
		}
	}
	if at.File == "" {
		return
	}
	switch {
	case g.SMTPServer == "":
		b.d.warnf(at, "smtp_alert", "alert mails are asked for but global_defs has no smtp_server; none will be sent")
	case len(g.NotificationEmail) == 0:
		b.d.warnf(at, "smtp_alert", "alert mails are asked for but global_defs has no notification_email; none will be sent")
	}
}
