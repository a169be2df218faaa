package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"halb/admin"
)

// labVRRP asks a node's admin socket for its VRRP instances and returns "VI_1 master, VI_2
// backup", or "-" when the node does not answer (stopped, killed, starting).
func labVRRP(sock string) string {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "-"
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "show vrrp\n"); err != nil {
		return "-"
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return "-"
	}
	var resp struct {
		OK   bool                 `json:"ok"`
		Data []admin.VRRPInstance `json:"data"`
	}
	if json.Unmarshal(line, &resp) != nil || !resp.OK {
		return "?"
	}
	var parts []string
	for _, in := range resp.Data {
		parts = append(parts, in.Name+" "+in.State)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
