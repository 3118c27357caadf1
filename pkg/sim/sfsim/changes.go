package sfsim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

// Change Data Capture, as Salesforce does it for the entities selected for change
// notifications: every committed create, update, delete and undelete of a Contact or an Event
// — through the API or a backdoor edit — becomes a change event on the event bus with a replay
// id, kept for the retention period (72 hours in Salesforce; here also bounded in number) and
// served over the Pub/Sub API (pubsub.go).

// Change types of ChangeEventHeader.changeType. The GAP_* types (Salesforce could not build
// the event) and GAP_OVERFLOW (a transaction of more than 100,000 changes) are never produced
// by the simulator, but are in the schema.
const (
	ChangeCreate   = "CREATE"
	ChangeUpdate   = "UPDATE"
	ChangeDelete   = "DELETE"
	ChangeUndelete = "UNDELETE"
)

var changeTypes = []string{"CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT"}

// cdcEntities are the objects selected for change notifications.
var cdcEntities = []string{"Contact", "Event"}

// Defaults of PubSubConfig.
const (
	DefaultChangeEventRetention = 72 * time.Hour
	DefaultMaxChangeEvents      = 100_000
	DefaultPubSubKeepalive      = 270 * time.Second
)

// PubSubConfig configures the org's change events and its Pub/Sub API (see Server.PubSub).
type PubSubConfig struct {
	// Retention is how long change events can be replayed: 72 hours by default, as in Salesforce.
	Retention time.Duration
	// MaxEvents bounds how many change events are kept at once (the oldest go first).
	MaxEvents int
	// Keepalive is how long a subscription with events requested waits without any before the
	// server sends an empty FetchResponse carrying the latest replay id: at most 270 seconds
	// in Salesforce. Tests shorten it.
	Keepalive time.Duration
}

// changeEvent is one committed change of one record. Records are immutable, so the event holds
// the version the change produced and is encoded only when a subscriber receives it.
type changeEvent struct {
	replay     uint64
	obj        *object
	rec        *record
	changeType string
	// changed and nulled are the API names of the fields an update changed and set to null.
	changed, nulled []string
	txKey           string
	origin          string
	seq             int
	commitNumber    uint64
	at              time.Time
	user            string
}

// changeLog is the org's event bus for change events. Its own lock orders appends (made under
// Server.mu) against readers (subscriptions, which do not hold Server.mu while they wait).
type changeLog struct {
	retention time.Duration
	max       int
	// origin is the changeOrigin of the REST call writing now; empty for other edits (the UI,
	// backdoors). Set and read under Server.mu.
	origin string

	mu      sync.Mutex
	events  []changeEvent // in replay order
	last    uint64        // replay id of the newest event ever appended
	purged  uint64        // replay id of the newest event dropped; CUSTOM replays must start at or after it
	commits uint64
	tx      uint64
	wake    chan struct{} // closed and replaced on every append
}

func newChangeLog(cfg PubSubConfig) *changeLog {
	l := &changeLog{retention: cfg.Retention, max: cfg.MaxEvents, wake: make(chan struct{})}
	if l.retention <= 0 {
		l.retention = DefaultChangeEventRetention
	}
	if l.max <= 0 {
		l.max = DefaultMaxChangeEvents
	}
	return l
}

// capture records the change events of a transaction about to commit: it compares each
// staged record with the stored version it replaces. Callers hold Server.mu for writing.
func (l *changeLog) capture(t *txn) {
	if l == nil {
		return
	}
	var out []changeEvent
	for _, id := range t.order {
		r := t.pending[id]
		if !slices.Contains(cdcEntities, r.obj.name) {
			continue
		}
		old := t.st.records[id]
		ev := changeEvent{obj: r.obj, rec: r, user: r.str("LastModifiedById"), origin: l.origin}
		switch {
		case old == nil && !r.deleted:
			ev.changeType = ChangeCreate
		case old == nil:
			continue
		case !old.deleted && r.deleted:
			ev.changeType = ChangeDelete
		case old.deleted && !r.deleted:
			ev.changeType = ChangeUndelete
		case !old.deleted:
			ev.changeType = ChangeUpdate
			ev.changed, ev.nulled = diffFields(old, r)
		default:
			continue
		}
		if stamp, ok := r.get("SystemModstamp").(time.Time); ok {
			ev.at = stamp
		} else {
			ev.at = t.now
		}
		out = append(out, ev)
	}
	if len(out) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tx++
	l.commits++
	txKey := fmt.Sprintf("%016x-%08x", l.tx, len(out))
	for i := range out {
		l.last++
		out[i].replay, out[i].txKey, out[i].seq, out[i].commitNumber = l.last, txKey, i+1, l.commits
	}
	l.events = append(l.events, out...)
	l.trim(t.now)
	close(l.wake)
	l.wake = make(chan struct{})
}

// trim drops events past the retention period or the bound. Callers hold l.mu.
func (l *changeLog) trim(now time.Time) {
	drop := 0
	if over := len(l.events) - l.max; over > 0 {
		// Drop a tenth more than needed, so that trimming is not a copy per append.
		drop = min(len(l.events), over+l.max/10)
	}
	for drop < len(l.events) && now.Sub(l.events[drop].at) >= l.retention {
		drop++
	}
	if drop == 0 {
		return
	}
	l.purged = l.events[drop-1].replay
	l.events = slices.Clone(l.events[drop:])
}

// restWrite marks the change events of a REST call's writes with its changeOrigin,
// "com/salesforce/api/rest/<version>;client=<client>" (the client from its Sforce-Call-Options
// header, when it names one), until the returned function is called. Callers hold Server.mu
// for writing.
func (s *Server) restWrite(c *call) func() {
	origin := "com/salesforce/api/rest/" + c.version
	for _, opt := range strings.Split(c.r.Header.Get("Sforce-Call-Options"), ",") {
		if client, ok := strings.CutPrefix(strings.TrimSpace(opt), "client="); ok && client != "" {
			origin += ";client=" + client
		}
	}
	s.pubsub.log.origin = origin
	return func() { s.pubsub.log.origin = "" }
}

// diffFields lists the fields whose values differ between two versions of a record, and those
// the newer version set to null.
func diffFields(old, r *record) (changed, nulled []string) {
	for name, v := range r.fields {
		if ov, ok := old.fields[name]; !ok || !sameValue(ov, v) {
			changed = append(changed, name)
		}
	}
	for name := range old.fields {
		if _, ok := r.fields[name]; !ok {
			changed = append(changed, name)
			nulled = append(nulled, name)
		}
	}
	sort.Strings(changed)
	sort.Strings(nulled)
	return changed, nulled
}

func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

// latest returns the replay id of the newest event: where a LATEST subscription starts.
func (l *changeLog) latest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// earliest returns the position before the oldest event still retained.
func (l *changeLog) earliest(now time.Time) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(now)
	return l.purged
}

// validAfter reports whether a subscription can resume after replay id pos: no event after it
// has been purged, and it is not past the newest event.
func (l *changeLog) validAfter(pos uint64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(now)
	return pos >= l.purged && pos <= l.last
}

// after returns up to n events after replay id pos that match, the replay id the caller may
// move to (the last event returned, or the newest event looked at when none matched), and a
// channel closed when an event is appended.
func (l *changeLog) after(pos uint64, n int, match func(*changeEvent) bool) ([]changeEvent, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].replay > pos })
	var out []changeEvent
	next := pos
	for ; i < len(l.events) && len(out) < n; i++ {
		ev := l.events[i]
		next = ev.replay
		if match(&ev) {
			out = append(out, ev)
		}
	}
	if len(out) > 0 {
		next = out[len(out)-1].replay
	}
	return out, next, l.wake
}

// encodeReplayID is the simulator's replay id: 8 bytes, big-endian. Clients must treat replay
// ids as opaque.
func encodeReplayID(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

func decodeReplayID(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// cdcSchema is the Avro schema of an entity's change events, as GetSchema serves it.
type cdcSchema struct {
	id     string
	json   string
	schema avro.Schema
	// columns are the body fields in schema order (after ChangeEventHeader, position 0).
	columns []cdcColumn
	nfields int // the object's field count the schema was built for
}

// cdcColumn is one top-level body field: a plain field, or a compound (Name, an address) whose
// parts are record fields.
type cdcColumn struct {
	name     string
	field    *Field
	typeName string // the compound's record type
	parts    []cdcPart
}

type cdcPart struct {
	name  string // sub-field name, e.g. FirstName or Street
	field *Field // nil: not in this org (always null)
}

const cdcNamespace = "com.sforce.eventbus"

// addressParts are the sub-fields of Salesforce's compound Address type that the simulator
// stores (Latitude, Longitude and the rest are always null, so they are left out).
var addressParts = []string{"Street", "City", "State", "PostalCode", "Country"}

// excludedFromCDC are fields change events never carry: the record id (in recordIds), the
// deletion flag (the change type says it) and SystemModstamp.
var excludedFromCDC = map[string]bool{"Id": true, "IsDeleted": true, "SystemModstamp": true}

// cdcSchemas caches each entity's schema; a new custom field makes a new schema (and schema id).
type cdcSchemas struct {
	mu    sync.Mutex
	byObj map[*object]*cdcSchema
	byID  map[string]*cdcSchema
}

// get returns o's current change event schema. Callers hold Server.mu (for reading at least).
func (c *cdcSchemas) get(o *object) (*cdcSchema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.byObj[o]; s != nil && s.nfields == len(o.fields) {
		return s, nil
	}
	s, err := buildCDCSchema(o)
	if err != nil {
		return nil, err
	}
	if c.byObj == nil {
		c.byObj, c.byID = map[*object]*cdcSchema{}, map[string]*cdcSchema{}
	}
	c.byObj[o] = s
	c.byID[s.id] = s
	return s, nil
}

func (c *cdcSchemas) byFingerprint(id string) *cdcSchema {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id]
}

// buildCDCSchema derives the change event schema from the object's fields, as Salesforce does:
// the ChangeEventHeader first, then every field nullable, compound fields (Name of a contact,
// its addresses) as nested records.
func buildCDCSchema(o *object) (*cdcSchema, error) {
	s := &cdcSchema{nfields: len(o.fields)}
	compound := map[string]bool{}
	if o.name == "Contact" {
		for _, n := range o.nameFields {
			compound[n] = true
		}
	}
	var addressPrefixes []string
	for _, f := range o.fields {
		for _, p := range []string{"Mailing", "Other", "Billing", "Shipping"} {
			if f.Name == p+"Street" {
				addressPrefixes = append(addressPrefixes, p)
			}
		}
	}
	isAddressPart := func(name string) bool {
		for _, p := range addressPrefixes {
			if rest, ok := strings.CutPrefix(name, p); ok && slices.Contains(addressParts, rest) {
				return true
			}
		}
		return false
	}
	for _, f := range o.fields {
		switch {
		case excludedFromCDC[f.Name]:
		case f.Name == "Name" && len(compound) > 0:
			col := cdcColumn{name: "Name", typeName: "Switchable_PersonName"}
			for _, n := range o.nameFields {
				col.parts = append(col.parts, cdcPart{name: n, field: o.field(n)})
			}
			s.columns = append(s.columns, col)
		case compound[f.Name]:
		case isAddressPart(f.Name):
			for _, p := range addressPrefixes {
				if f.Name != p+"Street" {
					continue
				}
				col := cdcColumn{name: p + "Address", typeName: "Address"}
				for _, part := range addressParts {
					col.parts = append(col.parts, cdcPart{name: part, field: o.field(p + part)})
				}
				s.columns = append(s.columns, col)
			}
		default:
			s.columns = append(s.columns, cdcColumn{name: f.Name, field: f})
		}
	}

	type jsonField struct {
		Name    string `json:"name"`
		Type    any    `json:"type"`
		Doc     string `json:"doc,omitempty"`
		Default any    `json:"default"`
	}
	strArray := map[string]any{"type": "array", "items": "string"}
	header := map[string]any{
		"type": "record", "name": "ChangeEventHeader", "namespace": cdcNamespace,
		"fields": []map[string]any{
			{"name": "entityName", "type": "string"},
			{"name": "recordIds", "type": strArray},
			{"name": "changeType", "type": map[string]any{"type": "enum", "name": "ChangeType", "namespace": cdcNamespace, "symbols": changeTypes}},
			{"name": "changeOrigin", "type": "string"},
			{"name": "transactionKey", "type": "string"},
			{"name": "sequenceNumber", "type": "int"},
			{"name": "commitTimestamp", "type": "long"},
			{"name": "commitNumber", "type": "long"},
			{"name": "commitUser", "type": "string"},
			{"name": "nulledFields", "type": strArray},
			{"name": "diffFields", "type": strArray},
			{"name": "changedFields", "type": strArray},
		},
	}
	fields := []any{map[string]any{"name": "ChangeEventHeader", "type": header, "doc": "Data:ChangeEventHeader"}}
	defined := map[string]bool{}
	for _, col := range s.columns {
		if col.field != nil {
			typ, doc := avroType(col.field)
			fields = append(fields, jsonField{Name: col.name, Type: []any{"null", typ}, Doc: doc})
			continue
		}
		if defined[col.typeName] {
			fields = append(fields, jsonField{Name: col.name, Type: []any{"null", col.typeName}, Doc: "Data:Compound"})
			continue
		}
		defined[col.typeName] = true
		var sub []jsonField
		for _, p := range col.parts {
			typ := any("string")
			if p.field != nil {
				typ, _ = avroType(p.field)
			}
			sub = append(sub, jsonField{Name: p.name, Type: []any{"null", typ}})
		}
		rec := map[string]any{"type": "record", "name": col.typeName, "namespace": cdcNamespace, "fields": sub}
		fields = append(fields, jsonField{Name: col.name, Type: []any{"null", rec}, Doc: "Data:Compound"})
	}
	top := map[string]any{
		"type": "record", "name": o.name + "ChangeEvent", "namespace": cdcNamespace, "fields": fields,
	}
	raw, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	s.json = string(raw)
	if s.schema, err = avro.ParseWithCache(s.json, "", &avro.SchemaCache{}); err != nil {
		return nil, fmt.Errorf("sfsim: change event schema of %s: %w", o.name, err)
	}
	sum := sha256.Sum256(raw)
	s.id = base64.RawURLEncoding.EncodeToString(sum[:16])
	return s, nil
}

// avroType is a field's Avro type and the doc Salesforce gives it.
func avroType(f *Field) (typ, doc string) {
	switch f.Type {
	case TypeBoolean:
		return "boolean", "Data:Boolean"
	case TypeInt:
		return "int", "Data:Integer"
	case TypeDouble:
		return "double", "Data:Double"
	case TypeDateTime:
		return "long", "Data:DateTime"
	case TypeDate:
		return "long", "Data:Date"
	case TypeReference, TypeID:
		return "string", "Data:EntityId"
	}
	return "string", "Data:Text"
}

// avroValue converts a stored value to its Avro form inside a nullable union.
func avroValue(f *Field, v any) any {
	if v == nil {
		return nil
	}
	var out any
	var name string
	switch x := v.(type) {
	case time.Time:
		out, name = x.UnixMilli(), "long"
	case soql.Date:
		out, name = x.In(time.UTC).UnixMilli(), "long"
	case int64:
		if f.Type == TypeInt {
			out, name = int32(x), "int"
		} else {
			out, name = x, "long"
		}
	case float64:
		out, name = x, "double"
	case bool:
		out, name = x, "boolean"
	default:
		out, name = fmt.Sprint(x), "string"
	}
	return map[string]any{name: out}
}

// bitmap encodes field positions as Salesforce's bitmap fields do: bit i of a hexadecimal
// number is the field at position i; "p-0x.." is the bitmap of the parts of the compound field
// at position p.
func bitmap(positions []int, nested map[int][]int) []string {
	out := []string{}
	hexOf := func(bits []int) string {
		n := new(big.Int)
		for _, b := range bits {
			n.SetBit(n, b, 1)
		}
		h := strings.ToUpper(n.Text(16))
		if len(h)%2 == 1 {
			h = "0" + h
		}
		return "0x" + h
	}
	if len(positions) > 0 {
		out = append(out, hexOf(positions))
	}
	parents := make([]int, 0, len(nested))
	for p := range nested {
		parents = append(parents, p)
	}
	sort.Ints(parents)
	for _, p := range parents {
		out = append(out, fmt.Sprintf("%d-%s", p, hexOf(nested[p])))
	}
	return out
}

// encode serialises an event with schema s. Callers hold Server.mu for reading.
func (s *cdcSchema) encode(ev *changeEvent) ([]byte, error) {
	changed := map[string]bool{}
	for _, n := range ev.changed {
		changed[n] = true
	}
	nulled := map[string]bool{}
	for _, n := range ev.nulled {
		nulled[n] = true
	}
	include := func(name string) bool {
		switch ev.changeType {
		case ChangeCreate, ChangeUndelete:
			return true
		case ChangeUpdate:
			return changed[name]
		}
		return false
	}
	var changedPos, nulledPos []int
	changedNested, nulledNested := map[int][]int{}, map[int][]int{}
	body := map[string]any{}
	for i, col := range s.columns {
		pos := i + 1
		if col.field != nil {
			body[col.name] = nil
			if include(col.field.Name) {
				body[col.name] = avroValue(col.field, ev.rec.get(col.field.Name))
			}
			if changed[col.field.Name] {
				changedPos = append(changedPos, pos)
			}
			if nulled[col.field.Name] {
				nulledPos = append(nulledPos, pos)
			}
			continue
		}
		rec := map[string]any{}
		set := false
		for j, p := range col.parts {
			rec[p.name] = nil
			if p.field == nil {
				continue
			}
			if include(p.field.Name) {
				if v := ev.rec.get(p.field.Name); v != nil {
					rec[p.name] = avroValue(p.field, v)
					set = true
				}
			}
			if changed[p.field.Name] {
				changedNested[pos] = append(changedNested[pos], j)
				set = true
			}
			if nulled[p.field.Name] {
				nulledNested[pos] = append(nulledNested[pos], j)
			}
		}
		body[col.name] = nil
		if set {
			body[col.name] = map[string]any{cdcNamespace + "." + col.typeName: rec}
		}
	}
	changedFields, nulledFields := []string{}, []string{}
	if ev.changeType == ChangeUpdate {
		changedFields, nulledFields = bitmap(changedPos, changedNested), bitmap(nulledPos, nulledNested)
	}
	body["ChangeEventHeader"] = map[string]any{
		"entityName": ev.obj.name, "recordIds": []string{ev.rec.id}, "changeType": ev.changeType,
		"changeOrigin": ev.origin, "transactionKey": ev.txKey, "sequenceNumber": int32(ev.seq),
		"commitTimestamp": ev.at.UnixMilli(), "commitNumber": int64(ev.commitNumber), "commitUser": ev.user,
		"nulledFields": nulledFields, "diffFields": []string{}, "changedFields": changedFields,
	}
	return avro.Marshal(s.schema, body)
}
