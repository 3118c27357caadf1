// Command scheduler starts Tandem's sync cycles. See package scheduler.
package main

import (
	"os"

	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/services/scheduler"
)

func main() {
	var cfg scheduler.Config
	os.Exit(platform.Main("scheduler", os.Args[1:], &cfg.Platform, cfg.RegisterFlags, func(p *platform.Platform) (platform.Service, error) {
		return scheduler.New(cfg, p)
	}))
}
