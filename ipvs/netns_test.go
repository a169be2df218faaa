package ipvs

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Network namespaces for tests. They are anonymous: created with
// unshare(CLONE_NEWNET) on a thread that is then thrown away, held only by
// the returned handle, and gone from the kernel once t's cleanup closes it
// (nothing lands in /run/netns, so nothing can leak from a failed run). Nothing
// in these tests touches the namespace the test process started in.

// needNetAdmin skips t where namespaces cannot be made.
func needNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) to create network namespaces")
	}
}

// newNetns returns a fresh network namespace, closed when t ends.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	needNetAdmin(t)
	type res struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan res)
	go func() {
		// Never unlocked: the runtime ends this thread, now in the new
		// namespace, when the goroutine returns.
		runtime.LockOSThread()
		ns, err := netns.New()
		ch <- res{ns, err}
	}()
	r := <-ch
	if errors.Is(r.err, unix.EPERM) {
		t.Skipf("cannot create a network namespace: %v", r.err)
	}
	if r.err != nil {
		t.Fatalf("create network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// inNetns runs fn on a thread inside ns and waits for it; the thread is
// discarded afterwards, so the caller's namespace never changes. Sockets that
// fn opens stay in ns and may be used from any goroutine.
func inNetns(ns netns.NsHandle, fn func() error) error {
	ch := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			ch <- err
			return
		}
		ch <- fn()
	}()
	return <-ch
}
