package config

// inert lists keywords that the parser accepts and stores (so `halb dump` shows them and a
// keepalived.conf loads unchanged) but that nothing in halb acts on yet. Each use gives a
// warning with its line: a keyword is either acted on, warned about, or refused, never
// silently accepted. The key is the block's name as the parser's tables name it.
func inert(block, kw string) (why string, ok bool) {
	switch block {
	case "global_defs":
		switch kw {
		case "vrrp_garp_interval", "vrrp_gna_interval":
			return "halb sends gratuitous ARP / unsolicited NA back to back", true
		case "vrrp_mcast_group4", "vrrp_mcast_group6":
			return "halb's VRRP speaker uses the standard groups 224.0.0.18 and ff02::12", true
		case "vrrp_skip_check_adv_addr":
			return "halb always checks the addresses of an advertisement", true
		}
	case "vrrp_instance":
		switch kw {
		case "accept", "no_accept":
			return "halb does not filter traffic to the VIPs (keepalived does with vrrp_strict and iptables/nftables)", true
		}
	case "virtual_server":
		switch kw {
		case "ha_suspend":
			return "halb checks real servers whatever the VRRP state", true
		case "sorry_server_inhibit":
			return "the sorry server is added and removed, never kept at weight 0", true
		}
	}
	return "", false
}
