package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"halb/config"
)

// cmdCheck validates a config like `keepalived -t` and `haproxy -c`: it never touches the network.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", defaultConfigPath, "config file to check")
	dump := fs.Bool("dump", false, "print the normalized model as JSON")
	quiet := fs.Bool("q", false, "print errors only")
	configID := fs.String("config-id", "", "config id for keepalived's conditional lines (@ID ...); default: the host name up to its first dot")
	pos, code, done := parseFlags(fs, args, "halb check [-f FILE] [-q] [--dump] [--config-id ID]", false, stdout, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "halb check: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, diags, err := config.LoadWith(*file, config.Options{ConfigID: *configID})
	if !*quiet {
		for _, d := range diags {
			if d.Severity == config.Warning {
				fmt.Fprintln(stderr, d.String())
			}
		}
	}
	if err != nil {
		n := 0
		for _, d := range diags {
			if d.Severity == config.Error {
				fmt.Fprintln(stderr, d.String())
				n++
			}
		}
		if n == 0 { // an error without a diagnostic (e.g. the file cannot be read)
			fmt.Fprintln(stderr, err)
			n = len(unjoin(err))
		}
		fmt.Fprintf(stderr, "%s: configuration invalid: %d error(s)\n", *file, n)
		return exitFailure
	}
	if *dump {
		maskSecrets(cfg)
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "halb check: dump: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: configuration valid: %s\n", *file, cfg.Summary())
		for _, vs := range cfg.NeedsIPVS() {
			fmt.Fprintf(stdout, "  needs the kernel's IPVS: virtual_server %s (lb_kind %s) at %s:%d\n", vs.Name(), vs.LBKind, vs.Pos.File, vs.Pos.Line)
		}
	}
	return exitOK
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{errors.Unwrap(err)}
}

// maskSecrets hides passwords in --dump output (a dump gets pasted into tickets).
func maskSecrets(cfg *config.Config) {
	const mask = "********"
	if cfg.Global.StatsPassword != "" {
		cfg.Global.StatsPassword = mask
	}
	for _, in := range cfg.Instances {
		if in.AuthPass != "" {
			in.AuthPass = mask
		}
	}
	if cfg.BGP != nil {
		for _, n := range cfg.BGP.Neighbors {
			if n.Password != "" {
				n.Password = mask
			}
		}
	}
}
