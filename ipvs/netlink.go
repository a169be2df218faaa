package ipvs

import (
	"fmt"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// Table is the IPVS table the Reconciler programs: the kernel's
// (NetlinkTable) or an in-memory one (FakeTable).
type Table interface {
	// Services lists all services with their destinations.
	Services() ([]Service, error)
	NewService(s Service) error
	UpdateService(s Service) error
	DelService(s Service) error
	NewDest(s Service, d Dest) error
	UpdateDest(s Service, d Dest) error
	DelDest(s Service, d Dest) error
}

// NetlinkTable is the kernel's IPVS table in the network namespace the
// connection was opened in, spoken to over generic netlink (family "IPVS").
type NetlinkTable struct {
	c      *genetlink.Conn
	family uint16
}

var _ Table = (*NetlinkTable)(nil)

// OpenNetlink connects to the kernel's IPVS generic netlink family in the
// current network namespace. It fails with Available's explanation where the
// kernel has no IPVS.
func OpenNetlink() (*NetlinkTable, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("ipvs: dial generic netlink: %w", err)
	}
	t, err := newNetlinkTable(c)
	if err != nil {
		_ = c.Close()
		if aerr := Available(); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	return t, nil
}

// newNetlinkTable resolves the IPVS family on an open connection (tests pass
// a genltest connection).
func newNetlinkTable(c *genetlink.Conn) (*NetlinkTable, error) {
	f, err := c.GetFamily(genlName)
	if err != nil {
		return nil, fmt.Errorf("ipvs: resolve generic netlink family %q: %w", genlName, err)
	}
	return &NetlinkTable{c: c, family: f.ID}, nil
}

// Close closes the netlink connection.
func (t *NetlinkTable) Close() error { return t.c.Close() }

func (t *NetlinkTable) exec(op string, m genetlink.Message, err error, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	if err != nil {
		return nil, fmt.Errorf("ipvs: %s: encode: %w", op, err)
	}
	msgs, err := t.c.Execute(m, t.family, netlink.Request|flags)
	if err != nil {
		return nil, fmt.Errorf("ipvs: %s: %w", op, err)
	}
	return msgs, nil
}

// Info returns the kernel's IPVS version and connection table size.
func (t *NetlinkTable) Info() (Info, error) {
	msgs, err := t.exec("get info", genetlink.Message{Header: genetlink.Header{Command: cmdGetInfo, Version: genlVersion}}, nil, 0)
	if err != nil {
		return Info{}, err
	}
	if len(msgs) == 0 {
		return Info{}, fmt.Errorf("ipvs: get info: empty reply")
	}
	return decodeInfo(msgs[0].Data)
}

// Services dumps all services, then each service's destinations.
func (t *NetlinkTable) Services() ([]Service, error) {
	msgs, err := t.exec("list services", getServicesReq(), nil, netlink.Dump)
	if err != nil {
		return nil, err
	}
	svcs := make([]Service, 0, len(msgs))
	for _, m := range msgs {
		s, err := decodeService(m.Data)
		if err != nil {
			return nil, err
		}
		s.Dests, err = t.dests(&s)
		if err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
	}
	sortServices(svcs)
	return svcs, nil
}

func (t *NetlinkTable) dests(s *Service) ([]Dest, error) {
	m, err := getDestsReq(s)
	msgs, err := t.exec("list destinations of "+s.String(), m, err, netlink.Dump)
	if err != nil {
		return nil, err
	}
	ds := make([]Dest, 0, len(msgs))
	for _, m := range msgs {
		d, err := decodeDest(m.Data, s.family())
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// NewService adds a service (without its destinations).
func (t *NetlinkTable) NewService(s Service) error {
	m, err := newServiceReq(&s)
	_, err = t.exec("add service "+s.String(), m, err, netlink.Acknowledge)
	return err
}

// UpdateService changes a service's scheduler, flags, timeout and netmask.
func (t *NetlinkTable) UpdateService(s Service) error {
	m, err := setServiceReq(&s)
	_, err = t.exec("update service "+s.String(), m, err, netlink.Acknowledge)
	return err
}

// DelService deletes a service and its destinations.
func (t *NetlinkTable) DelService(s Service) error {
	m, err := delServiceReq(&s)
	_, err = t.exec("delete service "+s.String(), m, err, netlink.Acknowledge)
	return err
}

// NewDest adds a destination to a service.
func (t *NetlinkTable) NewDest(s Service, d Dest) error {
	m, err := newDestReq(&s, &d)
	_, err = t.exec(fmt.Sprintf("add destination %s to %s", d.Addr, s), m, err, netlink.Acknowledge)
	return err
}

// UpdateDest changes a destination's weight, method and thresholds.
func (t *NetlinkTable) UpdateDest(s Service, d Dest) error {
	m, err := setDestReq(&s, &d)
	_, err = t.exec(fmt.Sprintf("update destination %s of %s", d.Addr, s), m, err, netlink.Acknowledge)
	return err
}

// DelDest removes a destination from a service.
func (t *NetlinkTable) DelDest(s Service, d Dest) error {
	m, err := delDestReq(&s, &d)
	_, err = t.exec(fmt.Sprintf("delete destination %s of %s", d.Addr, s), m, err, netlink.Acknowledge)
	return err
}

// Flush deletes every service in the namespace, halb's or not. Only for tests
// and explicit operator commands; the Reconciler never calls it.
func (t *NetlinkTable) Flush() error {
	_, err := t.exec("flush", genetlink.Message{Header: genetlink.Header{Command: cmdFlush, Version: genlVersion}}, nil, netlink.Acknowledge)
	return err
}
