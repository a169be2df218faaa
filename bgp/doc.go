// Package bgp announces VIPs to upstream routers over BGP so that N active halb nodes share a
// VIP by the routers' ECMP. It embeds GoBGP (github.com/osrg/gobgp/v4, v4.8.0) as the speaker:
// halb does not implement BGP itself.
//
// The package is a thin shell around two pure cores:
//
//   - Plan (plan.go) compares the desired routes with those announced and says what to add,
//     replace and withdraw; and the desired neighbors with those configured.
//   - LocalVIPs (local.go) keeps the VIPs local on a dummy interface while they are announced,
//     and Linger (linger.go) a drain time after their withdrawal, so that packets still in
//     flight are accepted.
//
// The Speaker (speaker.go) owns the GoBGP server: it applies neighbors (AddPeer/UpdatePeer/
// DeletePeer), announces and withdraws paths (AddPath/DeletePath), and keeps, per neighbor, the
// session state and the last error for the admin API. GoBGP retries failed sessions itself (the
// first connect attempt after 1.5-2 s, then every ConnectRetry; an idle hold after a session
// reset); a malformed message resets the session, and a bad neighbor never blocks anything else
// in halb. The logger adapter (log.go) turns GoBGP's log/slog records into zap logs and the
// neighbors' last errors, a bad neighbor's warnings at most once per idle hold.
//
// The daemon feeds the desired routes from service health; this package imports nothing of halb.
package bgp
