package record

import (
	"slices"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// SyncKeyField names the sync key in a write command's field list. It is not a field of the
// record's content (it never takes part in hashes or copies) but Tandem's own tag: an update
// that lists only it stamps the pair's key on the target record and changes nothing else. An
// empty field list means every mapped field, so a key-only update needs a name of its own.
const SyncKeyField = "sync_key"

// KeyOnly reports whether a write command's field list asks for the sync key and nothing else.
func KeyOnly(fields []string) bool {
	return len(fields) > 0 && !slices.ContainsFunc(fields, func(f string) bool { return f != SyncKeyField })
}

// ContentFields returns fields without SyncKeyField: the record content a write sets. It is nil
// for a key-only list, which callers must tell apart from an empty list (every field) with KeyOnly.
func ContentFields(fields []string) []string {
	if !slices.Contains(fields, SyncKeyField) {
		return fields
	}
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if f != SyncKeyField {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// CanMatchByName reports whether two records that were never linked may be linked by name: only
// when at least one of them has no email address. Two records whose addresses are both present
// and differ are different people, however alike their names.
func CanMatchByName(a, b *tandemv1.Record) bool {
	ea, eb := EmailKey(a), EmailKey(b)
	return ea == "" || eb == "" || ea == eb
}
