package ledger

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The ledger's entries are protobuf messages, and a mapping carries two maps of field hashes
// (one hash per sync field, about twenty a map), a pending write one. protobuf-go encodes and
// decodes a map through reflection, one map-entry message at a time: a mapping took 26 µs and
// 400 allocations to store and load again, most of what the reconciler spent on its ledger.
// marshalEntry and unmarshalEntry handle those maps themselves, with protowire, and the rest of
// the message with proto. The bytes are protobuf's wire format all the same: proto.Unmarshal
// reads what marshalEntry writes, and unmarshalEntry reads what proto.Marshal writes, exactly
// as proto.Unmarshal would (FuzzUnmarshalEntry), so stored entries need no migration and a
// reconciler of an earlier release reads them alike.

// stringMap is a map<string, string> field of a ledger entry and where its value lives.
type stringMap struct {
	num protowire.Number
	m   *map[string]string
}

// Field numbers of the string maps (TestStringMapFieldsAreTheDescriptors checks them against
// the generated descriptors).
const (
	mappingExchangeHashesField   protowire.Number = 9  // tandem.v1.Mapping.exchange_field_hashes
	mappingSalesforceHashesField protowire.Number = 11 // tandem.v1.Mapping.salesforce_field_hashes
	pendingSourceHashesField     protowire.Number = 10 // tandem.v1.PendingWrite.source_field_hashes
	mapKeyField                  protowire.Number = 1  // a map entry's key
	mapValueField                protowire.Number = 2  // a map entry's value
)

// stringMaps lists the map<string, string> fields of the entries that have any.
func stringMaps(m proto.Message) []stringMap {
	switch v := m.(type) {
	case *tandemv1.Mapping:
		return []stringMap{{mappingExchangeHashesField, &v.ExchangeFieldHashes}, {mappingSalesforceHashesField, &v.SalesforceFieldHashes}}
	case *tandemv1.PendingWrite:
		return []stringMap{{pendingSourceHashesField, &v.SourceFieldHashes}}
	}
	return nil
}

// marshalEntry is proto.Marshal(m), with m's string maps appended by hand.
func marshalEntry(m proto.Message) ([]byte, error) {
	maps := stringMaps(m)
	if maps == nil {
		return proto.Marshal(m)
	}
	// The rest of the message, in a shallow copy without the maps: m itself is not touched.
	src := m.ProtoReflect()
	rest := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsMap() {
			rest.Set(fd, v)
		}
		return true
	})
	// Fields of a later release's schema go back as they came, as proto.Marshal keeps them.
	rest.SetUnknown(src.GetUnknown())
	size := proto.Size(rest.Interface())
	for _, sm := range maps {
		for k, v := range *sm.m {
			size += 8 + len(k) + len(v)
		}
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, 0, size), rest.Interface())
	if err != nil {
		return nil, err
	}
	for _, sm := range maps {
		for k, v := range *sm.m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("field %d: %w", sm.num, errInvalidUTF8)
			}
			b = protowire.AppendTag(b, sm.num, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(protowire.SizeTag(1)*2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v))))
			b = protowire.AppendTag(b, mapKeyField, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, mapValueField, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	return b, nil
}

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// unmarshalEntry is proto.Unmarshal(b, m), with m's string maps read by hand.
func unmarshalEntry(b []byte, m proto.Message) error {
	maps := stringMaps(m)
	if maps == nil {
		return proto.Unmarshal(b, m)
	}
	type entry struct {
		sm    int
		bytes []byte
	}
	var entries []entry
	// The fields other than the maps: marshalEntry writes them first, so they are usually b's
	// prefix, read where it lies; only fields after a map entry are gathered into a copy.
	var rest []byte
	prefix, mapSeen := 0, false
	for in := b; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return protowire.ParseError(n)
		}
		vn := protowire.ConsumeFieldValue(num, typ, in[n:])
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		sm := -1
		for i := range maps {
			if maps[i].num == num {
				sm = i
			}
		}
		switch {
		case sm >= 0 && typ == protowire.BytesType:
			e, _ := protowire.ConsumeBytes(in[n:])
			entries = append(entries, entry{sm, e})
			mapSeen = true
		case !mapSeen:
			prefix += n + vn
		default:
			// Not a string map, or not in a map's wire type (proto keeps such a field as unknown),
			// after a map entry.
			if rest == nil {
				rest = append(make([]byte, 0, len(b)), b[:prefix]...)
			}
			rest = append(rest, in[:n+vn]...)
		}
		in = in[n+vn:]
	}
	if rest == nil {
		rest = b[:prefix]
	}
	if err := proto.Unmarshal(rest, m); err != nil {
		return err
	}
	for _, e := range entries {
		k, v, err := mapEntry(e.bytes)
		if err != nil {
			return fmt.Errorf("map field %d: %w", maps[e.sm].num, err)
		}
		if *maps[e.sm].m == nil {
			*maps[e.sm].m = make(map[string]string, 24)
		}
		(*maps[e.sm].m)[k] = v
	}
	return nil
}

// mapEntry reads one map<string, string> entry: key and value, each absent meaning "" and the
// last occurrence winning; other fields, or these in another wire type, are skipped, as
// proto.Unmarshal skips them.
func mapEntry(b []byte) (key, value string, err error) {
	k, err := lastString(b, mapKeyField)
	if err != nil {
		return "", "", err
	}
	v, err := lastString(b, mapValueField)
	if err != nil {
		return "", "", err
	}
	return record.FieldName(k), internHash(v), nil
}

// lastString is the last occurrence of the string field num of the encoded message b (nil when
// there is none); every occurrence must be UTF-8, as proto.Unmarshal requires.
func lastString(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	err := eachBytesField(b, num, func(s []byte) error {
		if !utf8.Valid(s) {
			return errInvalidUTF8
		}
		out = s
		return nil
	})
	return out, err
}

// internHash returns the hash of an empty field without allocating it: most fields of most
// records are empty.
func internHash(b []byte) string {
	if string(b) == record.EmptyHash {
		return record.EmptyHash
	}
	return string(b)
}
