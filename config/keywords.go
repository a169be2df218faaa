package config

// unimplemented reports whether kw is a keepalived keyword that halb knows but does not implement
// (yet). Such a keyword gives a warning and is skipped, with its block if it opens one.
func unimplemented(kw string) bool {
	switch kw {
	// global_defs
	case "default_interface", "dynamic_interfaces", "checker_processes",
		"vrrp_no_swap", "checker_no_swap", "bfd_no_swap", "vrrp_priority", "checker_priority", "bfd_priority",
		"vrrp_rt_priority", "checker_rt_priority", "bfd_rt_priority", "vrrp_rlimit_rtime", "checker_rlimit_rtime",
		"bfd_rlimit_rtime", "vrrp_cpu_affinity", "checker_cpu_affinity", "bfd_cpu_affinity",
		"snmp_socket", "enable_snmp_vrrp", "enable_snmp_keepalived", "enable_snmp_checker", "enable_snmp_rfc",
		"enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_traps", "enable_dbus", "dbus_service_name",
		"lvs_sync_daemon_interface", "lvs_flush", "lvs_flush_on_stop",
		"vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority", "nftables_ifindex", "nftables_counters",
		"vrrp_min_garp", "vrrp_startup_delay",
		"vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
		"vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs", "process_monitor_rcv_bufs_force",
		"lvs_netlink_cmd_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs",
		"lvs_netlink_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
		"notify_fifo", "notify_fifo_script", "vrrp_notify_fifo", "vrrp_notify_fifo_script",
		"lvs_notify_fifo", "lvs_notify_fifo_script", "script_security", "process_names", "process_alive_check",
		"vrrp_process_name", "checker_process_name", "bfd_process_name", "linkbeat_use_polling",
		"linkbeat_interfaces", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance",
		"use_pid_dir", "max_auto_priority", "min_auto_priority_delay", "log_unknown_vrrps", "vrrp_dont_track_primary",
		"vrrp_strict_mode", "vrrp_version_3", "vrrp_mcast_group4_ttl", "vrrp_mcast_group6_ttl", "mcast_ttl",
		"no_email_faults", "startup_script", "startup_script_timeout", "shutdown_script", "shutdown_script_timeout",
		"vrrp_skip_check_adv_addr_all", "umask", "random_seed", "reload_time_file", "reload_repeat", "reload_file",
		"fifo_write_vrrp_states_on_reload", "rs_init_notifies", "no_checker_emails", "vrrp_owner_ignore_adverts",
		"child_wait_time", "disable_local_igmp", "data_use_instance", "config_save_dir",
		"checker_log_all_failures", "vrrp_garp_extra_if", "vrrp_gna_extra_if", "vrrp_nftables_priority",
		"include_check", "includer", "includem", "includew", "includeb", "includea",
		// keepalived 2.2 spellings and keywords found missing by TestKeepalivedKeywords
		"tmp_config_directory", "process_name", "vrrp_down_timer_adverts", "nftables_ipvs", "nftables_ipvs_priority",
		"nftables_ipvs_start_fwmark", "vrrp_notify_priority_changes", "vrrp_rlimit_rttime", "checker_rlimit_rttime",
		"bfd_rlimit_rttime", "log_unknown_vrids", "vmac_prefix", "vmac_addr_prefix", "reload_check_config":
		return true
	// top-level blocks halb does not implement
	case "static_ipaddress", "static_routes", "static_rules", "garp_group",
		"linkbeat_interface", "interface_up_down_delays", "SSL":
		return true
	// vrrp_instance
	case "kernel_rx_buf_size", "debug", "strict_mode", "native_ipv6", "unicast_ttl", "unicast_fault_no_peer",
		"track_bfd", "track_group", "virtual_routes", "virtual_rules", "notify_master_rx_lower_pri",
		"notify_deleted", "old_unicast_checksum", "skip_check_adv_addr", "use_ipvlan", "no_accept_unicast",
		"garp_extra_if", "gna_extra_if", "mcast_ttl_v4", "mcast_ttl_v6", "vmac_xmit_base_fix", "notify_priority_changes",
		"unicast_peer_ttl", "use_vmac_addr", "dont_track_primary_rx", "vrf", "mcast_dst_ip", "track_src_ip",
		"down_timer_adverts", "promote_secondaries":
		return true
	// vrrp_sync_group
	case "global_tracking", "notify_stop":
		return true
	// virtual_server / real_server
	case "one_packet", "ip_family", "persistence_engine", "tunnel_encap", "tunnel_port", "tunnel_checksum",
		"notify_up_down", "rs_tracking", "lvs_sync_daemon_id",
		"snmp_name", "sorry_server_lvs_method",
		// valid in other blocks (alpha: virtual_server; lvs_method: virtual_server; virtualhost:
		// virtual_server and HTTP_GET), per real server or checker in keepalived 2.2
		"alpha", "lvs_method", "virtualhost":
		return true
	// checkers and url
	case "enable_sni", "tls_compliant", "http_protocol", "fast_recovery", "log_all_failures", "bind_if",
		"fwmark", "regex", "regex_no_match", "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset",
		"regex_use_jit", "payload", "require_reply", "misc_path_env", "source_ip", "unsolicited":
		return true
	}
	return false
}

// suggest returns the candidate closest to kw by edit distance, when it is close enough to be a
// typo, or "".
func suggest(kw string, candidates []string) string {
	const maxLen = 64
	if len(kw) > maxLen {
		return ""
	}
	limit := min(len(kw)/3+1, 3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(kw, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (hand-written: the standard library has
// none and the module has no dependency providing one).
func editDistance(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
