package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Exit codes of `halb ctl`.
const (
	ExitOK          = 0 // the command succeeded
	ExitRefused     = 1 // the daemon refused the command (its error is on stderr)
	ExitUsage       = 2 // bad flags or command words; nothing was sent
	ExitUnreachable = 3 // the daemon could not be reached or did not answer
)

// DefaultSocket is the runtime API socket `halb ctl` uses when neither -s nor
// HALB_SOCKET is given.
const DefaultSocket = "/run/halb/halb.sock"

// CtlMain runs `halb ctl [flags] COMMAND...` and returns the exit code.
func CtlMain(args []string, stdout, stderr io.Writer) int {
	return ctlMain(args, stdout, stderr, time.Now)
}

func ctlMain(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("halb ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defSock := DefaultSocket
	if env := os.Getenv("HALB_SOCKET"); env != "" {
		defSock = env
	}
	sock := fs.String("s", defSock, "runtime API socket (env HALB_SOCKET)")
	asJSON := fs.Bool("json", false, "print the reply's data as JSON instead of tables")
	timeout := fs.Duration("timeout", 30*time.Second, "give up waiting for the daemon after this long")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: halb ctl [-s SOCKET] [--json] [-timeout D] COMMAND...\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\ncommands:\n")
		tw := tabwriter.NewWriter(stderr, 2, 8, 2, ' ', 0)
		for _, h := range Help() {
			if h.Command == "prompt" || h.Command == "quit" {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\n", h.Command, h.Description)
		}
		_ = tw.Flush()
		fmt.Fprintf(stderr, "\nexit codes: 0 ok, 1 refused by the daemon, 2 usage error, 3 daemon unreachable\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	// Allow --json after the command words too: halb ctl show backends --json.
	var words []string
	for _, a := range fs.Args() {
		if a == "--json" || a == "-json" {
			*asJSON = true
			continue
		}
		// One shell argument is one word, even with a space in it:
		// halb ctl drain backend 'fwmark 5/198.18.0.11:80'.
		if strings.ContainsAny(a, " \t") && !strings.Contains(a, `"`) {
			a = `"` + a + `"`
		}
		words = append(words, a)
	}
	if len(words) == 0 {
		fs.Usage()
		return ExitUsage
	}
	line := strings.Join(words, " ")
	cmd, err := ParseCommand(line)
	if err != nil {
		fmt.Fprintf(stderr, "halb ctl: %v\n", err)
		return ExitUsage
	}
	if cmd.Op == OpPrompt || cmd.Op == OpQuit {
		fmt.Fprintf(stderr, "halb ctl: %q is for interactive sessions on the socket (socat), not for halb ctl\n", cmd.String())
		return ExitUsage
	}
	data, derr, err := RoundTrip(*sock, cmd.String(), *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "halb ctl: %v\n", err)
		return ExitUnreachable
	}
	if derr != "" {
		fmt.Fprintf(stderr, "halb ctl: %s: %s\n", cmd.String(), derr)
		return ExitRefused
	}
	if *asJSON {
		var buf bytes.Buffer
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		if err := json.Indent(&buf, data, "", "  "); err != nil {
			buf.Reset()
			buf.Write(data)
		}
		buf.WriteByte('\n')
		_, _ = stdout.Write(buf.Bytes())
		return ExitOK
	}
	if err := render(stdout, cmd, data, now()); err != nil {
		fmt.Fprintf(stderr, "halb ctl: %v\n", err)
		return ExitUnreachable
	}
	return ExitOK
}

// RoundTrip sends one request line to the admin socket at sock and reads the
// one-line reply (what `halb ctl` does). err is a transport failure; derr is
// the daemon's refusal.
func RoundTrip(sock, line string, timeout time.Duration) (data json.RawMessage, derr string, err error) {
	c, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return nil, "", fmt.Errorf("cannot reach halb at %s: %w", sock, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	_, werr := io.WriteString(c, line+"\n")
	// Even when the write failed, the daemon may have answered (busy).
	// Replies can be big (many backends); no line limit on this side.
	r := bufio.NewReader(c)
	b, err := r.ReadBytes('\n')
	if err != nil && (!errors.Is(err, io.EOF) || len(b) == 0) {
		if werr != nil {
			return nil, "", fmt.Errorf("send to %s: %w", sock, werr)
		}
		return nil, "", fmt.Errorf("read reply from %s: %w", sock, err)
	}
	var resp struct {
		OK    bool            `json:"ok"`
		Error string          `json:"error"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, "", fmt.Errorf("garbled reply from %s: %w", sock, err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "refused (no reason given)"
		}
		return nil, resp.Error, nil
	}
	return resp.Data, "", nil
}

func render(w io.Writer, cmd Command, data json.RawMessage, now time.Time) error {
	dec := func(v any) error {
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("decode reply to %q: %w", cmd.String(), err)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	defer tw.Flush()
	switch cmd.Op {
	case OpHelp:
		var hs []HelpEntry
		if err := dec(&hs); err != nil {
			return err
		}
		for _, h := range hs {
			fmt.Fprintf(tw, "%s\t%s\n", h.Command, h.Description)
		}
	case OpShowInfo:
		var in Info
		if err := dec(&in); err != nil {
			return err
		}
		up := in.Uptime
		if !in.StartedAt.IsZero() {
			up = now.Sub(in.StartedAt)
		}
		reload := "none since start"
		if r := in.LastReload; !r.At.IsZero() {
			reload = fmt.Sprintf("ok %s ago (%s)", fmtDur(now.Sub(r.At)), r.At.Format(time.RFC3339))
			if !r.OK {
				reload = fmt.Sprintf("FAILED %s ago (%s), running config kept: %s", fmtDur(now.Sub(r.At)), r.At.Format(time.RFC3339), r.Error)
			}
		}
		started := "-"
		if !in.StartedAt.IsZero() {
			started = in.StartedAt.Format(time.RFC3339)
		}
		for _, kv := range [][2]string{
			{"version", dash(in.Version)},
			{"go", dash(in.GoVersion)},
			{"pid", fmt.Sprint(in.PID)},
			{"started", started},
			{"uptime", fmtDur(up)},
			{"config", dash(in.ConfigFile)},
			{"config hash", dash(in.ConfigHash)},
			{"last reload", reload},
			{"log level", dash(in.LogLevel)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
	case OpShowServices:
		var ss []Service
		if err := dec(&ss); err != nil {
			return err
		}
		fmt.Fprintln(tw, "SERVICE\tLISTEN\tMODE\tSTATE\tUP\tACTIVE\tTOTAL\tQUEUED\tREFUSED\tIN\tOUT\t2XX\t3XX\t4XX\t5XX\tERRORS")
		for _, s := range ss {
			up := 0
			for _, b := range s.Backends {
				if b.State == StateUp {
					up++
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n",
				s.Name, s.Listen, s.Mode, s.State, up, len(s.Backends), s.Active, s.Total, s.Queued, s.Refused,
				fmtBytes(s.BytesIn), fmtBytes(s.BytesOut), s.Requests[1], s.Requests[2], s.Requests[3], s.Requests[4], s.Errors)
		}
	case OpShowBackends:
		var rows []ServiceBackend
		if err := dec(&rows); err != nil {
			return err
		}
		fmt.Fprintln(tw, "SERVICE\tBACKEND\tADDRESS\tSTATE\tIN STATE\tWEIGHT\tACTIVE\tTOTAL\tLAST CHECK\tCHECKED\tFLAGS")
		for _, r := range rows {
			in := "-"
			if !r.Since.IsZero() {
				in = fmtDur(now.Sub(r.Since))
			}
			verdict, ago := checkText(r.LastCheck, now)
			weight := fmt.Sprint(r.Weight)
			if r.ConfiguredWeight != r.Weight {
				weight += fmt.Sprintf(" (cfg %d)", r.ConfiguredWeight)
			}
			var flags []string
			if r.Backup {
				flags = append(flags, "backup")
			}
			if r.Sorry {
				flags = append(flags, "sorry")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
				r.Service, r.Name, r.Addr, strings.ToUpper(r.State), in, weight, r.Active, r.Total,
				verdict, dash(ago), dash(strings.Join(flags, ",")))
		}
	case OpShowBGP:
		var v BGP
		if err := dec(&v); err != nil {
			return err
		}
		writeBGP(w, v, now)
	case OpShowVRRP:
		var vs []VRRPInstance
		if err := dec(&vs); err != nil {
			return err
		}
		fmt.Fprintln(tw, "INSTANCE\tINTERFACE\tVRID\tSTATE\tPRIO\tEFFECTIVE\tMASTER\tLAST TRANSITION\tSENT\tRECEIVED\tDROPPED\tTRACKING")
		for _, v := range vs {
			lt := "-"
			if t := v.LastTransition; !t.At.IsZero() {
				lt = fmt.Sprintf("%s->%s %s ago", t.From, t.To, fmtDur(now.Sub(t.At)))
				if t.Cause != "" {
					lt += " (" + t.Cause + ")"
				}
			}
			var dropped []string
			for _, k := range sortedKeys(v.Dropped) {
				dropped = append(dropped, fmt.Sprintf("%s=%d", k, v.Dropped[k]))
			}
			var track []string
			for _, c := range v.Contributions {
				t := fmt.Sprintf("%s%+d", c.Name, c.Weight)
				if c.Fault {
					t += "!FAULT"
				}
				track = append(track, t)
			}
			sort.Strings(track)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n",
				v.Name, v.Interface, v.VRID, strings.ToUpper(v.State), v.Priority, v.EffectivePriority, dash(v.MasterAddr), lt,
				v.AdvertsSent, v.AdvertsReceived, dash(strings.Join(dropped, ",")), dash(strings.Join(track, ",")))
		}
	default: // show ipvs and the changes reply with a string
		var s string
		if err := dec(&s); err != nil {
			return err
		}
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		_, _ = io.WriteString(w, s) // as is: ipvsadm-like text keeps its own layout
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
