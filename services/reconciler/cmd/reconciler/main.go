// Command reconciler reconciles Exchange and Salesforce changes for Tandem. See package reconciler.
package main

import (
	"os"

	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/services/reconciler"
)

func main() {
	var cfg reconciler.Config
	os.Exit(platform.Main("reconciler", os.Args[1:], &cfg.Platform, cfg.RegisterFlags, func(p *platform.Platform) (platform.Service, error) {
		return reconciler.New(cfg, p)
	}))
}
