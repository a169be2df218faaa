package config

import (
	"slices"
	"strings"
	"testing"
)

// lexString lexes src as one file and returns its tokens, rendered compactly: words as they are,
// a "|" before each token that starts a line.
func lexString(t *testing.T, src string) (string, []Diagnostic) {
	t.Helper()
	d := &diags{}
	r := newReader(d)
	r.addFile("t.conf", []byte(src))
	var parts []string
	for _, tk := range r.toks {
		s := tk.text
		if tk.quoted {
			s = "<" + s + ">"
		}
		if tk.bol {
			s = "|" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " "), d.list
}

func TestLexer(t *testing.T) {
	tests := []struct {
		name, src, want string
		warns, errs     int
	}{
		{"words", "a b  c\n", "|a b c", 0, 0},
		{"tabs", "\ta\t\tb\n", "|a b", 0, 0},
		{"lines", "a b\nc d\n", "|a b |c d", 0, 0},
		{"no final newline", "a b", "|a b", 0, 0},
		{"crlf", "a b\r\nc\r\n", "|a b |c", 0, 0},
		{"hash comment", "a # b c\nd", "|a |d", 0, 0},
		{"bang comment", "! whole line\na ! rest", "|a", 0, 0},
		{"comment glued", "a#b", "|a", 0, 0},
		{"braces", "x {\n y 1\n}", "|x { |y 1 |}", 0, 0},
		{"braces glued", "real_server 1.2.3.4 80 {weight 1}", "|real_server 1.2.3.4 80 { weight 1 }", 0, 0},
		{"quoted", `script "/usr/bin/killall -0 haproxy"`, "|script </usr/bin/killall -0 haproxy>", 0, 0},
		{"quoted keeps comment chars", `s "a # b ! c" d`, "|s <a # b ! c> d", 0, 0},
		{"quoted glued", `s ab"c d"e`, "|s <abc de>", 0, 0},
		{"empty quoted", `s ""`, "|s <>", 0, 0},
		{"unterminated quote", `s "abc`, "|s <abc>", 0, 1},
		{"nbsp", "a\u00a0b\u00a0c\nd", "|a b c |d", 1, 0},
		{"nbsp leading", "\u00a0\u00a0a", "|a", 1, 0},
		{"only comments", "# x\n! y\n\n", "", 0, 0},
		{"utf8 word", "label é", "|label é", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, diags := lexString(t, tt.src)
			if got != tt.want {
				t.Errorf("tokens = %q, want %q", got, tt.want)
			}
			var w, e int
			for _, d := range diags {
				if d.Severity == Error {
					e++
				} else {
					w++
				}
			}
			if w != tt.warns || e != tt.errs {
				t.Errorf("warnings=%d errors=%d, want %d/%d: %v", w, e, tt.warns, tt.errs, diags)
			}
		})
	}
}

func TestLexerLineNumbers(t *testing.T) {
	d := &diags{}
	r := newReader(d)
	r.addFile("f.conf", []byte("a\r\n\n  b c\n# x\nd\n"))
	var lines []int
	for _, tk := range r.toks {
		lines = append(lines, int(tk.line))
	}
	if want := []int{1, 3, 3, 5}; !slices.Equal(lines, want) {
		t.Errorf("lines = %v, want %v", lines, want)
	}
}

func TestParserTree(t *testing.T) {
	tests := []struct {
		name, src, want string
		errs            []string // substrings of expected errors, in order
	}{
		{"flat", "a 1\nb 2 3", "a(1) b(2,3)", nil},
		{"block same line", "x y {\n a 1\n}", "x(y){a(1)}", nil},
		{"block next line", "x y\n{\n a 1\n}", "x(y){a(1)}", nil},
		{"one line block", "rs 1 2 { weight 1 }", "rs(1,2){weight(1)}", nil},
		{"nested", "a {\n b {\n c {\n d\n }\n }\n}", "a{b{c{d}}}", nil},
		{"closing shares line", "a {\n b 1 }\nc", "a{b(1)} c", nil},
		{"empty block", "a {}", "a{}", nil},
		{"unterminated", "a {\n b {\n c 1\n", "a{b{c(1)}}", []string{
			"t.conf:2: b: block opened here is never closed", "t.conf:1: a: block opened here is never closed"}},
		{"stray close", "a 1\n}\nb 2", "a(1) b(2)", []string{"t.conf:2: unexpected '}'"}},
		{"orphan open", "a {\n}\n{\n b\n}", "a{}", []string{"t.conf:3: unexpected '{'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &diags{}
			r := newReader(d)
			r.addFile("t.conf", []byte(tt.src))
			top := parseTree(d, r.toks, r.files)
			if got := renderNodes(top); got != tt.want {
				t.Errorf("tree = %q, want %q", got, tt.want)
			}
			var got []string
			for _, x := range d.list {
				got = append(got, x.String())
			}
			if len(got) != len(tt.errs) {
				t.Fatalf("diagnostics = %q, want %d matching %q", got, len(tt.errs), tt.errs)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.errs[i]) {
					t.Errorf("diagnostic %d = %q, want it to contain %q", i, got[i], tt.errs[i])
				}
			}
		})
	}
}

func renderNodes(ns []*node) string {
	var parts []string
	for _, n := range ns {
		s := n.kw
		if len(n.args) > 0 {
			s += "(" + strings.Join(n.args, ",") + ")"
		}
		if n.block {
			s += "{" + renderNodes(n.children) + "}"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestParserDeepNesting(t *testing.T) {
	src := strings.Repeat("a {\n", 100000) + strings.Repeat("}\n", 100000)
	_, diags, err := Parse("deep.conf", []byte(src))
	if err == nil {
		t.Fatal("want an error for deep nesting")
	}
	found := false
	for _, d := range diags {
		found = found || strings.Contains(d.String(), "nested deeper")
	}
	if !found {
		t.Errorf("no 'nested deeper' diagnostic in %v", diags)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"priority", "priorty", 1}, {"lb_algo", "lb_algo", 0},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := suggest("priorty", []string{"state", "priority", "interface"}); got != "priority" {
		t.Errorf("suggest = %q", got)
	}
	if got := suggest("zzzzzzzz", []string{"state", "priority"}); got != "" {
		t.Errorf("suggest far word = %q, want none", got)
	}
}
