package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"halb/ipvs"
)

// ownedFile remembers which IPVS services halb created, so that a restart after a crash adopts
// them (and removes what the config no longer has) instead of treating them as someone else's.
func (d *Daemon) ownedFile() string {
	dir := d.opts.StateDir
	if dir == "" {
		dir = "/run/halb"
	}
	return filepath.Join(dir, "ipvs-owned.json")
}

func readOwned(path string) []ipvs.ServiceKey {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var keys []ipvs.ServiceKey
	if json.Unmarshal(b, &keys) != nil {
		return nil
	}
	return keys
}

func writeOwned(path string, keys []ipvs.ServiceKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// saveOwned writes the owned set whenever it changes, until ctx ends.
func (d *Daemon) saveOwned(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last []ipvs.ServiceKey
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := d.lvs.Owned()
		if slices.Equal(cur, last) {
			continue
		}
		if err := writeOwned(d.ownedFile(), cur); err != nil {
			d.log.Warn("ipvs: cannot save the owned services", zap.Error(err))
			continue
		}
		last = cur
	}
}
