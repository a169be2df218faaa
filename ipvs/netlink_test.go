package ipvs

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const fakeFamilyID = 0x24

// scriptedKernel answers NetlinkTable's requests the way the kernel would for
// a table holding one service with one destination, and records what it got.
type scriptedKernel struct {
	t    *testing.T
	reqs []string
}

func (k *scriptedKernel) serve(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	if nreq.Header.Type != fakeFamilyID {
		k.t.Errorf("request to family %#x, want %#x", nreq.Header.Type, fakeFamilyID)
	}
	if greq.Header.Version != genlVersion {
		k.t.Errorf("genl version %d", greq.Header.Version)
	}
	flags := nreq.Header.Flags
	switch greq.Header.Command {
	case cmdGetService:
		if flags != netlink.Request|netlink.Dump {
			k.t.Errorf("GET_SERVICE flags %v", flags)
		}
		k.reqs = append(k.reqs, "dump services")
		return []genetlink.Message{{
			Header: genetlink.Header{Command: cmdNewService, Version: genlVersion},
			Data:   hx(k.t, kernelServiceReply),
		}}, nil
	case cmdGetDest:
		if flags != netlink.Request|netlink.Dump {
			k.t.Errorf("GET_DEST flags %v", flags)
		}
		if !bytes.Equal(greq.Data, hx(k.t, svc4Ident)) {
			k.t.Errorf("GET_DEST for the wrong service: % x", greq.Data)
		}
		k.reqs = append(k.reqs, "dump dests")
		return []genetlink.Message{{
			Header: genetlink.Header{Command: cmdNewDest, Version: genlVersion},
			Data:   hx(k.t, kernelDestReply),
		}}, nil
	case cmdNewService, cmdDelDest:
		if flags != netlink.Request|netlink.Acknowledge {
			k.t.Errorf("command %d flags %v", greq.Header.Command, flags)
		}
		k.reqs = append(k.reqs, "write "+hexOf(greq.Data))
		return nil, genltest.Error(0) // the kernel's ack: NLMSG_ERROR with error 0
	case cmdSetService:
		return nil, genltest.Error(int(unix.ESRCH))
	}
	k.t.Errorf("unexpected command %d", greq.Header.Command)
	return nil, genltest.Error(int(unix.EINVAL))
}

func hexOf(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteString(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]))
	}
	return s.String()
}

func TestNetlinkTableAgainstScriptedKernel(t *testing.T) {
	littleEndianOnly(t)
	k := &scriptedKernel{t: t}
	c := genltest.Dial(genltest.ServeFamily(genetlink.Family{ID: fakeFamilyID, Version: 1, Name: genlName}, k.serve))
	tb, err := newNetlinkTable(c)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()

	svcs, err := tb.Services()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Format(&out, svcs); err != nil {
		t.Fatal(err)
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  198.18.0.100:80 wrr persistent 300 mask 255.255.255.0\n" +
		"  -> 198.18.0.11:80               Route   5      2          7         \n"
	if out.String() != want {
		t.Errorf("dump rendered:\n%s\nwant:\n%s", out.String(), want)
	}

	s := Service{Addr: netip.MustParseAddrPort("198.18.0.100:80"), Protocol: TCP, Scheduler: "wrr", Timeout: 2 * time.Minute}
	if err := tb.NewService(s); err != nil {
		t.Fatal(err)
	}
	if err := tb.DelDest(s, Dest{Addr: netip.MustParseAddrPort("198.18.0.12:80")}); err != nil {
		t.Fatal(err)
	}
	err = tb.UpdateService(s)
	if !errors.Is(err, unix.ESRCH) || !strings.HasPrefix(err.Error(), "ipvs: update service TCP 198.18.0.100:80: ") {
		t.Errorf("UpdateService error = %v, want a wrapped ESRCH", err)
	}
	newSvc, _ := newServiceReq(&s)
	delDest, _ := delDestReq(&s, &Dest{Addr: netip.MustParseAddrPort("198.18.0.12:80")})
	wantReqs := []string{"dump services", "dump dests", "write " + hexOf(newSvc.Data), "write " + hexOf(delDest.Data)}
	if strings.Join(k.reqs, "\n") != strings.Join(wantReqs, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(k.reqs, "\n"), strings.Join(wantReqs, "\n"))
	}
}

// The fake fails the way the kernel does, which the Reconciler relies on.
func TestFakeTableKernelErrors(t *testing.T) {
	f := NewFakeTable()
	s := webService()
	if err := f.NewDest(s, s.Dests[0]); !errors.Is(err, unix.ESRCH) {
		t.Errorf("NewDest without service: %v", err)
	}
	if err := f.NewService(s); err != nil {
		t.Fatal(err)
	}
	if err := f.NewService(s); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second NewService: %v", err)
	}
	if err := f.UpdateDest(s, s.Dests[0]); !errors.Is(err, unix.ENOENT) {
		t.Errorf("UpdateDest of missing dest: %v", err)
	}
	if err := f.NewDest(s, s.Dests[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.NewDest(s, s.Dests[0]); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second NewDest: %v", err)
	}
	if err := f.DelService(s); err != nil {
		t.Fatal(err)
	}
	if err := f.DelService(s); !errors.Is(err, unix.ESRCH) {
		t.Errorf("second DelService: %v", err)
	}
}

func TestAvailableNamesTheModule(t *testing.T) {
	err := availableAt(t.TempDir() + "/no/ip_vs")
	if err == nil {
		t.Fatal("missing file reported as available")
	}
	for _, w := range []string{"ip_vs", "modprobe ip_vs", "use_proxy"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if err := availableAt(t.TempDir()); err != nil {
		t.Errorf("present path: %v", err)
	}
}
