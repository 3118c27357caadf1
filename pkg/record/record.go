// Package record holds the operations on canonical records that the sync engine is built on:
// which fields take part in sync, per-field content hashes (the three-way comparison works on
// them), field-level copies for updates and merges, the keys used to match records that were
// never linked, and Tandem's sync keys.
//
// A field is named by its protobuf field name ("given_name", "business_address"). Records are
// the generated tandemv1 types; nothing here depends on either side's protocol.
package record

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// contactSyncFields are the contact fields both sides can read and write. Others are one-sided
// (email_address2/3 and home_address exist only in Exchange; salesforce_account_id is never
// synced). company_name syncs asymmetrically: in Salesforce it is the name of the contact's
// Account, so a company from Exchange sets the Account only where one of exactly that name
// exists; otherwise the Salesforce worker leaves it and says so with a warning
// (syncerr.LeavesFieldUnwritten), which the reconciler takes as agreement on both values.
var contactSyncFields = []string{
	"given_name", "middle_name", "surname", "company_name", "job_title", "department", "email_address1",
	"business_phone", "mobile_phone", "home_phone", "other_phone", "business_fax", "assistant_phone",
	"business_address", "other_address", "birthday", "notes", "assistant_name", "suffix",
}

// eventSyncFields are the event fields both sides can read and write.
var eventSyncFields = []string{
	"subject", "location", "body", "start", "end", "is_all_day", "start_date", "end_date",
	"sensitivity", "show_as",
}

// SyncFields returns the canonical fields of kind that take part in sync, in a fixed order.
func SyncFields(kind tandemv1.RecordKind) []string { return slices.Clone(syncFields(kind)) }

// FieldName returns the sync field named b, as the string this package holds, so that decoders
// of stored field hashes do not allocate the same twenty-odd names for every record; string(b)
// when no kind has a sync field of that name.
func FieldName(b []byte) string {
	for _, fields := range [][]string{contactSyncFields, eventSyncFields} {
		for _, name := range fields {
			if name == string(b) {
				return name
			}
		}
	}
	return string(b)
}

// syncFields is SyncFields without the copy, for this package's hashing, which only reads it.
func syncFields(kind tandemv1.RecordKind) []string {
	switch kind {
	case tandemv1.RecordKind_RECORD_KIND_CONTACT:
		return contactSyncFields
	case tandemv1.RecordKind_RECORD_KIND_EVENT:
		return eventSyncFields
	}
	return nil
}

// KindOf returns the kind of a record's body.
func KindOf(r *tandemv1.Record) tandemv1.RecordKind {
	switch r.GetBody().(type) {
	case *tandemv1.Record_Contact:
		return tandemv1.RecordKind_RECORD_KIND_CONTACT
	case *tandemv1.Record_Event:
		return tandemv1.RecordKind_RECORD_KIND_EVENT
	}
	return tandemv1.RecordKind_RECORD_KIND_UNSPECIFIED
}

// body returns the record's canonical content as a reflective message.
func body(r *tandemv1.Record) protoreflect.Message {
	switch b := r.GetBody().(type) {
	case *tandemv1.Record_Contact:
		return b.Contact.ProtoReflect()
	case *tandemv1.Record_Event:
		return b.Event.ProtoReflect()
	}
	return nil
}

// FieldHashes returns a hash of each sync field's value. An unset field and a field set to its
// empty value hash the same, so "no value" compares equal whichever way a side expresses it.
func FieldHashes(r *tandemv1.Record) map[string]string {
	kind := KindOf(r)
	m := body(r)
	fields := syncFields(kind)
	out := make(map[string]string, len(fields))
	var enc valueBuffer
	for _, name := range fields {
		out[name] = fieldHash(m, name, &enc)
	}
	return out
}

// fieldHash is the hash of a field's value: the first 12 bytes of the SHA-256 of its encoding
// (writeValue), in hex. A field without a value hashes as the empty encoding (EmptyHash). enc
// is scratch space, reused across the fields of a record.
func fieldHash(m protoreflect.Message, name string, enc *valueBuffer) string {
	if m == nil {
		return EmptyHash
	}
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || !m.Has(fd) || emptyMessage(fd, m.Get(fd)) {
		return EmptyHash
	}
	enc.b = enc.b[:0]
	writeValue(enc, fd, m.Get(fd))
	return shortHex(enc.b)
}

// shortHex is the first 12 bytes of the SHA-256 of b, in hex.
func shortHex(b []byte) string {
	sum := sha256.Sum256(b)
	var out [24]byte
	hex.Encode(out[:], sum[:12])
	return string(out[:])
}

// valueBuffer collects a value's encoding before it is hashed at once.
type valueBuffer struct{ b []byte }

func (v *valueBuffer) uint64(n uint64) { v.b = binary.BigEndian.AppendUint64(v.b, n) }

// emptyMessage reports a singular message field that is set but holds nothing, which means the
// same as unset (an address with no parts).
func emptyMessage(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	return fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && proto.Size(v.Message().Interface()) == 0
}

func writeValue(w *valueBuffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	if fd.IsList() {
		l := v.List()
		for i := range l.Len() {
			writeScalar(w, fd, l.Get(i))
			w.b = append(w.b, 0x1e)
		}
		return
	}
	writeScalar(w, fd, v)
}

func writeScalar(w *valueBuffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		w.b = append(w.b, v.String()...)
	case protoreflect.BoolKind:
		if v.Bool() {
			w.b = append(w.b, 1)
		}
	case protoreflect.EnumKind:
		w.uint64(uint64(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		w.uint64(uint64(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		w.uint64(v.Uint())
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		w.uint64(math.Float64bits(v.Float()))
	case protoreflect.BytesKind:
		w.b = append(w.b, v.Bytes()...)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if b, err := (proto.MarshalOptions{Deterministic: true}).MarshalAppend(w.b, v.Message().Interface()); err == nil {
			w.b = b
		}
	}
}

// Hash combines field hashes into one content hash, in SyncFields order.
func Hash(kind tandemv1.RecordKind, fieldHashes map[string]string) string {
	fields := syncFields(kind)
	b := make([]byte, 0, len(fields)*40)
	for _, name := range fields {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, fieldHashes[name]...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ContentHash is Hash(FieldHashes(r)).
func ContentHash(r *tandemv1.Record) string {
	return Hash(KindOf(r), FieldHashes(r))
}

// EmptyHash is the field hash of a field without a value: that of the empty encoding.
var EmptyHash = shortHex(nil)

// ChangedFields returns the sync fields whose hash in cur differs from base, in SyncFields order.
// A field without a base (never agreed on) counts as changed, whatever its value; a nil base is
// the same as an empty one, because protobuf does not tell them apart once stored.
func ChangedFields(kind tandemv1.RecordKind, cur, base map[string]string) []string {
	var out []string
	for _, name := range syncFields(kind) {
		if cur[name] != base[name] {
			out = append(out, name)
		}
	}
	return out
}

// InSyncOrder returns the sync fields among fields, each once, in SyncFields order.
func InSyncOrder(kind tandemv1.RecordKind, fields []string) []string {
	out := make([]string, 0, len(fields))
	for _, name := range syncFields(kind) {
		if slices.Contains(fields, name) {
			out = append(out, name)
		}
	}
	return out
}

// DifferingFields returns the sync fields whose values differ between a and b.
func DifferingFields(a, b *tandemv1.Record) []string {
	ha, hb := FieldHashes(a), FieldHashes(b)
	var out []string
	for _, name := range syncFields(KindOf(a)) {
		if ha[name] != hb[name] {
			out = append(out, name)
		}
	}
	return out
}

// CopyFields returns a copy of dst's content with the named fields taken from src. Fields unset
// in src are cleared. The returned record keeps dst's identity (id, version, sync key, owner).
func CopyFields(dst, src *tandemv1.Record, fields []string) *tandemv1.Record {
	out := proto.Clone(dst).(*tandemv1.Record)
	if out.GetBody() == nil {
		// dst has no content yet (a create): start from an empty body of src's kind.
		switch src.GetBody().(type) {
		case *tandemv1.Record_Contact:
			out.Body = &tandemv1.Record_Contact{Contact: &tandemv1.Contact{}}
		case *tandemv1.Record_Event:
			out.Body = &tandemv1.Record_Event{Event: &tandemv1.Event{}}
		}
	}
	dm, sm := body(out), body(src)
	for _, name := range fields {
		fd := dm.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			continue
		}
		if sm != nil && sm.Has(fd) {
			dm.Set(fd, cloneValue(dm, fd, sm.Get(fd)))
		} else {
			dm.Clear(fd)
		}
	}
	return out
}

// cloneValue copies v so that dst never aliases src's messages or lists.
func cloneValue(dst protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	switch {
	case fd.IsList():
		src := v.List()
		out := dst.NewField(fd).List()
		for i := range src.Len() {
			e := src.Get(i)
			if fd.Kind() == protoreflect.MessageKind {
				e = protoreflect.ValueOfMessage(proto.Clone(e.Message().Interface()).ProtoReflect())
			}
			out.Append(e)
		}
		return protoreflect.ValueOfList(out)
	case fd.Kind() == protoreflect.MessageKind:
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v
}

// Content returns a record holding only the sync fields of r (and its body kind), for
// creating it on the other side.
func Content(r *tandemv1.Record) *tandemv1.Record {
	empty := &tandemv1.Record{}
	return CopyFields(empty, r, syncFields(KindOf(r)))
}

// DisplayName is a human label for a record: the contact's name or email, the event's subject.
func DisplayName(r *tandemv1.Record) string {
	switch b := r.GetBody().(type) {
	case *tandemv1.Record_Contact:
		c := b.Contact
		name := strings.TrimSpace(strings.Join([]string{c.GetGivenName(), c.GetSurname()}, " "))
		if name == "" {
			name = c.GetEmailAddress1()
		}
		return name
	case *tandemv1.Record_Event:
		return b.Event.GetSubject()
	}
	return r.GetId()
}

// EmailKey is the match key by email: the primary email address, lower-cased and trimmed; empty
// when there is none.
func EmailKey(r *tandemv1.Record) string {
	return strings.ToLower(strings.TrimSpace(r.GetContact().GetEmailAddress1()))
}

// NameKey is the match key by name: first name, last name and company, case- and
// space-insensitive; empty unless a last name is present.
func NameKey(r *tandemv1.Record) string {
	c := r.GetContact()
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }
	if norm(c.GetSurname()) == "" {
		return ""
	}
	return norm(c.GetGivenName()) + "\x1f" + norm(c.GetSurname()) + "\x1f" + norm(c.GetCompanyName())
}

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// SyncKey derives the stable sync key for a record pair first seen as record id on side, for a
// user. The same inputs always give the same key, so a retried create carries the key of its
// first attempt. Keys are 32 characters of [A-Z2-7] prefixed with "t1", safe as a Salesforce
// external id and an Exchange extended property value.
func SyncKey(orgID, userID string, kind tandemv1.RecordKind, side tandemv1.System, id string) string {
	h := sha256.New()
	for _, part := range []string{orgID, userID, kind.String(), side.String(), id} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return "t1" + keyEncoding.EncodeToString(h.Sum(nil))[:30]
}
