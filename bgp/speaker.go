package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"go.uber.org/zap"
)

// Speaker is halb's BGP speaker: an embedded GoBGP server, its neighbors, and the routes halb
// announces. Its methods are safe for concurrent use.
type Speaker struct {
	log *zap.Logger
	gl  *logger

	mu        sync.Mutex
	srv       *server.BgpServer
	logOff    *atomic.Bool // set when srv stops: its late records are dropped
	cfg       Config       // applied
	announced []Route      // sorted by prefix
}

// NewSpeaker returns a speaker that is not started.
func NewSpeaker(log *zap.Logger) *Speaker {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("bgp")
	return &Speaker{log: log, gl: newLogger(log.Named("gobgp"), time.Now)}
}

// Start runs GoBGP with cfg. Neighbors that do not answer are retried by GoBGP; Start does not
// wait for any session.
func (s *Speaker) Start(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("bgp: start: already running")
	}
	return s.startLocked(ctx, cfg)
}

func (s *Speaker) startLocked(ctx context.Context, cfg Config) error {
	off := new(atomic.Bool)
	srv := server.NewBgpServer(server.LoggerOption(s.gl.slogOff(off)))
	go srv.Serve()
	port := int32(-1) // GoBGP: no listener
	if cfg.ListenPort > 0 {
		port = int32(cfg.ListenPort)
	} else if slices.ContainsFunc(cfg.Neighbors, func(n Neighbor) bool { return n.Passive }) {
		port = 179
	}
	g := &api.Global{Asn: cfg.LocalAS, RouterId: cfg.RouterID.String(), ListenPort: port}
	if port > 0 {
		g.ListenAddresses = []string{"0.0.0.0", "::"}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		srv.Stop()
		off.Store(true)
		return fmt.Errorf("bgp: start: %w", err)
	}
	s.srv, s.logOff, s.cfg, s.announced = srv, off, Config{RouterID: cfg.RouterID, LocalAS: cfg.LocalAS, ListenPort: cfg.ListenPort}, nil
	return s.applyNeighborsLocked(ctx, cfg.Neighbors)
}

// Apply changes the running configuration. A new router ID, local AS or listen port restarts the
// speaker (every session resets and the routes are announced again); neighbors are added,
// updated (their session resets) or removed one by one.
func (s *Speaker) Apply(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return errors.New("bgp: apply: not running")
	}
	if cfg.RouterID != s.cfg.RouterID || cfg.LocalAS != s.cfg.LocalAS || cfg.ListenPort != s.cfg.ListenPort {
		routes := s.announced
		s.stopLocked()
		if err := s.startLocked(ctx, cfg); err != nil {
			return err
		}
		return s.setRoutesLocked(ctx, routes)
	}
	return s.applyNeighborsLocked(ctx, cfg.Neighbors)
}

func (s *Speaker) applyNeighborsLocked(ctx context.Context, want []Neighbor) error {
	p := PlanNeighbors(s.cfg.Neighbors, want)
	var errs []error
	for _, a := range p.Delete {
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: delete neighbor %s: %w", a, err))
		}
	}
	for _, n := range p.Update {
		if _, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: s.peer(n), DoSoftResetIn: false}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: update neighbor %s: %w", n.Addr, err))
		}
		// GoBGP does not reset the session for every setting it takes: do it, so that timers,
		// password and ports apply now.
		_ = s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: n.Addr.String(), Communication: "halb: neighbor reconfigured"})
	}
	for _, n := range p.Add {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peer(n)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: add neighbor %s: %w", n.Addr, err))
		}
	}
	if len(errs) == 0 {
		s.cfg.Neighbors = slices.Clone(want)
		return nil
	}
	// Re-read what GoBGP holds, so that the next Apply plans from the truth.
	s.cfg.Neighbors = s.cfg.Neighbors[:0:0]
	have := map[string]bool{}
	_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { have[p.GetConf().GetNeighborAddress()] = true })
	for _, n := range want {
		if have[n.Addr.String()] {
			s.cfg.Neighbors = append(s.cfg.Neighbors, n)
		}
	}
	return errors.Join(errs...)
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

func (s *Speaker) peer(n Neighbor) *api.Peer {
	secs := func(d time.Duration) uint64 { return uint64((d + time.Second - 1) / time.Second) }
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: n.RemoteAS, AuthPassword: n.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: secs(n.hold()), KeepaliveInterval: secs(n.Keepalive()),
			ConnectRetry: secs(DefaultConnectRetry), IdleHoldTimeAfterReset: secs(DefaultIdleHold),
		}},
		Transport: &api.Transport{RemotePort: uint32(n.Port), PassiveMode: n.Passive},
		// The session carries the family of its transport: IPv4 prefixes to IPv4 neighbors, the
		// /128s (MP_REACH_NLRI, RFC 4760) to IPv6 neighbors, each with a next hop of its family.
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: familyV4, Enabled: true}}},
	}
	if n.Addr.Is6() && !n.Addr.Is4In6() {
		p.AfiSafis = []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: familyV6, Enabled: true}}}
	}
	if n.LocalAddr.IsValid() {
		p.Transport.LocalAddress = n.LocalAddr.String()
	}
	if n.Multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.Multihop)}
	}
	return p
}

// SetRoutes announces exactly routes: new and changed ones are added, the others withdrawn.
// Withdrawals go first, so that a failing add does not keep a stale route.
func (s *Speaker) SetRoutes(ctx context.Context, routes []Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return errors.New("bgp: set routes: not running")
	}
	return s.setRoutesLocked(ctx, routes)
}

func (s *Speaker) setRoutesLocked(ctx context.Context, routes []Route) error {
	p := PlanRoutes(s.announced, routes)
	var errs []error
	cur := map[netip.Prefix]Route{}
	for _, r := range s.announced {
		cur[r.Prefix] = r
	}
	for _, r := range p.Withdraw {
		path, err := s.path(r)
		if err == nil {
			err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", r.Prefix, err))
			continue
		}
		delete(cur, r.Prefix)
		s.log.Info("withdrawn", zap.Stringer("prefix", r.Prefix))
	}
	for _, r := range p.Add {
		path, err := s.path(r)
		if err == nil {
			_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %s: %w", r.Prefix, err))
			continue
		}
		cur[r.Prefix] = r
		s.log.Info("announced", zap.Stringer("prefix", r.Prefix))
	}
	s.announced = s.announced[:0:0]
	for _, r := range cur {
		s.announced = append(s.announced, r)
	}
	slices.SortFunc(s.announced, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return errors.Join(errs...)
}

// path builds the GoBGP path of r: origin IGP, next hop self (the unspecified address, which
// GoBGP replaces with the session's local address), the AS path of the prepends (GoBGP adds the
// local AS once on eBGP export).
func (s *Speaker) path(r Route) (*apiutil.Path, error) {
	pfx := r.Prefix.Masked()
	nlri, err := gbgp.NewIPAddrPrefix(pfx)
	if err != nil {
		return nil, err
	}
	attrs := []gbgp.PathAttributeInterface{gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := gbgp.RF_IPv4_UC
	if pfx.Addr().Is4() {
		nh, err := gbgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = gbgp.RF_IPv6_UC
		mp, err := gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if r.Prepend > 0 {
		nums := make([]uint32, r.Prepend)
		for i := range nums {
			nums[i] = s.cfg.LocalAS
		}
		attrs = append(attrs, gbgp.NewPathAttributeAsPath([]gbgp.AsPathParamInterface{gbgp.NewAs4PathParam(gbgp.BGP_ASPATH_ATTR_TYPE_SEQ, nums)}))
	}
	if r.HasMED {
		attrs = append(attrs, gbgp.NewPathAttributeMultiExitDisc(r.MED))
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, gbgp.NewPathAttributeCommunities(slices.Clone(r.Communities)))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

// Announced returns the routes announced now.
func (s *Speaker) Announced() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.announced)
}

// Status reports the sessions and the announced routes.
func (s *Speaker) Status(ctx context.Context) Status {
	s.mu.Lock()
	srv := s.srv
	st := Status{RouterID: s.cfg.RouterID, LocalAS: s.cfg.LocalAS, Announced: slices.Clone(s.announced)}
	order := make([]netip.Addr, 0, len(s.cfg.Neighbors))
	for _, n := range s.cfg.Neighbors {
		order = append(order, n.Addr)
	}
	s.mu.Unlock()
	if srv == nil {
		return st
	}
	byAddr := map[netip.Addr]Session{}
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		ps := p.GetState()
		sess := Session{
			Neighbor: a, RemoteAS: p.GetConf().GetPeerAsn(),
			State: sessionState(ps.GetSessionState()),
			Up:    ps.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED,
			Flaps: ps.GetFlops(),
		}
		ts := p.GetTimers().GetState()
		if sess.Up && ts.GetUptime() != nil {
			sess.Since = ts.GetUptime().AsTime()
		} else if !sess.Up {
			if ts.GetDowntime() != nil {
				sess.Since = ts.GetDowntime().AsTime()
			}
			if t := s.gl.stateSince(a.String()); t.After(sess.Since) {
				sess.Since = t
			}
		}
		for _, af := range p.GetAfiSafis() {
			sess.Accepted += int(af.GetState().GetAccepted())
		}
		if le := s.gl.lastError(a.String()); le.msg != "" {
			sess.LastError, sess.LastErrorAt = le.msg, le.at
		}
		byAddr[a] = sess
	})
	for _, a := range order {
		if sess, ok := byAddr[a]; ok {
			st.Sessions = append(st.Sessions, sess)
		} else {
			st.Sessions = append(st.Sessions, Session{Neighbor: a, State: "unknown"})
		}
	}
	return st
}

// sessionState names a BGP FSM state as halb reports it: idle, connect, active, opensent,
// openconfirm, established ("unknown" for GoBGP's unspecified state).
func sessionState(st api.PeerState_SessionState) string {
	if st == api.PeerState_SESSION_STATE_UNSPECIFIED {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(st.String(), "SESSION_STATE_"))
}

// Stop withdraws nothing explicitly: it closes every session with a Cease NOTIFICATION, which
// makes the routers drop halb's routes at once. Call SetRoutes(nil) and wait first for a
// graceful drain.
func (s *Speaker) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.stopLocked()
	s.announced = nil
	s.cfg.Neighbors = nil
}

// stopLocked stops the running GoBGP server and silences what its goroutines log afterwards.
func (s *Speaker) stopLocked() {
	s.srv.Stop()
	s.logOff.Store(true)
	s.srv = nil
}
