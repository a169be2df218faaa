package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags parses args with fs, whose usage prints synopsis and the flags: on -h/--help to
// stdout with exit 0 (done), on a bad flag to stderr with exit 2 (done). With interleaved,
// flags may also follow the positional arguments (halb realserver VIP... --apply); the
// positional arguments are returned.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string, interleaved bool, stdout, stderr io.Writer) (pos []string, code int, done bool) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	parse := func(a []string) error {
		fs.SetOutput(io.Discard) // the error is printed below, once, to the right stream
		err := fs.Parse(a)
		switch {
		case errors.Is(err, flag.ErrHelp):
			fs.SetOutput(stdout)
			fs.Usage()
		case err != nil:
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			fs.Usage()
		}
		return err
	}
	if err := parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK, true
		}
		return nil, exitUsage, true
	}
	rest := fs.Args()
	for interleaved && len(rest) > 0 {
		pos = append(pos, rest[0])
		if err := parse(rest[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, true
			}
			return nil, exitUsage, true
		}
		rest = fs.Args()
	}
	return append(pos, rest...), exitOK, false
}
