package config

import (
	"fmt"
	"strings"
)

// Severity of a Diagnostic.
type Severity uint8

// Severities.
const (
	Warning Severity = iota
	Error
)

func (s Severity) String() string { return enumName(int(s), []string{"warning", "error"}, "Severity") }

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one finding about a configuration: an error (the configuration is refused) or a
// warning (it loads, but an operator should look).
type Diagnostic struct {
	Pos      Pos      `json:"pos"`
	Keyword  string   `json:"keyword"`
	Msg      string   `json:"msg"`
	Severity Severity `json:"severity"`
}

// String is "file:line: keyword: message" for errors and "file:line: warning: keyword: message"
// for warnings; the keyword part is left out when there is none.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	if d.Keyword != "" {
		b.WriteString(d.Keyword)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Error makes a Diagnostic usable as an error value (errors.As works on Load's error).
func (d Diagnostic) Error() string { return d.String() }

// maxErrors bounds how many error diagnostics are kept: a 10 MB file of garbage must not produce
// a million lines. Counting continues past it.
const maxErrors = 1000

// diags collects diagnostics during one Parse.
type diags struct {
	list    []Diagnostic
	errors  int
	dropped int
}

func (d *diags) full() bool { return d.errors >= maxErrors }

func (d *diags) add(pos Pos, kw string, sev Severity, format string, args ...any) {
	if sev == Error {
		d.errors++
	}
	if len(d.list) >= 4*maxErrors || (sev == Error && d.errors > maxErrors) {
		d.dropped++
		return
	}
	d.list = append(d.list, Diagnostic{Pos: pos, Keyword: kw, Msg: fmt.Sprintf(format, args...), Severity: sev})
}

func (d *diags) errorf(pos Pos, kw, format string, args ...any) {
	d.add(pos, kw, Error, format, args...)
}

func (d *diags) warnf(pos Pos, kw, format string, args ...any) {
	d.add(pos, kw, Warning, format, args...)
}
