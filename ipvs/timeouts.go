package ipvs

import (
	"fmt"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// IPVS_CMD_SET_CONFIG / GET_CONFIG and their top-level attributes
// (include/uapi/linux/ip_vs.h): keepalived's lvs_timeouts.
const (
	cmdSetConfig = 12
	cmdGetConfig = 13

	cmdAttrTimeoutTCP    = 4
	cmdAttrTimeoutTCPFin = 5
	cmdAttrTimeoutUDP    = 6
)

// Timeouts are IPVS connection timeouts (ipvsadm --set tcp tcpfin udp), in
// whole seconds. In SetTimeouts a zero field leaves the kernel's value.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

func setTimeoutsReq(to Timeouts) (genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	for _, a := range []struct {
		typ uint16
		d   time.Duration
	}{{cmdAttrTimeoutTCP, to.TCP}, {cmdAttrTimeoutTCPFin, to.TCPFin}, {cmdAttrTimeoutUDP, to.UDP}} {
		if a.d > 0 {
			ae.Uint32(a.typ, uint32(a.d/time.Second))
		}
	}
	b, err := ae.Encode()
	if err != nil {
		return genetlink.Message{}, err
	}
	return genetlink.Message{Header: genetlink.Header{Command: cmdSetConfig, Version: genlVersion}, Data: b}, nil
}

func decodeTimeouts(b []byte) (Timeouts, error) {
	var to Timeouts
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return to, fmt.Errorf("ipvs: decode timeouts: %w", err)
	}
	for ad.Next() {
		d := time.Duration(ad.Uint32()) * time.Second
		switch ad.Type() {
		case cmdAttrTimeoutTCP:
			to.TCP = d
		case cmdAttrTimeoutTCPFin:
			to.TCPFin = d
		case cmdAttrTimeoutUDP:
			to.UDP = d
		}
	}
	if err := ad.Err(); err != nil {
		return Timeouts{}, fmt.Errorf("ipvs: decode timeouts: %w", err)
	}
	return to, nil
}

// SetTimeouts sets the connection timeouts that are not zero in to.
func (t *NetlinkTable) SetTimeouts(to Timeouts) error {
	if to == (Timeouts{}) {
		return nil
	}
	m, err := setTimeoutsReq(to)
	_, err = t.exec("set timeouts", m, err, netlink.Acknowledge)
	return err
}

// Timeouts reads the connection timeouts.
func (t *NetlinkTable) Timeouts() (Timeouts, error) {
	msgs, err := t.exec("get timeouts", genetlink.Message{Header: genetlink.Header{Command: cmdGetConfig, Version: genlVersion}}, nil, 0)
	if err != nil {
		return Timeouts{}, err
	}
	if len(msgs) != 1 {
		return Timeouts{}, fmt.Errorf("ipvs: get timeouts: %d replies", len(msgs))
	}
	return decodeTimeouts(msgs[0].Data)
}
