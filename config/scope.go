package config

import "strconv"

// VIPScope is a virtual address's scope (`scope` in virtual_ipaddress), with rtnetlink's values.
type VIPScope uint8

// Address scopes. The zero value is global, keepalived's default.
const (
	ScopeGlobal  VIPScope = 0
	ScopeSite    VIPScope = 200
	ScopeLink    VIPScope = 253
	ScopeHost    VIPScope = 254
	ScopeNowhere VIPScope = 255
)

var scopeNames = map[VIPScope]string{ScopeGlobal: "global", ScopeSite: "site", ScopeLink: "link", ScopeHost: "host", ScopeNowhere: "nowhere"}

func (s VIPScope) String() string {
	if n, ok := scopeNames[s]; ok {
		return n
	}
	return "VIPScope(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (s VIPScope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// parseScope takes a scope name or its number (as ip-address(8) does). Numbers without a name
// are refused: the kernel would take them, but halb's VRRP speaker programs named scopes only.
func parseScope(s string) (VIPScope, bool) {
	for v, n := range scopeNames {
		if n == s {
			return v, true
		}
	}
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		if _, ok := scopeNames[VIPScope(n)]; ok {
			return VIPScope(n), true
		}
	}
	return 0, false
}
