package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dump writes the simulators' final state to dir as exchange.json and salesforce.json.
func (e *Env) Dump(dir string) error {
	if e.EWS == nil {
		return errors.New("there is nothing to dump: the environment runs against real endpoints")
	}
	return errors.Join(
		WriteDump(dir, ExchangeDumpFile, e.EWS.Dump()),
		WriteDump(dir, SalesforceDumpFile, e.Salesforce.Dump()),
	)
}

// The dump files' names in a dump directory.
const (
	ExchangeDumpFile   = "exchange.json"
	SalesforceDumpFile = "salesforce.json"
)

// WriteDump writes one side's dump (an *ewssim.Dump or *sfsim.Dump) to dir/name, in the one
// format every dump of `tandem dev` and `tandem sim` has: indented JSON and a final newline.
func WriteDump(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	return nil
}
