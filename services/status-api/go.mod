module github.com/tandem-sync/tandem/services/status-api

go 1.26.0

require (
	github.com/tandem-sync/tandem/pkg v0.0.0
	github.com/tandem-sync/tandem/proto v0.0.0
)

replace (
	github.com/tandem-sync/tandem/pkg => ../../pkg
	github.com/tandem-sync/tandem/proto => ../../proto
)
