package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"halb/internal/version"
)

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	in := version.Get()
	if *asJSON {
		b, _ := json.MarshalIndent(in, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintln(stdout, in.String())
	return exitOK
}
