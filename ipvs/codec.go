package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// Generic netlink family (include/uapi/linux/ip_vs.h).
const (
	genlName    = "IPVS" // IPVS_GENL_NAME
	genlVersion = 1      // IPVS_GENL_VERSION
)

// IPVS_CMD_*.
const (
	cmdNewService = 1
	cmdSetService = 2
	cmdDelService = 3
	cmdGetService = 4
	cmdNewDest    = 5
	cmdSetDest    = 6
	cmdDelDest    = 7
	cmdGetDest    = 8
	cmdGetInfo    = 15
	cmdFlush      = 17
)

// IPVS_CMD_ATTR_*.
const (
	cmdAttrService = 1
	cmdAttrDest    = 2
)

// IPVS_SVC_ATTR_*.
const (
	svcAttrAF        = 1
	svcAttrProtocol  = 2
	svcAttrAddr      = 3
	svcAttrPort      = 4
	svcAttrFWMark    = 5
	svcAttrSchedName = 6
	svcAttrFlags     = 7
	svcAttrTimeout   = 8
	svcAttrNetmask   = 9
	svcAttrStats     = 10
	svcAttrPEName    = 11
	svcAttrStats64   = 12
)

// IPVS_DEST_ATTR_*.
const (
	destAttrAddr         = 1
	destAttrPort         = 2
	destAttrFwdMethod    = 3
	destAttrWeight       = 4
	destAttrUThresh      = 5
	destAttrLThresh      = 6
	destAttrActiveConns  = 7
	destAttrInactConns   = 8
	destAttrPersistConns = 9
	destAttrStats        = 10
	destAttrAddrFamily   = 11
	destAttrStats64      = 12
)

// IPVS_INFO_ATTR_*.
const (
	infoAttrVersion     = 1
	infoAttrConnTabSize = 2
)

// IPVS_STATS_ATTR_*.
const (
	statsAttrConns    = 1
	statsAttrInPkts   = 2
	statsAttrOutPkts  = 3
	statsAttrInBytes  = 4
	statsAttrOutBytes = 5
	statsAttrCPS      = 6
	statsAttrInPPS    = 7
	statsAttrOutPPS   = 8
	statsAttrInBPS    = 9
	statsAttrOutBPS   = 10
)

const fwdMask = 0x0007 // IP_VS_CONN_F_FWD_MASK

// addrLen is sizeof(union nf_inet_addr): addresses travel in 16 bytes, IPv4
// in the first four, as ipvsadm sends them and the kernel replies.
const addrLen = 16

func encodeAddr(a netip.Addr) []byte {
	b := make([]byte, addrLen)
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	} else {
		v := a.As16()
		copy(b, v[:])
	}
	return b
}

func decodeAddr(b []byte, f Family) (netip.Addr, error) {
	switch {
	case f == IPv4 && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case f == IPv6 && len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("address of %d bytes for %s", len(b), f)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// netmaskBytes is IPVS_SVC_ATTR_NETMASK: for IPv4 the mask itself in network
// order, for IPv6 the prefix length as a host-order u32 (the kernel reads it as
// a plain number; see ip_vs_add_service).
func netmaskBytes(f Family, bitsLen int) []byte {
	if f == IPv6 {
		return binary.NativeEndian.AppendUint32(nil, uint32(bitsLen))
	}
	var m uint32
	if bitsLen > 0 {
		m = ^uint32(0) << (32 - bitsLen)
	}
	return binary.BigEndian.AppendUint32(nil, m)
}

func netmaskBits(f Family, b []byte) (int, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("netmask of %d bytes", len(b))
	}
	if f == IPv6 {
		n := binary.NativeEndian.Uint32(b)
		if n > 128 {
			return 0, fmt.Errorf("IPv6 netmask /%d", n)
		}
		return int(n), nil
	}
	// A non-contiguous IPv4 mask (never made by halb) reads as its leading ones.
	return bits.LeadingZeros32(^binary.BigEndian.Uint32(b)), nil
}

// encodeServiceAttrs writes the attributes inside IPVS_CMD_ATTR_SERVICE in
// ipvsadm's order: the identity (AF, then FWMARK or PROTOCOL+ADDR+PORT) and,
// when full, SCHED_NAME, FLAGS (struct ip_vs_flags, mask all ones), TIMEOUT and
// NETMASK, which the kernel requires for NEW and SET.
func encodeServiceAttrs(ae *netlink.AttributeEncoder, s *Service, full bool) {
	f := s.family()
	ae.Uint16(svcAttrAF, uint16(f))
	if s.FWMark != 0 {
		ae.Uint32(svcAttrFWMark, s.FWMark)
	} else {
		ae.Uint16(svcAttrProtocol, uint16(s.Protocol))
		ae.Bytes(svcAttrAddr, encodeAddr(s.Addr.Addr()))
		ae.Bytes(svcAttrPort, be16(s.Addr.Port()))
	}
	if !full {
		return
	}
	ae.String(svcAttrSchedName, s.scheduler())
	flags := binary.NativeEndian.AppendUint32(nil, s.effFlags())
	flags = binary.NativeEndian.AppendUint32(flags, ^uint32(0))
	ae.Bytes(svcAttrFlags, flags)
	ae.Uint32(svcAttrTimeout, s.timeoutSeconds())
	ae.Bytes(svcAttrNetmask, netmaskBytes(f, s.netmaskBits()))
}

// encodeDestAttrs writes the attributes inside IPVS_CMD_ATTR_DEST: ADDR_FAMILY,
// ADDR, PORT and, when full, FWD_METHOD, WEIGHT, U_THRESH, L_THRESH.
func encodeDestAttrs(ae *netlink.AttributeEncoder, d *Dest, full bool) {
	a := d.Addr.Addr().Unmap()
	ae.Uint16(destAttrAddrFamily, uint16(familyOf(a)))
	ae.Bytes(destAttrAddr, encodeAddr(a))
	ae.Bytes(destAttrPort, be16(d.Addr.Port()))
	if !full {
		return
	}
	ae.Uint32(destAttrFwdMethod, uint32(d.Method)&fwdMask)
	ae.Uint32(destAttrWeight, uint32(int32(d.Weight)))
	ae.Uint32(destAttrUThresh, d.UThreshold)
	ae.Uint32(destAttrLThresh, d.LThreshold)
}

// request builds the generic netlink message for cmd. The service is always
// present (it identifies the destination's service too); dest only for the
// destination commands.
func request(cmd uint8, s *Service, fullSvc bool, d *Dest, fullDest bool) (genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	if s != nil {
		ae.Nested(cmdAttrService, func(nae *netlink.AttributeEncoder) error {
			encodeServiceAttrs(nae, s, fullSvc)
			return nil
		})
	}
	if d != nil {
		ae.Nested(cmdAttrDest, func(nae *netlink.AttributeEncoder) error {
			encodeDestAttrs(nae, d, fullDest)
			return nil
		})
	}
	b, err := ae.Encode()
	if err != nil {
		return genetlink.Message{}, err
	}
	return genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: genlVersion},
		Data:   b,
	}, nil
}

// Requests for each operation.
func newServiceReq(s *Service) (genetlink.Message, error) {
	return request(cmdNewService, s, true, nil, false)
}
func setServiceReq(s *Service) (genetlink.Message, error) {
	return request(cmdSetService, s, true, nil, false)
}
func delServiceReq(s *Service) (genetlink.Message, error) {
	return request(cmdDelService, s, false, nil, false)
}
func newDestReq(s *Service, d *Dest) (genetlink.Message, error) {
	return request(cmdNewDest, s, false, d, true)
}
func setDestReq(s *Service, d *Dest) (genetlink.Message, error) {
	return request(cmdSetDest, s, false, d, true)
}
func delDestReq(s *Service, d *Dest) (genetlink.Message, error) {
	return request(cmdDelDest, s, false, d, false)
}
func getServicesReq() genetlink.Message {
	return genetlink.Message{Header: genetlink.Header{Command: cmdGetService, Version: genlVersion}}
}
func getDestsReq(s *Service) (genetlink.Message, error) {
	return request(cmdGetDest, s, false, nil, false)
}

var errNoAttr = errors.New("missing nested attribute")

// statsDecoder reads IPVS_*_ATTR_STATS (u32 counters, u64 bytes) or
// IPVS_*_ATTR_STATS64 (all u64, maybe with IPVS_STATS_ATTR_PAD) into st.
func statsDecoder(st *Stats) func(*netlink.AttributeDecoder) error {
	return func(ad *netlink.AttributeDecoder) error {
		for ad.Next() {
			var v uint64
			switch b := ad.Bytes(); len(b) {
			case 4:
				v = uint64(binary.NativeEndian.Uint32(b))
			case 8:
				v = binary.NativeEndian.Uint64(b)
			default:
				continue // IPVS_STATS_ATTR_PAD and anything unknown
			}
			switch ad.Type() {
			case statsAttrConns:
				st.Conns = v
			case statsAttrInPkts:
				st.InPkts = v
			case statsAttrOutPkts:
				st.OutPkts = v
			case statsAttrInBytes:
				st.InBytes = v
			case statsAttrOutBytes:
				st.OutBytes = v
			case statsAttrCPS:
				st.CPS = v
			case statsAttrInPPS:
				st.InPPS = v
			case statsAttrOutPPS:
				st.OutPPS = v
			case statsAttrInBPS:
				st.InBPS = v
			case statsAttrOutBPS:
				st.OutBPS = v
			}
		}
		return ad.Err()
	}
}

// decodeTop finds the nested attribute typ in a reply's top-level attributes
// and runs fn on its contents.
func decodeTop(b []byte, typ uint16, fn func(*netlink.AttributeDecoder) error) error {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return err
	}
	found := false
	for ad.Next() {
		if ad.Type() == typ {
			found = true
			ad.Nested(fn)
		}
	}
	if err := ad.Err(); err != nil {
		return err
	}
	if !found {
		return errNoAttr
	}
	return nil
}

// decodeService decodes the payload of an IPVS_CMD_NEW_SERVICE reply (a dump
// entry): IPVS_CMD_ATTR_SERVICE and its attributes. Dests stays empty.
func decodeService(b []byte) (Service, error) {
	var s Service
	err := decodeTop(b, cmdAttrService, func(ad *netlink.AttributeDecoder) error {
		var addr, netmask []byte
		var port uint16
		var haveAF, have64 bool
		for ad.Next() {
			switch ad.Type() {
			case svcAttrAF:
				s.Family = Family(ad.Uint16())
				haveAF = true
			case svcAttrProtocol:
				s.Protocol = Proto(ad.Uint16())
			case svcAttrAddr:
				addr = ad.Bytes()
			case svcAttrPort:
				if v := ad.Bytes(); len(v) == 2 {
					port = binary.BigEndian.Uint16(v)
				} else {
					return fmt.Errorf("port of %d bytes", len(v))
				}
			case svcAttrFWMark:
				s.FWMark = ad.Uint32()
			case svcAttrSchedName:
				s.Scheduler = ad.String()
			case svcAttrFlags:
				v := ad.Bytes()
				if len(v) != 8 {
					return fmt.Errorf("flags of %d bytes", len(v))
				}
				s.Flags = binary.NativeEndian.Uint32(v) &^ FlagHashed
			case svcAttrTimeout:
				s.Timeout = time.Duration(ad.Uint32()) * time.Second
			case svcAttrNetmask:
				netmask = ad.Bytes()
			case svcAttrStats:
				if !have64 {
					ad.Nested(statsDecoder(&s.Stats))
				}
			case svcAttrStats64:
				s.Stats = Stats{}
				have64 = true
				ad.Nested(statsDecoder(&s.Stats))
			}
		}
		if err := ad.Err(); err != nil {
			return err
		}
		if !haveAF || (s.Family != IPv4 && s.Family != IPv6) {
			return fmt.Errorf("no or unknown address family %d", uint16(s.Family))
		}
		if s.FWMark != 0 {
			s.Protocol = 0
		} else {
			a, err := decodeAddr(addr, s.Family)
			if err != nil {
				return err
			}
			s.Addr = netip.AddrPortFrom(a, port)
		}
		if netmask != nil {
			n, err := netmaskBits(s.Family, netmask)
			if err != nil {
				return err
			}
			s.Netmask = n
		}
		return nil
	})
	if err != nil {
		return Service{}, fmt.Errorf("ipvs: decode service: %w", err)
	}
	return s, nil
}

// decodeDest decodes the payload of an IPVS_CMD_NEW_DEST reply (a dump
// entry); svcFamily is used when the kernel sends no IPVS_DEST_ATTR_ADDR_FAMILY.
func decodeDest(b []byte, svcFamily Family) (Dest, error) {
	var d Dest
	err := decodeTop(b, cmdAttrDest, func(ad *netlink.AttributeDecoder) error {
		var addr []byte
		var port uint16
		var have64 bool
		f := svcFamily
		for ad.Next() {
			switch ad.Type() {
			case destAttrAddr:
				addr = ad.Bytes()
			case destAttrPort:
				if v := ad.Bytes(); len(v) == 2 {
					port = binary.BigEndian.Uint16(v)
				} else {
					return fmt.Errorf("port of %d bytes", len(v))
				}
			case destAttrFwdMethod:
				d.Method = Method(ad.Uint32() & fwdMask)
			case destAttrWeight:
				d.Weight = int(ad.Int32())
			case destAttrUThresh:
				d.UThreshold = ad.Uint32()
			case destAttrLThresh:
				d.LThreshold = ad.Uint32()
			case destAttrActiveConns:
				d.ActiveConns = ad.Uint32()
			case destAttrInactConns:
				d.InactConns = ad.Uint32()
			case destAttrPersistConns:
				d.PersistConns = ad.Uint32()
			case destAttrAddrFamily:
				f = Family(ad.Uint16())
			case destAttrStats:
				if !have64 {
					ad.Nested(statsDecoder(&d.Stats))
				}
			case destAttrStats64:
				d.Stats = Stats{}
				have64 = true
				ad.Nested(statsDecoder(&d.Stats))
			}
		}
		if err := ad.Err(); err != nil {
			return err
		}
		a, err := decodeAddr(addr, f)
		if err != nil {
			return err
		}
		d.Addr = netip.AddrPortFrom(a, port)
		return nil
	})
	if err != nil {
		return Dest{}, fmt.Errorf("ipvs: decode destination: %w", err)
	}
	return d, nil
}

// Info is the kernel's IPVS version and connection table size.
type Info struct {
	Version     uint32 // IP_VS_VERSION_CODE, e.g. 0x010201 for 1.2.1
	ConnTabSize uint32
}

// VersionString is "1.2.1".
func (i Info) VersionString() string {
	return fmt.Sprintf("%d.%d.%d", i.Version>>16&0xff, i.Version>>8&0xff, i.Version&0xff)
}

func decodeInfo(b []byte) (Info, error) {
	var in Info
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return in, fmt.Errorf("ipvs: decode info: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case infoAttrVersion:
			in.Version = ad.Uint32()
		case infoAttrConnTabSize:
			in.ConnTabSize = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return in, fmt.Errorf("ipvs: decode info: %w", err)
	}
	return in, nil
}
