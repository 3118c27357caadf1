package salesforce

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// avroAPI decodes what Salesforce sends with bounds on what a payload may claim, so that a
// broken or hostile length prefix cannot make the decoder allocate gigabytes.
var avroAPI = avro.Config{
	MaxByteSliceSize:  1 << 20, // Salesforce caps an event at 1 MB
	MaxSliceAllocSize: 1 << 16,
}.Freeze()

// changeSchema is a change event schema, parsed once per schema id.
type changeSchema struct {
	schema avro.Schema
	// fields are the top-level field names by position, for the bitmap fields; parts the
	// sub-field names of compound fields (Name, addresses) by the parent's position.
	fields []string
	parts  map[int][]string
}

// changeHeader is the part of ChangeEventHeader Tandem reads. changeType is an enum in
// Salesforce's schemas; it decodes into a string.
type changeHeader struct {
	EntityName      string   `avro:"entityName"`
	RecordIDs       []string `avro:"recordIds"`
	ChangeType      string   `avro:"changeType"`
	ChangeOrigin    string   `avro:"changeOrigin"`
	CommitTimestamp int64    `avro:"commitTimestamp"`
	CommitUser      string   `avro:"commitUser"`
	ChangedFields   []string `avro:"changedFields"`
	// Read, not used: an array the decoder skips is not held to the allocation limits, and a
	// forged item count would keep it busy for ever.
	NulledFields []string `avro:"nulledFields"`
	DiffFields   []string `avro:"diffFields"`
}

// changePayload is the part of a change event Tandem reads: the header and the owner. Fields
// of the schema that are not here are skipped.
type changePayload struct {
	Header  changeHeader `avro:"ChangeEventHeader"`
	OwnerID *string      `avro:"OwnerId"`
}

// parseChangeSchema parses the Avro schema JSON GetSchema returns. Each schema gets its own
// cache of named types: two versions of an entity's schema name the same types differently.
func parseChangeSchema(raw string) (*changeSchema, error) {
	sch, err := avro.ParseWithCache(raw, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	rec, ok := sch.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("change event schema is a %s, not a record", sch.Type())
	}
	s := &changeSchema{schema: rec, parts: map[int][]string{}}
	hasHeader := false
	for i, f := range rec.Fields() {
		s.fields = append(s.fields, f.Name())
		if f.Name() == "ChangeEventHeader" {
			hasHeader = true
		}
		if f.Name() != "ChangeEventHeader" && holdsCollection(f.Type(), 0) {
			// Skipped collections are not bounded by the decoder (see changeHeader); change
			// event bodies have none.
			return nil, fmt.Errorf("change event field %s holds an array or map", f.Name())
		}
		if sub := recordOf(f.Type()); sub != nil {
			for _, sf := range sub.Fields() {
				s.parts[i] = append(s.parts[i], sf.Name())
			}
		}
	}
	if !hasHeader {
		return nil, errors.New("change event schema has no ChangeEventHeader")
	}
	return s, nil
}

// holdsCollection reports whether a type is or contains an array or a map.
func holdsCollection(t avro.Schema, depth int) bool {
	if depth > 32 {
		return true
	}
	switch x := t.(type) {
	case *avro.ArraySchema, *avro.MapSchema:
		return true
	case *avro.RefSchema:
		return holdsCollection(x.Schema(), depth+1)
	case *avro.UnionSchema:
		for _, u := range x.Types() {
			if holdsCollection(u, depth+1) {
				return true
			}
		}
	case *avro.RecordSchema:
		for _, f := range x.Fields() {
			if holdsCollection(f.Type(), depth+1) {
				return true
			}
		}
	}
	return false
}

// recordOf returns the record a (possibly nullable) field holds, or nil.
func recordOf(t avro.Schema) *avro.RecordSchema {
	switch x := t.(type) {
	case *avro.RecordSchema:
		return x
	case *avro.RefSchema:
		return recordOf(x.Schema())
	case *avro.UnionSchema:
		for _, u := range x.Types() {
			if r := recordOf(u); r != nil {
				return r
			}
		}
	}
	return nil
}

// decode reads a payload.
func (s *changeSchema) decode(payload []byte) (ChangeEvent, error) {
	var p changePayload
	if err := avroAPI.Unmarshal(s.schema, payload, &p); err != nil {
		return ChangeEvent{}, fmt.Errorf("decode Avro payload: %w", err)
	}
	h := p.Header
	if h.EntityName == "" || h.ChangeType == "" {
		return ChangeEvent{}, errors.New("change event header without entityName or changeType")
	}
	ev := ChangeEvent{
		Entity: h.EntityName, RecordIDs: h.RecordIDs, ChangeType: h.ChangeType, Origin: h.ChangeOrigin, CommitUser: h.CommitUser,
		CommitTime: time.UnixMilli(h.CommitTimestamp).UTC(),
	}
	if p.OwnerID != nil {
		ev.OwnerID = *p.OwnerID
	}
	changed, err := s.expandBitmap(h.ChangedFields)
	if err != nil {
		return ChangeEvent{}, fmt.Errorf("changedFields: %w", err)
	}
	ev.ChangedFields = changed
	return ev, nil
}

// expandBitmap turns a bitmap field (changedFields, nulledFields, diffFields) into field names.
// Salesforce sends these as hexadecimal bitmaps: in the first element bit i stands for the
// field at position i of the schema; an element "p-0x.." holds the bits of the sub-fields of
// the compound field at position p ("Name.FirstName"). Plain field names (as the Streaming
// API sends them) are passed through.
func (s *changeSchema) expandBitmap(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		if v == "" {
			continue
		}
		parent, bits, nested := strings.Cut(v, "-")
		if !nested {
			bits = v
		}
		if !strings.HasPrefix(bits, "0x") && !strings.HasPrefix(bits, "0X") {
			if nested {
				return nil, fmt.Errorf("bitmap %q is not hexadecimal", v)
			}
			out = append(out, v)
			continue
		}
		names := s.fields
		prefix := ""
		if nested {
			pos, err := strconv.Atoi(parent)
			if err != nil || pos < 0 || pos >= len(s.fields) {
				return nil, fmt.Errorf("bitmap %q names no field of the schema", v)
			}
			names, prefix = s.parts[pos], s.fields[pos]+"."
		}
		positions, err := bitPositions(bits[2:])
		if err != nil {
			return nil, fmt.Errorf("bitmap %q: %w", v, err)
		}
		for _, p := range positions {
			if p >= len(names) {
				return nil, fmt.Errorf("bitmap %q names field %d of %d", v, p, len(names))
			}
			out = append(out, prefix+names[p])
		}
	}
	return out, nil
}

// maxBitmapDigits bounds a bitmap: no schema has more than a few thousand fields.
const maxBitmapDigits = 4096

// bitPositions returns the positions of the bits set in a hexadecimal number, lowest first.
func bitPositions(hex string) ([]int, error) {
	if hex == "" || len(hex) > maxBitmapDigits {
		return nil, fmt.Errorf("%d hexadecimal digits", len(hex))
	}
	var out []int
	for i := len(hex) - 1; i >= 0; i-- {
		d, err := strconv.ParseUint(hex[i:i+1], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%q is not a hexadecimal digit", hex[i])
		}
		base := (len(hex) - 1 - i) * 4
		for b := range 4 {
			if d&(1<<b) != 0 {
				out = append(out, base+b)
			}
		}
	}
	return out, nil
}
