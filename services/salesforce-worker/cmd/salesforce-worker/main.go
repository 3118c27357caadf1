// Command salesforce-worker polls Salesforce per org and writes to Salesforce for Tandem.
// See package salesforceworker.
package main

import (
	"os"

	"github.com/tandem-sync/tandem/pkg/platform"
	salesforceworker "github.com/tandem-sync/tandem/services/salesforce-worker"
)

func main() {
	var cfg salesforceworker.Config
	os.Exit(platform.Main("salesforce-worker", os.Args[1:], &cfg.Platform, cfg.RegisterFlags, func(p *platform.Platform) (platform.Service, error) {
		return salesforceworker.New(cfg, p)
	}))
}
