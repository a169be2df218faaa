package ipvs

import (
	"fmt"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// Connection synchronisation between directors (keepalived's
// lvs_sync_daemon): the MASTER director multicasts its connection table, the
// BACKUP one loads it, so established connections and persistence survive a
// failover. The daemon switches the states on VRRP transitions.

// IPVS_CMD_*_DAEMON, IPVS_CMD_ATTR_DAEMON and IPVS_DAEMON_ATTR_*.
const (
	cmdNewDaemon = 9
	cmdDelDaemon = 10
	cmdGetDaemon = 11

	cmdAttrDaemon = 3

	daemonAttrState    = 1
	daemonAttrMcastIfn = 2
	daemonAttrSyncID   = 3
)

// SyncState is a sync daemon's role (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
type SyncState uint32

// Sync daemon roles.
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("syncstate(%d)", uint32(s))
}

// SyncDaemon is one kernel sync daemon: its role, the interface it multicasts
// on (or listens on), and the sync ID that pairs directors (0-255).
type SyncDaemon struct {
	State     SyncState
	Interface string
	SyncID    uint32
}

func daemonReq(cmd uint8, d SyncDaemon, full bool) (genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(daemonAttrState, uint32(d.State))
		if full {
			nae.String(daemonAttrMcastIfn, d.Interface)
			nae.Uint32(daemonAttrSyncID, d.SyncID)
		}
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		return genetlink.Message{}, err
	}
	return genetlink.Message{Header: genetlink.Header{Command: cmd, Version: genlVersion}, Data: b}, nil
}

func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	err := decodeTop(b, cmdAttrDaemon, func(ad *netlink.AttributeDecoder) error {
		for ad.Next() {
			switch ad.Type() {
			case daemonAttrState:
				d.State = SyncState(ad.Uint32())
			case daemonAttrMcastIfn:
				d.Interface = ad.String()
			case daemonAttrSyncID:
				d.SyncID = ad.Uint32()
			}
		}
		return ad.Err()
	})
	if err != nil {
		return SyncDaemon{}, fmt.Errorf("ipvs: decode sync daemon: %w", err)
	}
	return d, nil
}

// StartSyncDaemon starts a kernel sync daemon (one master and one backup may
// run at once). The interface must exist; names are at most 15 bytes.
func (t *NetlinkTable) StartSyncDaemon(d SyncDaemon) error {
	if len(d.Interface) == 0 || len(d.Interface) > 15 {
		return fmt.Errorf("ipvs: start %s sync daemon: bad interface name %q", d.State, d.Interface)
	}
	m, err := daemonReq(cmdNewDaemon, d, true)
	_, err = t.exec(fmt.Sprintf("start %s sync daemon on %s", d.State, d.Interface), m, err, netlink.Acknowledge)
	return err
}

// StopSyncDaemon stops the sync daemon in role state.
func (t *NetlinkTable) StopSyncDaemon(state SyncState) error {
	m, err := daemonReq(cmdDelDaemon, SyncDaemon{State: state}, false)
	_, err = t.exec(fmt.Sprintf("stop %s sync daemon", state), m, err, netlink.Acknowledge)
	return err
}

// SyncDaemons lists the running sync daemons.
func (t *NetlinkTable) SyncDaemons() ([]SyncDaemon, error) {
	msgs, err := t.exec("list sync daemons", genetlink.Message{Header: genetlink.Header{Command: cmdGetDaemon, Version: genlVersion}}, nil, netlink.Dump)
	if err != nil {
		return nil, err
	}
	var ds []SyncDaemon
	for _, m := range msgs {
		d, err := decodeDaemon(m.Data)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}
