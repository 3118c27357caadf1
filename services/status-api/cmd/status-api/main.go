// Command status-api serves Tandem's gRPC status and admin API. See package statusapi.
package main

import (
	"os"

	"github.com/tandem-sync/tandem/pkg/platform"
	statusapi "github.com/tandem-sync/tandem/services/status-api"
)

func main() {
	var cfg statusapi.Config
	os.Exit(platform.Main("status-api", os.Args[1:], &cfg.Platform, cfg.RegisterFlags, func(p *platform.Platform) (platform.Service, error) {
		return statusapi.New(cfg, p)
	}))
}
