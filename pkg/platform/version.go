package platform

import (
	"runtime"
	"runtime/debug"
)

// The build's identity, stamped at build time with
//
//	-ldflags "-X github.com/tandem-sync/tandem/pkg/platform.Version=v1.2.3
//	          -X github.com/tandem-sync/tandem/pkg/platform.Commit=$(git rev-parse HEAD)
//	          -X github.com/tandem-sync/tandem/pkg/platform.Date=$(date -u +%FT%TZ)"
//
// They must stay variables initialised to constants for -X to set them; read them through
// BuildInfo, which falls back on what the Go toolchain recorded when they are not stamped.
var (
	// Version is the release.
	Version = "dev"
	// Commit is the VCS revision built.
	Commit = ""
	// Date is when the build was made (or its commit was, when it comes from the toolchain).
	Date = ""
)

// Build identifies the running binary.
type Build struct {
	// Version is the release: the stamped Version; else the main module's version when the
	// binary was built from a module version (go install ...@v1.2.3); else "dev", followed
	// by the first 12 digits of the commit when known ("dev-0123456789ab") and "+dirty" when
	// the working tree had uncommitted changes. It is the service.version of telemetry.
	Version string
	// Commit is the stamped Commit, else the revision the toolchain recorded (vcs.revision);
	// empty when unknown (built with -buildvcs=false or outside a repository).
	Commit string
	// Modified says the toolchain recorded uncommitted changes in the working tree
	// (vcs.modified) of Commit.
	Modified bool
	// Date is the stamped Date, else the commit's time (vcs.time, RFC 3339); empty when unknown.
	Date string
	// GoVersion is the Go release the binary was built with.
	GoVersion string
}

// BuildInfo returns the running binary's identity: what -ldflags stamped, completed from
// runtime/debug.ReadBuildInfo.
func BuildInfo() Build {
	bi, _ := debug.ReadBuildInfo()
	return buildFrom(Version, Commit, Date, bi)
}

// buildFrom completes the stamped version, commit and date from the toolchain's record bi
// (nil when there is none).
func buildFrom(version, commit, date string, bi *debug.BuildInfo) Build {
	b := Build{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if bi == nil {
		if b.Version == "" {
			b.Version = "dev"
		}
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	var revision, vcsTime string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			vcsTime = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if b.Commit == "" && revision != "" {
		b.Commit, b.Modified = revision, modified
	}
	if b.Date == "" {
		b.Date = vcsTime
	}
	if b.Version != "" && b.Version != "dev" {
		return b
	}
	// A module version (go install ...@v1.2.3, or a pseudo-version the toolchain derived from
	// the repository) already names the commit and carries +dirty itself.
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
		return b
	}
	b.Version = "dev"
	if b.Commit != "" {
		b.Version += "-" + b.Commit[:min(12, len(b.Commit))]
		if b.Modified {
			b.Version += "+dirty"
		}
	}
	return b
}
