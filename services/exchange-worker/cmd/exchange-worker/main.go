// Command exchange-worker reads users' changes from Exchange and writes to Exchange for Tandem.
// See package exchangeworker.
package main

import (
	"os"

	"github.com/tandem-sync/tandem/pkg/platform"
	exchangeworker "github.com/tandem-sync/tandem/services/exchange-worker"
)

func main() {
	var cfg exchangeworker.Config
	os.Exit(platform.Main("exchange-worker", os.Args[1:], &cfg.Platform, cfg.RegisterFlags, func(p *platform.Platform) (platform.Service, error) {
		return exchangeworker.New(cfg, p)
	}))
}
