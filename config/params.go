package config

import (
	"os"
	"strings"
)

// keepalived's preprocessing of a line, before it is split into words:
//
//   - "@ID rest": the line counts only when ID is this node's config id; "@^ID rest" only when it
//     is not. The config id is Options.ConfigID, else the host name up to its first dot
//     (keepalived's -i / --config-id and its default).
//   - "$NAME=value" defines a parameter (a value ending in a backslash goes on on the next line);
//     "$NAME" and "${NAME}" in later lines are replaced by its value. A name that is not defined
//     is left as it is, so shell text such as "$1" in a notify script survives. Values are
//     expanded when defined, so a line is expanded once and expansion always ends.
//
// keepalived's ~SEQ(...) lines are not supported: they are reported as unknown words.

const (
	maxParamValue = 64 << 10 // bytes in one parameter's value
	maxParams     = 10000
	maxLineLen    = 1 << 20 // bytes in a line after expansion
)

// defaultConfigID is keepalived's default config id: the host name up to its first dot.
func defaultConfigID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	id, _, _ := strings.Cut(h, ".")
	return id
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// paramName returns the length of the parameter name at the start of s, or 0.
func paramName(s string) int {
	n := 0
	for n < len(s) && isNameByte(s[n], n == 0) {
		n++
	}
	return n
}

// splitCond strips a leading "@ID" from l and says whether the line applies to this node.
func (r *reader) splitCond(pos Pos, l string) (string, bool) {
	t := strings.TrimLeft(l, " \t")
	if !strings.HasPrefix(t, "@") {
		return l, true
	}
	end := strings.IndexAny(t, " \t")
	if end < 0 {
		end = len(t)
	}
	id, neg := t[1:end], false
	if strings.HasPrefix(id, "^") {
		id, neg = id[1:], true
	}
	if id == "" {
		r.d.errorf(pos, "@", "a conditional line needs a config id after @")
		return "", false
	}
	return t[end:], (id == r.configID) != neg
}

// isParamDef reports whether l (after any "@ID") is a "$NAME=value" definition.
func isParamDef(l string) bool {
	t := strings.TrimLeft(l, " \t")
	if strings.HasPrefix(t, "@") {
		if i := strings.IndexAny(t, " \t"); i >= 0 {
			t = strings.TrimLeft(t[i:], " \t")
		}
	}
	if !strings.HasPrefix(t, "$") {
		return false
	}
	n := paramName(t[1:])
	return n > 0 && strings.HasPrefix(strings.TrimLeft(t[1+n:], " \t"), "=")
}

// preprocess applies conditionals, definitions and substitution to one line. ok is false when
// nothing is left to lex.
func (r *reader) preprocess(pos Pos, l string) (string, bool) {
	if !strings.ContainsAny(l, "@$") {
		return l, true
	}
	l, ok := r.splitCond(pos, l)
	if !ok {
		return "", false
	}
	if isParamDef(l) {
		t := strings.TrimLeft(l, " \t")[1:]
		n := paramName(t)
		name := t[:n]
		val := strings.TrimSpace(strings.TrimLeft(t[n:], " \t")[1:])
		val = r.expand(pos, val)
		switch {
		case len(val) > maxParamValue:
			r.d.errorf(pos, "$"+name, "value longer than %d KiB", maxParamValue>>10)
		case len(r.params) >= maxParams:
			r.d.errorf(pos, "$"+name, "more than %d parameters", maxParams)
		default:
			if r.params == nil {
				r.params = map[string]string{}
			}
			r.params[name] = val
		}
		return "", false
	}
	if len(r.params) > 0 && strings.IndexByte(l, '$') >= 0 {
		l = r.expand(pos, l)
	}
	return l, true
}

// expand replaces $NAME and ${NAME} by defined parameters, once, left to right.
func (r *reader) expand(pos Pos, s string) string {
	if len(r.params) == 0 || strings.IndexByte(s, '$') < 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+1:]
		var name string
		var used int
		if strings.HasPrefix(rest, "{") {
			if j := strings.IndexByte(rest, '}'); j > 1 && paramName(rest[1:j]) == j-1 {
				name, used = rest[1:j], j+1
			}
		} else if n := paramName(rest); n > 0 {
			name, used = rest[:n], n
		}
		if v, ok := r.params[name]; ok && name != "" {
			b.WriteString(v)
			s = rest[used:]
		} else {
			b.WriteByte('$')
			s = rest
		}
		if b.Len() > maxLineLen {
			r.d.errorf(pos, "", "line longer than %d MiB after parameter expansion", maxLineLen>>20)
			return ""
		}
	}
	return b.String()
}
