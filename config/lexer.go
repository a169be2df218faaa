package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokWord tokKind = iota
	tokLBrace
	tokRBrace
)

// token is a word or a brace. bol marks the first token of a physical line, which is what ends
// a statement: keepalived's grammar is line based.
type token struct {
	kind   tokKind
	bol    bool
	quoted bool
	file   int32 // index in reader.files
	line   int32
	text   string
}

// maxIncludeDepth bounds include nesting (keepalived has no limit, but a loop is caught earlier).
const maxIncludeDepth = 32

// reader lexes a file and its includes into one token stream and records what it read.
type reader struct {
	d     *diags
	files []string
	sum   hash.Hash
	stack []string // absolute paths of the files being read, for loop detection
	toks  []token
	// readFile and glob reach the filesystem for includes; the fuzz test replaces them.
	readFile func(string) ([]byte, error)
	glob     func(string) ([]string, error)
	// configID selects keepalived's conditional lines ("@ID ..."); params holds "$NAME=value"
	// definitions, substituted in the lines that follow (params.go).
	configID string
	params   map[string]string
}

func newReader(d *diags) *reader {
	return &reader{d: d, sum: sha256.New(), readFile: readRegularFile, glob: filepath.Glob, configID: defaultConfigID()}
}

// maxFileSize bounds one configuration file.
const maxFileSize = 64 << 20

// readRegularFile reads a regular file of at most maxFileSize bytes: an include of /dev/zero or a
// FIFO must not hang the daemon.
func readRegularFile(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot read %s: not a regular file", name)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("cannot read %s: larger than %d MiB", name, maxFileSize>>20)
	}
	return os.ReadFile(name)
}

func (r *reader) hash() string { return hex.EncodeToString(r.sum.Sum(nil)) }

// addFile lexes src as the file name, appending its tokens (and its includes' tokens) to r.toks.
func (r *reader) addFile(name string, src []byte) {
	abs, err := filepath.Abs(name)
	if err != nil {
		abs = filepath.Clean(name)
	}
	r.files = append(r.files, name)
	r.sum.Write(src)
	r.stack = append(r.stack, abs)
	r.toks = slices.Grow(r.toks, len(src)/10)
	r.lex(name, int32(len(r.files)-1), string(src))
	r.stack = r.stack[:len(r.stack)-1]
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// lex splits src into tokens, line by line.
func (r *reader) lex(name string, fi int32, src string) {
	line := 0
	for len(src) > 0 {
		line++
		var l string
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			l, src = src[:i], src[i+1:]
		} else {
			l, src = src, ""
		}
		pos := Pos{File: name, Line: line}
		// A parameter definition ending in a backslash goes on on the next line.
		for strings.HasSuffix(l, "\\") && len(src) > 0 && isParamDef(l) {
			var next string
			if i := strings.IndexByte(src, '\n'); i >= 0 {
				next, src = src[:i], src[i+1:]
			} else {
				next, src = src, ""
			}
			line++
			l = l[:len(l)-1] + "\n" + next
		}
		r.lexLine(pos, fi, l)
	}
}

// lexLine appends the tokens of one line; an `include` line is replaced by the included files' tokens.
func (r *reader) lexLine(pos Pos, fi int32, l string) {
	l, ok := r.preprocess(pos, l)
	if !ok {
		return
	}
	if strings.IndexByte(l, '\n') >= 0 { // a multi-line parameter: each of its lines is a line
		for part := range strings.SplitSeq(l, "\n") {
			r.lexLine(pos, fi, part)
		}
		return
	}
	start := len(r.toks)
	bol := true
	nbspWarned := false
	var sb strings.Builder
	i := 0
	for i < len(l) {
		c := l[i]
		switch {
		case isSpace(c):
			i++
			continue
		case c == 0xC2 && i+1 < len(l) && l[i+1] == 0xA0:
			if !nbspWarned {
				r.d.warnf(pos, "", "non-breaking space (U+00A0) treated as a space")
				nbspWarned = true
			}
			i += 2
			continue
		case c == '#' || c == '!':
			i = len(l)
			continue
		case c == '{' || c == '}':
			k := tokLBrace
			if c == '}' {
				k = tokRBrace
			}
			r.toks = append(r.toks, token{kind: k, bol: bol, text: l[i : i+1], file: fi, line: int32(pos.Line)})
			bol = false
			i++
			continue
		}
		// A word: unquoted runs and quoted runs glued together, as a shell would.
		wstart := i
		quoted := false
		plain := true // the word is l[wstart:i] verbatim (no quotes): no copy needed
		sb.Reset()
	word:
		for i < len(l) {
			c := l[i]
			switch {
			case isSpace(c), c == '{', c == '}', c == '#', c == '!',
				c == 0xC2 && i+1 < len(l) && l[i+1] == 0xA0:
				break word
			case c == '"':
				if plain {
					sb.WriteString(l[wstart:i])
					plain = false
				}
				quoted = true
				end := strings.IndexByte(l[i+1:], '"')
				if end < 0 {
					r.d.errorf(pos, "", "unterminated quoted string")
					sb.WriteString(l[i+1:])
					i = len(l)
					break word
				}
				sb.WriteString(l[i+1 : i+1+end])
				i += end + 2
			default:
				if !plain {
					sb.WriteByte(c)
				}
				i++
			}
		}
		text := l[wstart:i]
		if !plain {
			text = sb.String()
		}
		r.toks = append(r.toks, token{kind: tokWord, bol: bol, quoted: quoted, text: text, file: fi, line: int32(pos.Line)})
		bol = false
	}
	if len(r.toks) > start && r.toks[start].kind == tokWord && !r.toks[start].quoted && r.toks[start].text == "include" {
		args := make([]string, 0, len(r.toks)-start-1)
		for _, t := range r.toks[start+1:] {
			args = append(args, t.text)
		}
		r.toks = r.toks[:start]
		r.include(pos, args)
	}
}

// include reads the files named by patterns (globs, relative to the including file's directory).
func (r *reader) include(pos Pos, patterns []string) {
	if len(patterns) == 0 {
		r.d.errorf(pos, "include", "missing file name")
		return
	}
	for _, p := range patterns {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(pos.File), p)
		}
		var matches []string
		if strings.ContainsAny(p, "*?[") {
			m, err := r.glob(p)
			if err != nil {
				r.d.errorf(pos, "include", "bad pattern %q: %v", p, err)
				continue
			}
			if len(m) == 0 {
				r.d.warnf(pos, "include", "pattern %q matches no file", p)
				continue
			}
			matches = m
		} else {
			matches = []string{p}
		}
		for _, m := range matches {
			r.includeFile(pos, m)
		}
	}
}

func (r *reader) includeFile(pos Pos, name string) {
	abs, err := filepath.Abs(name)
	if err != nil {
		abs = filepath.Clean(name)
	}
	for i, s := range r.stack {
		if s == abs {
			chain := append(append([]string(nil), r.stack[i:]...), abs)
			r.d.errorf(pos, "include", "include loop: %s", strings.Join(chain, " -> "))
			return
		}
	}
	if len(r.stack) >= maxIncludeDepth {
		r.d.errorf(pos, "include", "includes nested deeper than %d", maxIncludeDepth)
		return
	}
	src, err := r.readFile(name)
	if err != nil {
		r.d.errorf(pos, "include", "%v", unwrapPathErr(err, name))
		return
	}
	r.addFile(name, src)
}

// unwrapPathErr gives "cannot read NAME: no such file or directory" rather than os's "open NAME: ...".
func unwrapPathErr(err error, name string) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot read %s: %w", name, pe.Err)
	}
	return err
}
