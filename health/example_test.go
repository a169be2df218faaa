package health_test

import (
	"context"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"halb/health"
)

// The daemon builds Targets from config.Config, one per real server, and
// wires the callbacks into the proxy's pools and VRRP tracking:
//
//	virtual_server 198.18.0.10 80 {
//	    delay_loop 6
//	    quorum 2
//	    real_server 198.18.1.10 80 {
//	        weight 1
//	        inhibit_on_failure
//	        HTTP_GET {
//	            url { path /health status_code 200 }
//	            connect_timeout 3
//	            retry 3
//	            delay_before_retry 3
//	        }
//	    }
//	}
//
// (Compiled, never run: it has no Output comment, and it must not send
// traffic to a lab address from the host namespace.)
func ExampleScheduler() {
	log := zap.NewNop()
	s := health.NewScheduler(log, func(tr health.Transition) {
		switch tr.Kind {
		case health.KindDown:
			// pool.Down(tr.ID) or, with tr.Inhibit, pool.SetWeight(tr.ID, 0); log tr.Reason
		case health.KindUp, health.KindWeight, health.KindInitial:
			// pool.Up(tr.ID, tr.Weight) when tr.Up
		}
	}, health.SchedulerOptions{
		Script:        health.ScriptOptions{User: "keepalived_script", Security: true},
		NotifyTimeout: 10 * time.Second,
		OnQuorum: func(q health.QuorumChange) {
			// vrrp tracking: a service without quorum lowers priority / faults
		},
	})
	s.Set([]health.Target{{
		ID:      "vs 198.18.0.10:80 / rs 198.18.1.10:80",
		Service: "vs 198.18.0.10:80",
		Checkers: []health.Checker{&health.HTTPChecker{
			Addr: netip.MustParseAddrPort("198.18.1.10:80"),
			URLs: []health.URL{{Path: "/health", Status: []health.StatusRange{{Lo: 200, Hi: 200}}}},
		}},
		Timing:  health.Timing{DelayLoop: 6 * time.Second, ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second},
		Weight:  1,
		Inhibit: true,
	}}, health.Service{ID: "vs 198.18.0.10:80", Quorum: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Start(ctx)
	defer s.Stop()
	// The proxy reports connect failures:
	s.PassiveFail("vs 198.18.0.10:80 / rs 198.18.1.10:80", 3)
	_ = s.Status()
}
