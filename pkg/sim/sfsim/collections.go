package sfsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxCollectionSize is the most records one sObject Collections call takes.
const maxCollectionSize = 200

// maxRequestBody bounds request bodies; 200 records of long text fit comfortably.
const maxRequestBody = 50 << 20

// saveResult is one record's outcome in a Collections response.
type saveResult struct {
	ID      string       `json:"id,omitempty"`
	Success bool         `json:"success"`
	Errors  []FieldError `json:"errors"`
	Created *bool        `json:"created,omitempty"`
}

// input is a decoded record of a request body.
type input struct {
	obj    *object
	id     string
	values fields
}

var errTooMany = &apiError{ErrorCode: "EXCEEDED_ID_LIMIT", Message: "record limit reached. cannot submit more than 200 records into this call"}

func decodeBody(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: "Unexpected character in request body: " + err.Error()}
	}
	if dec.More() {
		return &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: "Unexpected content after the JSON body"}
	}
	return nil
}

// decodeRecord reads one record's fields. Unknown fields and values a field cannot hold fail
// the whole request, as they do when Salesforce deserialises the body. Callers hold s.mu.
func (s *Server) decodeRecord(raw map[string]any, obj *object) (*input, *apiError) {
	if attrs, ok := raw["attributes"].(map[string]any); ok {
		if typ, ok := attrs["type"].(string); ok && typ != "" {
			o := s.schema.object(typ)
			if o == nil {
				return nil, &apiError{ErrorCode: "INVALID_TYPE", Message: fmt.Sprintf("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", typ)}
			}
			if obj != nil && o != obj {
				return nil, &apiError{ErrorCode: "INVALID_TYPE", Message: fmt.Sprintf("Record type %s does not match the sObject %s in the URL", o.name, obj.name)}
			}
			obj = o
		}
	}
	if obj == nil {
		return nil, &apiError{ErrorCode: "INVALID_TYPE", Message: "Each record must specify its sObject type in attributes.type"}
	}
	in := &input{obj: obj, values: fields{}}
	for key, v := range raw {
		if key == "attributes" {
			continue
		}
		if strings.EqualFold(key, "Id") {
			id, ok := v.(string)
			if !ok && v != nil {
				return nil, &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: fmt.Sprintf("Cannot deserialize instance of id from value %v", v)}
			}
			in.id = id
			continue
		}
		f := obj.field(key)
		if f == nil {
			return nil, &apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", key, obj.name)}
		}
		val, err := coerce(f, v)
		if err != nil {
			return nil, &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: err.Error()}
		}
		in.values[f.Name] = val
	}
	return in, nil
}

// saveOp performs one record's write inside t; isNew marks a create, whose id a rollback
// withdraws.
type saveOp func(t *txn, i int) (id string, isNew bool, created *bool, errs []FieldError)

var rolledBack = FieldError{
	StatusCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
	Message:    "Record rolled back because not all records were valid and the request was using AllOrNone header",
	Fields:     []string{},
}

// saveAll runs n writes: in one transaction that fails whole when allOrNone, else one
// transaction per record. Either way the records the call saves share one SystemModstamp, the
// call's, as Salesforce stamps the records of one request alike. Callers hold s.mu for writing.
func (s *Server) saveAll(allOrNone bool, n int, op saveOp) []saveResult {
	now := s.now()
	s.st.purge(now)
	stamp := s.st.stamp(now)
	results := make([]saveResult, n)
	record := func(i int, id string, created *bool, errs []FieldError) {
		if errs != nil {
			results[i] = saveResult{ID: id, Errors: errs}
			return
		}
		results[i] = saveResult{ID: id, Success: true, Errors: []FieldError{}, Created: created}
	}
	begin := func() *txn {
		t := s.st.begin(now, s.locked)
		t.sharing = true
		t.stamped = stamp
		return t
	}
	if allOrNone {
		t := begin()
		failed := false
		isNew := make([]bool, n)
		for i := range n {
			id, fresh, created, errs := op(t, i)
			isNew[i] = fresh
			if errs != nil {
				failed = true
				if fresh {
					id = ""
				}
			}
			record(i, id, created, errs)
		}
		if !failed {
			t.commit()
			s.afterCommit(t)
			return results
		}
		for i := range results {
			if results[i].Success {
				id := results[i].ID
				if isNew[i] {
					id = ""
				}
				results[i] = saveResult{ID: id, Errors: []FieldError{rolledBack}}
			}
		}
		return results
	}
	for i := range n {
		t := begin()
		id, fresh, created, errs := op(t, i)
		if errs == nil {
			t.commit()
			s.afterCommit(t)
		} else if fresh {
			id = ""
		}
		record(i, id, created, errs)
	}
	return results
}

// afterCommit ends the sessions of users a transaction deactivated.
func (s *Server) afterCommit(t *txn) {
	for _, id := range t.deactivated {
		s.auth.endSessionsOf(id)
	}
}

type collectionBody struct {
	AllOrNone bool             `json:"allOrNone"`
	Records   []map[string]any `json:"records"`
}

// decodeCollection reads a Collections body and decodes its records against obj (nil: each
// record names its type).
func (s *Server) decodeCollection(c *call, obj *object) (*collectionBody, []*input, bool) {
	var body collectionBody
	if err := decodeBody(c.r, &body); err != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*err})
		return nil, nil, false
	}
	if len(body.Records) > maxCollectionSize {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*errTooMany})
		return nil, nil, false
	}
	inputs := make([]*input, len(body.Records))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, raw := range body.Records {
		in, err := s.decodeRecord(raw, obj)
		if err != nil {
			writeJSON(c.w, http.StatusBadRequest, []apiError{*err})
			return nil, nil, false
		}
		inputs[i] = in
	}
	return &body, inputs, true
}

func (s *Server) serveCollectionsCreate(c *call) {
	body, inputs, ok := s.decodeCollection(c, nil)
	if !ok {
		return
	}
	s.mu.Lock()
	endWrite := s.restWrite(c)
	results := s.saveAll(body.AllOrNone, len(inputs), func(t *txn, i int) (string, bool, *bool, []FieldError) {
		in := inputs[i]
		if in.id != "" {
			return "", true, nil, fieldErr("INVALID_FIELD", "cannot specify Id in an insert call", "Id")
		}
		id, errs := t.insert(in.obj, in.values, c.userID)
		return id, true, nil, errs
	})
	endWrite()
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, results)
}

func (s *Server) serveCollectionsUpdate(c *call) {
	body, inputs, ok := s.decodeCollection(c, nil)
	if !ok {
		return
	}
	s.mu.Lock()
	endWrite := s.restWrite(c)
	results := s.saveAll(body.AllOrNone, len(inputs), func(t *txn, i int) (string, bool, *bool, []FieldError) {
		in := inputs[i]
		if in.id == "" {
			return "", false, nil, fieldErr("MISSING_ARGUMENT", "Id not specified in an update call")
		}
		id := in.id
		if norm, ok := NormalizeID(id); ok {
			id = norm
		}
		return id, false, nil, t.update(in.obj, in.id, in.values, c.userID)
	})
	endWrite()
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, results)
}

func (s *Server) serveCollectionsUpsert(c *call) {
	s.mu.RLock()
	obj := s.schema.object(c.segs[2])
	var ext *Field
	if obj != nil {
		ext = obj.field(c.segs[3])
	}
	s.mu.RUnlock()
	switch {
	case obj == nil:
		writeError(c.w, http.StatusBadRequest, "INVALID_TYPE", fmt.Sprintf("sObject type '%s' is not supported.", c.segs[2]))
		return
	case ext == nil:
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+c.segs[3])
		return
	case !ext.ExternalID && ext.Name != "Id":
		writeError(c.w, http.StatusBadRequest, "INVALID_FIELD",
			fmt.Sprintf("Field name provided, %s is not an External ID or indexed field for %s", ext.Name, obj.name))
		return
	}
	body, inputs, ok := s.decodeCollection(c, obj)
	if !ok {
		return
	}
	// Salesforce refuses every record whose external id appears twice in one call.
	counts := map[string]int{}
	for _, in := range inputs {
		if v, ok := in.values[ext.Name].(string); ok {
			counts[uniqueKey(ext, v)]++
		}
	}
	s.mu.Lock()
	endWrite := s.restWrite(c)
	results := s.saveAll(body.AllOrNone, len(inputs), func(t *txn, i int) (string, bool, *bool, []FieldError) {
		in := inputs[i]
		key, _ := in.values[ext.Name].(string)
		if ext.Name == "Id" {
			key = in.id
		}
		if key == "" {
			return "", true, nil, fieldErr("MISSING_ARGUMENT", ext.Name+" not specified")
		}
		if ext.Name != "Id" && counts[uniqueKey(ext, key)] > 1 {
			return "", true, nil, fieldErr("DUPLICATE_EXTERNAL_ID", "Duplicate external id specified: "+key, ext.Name)
		}
		existing := ""
		if ext.Name == "Id" {
			existing = key
		} else {
			existing = t.uniqueHolder(ext, key, "")
		}
		if existing == "" {
			id, errs := t.insert(obj, in.values, c.userID)
			created := true
			if errs != nil {
				return "", true, nil, errs
			}
			return id, true, &created, nil
		}
		created := false
		values := in.values
		if errs := t.update(obj, existing, values, c.userID); errs != nil {
			return existing, false, nil, errs
		}
		return existing, false, &created, nil
	})
	endWrite()
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, results)
}

func (s *Server) serveCollectionsDelete(c *call) {
	q := c.r.URL.Query()
	raw := q.Get("ids")
	if raw == "" {
		writeError(c.w, http.StatusBadRequest, "MISSING_ARGUMENT", "ids parameter is required")
		return
	}
	ids := strings.Split(raw, ",")
	if len(ids) > maxCollectionSize {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*errTooMany})
		return
	}
	allOrNone := strings.EqualFold(q.Get("allOrNone"), "true")
	s.mu.Lock()
	endWrite := s.restWrite(c)
	results := s.saveAll(allOrNone, len(ids), func(t *txn, i int) (string, bool, *bool, []FieldError) {
		id := strings.TrimSpace(ids[i])
		rid, errs := t.remove(nil, id, c.userID)
		if rid == "" {
			rid = id
		}
		return rid, false, nil, errs
	})
	endWrite()
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, results)
}

// serveCollectionsRetrieve answers GET composite/sobjects/{SObject}?ids=&fields= (or the same
// as a POST body): the records in the order asked, null for those that do not exist.
func (s *Server) serveCollectionsRetrieve(c *call) {
	var ids, names []string
	if c.r.Method == http.MethodPost {
		var body struct {
			IDs    []string `json:"ids"`
			Fields []string `json:"fields"`
		}
		if err := decodeBody(c.r, &body); err != nil {
			writeJSON(c.w, http.StatusBadRequest, []apiError{*err})
			return
		}
		ids, names = body.IDs, body.Fields
	} else {
		q := c.r.URL.Query()
		if v := q.Get("ids"); v != "" {
			ids = strings.Split(v, ",")
		}
		if v := q.Get("fields"); v != "" {
			names = strings.Split(v, ",")
		}
	}
	if len(ids) == 0 || len(names) == 0 {
		writeError(c.w, http.StatusBadRequest, "MISSING_ARGUMENT", "ids and fields are required")
		return
	}
	if len(ids) > 2000 {
		writeError(c.w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 2000 records into this call")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	obj := s.schema.object(c.segs[2])
	if obj == nil {
		writeError(c.w, http.StatusBadRequest, "INVALID_TYPE", fmt.Sprintf("sObject type '%s' is not supported.", c.segs[2]))
		return
	}
	cols, apiErr := fieldColumns(obj, names)
	if apiErr != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*apiErr})
		return
	}
	out := make([]any, len(ids))
	for i, raw := range ids {
		id, ok := NormalizeID(strings.TrimSpace(raw))
		if !ok {
			writeError(c.w, http.StatusBadRequest, "MALFORMED_ID", "malformed id "+raw)
			return
		}
		r := s.st.records[id]
		if r == nil || r.deleted || r.obj != obj {
			out[i] = nil
			continue
		}
		out[i] = s.render(c.version, r, obj.name, cols, false)
	}
	writeJSON(c.w, http.StatusOK, out)
}

func fieldColumns(obj *object, names []string) ([]*column, *apiError) {
	var cols []*column
	for _, n := range names {
		f := obj.field(strings.TrimSpace(n))
		if f == nil {
			return nil, &apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", strings.TrimSpace(n), obj.name)}
		}
		cols = append(cols, &column{key: f.Name, field: f})
	}
	return cols, nil
}

// singleRecordStatus maps a record-level failure of the single-record resources to its HTTP
// status: a record that is not there is a 404.
func singleRecordStatus(errs []FieldError) (int, []apiError) {
	out := make([]apiError, len(errs))
	status := http.StatusBadRequest
	for i, e := range errs {
		out[i] = apiError{Message: e.Message, ErrorCode: e.StatusCode, Fields: e.Fields}
		switch e.StatusCode {
		case "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID":
			if len(e.Fields) == 0 {
				status = http.StatusNotFound
				out[i] = apiError{Message: "The requested resource does not exist", ErrorCode: "NOT_FOUND"}
			}
		case "ENTITY_IS_DELETED":
			if len(e.Fields) == 0 {
				status = http.StatusNotFound
			}
		}
	}
	return status, out
}

// singleRecordInput resolves the object named in the path of a single-record create or update
// and decodes its fields from raw, or answers the request with the error. The caller holds s.mu.
func (s *Server) singleRecordInput(c *call, raw map[string]any) (*object, *input, bool) {
	obj := s.schema.object(c.segs[1])
	if obj == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return nil, nil, false
	}
	delete(raw, "attributes")
	in, apiErr := s.decodeRecord(raw, obj)
	if apiErr != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*apiErr})
		return nil, nil, false
	}
	return obj, in, true
}

func (s *Server) serveRecordCreate(c *call) {
	var raw map[string]any
	if err := decodeBody(c.r, &raw); err != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*err})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.restWrite(c)()
	obj, in, ok := s.singleRecordInput(c, raw)
	if !ok {
		return
	}
	res := s.saveAll(true, 1, func(t *txn, _ int) (string, bool, *bool, []FieldError) {
		id, errs := t.insert(obj, in.values, c.userID)
		return id, true, nil, errs
	})[0]
	if !res.Success {
		status, errs := singleRecordStatus(res.Errors)
		writeJSON(c.w, status, errs)
		return
	}
	writeJSON(c.w, http.StatusCreated, res)
}

func (s *Server) serveRecordUpdate(c *call) {
	var raw map[string]any
	if err := decodeBody(c.r, &raw); err != nil {
		writeJSON(c.w, http.StatusBadRequest, []apiError{*err})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.restWrite(c)()
	obj, in, ok := s.singleRecordInput(c, raw)
	if !ok {
		return
	}
	res := s.saveAll(true, 1, func(t *txn, _ int) (string, bool, *bool, []FieldError) {
		return c.segs[2], false, nil, t.update(obj, c.segs[2], in.values, c.userID)
	})[0]
	if !res.Success {
		status, errs := singleRecordStatus(res.Errors)
		writeJSON(c.w, status, errs)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveRecordDelete(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.restWrite(c)()
	obj := s.schema.object(c.segs[1])
	if obj == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	res := s.saveAll(true, 1, func(t *txn, _ int) (string, bool, *bool, []FieldError) {
		id, errs := t.remove(obj, c.segs[2], c.userID)
		return id, false, nil, errs
	})[0]
	if !res.Success {
		status, errs := singleRecordStatus(res.Errors)
		writeJSON(c.w, status, errs)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveRecordGet(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	obj := s.schema.object(c.segs[1])
	if obj == nil {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	id, ok := NormalizeID(c.segs[2])
	if !ok {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+c.segs[2])
		return
	}
	r := s.st.records[id]
	if r == nil || r.obj != obj || r.deleted {
		writeError(c.w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	var cols []*column
	if v := c.r.URL.Query().Get("fields"); v != "" {
		var apiErr *apiError
		if cols, apiErr = fieldColumns(obj, strings.Split(v, ",")); apiErr != nil {
			writeJSON(c.w, http.StatusBadRequest, []apiError{*apiErr})
			return
		}
	} else {
		for _, f := range obj.fields {
			cols = append(cols, &column{key: f.Name, field: f})
		}
	}
	writeJSON(c.w, http.StatusOK, s.render(c.version, r, obj.name, cols, false))
}
