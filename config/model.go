package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Pos is a position in a configuration file.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

// String returns "file:line", or "file" when the line is unknown.
func (p Pos) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Config is the whole typed, validated model of a configuration file and its includes.
// It is plain data: the daemon builds its runtime objects from it.
type Config struct {
	Global         Global           `json:"global"`
	Scripts        []*Script        `json:"scripts"`
	TrackFiles     []*TrackFile     `json:"track_files"`
	TrackProcs     []*TrackProcess  `json:"track_processes"`
	Instances      []*Instance      `json:"instances"`
	SyncGroups     []*SyncGroup     `json:"sync_groups"`
	VirtualServers []*VirtualServer `json:"virtual_servers"`
	VSGroups       []*VSGroup       `json:"vs_groups"`
	BGP            *BGP             `json:"bgp,omitempty"` // model_bgp.go
	Pools          []*Pool          `json:"pools"`         // top-level pool blocks (model_l7.go)
	// Files lists every file read, the main file first, then includes in the order read.
	Files []string `json:"files"`
	// Hash is the hex SHA-256 over the contents of Files, in order.
	Hash string `json:"hash"`
}

// TrackFile is a vrrp_track_file (or top-level track_file) block: a file
// holding a number that adjusts the priority of the instances tracking it.
type TrackFile struct {
	Pos       Pos    `json:"pos"`
	Name      string `json:"name"`
	File      string `json:"file"`
	Weight    int    `json:"weight"` // default 1; 0: a non-zero value means FAULT
	Reverse   bool   `json:"reverse"`
	Init      bool   `json:"init"` // init_file: write InitValue at start when the file is missing
	InitValue int    `json:"init_value"`
	Overwrite bool   `json:"init_overwrite"` // init_file ... overwrite: also when it exists
}

// TrackProcess is a vrrp_track_process block: how many processes match.
type TrackProcess struct {
	Pos            Pos           `json:"pos"`
	Name           string        `json:"name"`
	Process        string        `json:"process"`         // the command name (or, with FullCommand, the whole command line)
	Params         []string      `json:"params"`          // arguments to match after the command
	ParamMatch     string        `json:"param_match"`     // "", "initial" or "partial"
	ParamsSet      bool          `json:"params_set"`      // param_match given: parameters are matched even if none
	Weight         int           `json:"weight"`          // 0: FAULT while the quorum is not met
	Reverse        bool          `json:"reverse"`         //
	Quorum         int           `json:"quorum"`          // default 1
	QuorumMax      int           `json:"quorum_max"`      // -1: unlimited
	ForkDelay      time.Duration `json:"fork_delay"`      // quorum gained: wait this long before OK
	TerminateDelay time.Duration `json:"terminate_delay"` // quorum lost: wait this long before failed
	FullCommand    bool          `json:"full_command"`
}

// LVSSync is lvs_sync_daemon: the kernel's IPVS connection synchronisation between directors.
type LVSSync struct {
	Pos       Pos    `json:"pos"`
	Interface string `json:"interface"`
	Instance  string `json:"instance"` // the VRRP instance whose state picks master or backup; "": both run
	SyncID    int    `json:"sync_id"`  // default: the instance's VRID, or 0
}

// LVSTimeouts is lvs_timeouts: IPVS connection timeouts; zero leaves the kernel's value.
type LVSTimeouts struct {
	TCP    time.Duration `json:"tcp"`
	TCPFin time.Duration `json:"tcpfin"`
	UDP    time.Duration `json:"udp"`
}

// Global is the global_defs block.
type Global struct {
	Pos Pos `json:"pos"`

	RouterID              string        `json:"router_id"`
	NotificationEmail     []string      `json:"notification_email"`
	NotificationEmailFrom string        `json:"notification_email_from"`
	SMTPServer            string        `json:"smtp_server"` // host or address, "" = none
	SMTPPort              int           `json:"smtp_port"`   // default 25
	SMTPConnectTimeout    time.Duration `json:"smtp_connect_timeout"`
	SMTPHeloName          string        `json:"smtp_helo_name"` // "" = the host name
	// SMTPAlert is global smtp_alert: alert mails for every instance and real server;
	// SMTPAlertVRRP and SMTPAlertChecker, when set, decide for one side.
	SMTPAlert            bool        `json:"smtp_alert"`
	SMTPAlertVRRP        *bool       `json:"smtp_alert_vrrp,omitempty"`
	SMTPAlertChecker     *bool       `json:"smtp_alert_checker,omitempty"`
	EnableScriptSecurity bool        `json:"enable_script_security"`
	ScriptUser           string      `json:"script_user"`
	ScriptGroup          string      `json:"script_group"`
	LVSID                string      `json:"lvs_id"`
	LVSSync              *LVSSync    `json:"lvs_sync_daemon,omitempty"`
	LVSTimeouts          LVSTimeouts `json:"lvs_timeouts"`

	// Instance defaults (an instance's own garp_* keywords override them).
	VRRPGarpMasterDelay         time.Duration `json:"vrrp_garp_master_delay"`
	VRRPGarpMasterRepeat        int           `json:"vrrp_garp_master_repeat"`
	VRRPGarpMasterRefresh       time.Duration `json:"vrrp_garp_master_refresh"`
	VRRPGarpMasterRefreshRepeat int           `json:"vrrp_garp_master_refresh_repeat"`
	VRRPGarpInterval            time.Duration `json:"vrrp_garp_interval"`
	VRRPGnaInterval             time.Duration `json:"vrrp_gna_interval"`
	VRRPVersion                 int           `json:"vrrp_version"`
	VRRPStrict                  bool          `json:"vrrp_strict"`
	VRRPMcastGroup4             netip.Addr    `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6             netip.Addr    `json:"vrrp_mcast_group6"`
	VRRPSkipCheckAdvAddr        bool          `json:"vrrp_skip_check_adv_addr"`
	GlobalVRRPExtra                           // vrrp_garp_lower_prio_*, vrrp_*_prio_*advert, vrrp_check_unicast_src

	// halb's own keywords.
	AdminSocket      string         `json:"admin_socket"`
	AdminSocketMode  FileMode       `json:"admin_socket_mode"`
	AdminSocketOwner string         `json:"admin_socket_owner"`
	AdminSocketGroup string         `json:"admin_socket_group"`
	StatsListen      netip.AddrPort `json:"stats_listen"` // zero = off
	StatsUser        string         `json:"stats_user"`
	StatsPassword    string         `json:"stats_password"`
	MaxConn          int            `json:"maxconn"` // 0 = unlimited
	LogLevel         LogLevel       `json:"log_level"`
	LogSample        int            `json:"log_sample"` // log 1 of N successful requests; 0 = none
	ShutdownTimeout  time.Duration  `json:"shutdown_timeout"`
}

// Script is a vrrp_script block.
type Script struct {
	Pos           Pos           `json:"pos"`
	Name          string        `json:"name"`
	Script        string        `json:"script"`
	Interval      time.Duration `json:"interval"`
	Timeout       time.Duration `json:"timeout"`
	Weight        int           `json:"weight"`
	WeightReverse bool          `json:"weight_reverse"`
	Rise          int           `json:"rise"`
	Fall          int           `json:"fall"`
	User          string        `json:"user"`
	Group         string        `json:"group"`
	InitFail      bool          `json:"init_fail"`
}

// Instance is a vrrp_instance block.
type Instance struct {
	Pos              Pos           `json:"pos"`
	Name             string        `json:"name"`
	State            InitialState  `json:"state"`
	Interface        string        `json:"interface"`
	VRID             int           `json:"virtual_router_id"`
	Priority         int           `json:"priority"`
	AdvertInt        time.Duration `json:"advert_int"`
	Version          int           `json:"version"`
	AuthType         AuthType      `json:"auth_type"`
	AuthPass         string        `json:"auth_pass"`
	VIPs             []VIP         `json:"virtual_ipaddress"`
	ExcludedVIPs     []VIP         `json:"virtual_ipaddress_excluded"`
	UnicastSrcIP     netip.Addr    `json:"unicast_src_ip"`
	UnicastPeers     []netip.Addr  `json:"unicast_peer"`
	McastSrcIP       netip.Addr    `json:"mcast_src_ip"`
	NoPreempt        bool          `json:"nopreempt"`
	PreemptDelay     time.Duration `json:"preempt_delay"`
	TrackMode        TrackMode     `json:"track_mode"`
	TrackScripts     []Track       `json:"track_script"`
	TrackFiles       []Track       `json:"track_file"`
	TrackProcs       []Track       `json:"track_process"`
	TrackInterfaces  []Track       `json:"track_interface"`
	TrackVirtServers []TrackVS     `json:"track_virtual_server"`
	Notify           string        `json:"notify"`
	NotifyMaster     string        `json:"notify_master"`
	NotifyBackup     string        `json:"notify_backup"`
	NotifyFault      string        `json:"notify_fault"`
	NotifyStop       string        `json:"notify_stop"`

	GarpMasterDelay         time.Duration `json:"garp_master_delay"`
	GarpMasterRepeat        int           `json:"garp_master_repeat"`
	GarpMasterRefresh       time.Duration `json:"garp_master_refresh"`
	GarpMasterRefreshRepeat int           `json:"garp_master_refresh_repeat"`

	DontTrackPrimary bool `json:"dont_track_primary"`
	VRRPExtra             // garp_lower_prio_*, *_prio_*advert, check_unicast_src, unicast TTLs, vrrp_peers
	// FastHandover (halb): take over at once on a priority-0 advert instead of after Skew_Time.
	FastHandover bool   `json:"fast_handover"`
	UseVMAC      bool   `json:"use_vmac"`
	VMACName     string `json:"vmac_name"`
	VMACXmitBase bool   `json:"vmac_xmit_base"`
	SMTPAlert    bool   `json:"smtp_alert"`
	Accept       bool   `json:"accept"`
	// SyncGroup is the name of the vrrp_sync_group this instance belongs to, if any.
	SyncGroup string `json:"sync_group"`
}

// Family returns the address family of the instance, 4 or 6: its first VIP's, else its
// unicast_src_ip's, else 4.
func (in *Instance) Family() int {
	if len(in.VIPs) > 0 {
		return familyOf(in.VIPs[0].Prefix.Addr())
	}
	if in.UnicastSrcIP.IsValid() {
		return familyOf(in.UnicastSrcIP)
	}
	return 4
}

// VIP is one line of virtual_ipaddress: ADDR[/LEN] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL].
type VIP struct {
	Pos       Pos          `json:"pos"`
	Prefix    netip.Prefix `json:"prefix"` // address with its length (/32 or /128 when none was given)
	Broadcast netip.Addr   `json:"brd"`
	Dev       string       `json:"dev"` // "" = the instance's interface
	Scope     VIPScope     `json:"scope"`
	Label     string       `json:"label"`
}

// Track is one line of track_script or track_interface: NAME [weight N [reverse]].
type Track struct {
	Pos       Pos    `json:"pos"`
	Name      string `json:"name"`
	Weight    int    `json:"weight"`
	HasWeight bool   `json:"has_weight"` // false: the script's own weight; for an interface, FAULT when down
	Reverse   bool   `json:"reverse"`
}

// TrackVS is one line of track_virtual_server: ADDR PORT [weight N].
// With a weight, the weight (usually negative) is added to the priority while the service is down;
// without one, the instance goes to FAULT while the service is down.
type TrackVS struct {
	Pos       Pos            `json:"pos"`
	Addr      netip.AddrPort `json:"addr"`
	Weight    int            `json:"weight"`
	HasWeight bool           `json:"has_weight"`
}

// SyncGroup is a vrrp_sync_group block.
type SyncGroup struct {
	Pos          Pos      `json:"pos"`
	Name         string   `json:"name"`
	Group        []string `json:"group"`
	Notify       string   `json:"notify"`
	NotifyMaster string   `json:"notify_master"`
	NotifyBackup string   `json:"notify_backup"`
	NotifyFault  string   `json:"notify_fault"`
	SMTPAlert    bool     `json:"smtp_alert"`
	// Group-level tracking applies to every member instance. Without TrackingWeight
	// (sync_group_tracking_weight) weights become 0, keepalived's rule for sync groups: a failing
	// tracker puts the members in FAULT.
	TrackScripts    []Track `json:"track_script"`
	TrackInterfaces []Track `json:"track_interface"`
	TrackFiles      []Track `json:"track_file"`
	TrackProcs      []Track `json:"track_process"`
	TrackingWeight  bool    `json:"sync_group_tracking_weight"`
}

// VirtualServer is a virtual_server block.
type VirtualServer struct {
	// IPVS-only service flags (ops, sh-port, sh-fallback, mh-port, mh-fallback, flag-1..3):
	// IP_VS_SVC_F_ONEPACKET and IP_VS_SVC_F_SCHED1..3. The userspace proxy ignores them.
	OnePacket bool `json:"ops"`
	Sched1    bool `json:"sched_flag_1"` // sh-fallback, mh-fallback, flag-1
	Sched2    bool `json:"sched_flag_2"` // sh-port, mh-port, flag-2
	Sched3    bool `json:"sched_flag_3"` // flag-3
	ipvsOnly  []kwAt
	SMTPAlert bool   `json:"smtp_alert"` // alert mails for its real servers
	Pos       Pos    `json:"pos"`
	Kind      VSKind `json:"kind"`
	// Addr is set for Kind VSAddr, Fwmark for VSFwmark, Group for VSGroupRef.
	Addr   netip.AddrPort `json:"addr"`
	Fwmark uint32         `json:"fwmark"`
	Group  string         `json:"group"`
	// Addrs and Fwmarks are what the service listens on: Addr itself, or the group's entries expanded.
	Addrs   []netip.AddrPort `json:"addrs"`
	Fwmarks []uint32         `json:"fwmarks"`

	DelayLoop              time.Duration  `json:"delay_loop"`
	LBAlgo                 LBAlgo         `json:"lb_algo"`
	LBKind                 LBKind         `json:"lb_kind"`
	PersistenceTimeout     time.Duration  `json:"persistence_timeout"` // 0 = no persistence
	PersistenceGranularity netip.Addr     `json:"persistence_granularity"`
	Protocol               Protocol       `json:"protocol"`
	SorryServer            netip.AddrPort `json:"sorry_server"`
	SorryServerInhibit     bool           `json:"sorry_server_inhibit"`
	Quorum                 int            `json:"quorum"`
	Hysteresis             int            `json:"hysteresis"`
	QuorumUp               string         `json:"quorum_up"`
	QuorumDown             string         `json:"quorum_down"`
	Alpha                  bool           `json:"alpha"`
	Omega                  bool           `json:"omega"`
	InhibitOnFailure       bool           `json:"inhibit_on_failure"`
	VirtualHost            string         `json:"virtualhost"`
	HASuspend              bool           `json:"ha_suspend"`

	// halb's own keywords.
	ProxyMode          ProxyMode      `json:"proxy_mode"`
	TimeoutConnect     time.Duration  `json:"timeout_connect"`
	TimeoutClient      time.Duration  `json:"timeout_client"`
	TimeoutServer      time.Duration  `json:"timeout_server"`
	TimeoutHTTPRequest time.Duration  `json:"timeout_http_request"`
	TimeoutTunnel      time.Duration  `json:"timeout_tunnel"`
	TimeoutQueue       time.Duration  `json:"timeout_queue"`
	MaxConn            int            `json:"maxconn"`  // 0 = unlimited
	MaxQueue           int            `json:"maxqueue"` // 0 = no queue
	Retries            int            `json:"retries"`
	SendProxy          ProxyProtocol  `json:"send_proxy"`
	AcceptProxy        bool           `json:"accept_proxy"`
	TrustedProxies     []netip.Prefix `json:"trusted_proxies"`
	TrustedUpstreams   []netip.Prefix `json:"trusted_upstreams"`
	UseProxy           bool           `json:"use_proxy"`
	Rise               int            `json:"rise"`
	Fall               int            `json:"fall"`
	PassiveFail        int            `json:"passive_fail"` // 0 = off

	// BGPAnnounce is bgp_announce (model_bgp.go); nil: not announced over BGP.
	BGPAnnounce *BGPAnnounce `json:"bgp_announce,omitempty"`
	// HTTP (issue 13): idle time between two requests of a keep-alive client connection, and the
	// request head limits in bytes.
	TimeoutHTTPKeepAlive time.Duration `json:"timeout_http_keep_alive"`
	MaxHeaderSize        int           `json:"max_header_size"`
	MaxURISize           int           `json:"max_uri_size"`

	// L7 holds the layer-7 keywords of proxy_mode http (model_l7.go).
	L7 L7 `json:"l7"`

	RealServers []*RealServer `json:"real_servers"`
}

// Name is a short human name of the service: "ADDR:PORT", "fwmark N" or "group NAME".
func (vs *VirtualServer) Name() string {
	switch vs.Kind {
	case VSFwmark:
		return fmt.Sprintf("fwmark %d", vs.Fwmark)
	case VSGroupRef:
		return "group " + vs.Group
	default:
		return vs.Addr.String()
	}
}

// RealServer is a real_server block.
type RealServer struct {
	Pos              Pos            `json:"pos"`
	Addr             netip.AddrPort `json:"addr"`
	Weight           int            `json:"weight"`
	InhibitOnFailure bool           `json:"inhibit_on_failure"`
	NotifyUp         string         `json:"notify_up"`
	NotifyDown       string         `json:"notify_down"`
	SMTPAlert        bool           `json:"smtp_alert"` // alert mail on up/down (also: the service's, global smtp_alert)
	// uthreshold / lthreshold: IPVS connection thresholds (0: none); the userspace proxy
	// ignores them (its limit is maxconn).
	UThreshold int `json:"uthreshold"`
	LThreshold int `json:"lthreshold"`
	ipvsOnly   []kwAt
	Checkers   []*Checker `json:"checkers"`

	// halb's own keywords.
	MaxConn   int           `json:"maxconn"`    // 0 = unlimited
	SendProxy ProxyProtocol `json:"send_proxy"` // overrides the service's when set
	SNI       []string      `json:"sni"`        // empty: in the default set
	Backup    bool          `json:"backup"`
}

// Checker is one health checker of a real server (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, PING_CHECK).
// Inherited values are resolved: DelayLoop from the real server or the service, ConnectIP and
// ConnectPort from the real server.
type Checker struct {
	Pos              Pos           `json:"pos"`
	Kind             CheckerKind   `json:"kind"`
	ConnectIP        netip.Addr    `json:"connect_ip"`
	ConnectPort      int           `json:"connect_port"`
	BindTo           netip.Addr    `json:"bindto"`
	BindPort         int           `json:"bind_port"`
	ConnectTimeout   time.Duration `json:"connect_timeout"`
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	Warmup           time.Duration `json:"warmup"`
	DelayLoop        time.Duration `json:"delay_loop"`

	// HTTP_GET and SSL_GET.
	URLs        []URL  `json:"urls"`
	VirtualHost string `json:"virtualhost"`

	// MISC_CHECK.
	MiscPath    string        `json:"misc_path"`
	MiscTimeout time.Duration `json:"misc_timeout"`
	MiscDynamic bool          `json:"misc_dynamic"`
	User        string        `json:"user"`
	Group       string        `json:"group"`

	// DNS_CHECK: the query (type default SOA, name default ".").
	DNSType string `json:"type,omitempty"`
	DNSName string `json:"name,omitempty"`
	// SMTP_CHECK: the HELO name ("": keepalived's smtpchecker.keepalived.org).
	HeloName string `json:"helo_name,omitempty"`
	// UDP_CHECK: the datagram sent (hex in the config) and, with require_reply, the answer
	// expected: its first bytes (empty: any) and its length bounds.
	Payload        []byte `json:"payload,omitempty"`
	RequireReply   bool   `json:"require_reply,omitempty"`
	Reply          []byte `json:"reply,omitempty"`
	MinReplyLength int    `json:"min_reply_length,omitempty"`
	MaxReplyLength int    `json:"max_reply_length,omitempty"`
	// FILE_CHECK: the track_file block it reads (resolved to its file), its weight multiplier
	// (default: the track_file's) and dynamic (the value adjusts the server's weight).
	TrackFile     string `json:"track_file,omitempty"`
	File          string `json:"file,omitempty"`
	FileWeight    int    `json:"file_weight,omitempty"`
	FileReverse   bool   `json:"file_reverse,omitempty"`
	FileDynamic   bool   `json:"dynamic,omitempty"`
	fileWeightSet bool
}

// URL is an url block of HTTP_GET/SSL_GET.
type URL struct {
	Pos         Pos           `json:"pos"`
	Path        string        `json:"path"`
	Digest      string        `json:"digest"` // hex MD5 of the body, "" = not checked
	StatusCodes []StatusRange `json:"status_code"`
	VirtualHost string        `json:"virtualhost"` // overrides the checker's
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// Match reports whether code is in the range.
func (r StatusRange) Match(code int) bool { return code >= r.Lo && code <= r.Hi }

// VSGroup is a virtual_server_group block.
type VSGroup struct {
	Pos     Pos            `json:"pos"`
	Name    string         `json:"name"`
	Entries []VSGroupEntry `json:"entries"`
}

// VSGroupEntry is one line of a virtual_server_group: ADDR PORT, ADDR-END PORT or fwmark N.
type VSGroupEntry struct {
	Pos    Pos            `json:"pos"`
	Addr   netip.AddrPort `json:"addr"`      // first address of a range
	Last   netip.Addr     `json:"range_end"` // last address of a range, zero for a single address
	Fwmark uint32         `json:"fwmark"`
}

// Summary counts what a configuration declares.
type Summary struct {
	Instances      int `json:"instances"`
	VIPs           int `json:"vips"`
	VirtualServers int `json:"virtual_servers"`
	RealServers    int `json:"real_servers"`
	Checkers       int `json:"checkers"`
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// String reads like "2 vrrp instances, 2 VIPs, 2 virtual servers, 4 real servers, 4 checkers".
func (s Summary) String() string {
	return plural(s.Instances, "vrrp instance", "vrrp instances") + ", " +
		plural(s.VIPs, "VIP", "VIPs") + ", " +
		plural(s.VirtualServers, "virtual server", "virtual servers") + ", " +
		plural(s.RealServers, "real server", "real servers") + ", " +
		plural(s.Checkers, "checker", "checkers")
}

// Summary counts instances, VIPs (virtual_ipaddress entries), virtual servers, real servers and checkers.
func (c *Config) Summary() Summary {
	var s Summary
	s.Instances = len(c.Instances)
	for _, in := range c.Instances {
		s.VIPs += len(in.VIPs)
	}
	s.VirtualServers = len(c.VirtualServers)
	for _, vs := range c.VirtualServers {
		s.RealServers += len(vs.RealServers)
		for _, rs := range vs.RealServers {
			s.Checkers += len(rs.Checkers)
		}
	}
	return s
}

// NeedsIPVS returns the virtual servers that only the kernel's IPVS can serve: lb_kind DR or TUN
// without use_proxy, and fwmark services (the userspace proxy cannot listen on a firewall mark).
func (c *Config) NeedsIPVS() []*VirtualServer {
	var out []*VirtualServer
	for _, vs := range c.VirtualServers {
		if vs.needsIPVS() {
			out = append(out, vs)
		}
	}
	return out
}

func (vs *VirtualServer) needsIPVS() bool {
	if (vs.LBKind == LBKindDR || vs.LBKind == LBKindTUN) && !vs.UseProxy {
		return true
	}
	return vs.Kind == VSFwmark || (vs.Kind == VSGroupRef && len(vs.Fwmarks) > 0)
}
