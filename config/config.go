// Package config reads keepalived.conf's configuration language, with halb's own keywords, into
// one typed and validated model: lex (with includes) -> parse statements -> build the model ->
// resolve defaults -> validate. Every finding carries file, line and keyword.
//
// The package has no behaviour beyond that: the daemon builds its runtime objects from Config.
package config

import (
	"errors"
	"fmt"
	"sort"
)

// Load reads the file at path and its includes and returns the validated model.
//
// The returned []Diagnostic holds every finding, warnings and errors alike, sorted by file (in the
// order read) and line. The error is non-nil iff there is at least one Error diagnostic: it is the
// errors.Join of the error diagnostics (each a Diagnostic, so errors.As works), and the *Config is
// then nil.
func Load(path string) (*Config, []Diagnostic, error) { return LoadWith(path, Options{}) }

// Options changes how a file is read.
type Options struct {
	// ConfigID selects keepalived's conditional lines ("@ID ..."); empty: the host name up to
	// its first dot, as keepalived's default.
	ConfigID string
}

// LoadWith is Load with options.
func LoadWith(path string, o Options) (*Config, []Diagnostic, error) {
	src, err := readRegularFile(path)
	if err != nil {
		d := Diagnostic{Pos: Pos{File: path}, Msg: unwrapPathErr(err, path).Error(), Severity: Error}
		return nil, []Diagnostic{d}, d
	}
	return ParseWith(path, src, o)
}

// Parse is Load on src as the contents of the file name. Includes are resolved relative to
// filepath.Dir(name) and read from the OS filesystem.
func Parse(name string, src []byte) (*Config, []Diagnostic, error) {
	return ParseWith(name, src, Options{})
}

// ParseWith is Parse with options.
func ParseWith(name string, src []byte, o Options) (*Config, []Diagnostic, error) {
	d := &diags{}
	r := newReader(d)
	if o.ConfigID != "" {
		r.configID = o.ConfigID
	}
	return parse(r, name, src)
}

func parse(r *reader, name string, src []byte) (*Config, []Diagnostic, error) {
	d := r.d
	r.addFile(name, src)
	top := parseTree(d, r.toks, r.files)
	b := newBuilder(d)
	b.l7.readFile = r.readFile
	b.build(top)
	cfg := b.cfg
	cfg.Files = r.files
	cfg.Hash = r.hash()
	b.resolve()
	b.validate()
	return finish(cfg, d)
}

func finish(cfg *Config, d *diags) (*Config, []Diagnostic, error) {
	order := make(map[string]int, len(cfg.Files))
	for i, f := range cfg.Files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	list := d.list
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i].Pos, list[j].Pos
		if a.File != b.File {
			return order[a.File] < order[b.File]
		}
		return a.Line < b.Line
	})
	if d.dropped > 0 {
		sev := Warning // only warnings were left out: the summary must not turn them into a refusal
		if d.errors > 0 {
			sev = Error
		}
		list = append(list, Diagnostic{
			Pos:      Pos{File: cfg.Files[0]},
			Msg:      fmt.Sprintf("%d more diagnostics not shown (%d errors in all)", d.dropped, d.errors),
			Severity: sev,
		})
	}
	if d.errors == 0 {
		return cfg, list, nil
	}
	var errs []error
	for _, x := range list {
		if x.Severity == Error {
			errs = append(errs, x)
		}
	}
	return nil, list, errors.Join(errs...)
}
