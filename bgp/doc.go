// Package bgp announces VIPs to upstream routers over BGP so that N active halb nodes share a
// VIP by the routers' ECMP. It embeds GoBGP (github.com/osrg/gobgp/v3) as the speaker: halb does
// not implement BGP itself.
//
// The package is a thin shell around two pure cores:
//
//   - Plan (plan.go) compares the desired routes with those announced and says what to add,
//     replace and withdraw; and the desired neighbors with those configured.
//   - Addrs (addrs.go) keeps the VIPs local on a dummy interface while they are announced, and a
//     drain time after their withdrawal, so that packets still in flight are accepted.
//
// The Speaker (speaker.go) owns the GoBGP server: it applies neighbors (AddPeer/UpdatePeer/
// DeletePeer), announces and withdraws paths (AddPath/DeletePath), and keeps, per neighbor, the
// session state and the last error for the admin API. GoBGP retries failed sessions itself (a
// connect attempt every 1-2 s, an idle hold after a NOTIFICATION); a bad neighbor never blocks
// anything else in halb.
//
// The daemon feeds the desired routes from service health; this package imports nothing of halb.
package bgp
