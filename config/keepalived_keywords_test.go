package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kwSkeletons puts a keyword at "@@" in a minimal config of its block. The blocks' own keywords
// use values that the samples in keywords-2.2.txt do not, so that a keyword which changes the
// model shows in the dump.
var kwSkeletons = map[string]string{
	"top":                "@@\n",
	"global_defs":        "global_defs {\n@@\n}\n",
	"vrrp_script":        "vrrp_script S1 {\n script /bin/false\n@@\n}\n",
	"vrrp_track_file":    "vrrp_track_file F1 {\n file /run/halb-base\n@@\n}\n",
	"vrrp_track_process": "vrrp_track_process P1 {\n process cron\n@@\n}\n",
	"vrrp_instance":      "vrrp_instance V1 {\n interface eth9\n virtual_router_id 51\n virtual_ipaddress {\n  198.18.0.1/32\n }\n@@\n}\n",
	"authentication":     "vrrp_instance V1 {\n interface eth9\n virtual_router_id 51\n virtual_ipaddress {\n  198.18.0.1/32\n }\n authentication {\n@@\n }\n}\n",
	"vrrp_sync_group": "vrrp_instance V1 {\n interface eth9\n virtual_router_id 51\n virtual_ipaddress {\n  198.18.0.1/32\n }\n}\n" +
		"vrrp_instance V2 {\n interface eth9\n virtual_router_id 52\n virtual_ipaddress {\n  198.18.0.2/32\n }\n}\n" +
		"vrrp_sync_group G1 {\n group {\n  V1\n  V2\n }\n@@\n}\n",
	"virtual_server_group": "virtual_server_group VG1 {\n 198.18.0.30 80\n@@\n}\nvirtual_server group VG1 {\n real_server 198.18.0.11 80 {\n }\n}\n",
	"virtual_server":       "virtual_server 198.18.0.10 80 {\n@@\n real_server 198.18.0.11 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
	"real_server":          "vrrp_track_file F1 {\n file /run/halb-base\n}\nvirtual_server 198.18.0.10 80 {\n real_server 198.18.0.11 80 {\n@@\n  TCP_CHECK {\n  }\n }\n}\n",
	"url":                  "virtual_server 198.18.0.10 80 {\n real_server 198.18.0.11 80 {\n  HTTP_GET {\n   url {\n    path /base\n@@\n   }\n  }\n }\n}\n",
}

// kwDefaults are keywords that ask for what halb does anyway, so the model does not change.
var kwDefaults = map[string]bool{
	"vrrp_instance preempt": true, // undoes nopreempt; preempting is the default
}

func kwSkeleton(block string) (string, bool) {
	if s, ok := kwSkeletons[block]; ok {
		return s, true
	}
	if strings.HasSuffix(block, "_CHECK") || strings.HasSuffix(block, "_GET") {
		body := map[string]string{"MISC_CHECK": "   misc_path /bin/false\n", "HTTP_GET": "   url {\n    path /base\n   }\n",
			"SSL_GET": "   url {\n    path /base\n   }\n", "FILE_CHECK": "   track_file F0\n", "DNS_CHECK": "   name base.example.com\n"}[block]
		return "vrrp_track_file F0 {\n file /run/halb-base0\n}\nvrrp_track_file F1 {\n file /run/halb-base\n}\n" +
			"virtual_server 198.18.0.10 80 {\n real_server 198.18.0.11 80 {\n  " + block + " {\n" + body + "@@\n  }\n }\n}\n", true
	}
	return "", false
}

// kwOutcome places line at the skeleton's marker and says what halb made of it: "refused" (an
// error on its line), "warned" (a warning on its line), "acted" (no word, and the model changed),
// "empty" (an empty block that changed nothing: its keywords are tested in their own block) or
// "silent" (no word and no change: accepted and ignored, which must never happen).
func kwOutcome(t *testing.T, key, skel, line string) (string, []Diagnostic) {
	t.Helper()
	text := strings.Replace(skel, "@@", line, 1)
	at := strings.Count(skel[:strings.Index(skel, "@@")], "\n") + 1
	base := strings.Replace(skel, "@@", "", 1)
	// As `halb check` does: Load of a file.
	dir := t.TempDir()
	load := func(src string) (*Config, []Diagnostic, error) {
		path := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(path)
	}
	_, diags, _ := load(text)
	// The enclosing block's header: a warning about the block (one halb skips whole) covers
	// the keywords inside it.
	lines := strings.Split(skel[:strings.Index(skel, "@@")], "\n")
	header, headerKW := 0, ""
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasSuffix(l, "{") && !strings.HasPrefix(l, "url") {
			header, headerKW = i+1, strings.Fields(l)[0]
			break
		}
	}
	var onLine []Diagnostic
	worst := ""
	for _, d := range diags {
		inBlock := d.Pos.Line == header && d.Keyword == headerKW && d.Severity == Warning && strings.Contains(d.Msg, "not implemented")
		if !inBlock && (d.Pos.Line < at || d.Pos.Line > at+strings.Count(line, "\n")) {
			continue
		}
		onLine = append(onLine, d)
		if d.Severity == Error {
			worst = "refused"
		} else if worst == "" {
			worst = "warned"
		}
	}
	if worst != "" {
		return worst, onLine
	}
	dump := func(src string) string {
		cfg, _, err := load(src)
		if err != nil || cfg == nil {
			return "error: " + fmt.Sprint(err)
		}
		cfg.Hash = ""
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if dump(text) != dump(base) {
		return "acted", nil
	}
	if strings.HasSuffix(line, "{\n}") {
		return "empty", nil
	}
	if kwDefaults[key] {
		return "default", nil
	}
	return "silent", nil
}

// TestKeepalivedKeywords runs every keyword of keepalived 2.2's manual through the parser at its
// block: each is acted on, warned about (with its line) or refused, as keywords-2.2.expect says,
// and none is silently accepted.
func TestKeepalivedKeywords(t *testing.T) {
	expect := map[string]string{}
	ef, err := os.ReadFile("testdata/keepalived/keywords-2.2.expect")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ef), "\n") {
		if f := strings.Fields(l); len(f) == 3 && !strings.HasPrefix(l, "#") {
			expect[f[0]+" "+f[1]] = f[2]
		}
	}
	kf, err := os.ReadFile("testdata/keepalived/keywords-2.2.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(kf))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		block, kw, args := f[0], f[1], strings.ReplaceAll(strings.Join(f[2:], " "), `\n`, "\n")
		skel, ok := kwSkeleton(block)
		if !ok {
			t.Errorf("%s %s: no skeleton for block %s", block, kw, block)
			continue
		}
		line := strings.TrimSpace(kw + " " + args)
		if strings.HasSuffix(line, "{") {
			line += "\n}"
		}
		out, diags := kwOutcome(t, block+" "+kw, skel, line)
		n++
		fmt.Fprintf(&got, "%s %s %s\n", block, kw, out)
		key := block + " " + kw
		if out == "silent" {
			t.Errorf("%s: accepted without a word and without effect (`%s`)", key, line)
		}
		if want, ok := expect[key]; !ok {
			t.Errorf("%s: no expectation in keywords-2.2.expect (got %s)", key, out)
		} else if want != out {
			t.Errorf("%s: %s, want %s; diagnostics: %v", key, out, want, diags)
		}
		for _, d := range diags {
			if d.Keyword != kw && d.Keyword != block && !strings.Contains(d.Msg, kw) && !strings.Contains(line, d.Keyword) {
				t.Errorf("%s: diagnostic does not name the keyword: %s", key, d)
			}
		}
	}
	if n < 300 {
		t.Fatalf("only %d keywords read", n)
	}
	if os.Getenv("HALB_KEYWORDS_OUT") != "" {
		_ = os.WriteFile(os.Getenv("HALB_KEYWORDS_OUT"), got.Bytes(), 0o644)
	}
}
