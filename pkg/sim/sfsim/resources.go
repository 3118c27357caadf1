package sfsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// releaseNames maps API versions to the release that introduced them, for the versions list.
var releaseNames = map[int]string{
	55: "Summer '22", 56: "Winter '23", 57: "Spring '23", 58: "Summer '23", 59: "Winter '24",
	60: "Spring '24", 61: "Summer '24", 62: "Winter '25", 63: "Spring '25", 64: "Summer '25",
	65: "Winter '26", 66: "Spring '26",
}

type versionInfo struct {
	Label   string `json:"label"`
	URL     string `json:"url"`
	Version string `json:"version"`
}

func (s *Server) serveVersions(w http.ResponseWriter) {
	var out []versionInfo
	for v := int(minVersion); v <= int(s.maxVersion); v++ {
		label := releaseNames[v]
		if label == "" {
			label = "Release " + strconv.Itoa(v)
		}
		ver := strconv.Itoa(v) + ".0"
		out = append(out, versionInfo{Label: label, URL: "/services/data/v" + ver, Version: ver})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) serveResources(c *call) {
	prefix := "/services/data/v" + c.version + "/"
	res := &jsonObject{}
	for _, name := range []string{"composite", "limits", "query", "queryAll", "sobjects"} {
		res.add(name, prefix+name)
	}
	writeJSON(c.w, http.StatusOK, res)
}

type limit struct {
	Max       int64 `json:"Max"`
	Remaining int64 `json:"Remaining"`
}

// serveLimits answers with the org's limits; only DailyApiRequests moves, the others are a
// typical org's values.
func (s *Server) serveLimits(c *call) {
	used, allocation := s.APIUsage()
	out := map[string]limit{
		"DailyApiRequests":               {Max: allocation, Remaining: max(allocation-used, 0)},
		"DailyAsyncApexExecutions":       {Max: 250000, Remaining: 250000},
		"DailyBulkApiBatches":            {Max: 15000, Remaining: 15000},
		"DailyBulkV2QueryJobs":           {Max: 10000, Remaining: 10000},
		"DailyDurableStreamingApiEvents": {Max: 10000, Remaining: 10000},
		"DataStorageMB":                  {Max: 5, Remaining: 5},
		"FileStorageMB":                  {Max: 20, Remaining: 20},
		"HourlyODataCallout":             {Max: 10000, Remaining: 10000},
		"SingleEmail":                    {Max: 15, Remaining: 15},
		"StreamingApiConcurrentClients":  {Max: 20, Remaining: 20},
	}
	writeJSON(c.w, http.StatusOK, out)
}

type describeURLs struct {
	SObject  string `json:"sobject"`
	Describe string `json:"describe"`
	RowTmpl  string `json:"rowTemplate"`
}

type globalEntry struct {
	Name        string       `json:"name"`
	Label       string       `json:"label"`
	LabelPlural string       `json:"labelPlural"`
	KeyPrefix   string       `json:"keyPrefix"`
	Custom      bool         `json:"custom"`
	Createable  bool         `json:"createable"`
	Updateable  bool         `json:"updateable"`
	Deletable   bool         `json:"deletable"`
	Queryable   bool         `json:"queryable"`
	Replicable  bool         `json:"replicateable"`
	URLs        describeURLs `json:"urls"`
}

func (s *Server) globalEntry(version string, o *object) globalEntry {
	base := "/services/data/v" + version + "/sobjects/" + o.name
	return globalEntry{
		Name: o.name, Label: o.label, LabelPlural: o.labelPlural, KeyPrefix: o.keyPrefix,
		Createable: o.createable, Updateable: o.updateable, Deletable: o.deletable, Queryable: true, Replicable: true,
		URLs: describeURLs{SObject: base, Describe: base + "/describe", RowTmpl: base + "/{ID}"},
	}
}

func (s *Server) serveDescribeGlobal(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	entries := make([]globalEntry, 0, len(s.schema.order))
	for _, o := range s.schema.order {
		entries = append(entries, s.globalEntry(c.version, o))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": maxCollectionSize, "sobjects": entries})
}

func (s *Server) serveSObject(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.schema.object(c.segs[1])
	if o == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"objectDescribe": s.globalEntry(c.version, o), "recentItems": []any{}})
}

type picklistValue struct {
	Active       bool   `json:"active"`
	DefaultValue bool   `json:"defaultValue"`
	Label        string `json:"label"`
	Value        string `json:"value"`
}

type describeField struct {
	Name               string          `json:"name"`
	Label              string          `json:"label"`
	Type               FieldType       `json:"type"`
	SOAPType           string          `json:"soapType"`
	Length             int             `json:"length"`
	ExternalID         bool            `json:"externalId"`
	Unique             bool            `json:"unique"`
	CaseSensitive      bool            `json:"caseSensitive"`
	Nillable           bool            `json:"nillable"`
	Createable         bool            `json:"createable"`
	Updateable         bool            `json:"updateable"`
	DefaultedOnCreate  bool            `json:"defaultedOnCreate"`
	Custom             bool            `json:"custom"`
	Filterable         bool            `json:"filterable"`
	Sortable           bool            `json:"sortable"`
	IDLookup           bool            `json:"idLookup"`
	NameField          bool            `json:"nameField"`
	ReferenceTo        []string        `json:"referenceTo"`
	RelationshipName   *string         `json:"relationshipName"`
	PicklistValues     []picklistValue `json:"picklistValues"`
	RestrictedPicklist bool            `json:"restrictedPicklist"`
	Polymorphic        bool            `json:"polymorphicForeignKey"`
}

type describeChild struct {
	ChildSObject     string `json:"childSObject"`
	Field            string `json:"field"`
	RelationshipName string `json:"relationshipName"`
	CascadeDelete    bool   `json:"cascadeDelete"`
}

func soapTypeName(t FieldType) string {
	switch t {
	case TypeID, TypeReference:
		return "tns:ID"
	case TypeBoolean:
		return "xsd:boolean"
	case TypeDateTime:
		return "xsd:dateTime"
	case TypeDate:
		return "xsd:date"
	case TypeDouble:
		return "xsd:double"
	case TypeInt:
		return "xsd:int"
	}
	return "xsd:string"
}

func describeOf(f *Field) describeField {
	d := describeField{
		Name: f.Name, Label: f.Label, Type: f.Type, SOAPType: soapTypeName(f.Type), Length: f.Length,
		ExternalID: f.ExternalID, Unique: f.Unique, CaseSensitive: f.CaseSensitive,
		Nillable: f.Nillable, Createable: f.Createable, Updateable: f.Updateable,
		DefaultedOnCreate: f.DefaultedOnCreate, Custom: f.Custom,
		Filterable: !f.longText(), Sortable: !f.longText(),
		IDLookup:  f.Type == TypeID || f.ExternalID || f.Name == "Username" || f.Name == "Email",
		NameField: f.Name == "Name", ReferenceTo: append([]string{}, f.ReferenceTo...),
		PicklistValues: []picklistValue{}, RestrictedPicklist: f.RestrictedPicklist,
		Polymorphic: len(f.ReferenceTo) > 1,
	}
	if f.Type == TypeID {
		d.Length = 18
	}
	if f.RelationshipName != "" {
		rel := f.RelationshipName
		d.RelationshipName = &rel
	}
	for _, v := range f.PicklistValues {
		d.PicklistValues = append(d.PicklistValues, picklistValue{Active: true, Label: v, Value: v, DefaultValue: v == f.Default})
	}
	return d
}

func (s *Server) serveDescribe(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.schema.object(c.segs[1])
	if o == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	g := s.globalEntry(c.version, o)
	fields := make([]describeField, len(o.fields))
	for i, f := range o.fields {
		fields[i] = describeOf(f)
	}
	children := []describeChild{}
	for _, ch := range o.children {
		children = append(children, describeChild{ChildSObject: ch.child.name, Field: ch.field.Name, RelationshipName: ch.name, CascadeDelete: ch.cascade})
	}
	res := &jsonObject{}
	res.add("name", o.name)
	res.add("label", o.label)
	res.add("labelPlural", o.labelPlural)
	res.add("keyPrefix", o.keyPrefix)
	res.add("custom", false)
	res.add("createable", o.createable)
	res.add("updateable", o.updateable)
	res.add("deletable", o.deletable)
	res.add("queryable", true)
	res.add("replicateable", true)
	res.add("fields", fields)
	res.add("childRelationships", children)
	res.add("urls", g.URLs)
	writeJSON(c.w, http.StatusOK, res)
}

// Replication windows: getUpdated looks back 30 days, getDeleted as far as the recycle bin
// (15 days).
const (
	updatedWindow = 30 * 24 * time.Hour
	deletedWindow = recycleBinRetention
	maxReplicated = 600_000
)

// replicationRange reads start and end, which Salesforce cuts to the minute, and checks them.
func (s *Server) replicationRange(c *call, window time.Duration) (start, end time.Time, ok bool) {
	q := c.r.URL.Query()
	bad := func(code, msg string) (time.Time, time.Time, bool) {
		writeError(c.w, http.StatusBadRequest, code, msg)
		return time.Time{}, time.Time{}, false
	}
	startText, endText := q.Get("start"), q.Get("end")
	if startText == "" || endText == "" {
		return bad("MISSING_ARGUMENT", "start and end parameters are required")
	}
	start, err := parseTime(startText)
	if err != nil {
		return bad("INVALID_REPLICATION_DATE", "start: "+err.Error()+" (use a URL-encoded ISO 8601 date and time, e.g. 2024-01-02T03:04:05%2B00:00)")
	}
	end, err = parseTime(endText)
	if err != nil {
		return bad("INVALID_REPLICATION_DATE", "end: "+err.Error()+" (use a URL-encoded ISO 8601 date and time, e.g. 2024-01-02T03:04:05%2B00:00)")
	}
	now := s.now().UTC()
	start, end = start.Truncate(time.Minute), end.Truncate(time.Minute)
	if end.After(now) {
		end = now.Truncate(time.Minute)
	}
	switch {
	case !start.Before(end):
		return bad("INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
	case now.Sub(start) > window:
		return bad("INVALID_REPLICATION_DATE", fmt.Sprintf("startDate cannot be more than %d days ago", int(window.Hours()/24)))
	}
	return start, end, true
}

func (s *Server) serveUpdated(c *call) {
	start, end, ok := s.replicationRange(c, updatedWindow)
	if !ok {
		return
	}
	s.mu.RLock()
	o := s.schema.object(c.segs[1])
	var ids []string
	if o != nil {
		s.st.each(o, func(r *record) bool {
			if stamp, _ := r.get("SystemModstamp").(time.Time); !r.deleted && !stamp.Before(start) && stamp.Before(end) {
				ids = append(ids, r.id)
			}
			return true
		})
	}
	covered := s.coveredUntil(end)
	s.mu.RUnlock()
	if o == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if len(ids) > maxReplicated {
		writeError(c.w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. choose start and end dates closer together")
		return
	}
	res := &jsonObject{}
	res.add("ids", append([]string{}, ids...))
	res.add("latestDateCovered", formatTime(covered))
	writeJSON(c.w, http.StatusOK, res)
}

type deletedRecord struct {
	ID          string `json:"id"`
	DeletedDate string `json:"deletedDate"`
}

func (s *Server) serveDeleted(c *call) {
	start, end, ok := s.replicationRange(c, deletedWindow)
	if !ok {
		return
	}
	now := s.now()
	s.mu.Lock()
	s.st.purge(now)
	o := s.schema.object(c.segs[1])
	var out []deletedRecord
	earliest := s.st.created
	if o != nil {
		for _, r := range s.st.bin {
			if r.obj == o && !r.deletedAt.Before(start) && r.deletedAt.Before(end) {
				out = append(out, deletedRecord{ID: r.id, DeletedDate: formatTime(r.deletedAt)})
			}
		}
		if p := s.st.purgedUntil[o]; p.After(earliest) {
			earliest = p
		}
	}
	s.mu.Unlock()
	if o == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	slices.SortFunc(out, func(a, b deletedRecord) int {
		if a.DeletedDate != b.DeletedDate {
			return strings.Compare(a.DeletedDate, b.DeletedDate)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > maxReplicated {
		writeError(c.w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. choose start and end dates closer together")
		return
	}
	res := &jsonObject{}
	res.add("deletedRecords", append([]deletedRecord{}, out...))
	res.add("earliestDateAvailable", formatTime(earliest.Truncate(time.Minute)))
	res.add("latestDateCovered", formatTime(end))
	writeJSON(c.w, http.StatusOK, res)
}
