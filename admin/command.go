package admin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLine is the longest request line the runtime API accepts, newline
// included.
const MaxLine = 4096

// Op is a runtime API operation.
type Op int

// Operations of the runtime API.
const (
	OpHelp Op = iota + 1
	OpShowInfo
	OpShowServices
	OpShowBackends
	OpShowVRRP
	OpShowIPVS
	OpEnableBackend
	OpDisableBackend
	OpDrainBackend
	OpSetWeight
	OpReload
	OpSetLogLevel
	OpPrompt // switch the connection to interactive mode (several commands)
	OpQuit   // end an interactive connection
	// BGP (bgp.go).
	OpShowBGP
	OpDrainService
	OpEnableService
)

// Command is a parsed request line.
type Command struct {
	Op      Op
	Service string // show backends (optional), enable/disable/drain, set weight
	Backend string // enable/disable/drain, set weight
	Weight  int    // set weight
	Level   string // set loglevel
}

// Mutates reports whether the command changes the daemon's state.
func (c Command) Mutates() bool {
	switch c.Op {
	case OpEnableBackend, OpDisableBackend, OpDrainBackend, OpSetWeight, OpReload, OpSetLogLevel,
		OpDrainService, OpEnableService:
		return true
	}
	return false
}

// String returns the canonical request line of c (without newline);
// ParseCommand(c.String()) returns c.
func (c Command) String() string {
	sb := quoteWord(c.Service + "/" + c.Backend)
	switch c.Op {
	case OpHelp:
		return "help"
	case OpShowInfo:
		return "show info"
	case OpShowServices:
		return "show services"
	case OpShowBackends:
		if c.Service != "" {
			return "show backends " + quoteWord(c.Service)
		}
		return "show backends"
	case OpShowVRRP:
		return "show vrrp"
	case OpShowIPVS:
		return "show ipvs"
	case OpEnableBackend:
		return "enable backend " + sb
	case OpDisableBackend:
		return "disable backend " + sb
	case OpDrainBackend:
		return "drain backend " + sb
	case OpSetWeight:
		return "set weight " + sb + " " + strconv.Itoa(c.Weight)
	case OpReload:
		return "reload"
	case OpSetLogLevel:
		return "set loglevel " + c.Level
	case OpPrompt:
		return "prompt"
	case OpQuit:
		return "quit"
	case OpShowBGP:
		return "show bgp"
	case OpDrainService:
		return "drain service " + quoteWord(c.Service)
	case OpEnableService:
		return "enable service " + quoteWord(c.Service)
	}
	return fmt.Sprintf("op(%d)", int(c.Op))
}

// HelpEntry documents one command.
type HelpEntry struct {
	Command     string `json:"command"`
	Description string `json:"description"`
}

// Help lists the runtime API's commands.
func Help() []HelpEntry {
	return []HelpEntry{
		{"help", "list the commands"},
		{"show info", "process: version, uptime, config file and hash, last reload, log level"},
		{"show services", "services: state, connections, bytes, responses by class"},
		{"show backends [SERVICE]", "backends: state, weight, connections, last check, time in state"},
		{"show vrrp", "VRRP instances: state, priority, tracking, master, adverts"},
		{"show ipvs", "kernel IPVS tables (when IPVS is in use)"},
		{"enable backend SERVICE/BACKEND", "back in service (undo drain/disable); takes traffic when its checks say up"},
		{"disable backend SERVICE/BACKEND", "maintenance: no new connections, persistent clients move elsewhere"},
		{"drain backend SERVICE/BACKEND", "drain: no new connections; open ones finish, persistent clients stay"},
		{"set weight SERVICE/BACKEND N", fmt.Sprintf("set the backend's weight, 0..%d (0 stops new traffic)", MaxWeight)},
		{"reload", "re-read the configuration file; a bad file is refused and the running one kept"},
		{"set loglevel LEVEL", "set the log level: debug, info, warn, error"},
		{"show bgp", "BGP: sessions (state, last error), announced prefixes"},
		{"drain service SERVICE", "withdraw the service's VIP from BGP (new flows go to the other nodes); open connections finish"},
		{"enable service SERVICE", "announce the service's VIP over BGP again (undo drain service)"},
		{"prompt", "interactive mode: several commands on this connection, one JSON reply line each"},
		{"quit", "end an interactive connection"},
	}
}

// Errors of ParseCommand that callers may test for.
var (
	ErrEmpty       = errors.New("empty command")
	ErrLineTooLong = fmt.Errorf("command longer than %d bytes", MaxLine-1)
)

// ParseCommand parses one request line (a trailing "\n" or "\r\n" is
// allowed). Keywords are lower case; words are separated by spaces or tabs;
// control characters, NUL bytes and invalid UTF-8 are refused.
func ParseCommand(line string) (Command, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if len(line) >= MaxLine {
		return Command{}, ErrLineTooLong
	}
	if !utf8.ValidString(line) {
		return Command{}, errors.New("command is not valid UTF-8")
	}
	for i := 0; i < len(line); i++ {
		switch b := line[i]; {
		case b == 0:
			return Command{}, fmt.Errorf("NUL byte at offset %d", i)
		case b == '\t':
		case b < 0x20 || b == 0x7f:
			return Command{}, fmt.Errorf("control character 0x%02x at offset %d", b, i)
		}
	}
	w, err := splitWords(line)
	if err != nil {
		return Command{}, err
	}
	if len(w) == 0 {
		return Command{}, ErrEmpty
	}
	switch w[0] {
	case "help":
		return noArgs(Command{Op: OpHelp}, w, 1)
	case "reload":
		return noArgs(Command{Op: OpReload}, w, 1)
	case "prompt":
		return noArgs(Command{Op: OpPrompt}, w, 1)
	case "quit":
		return noArgs(Command{Op: OpQuit}, w, 1)
	case "show":
		if len(w) < 2 {
			return Command{}, errors.New("show: what? (info, services, backends, vrrp, ipvs)")
		}
		switch w[1] {
		case "info":
			return noArgs(Command{Op: OpShowInfo}, w, 2)
		case "services":
			return noArgs(Command{Op: OpShowServices}, w, 2)
		case "vrrp":
			return noArgs(Command{Op: OpShowVRRP}, w, 2)
		case "ipvs":
			return noArgs(Command{Op: OpShowIPVS}, w, 2)
		case "bgp":
			return noArgs(Command{Op: OpShowBGP}, w, 2)
		case "backends":
			c := Command{Op: OpShowBackends}
			if len(w) >= 3 {
				if err := checkName("service", w[2]); err != nil {
					return Command{}, fmt.Errorf("show backends: %w", err)
				}
				c.Service = w[2]
			}
			return noArgs(c, w, 3)
		}
		return Command{}, fmt.Errorf("show: unknown object %q (info, services, backends, vrrp, ipvs, bgp)", w[1])
	case "enable", "disable", "drain":
		if len(w) >= 2 && w[1] == "service" && w[0] != "disable" {
			return parseServiceOp(w)
		}
		op := map[string]Op{"enable": OpEnableBackend, "disable": OpDisableBackend, "drain": OpDrainBackend}[w[0]]
		if len(w) < 2 || w[1] != "backend" {
			if w[0] != "disable" {
				return Command{}, fmt.Errorf("%s: usage: %s backend SERVICE/BACKEND, or %s service SERVICE", w[0], w[0], w[0])
			}
			return Command{}, fmt.Errorf("%s: usage: %s backend SERVICE/BACKEND", w[0], w[0])
		}
		if len(w) < 3 {
			return Command{}, fmt.Errorf("%s backend: missing SERVICE/BACKEND", w[0])
		}
		s, b, err := splitTarget(w[2])
		if err != nil {
			return Command{}, fmt.Errorf("%s backend: %w", w[0], err)
		}
		return noArgs(Command{Op: op, Service: s, Backend: b}, w, 3)
	case "set":
		if len(w) < 2 {
			return Command{}, errors.New("set: what? (weight, loglevel)")
		}
		switch w[1] {
		case "weight":
			if len(w) < 4 {
				return Command{}, errors.New("set weight: usage: set weight SERVICE/BACKEND N")
			}
			s, b, err := splitTarget(w[2])
			if err != nil {
				return Command{}, fmt.Errorf("set weight: %w", err)
			}
			n, err := parseWeight(w[3])
			if err != nil {
				return Command{}, fmt.Errorf("set weight: %w", err)
			}
			return noArgs(Command{Op: OpSetWeight, Service: s, Backend: b, Weight: n}, w, 4)
		case "loglevel":
			if len(w) < 3 {
				return Command{}, errors.New("set loglevel: usage: set loglevel debug|info|warn|error")
			}
			switch w[2] {
			case "debug", "info", "warn", "error":
			default:
				return Command{}, fmt.Errorf("set loglevel: unknown level %q (debug, info, warn, error)", w[2])
			}
			return noArgs(Command{Op: OpSetLogLevel, Level: w[2]}, w, 3)
		}
		return Command{}, fmt.Errorf("set: unknown setting %q (weight, loglevel)", w[1])
	}
	return Command{}, fmt.Errorf("unknown command %q (try help)", w[0])
}

// parseServiceOp parses `drain service SERVICE` and `enable service SERVICE`.
func parseServiceOp(w []string) (Command, error) {
	op := map[string]Op{"enable": OpEnableService, "drain": OpDrainService}[w[0]]
	if len(w) < 3 {
		return Command{}, fmt.Errorf("%s service: missing SERVICE", w[0])
	}
	if err := checkName("service", w[2]); err != nil {
		return Command{}, fmt.Errorf("%s service: %w", w[0], err)
	}
	return noArgs(Command{Op: op, Service: w[2]}, w, 3)
}

// splitWords splits a line into words separated by spaces or tabs. A word
// in double quotes may hold spaces (service names like "fwmark 5"); there
// are no escapes, and a quote elsewhere in a word is an error.
func splitWords(line string) ([]string, error) {
	var words []string
	isSep := func(b byte) bool { return b == ' ' || b == '\t' }
	for i := 0; i < len(line); {
		switch {
		case isSep(line[i]):
			i++
		case line[i] == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote at offset %d", i)
			}
			words = append(words, line[i+1:i+1+j])
			i += j + 2
			if i < len(line) && !isSep(line[i]) {
				return nil, fmt.Errorf("closing quote at offset %d must end the word", i-1)
			}
		default:
			j := i
			for j < len(line) && !isSep(line[j]) {
				if line[j] == '"' {
					return nil, fmt.Errorf("quote inside a word at offset %d", j)
				}
				j++
			}
			words = append(words, line[i:j])
			i = j
		}
	}
	return words, nil
}

// quoteWord quotes a word for splitWords when it needs it.
func quoteWord(w string) string {
	if w == "" || strings.ContainsAny(w, " \t") {
		return `"` + w + `"`
	}
	return w
}

func noArgs(c Command, w []string, n int) (Command, error) {
	if len(w) > n {
		return Command{}, fmt.Errorf("%s: unexpected argument %q", c.String(), w[n])
	}
	return c, nil
}

func splitTarget(s string) (service, backend string, err error) {
	service, backend, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("%q: want SERVICE/BACKEND", s)
	}
	if err := checkName("service", service); err != nil {
		return "", "", err
	}
	if strings.TrimSpace(backend) == "" {
		return "", "", fmt.Errorf("%q: empty backend name", s)
	}
	if strings.TrimSpace(backend) != backend {
		return "", "", fmt.Errorf("backend name %q has leading or trailing blanks", backend)
	}
	return service, backend, nil
}

func checkName(what, s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s name %q has leading or trailing blanks", what, s)
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%s name %q contains '/'", what, s)
	}
	return nil
}

func parseWeight(s string) (int, error) {
	bad := fmt.Errorf("weight %q is not an integer in 0..%d", s, MaxWeight)
	if s == "" || len(s) > 3 {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxWeight {
		return 0, bad
	}
	return n, nil
}
