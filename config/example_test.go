package config_test

import (
	"fmt"

	"halb/config"
)

func ExampleParse() {
	src := `
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priorty 150
    virtual_ipaddress {
        198.18.0.10/24
    }
}
virtual_server 198.18.0.10 80 {
    proxy_mode http
    real_server 198.18.1.1 8080 {
        HTTP_GET {
            url {
              path /healthz
            }
        }
    }
}
`
	cfg, diags, err := config.Parse("halb.conf", []byte(src))
	for _, d := range diags {
		fmt.Println(d)
	}
	if err != nil {
		fmt.Println("refused")
		return
	}
	fmt.Println(cfg.Summary())
	// Output:
	// halb.conf:6: priorty: unknown keyword in vrrp_instance; did you mean "priority"?
	// refused
}
