package salesforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// SaveResult is the outcome of one record of an sObject Collections call.
type SaveResult struct {
	ID      string      `json:"id"`
	Success bool        `json:"success"`
	Created *bool       `json:"created,omitempty"` // upserts only
	Errors  []SaveError `json:"errors"`
}

// SaveError is one reason a record was not saved.
type SaveError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// ParseSaveResults reads an sObject Collections answer: one result per record, in request order.
func ParseSaveResults(body []byte) ([]SaveResult, error) {
	var out []SaveResult
	if err := decodeJSON(body, &out); err != nil {
		return nil, fmt.Errorf("decode collection results: %w", err)
	}
	for i, r := range out {
		if !r.Success && len(r.Errors) == 0 {
			return nil, fmt.Errorf("collection result %d failed without an error", i)
		}
	}
	return out, nil
}

// apiError returns the result's first error, nil on success.
func (r SaveResult) apiError() *APIError {
	if r.Success {
		return nil
	}
	e := r.Errors[0]
	msgs := make([]string, 0, len(r.Errors))
	for _, x := range r.Errors {
		msgs = append(msgs, x.Message)
	}
	return &APIError{ErrorCode: e.StatusCode, Message: strings.Join(msgs, "; "), Fields: e.Fields}
}

// collectionOp is one kind of sObject Collections call.
type collectionOp int

const (
	opCreate collectionOp = iota + 1 // POST composite/sobjects
	opUpdate                         // PATCH composite/sobjects, by Id
	opUpsert                         // PATCH composite/sobjects/{object}/Tandem_Sync_Key__c
	opDelete                         // DELETE composite/sobjects?ids=
)

func (op collectionOp) String() string {
	return [...]string{"", "collections.create", "collections.update", "collections.upsert", "collections.delete"}[op]
}

// collectionItem is one record of a collections call.
type collectionItem struct {
	key  string         // the record's identity within a call: sync key (upsert) or Id (update, delete)
	body map[string]any // field values (create, update, upsert)
}

// collectionOutcome is what happened to one item.
type collectionOutcome struct {
	id      string
	created bool
	err     *APIError
}

// collections carries out items with as few sObject Collections calls as the 200-record
// limit allows, always with allOrNone=false so that one bad record never fails the others.
// Records Salesforce could not lock are sent again on their own, with backoff, a bounded
// number of times. It returns one outcome per item, in order; an error means a call as a whole
// failed and the items' fate is unknown.
func (c *Connector) collections(ctx context.Context, subject string, op collectionOp, object string, items []collectionItem) ([]collectionOutcome, error) {
	out := make([]collectionOutcome, len(items))
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		var locked []int
		for _, chunk := range chunkItems(items, pending) {
			res, err := c.isolatingCall(ctx, subject, op, object, items, chunk)
			if err != nil {
				return nil, err
			}
			for k, idx := range chunk {
				out[idx] = res[k]
				if e := res[k].err; e != nil && e.ErrorCode == "UNABLE_TO_LOCK_ROW" {
					locked = append(locked, idx)
				}
			}
		}
		if len(locked) == 0 || attempt >= c.cfg.retry.LockAttempts {
			break
		}
		wait := c.cfg.retry.policy().Delay(attempt)
		c.log.InfoContext(ctx, "salesforce records locked; retrying them", slog.String("operation", op.String()),
			slog.Int("records", len(locked)), slog.Int("attempt", attempt), slog.Duration("wait", wait))
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("salesforce %s: %w", op, err)
		}
		pending = locked
	}
	return out, nil
}

// chunkItems splits the pending items into calls of at most 200, never putting two items with
// the same key into one call (Salesforce rejects a duplicate id or external id in a list).
func chunkItems(items []collectionItem, pending []int) [][]int {
	var out [][]int
	var cur []int
	seen := map[string]bool{}
	var deferred []int
	for len(pending) > 0 {
		for _, idx := range pending {
			key := items[idx].key
			if key != "" && seen[key] {
				deferred = append(deferred, idx)
				continue
			}
			if len(cur) == maxCollection {
				out = append(out, cur)
				cur, seen = nil, map[string]bool{}
			}
			cur = append(cur, idx)
			if key != "" {
				seen[key] = true
			}
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, seen = nil, map[string]bool{}
		pending, deferred = deferred, nil
	}
	return out
}

// isolatingCall sends one call. When Salesforce rejects the request as a whole for a reason
// that concerns a record's content (a value it cannot parse), the chunk is split in halves,
// recursively, to find the records at fault: only they fail, in their outcomes, and the others
// are written. One bad record among 200 costs 16 more calls, two cost 30; the search stops
// after isolationBudget calls and gives the records still unresolved the error.
func (c *Connector) isolatingCall(ctx context.Context, subject string, op collectionOp, object string, items []collectionItem, chunk []int) ([]collectionOutcome, error) {
	res, err := c.collectionCall(ctx, subject, op, object, items, chunk)
	ae := recordLevel(err)
	if ae == nil {
		return res, err
	}
	c.log.WarnContext(ctx, "salesforce rejected a whole collection request; isolating the records at fault",
		slog.String("operation", op.String()), slog.Int("records", len(chunk)), slog.String("error", ae.Error()))
	budget := isolationBudget
	return c.isolate(ctx, subject, op, object, items, chunk, ae, &budget)
}

// isolationBudget bounds the calls spent finding the records that made Salesforce reject a
// request: enough for two bad records in 200, few enough that a problem of every record does
// not cost one call per record.
const isolationBudget = 32

func (c *Connector) isolate(ctx context.Context, subject string, op collectionOp, object string, items []collectionItem, chunk []int, ae *APIError, budget *int) ([]collectionOutcome, error) {
	if len(chunk) == 1 || *budget < 2 {
		all := make([]collectionOutcome, len(chunk))
		for k := range all {
			all[k] = collectionOutcome{err: ae}
		}
		return all, nil
	}
	*budget -= 2
	mid := len(chunk) / 2
	var out []collectionOutcome
	for _, half := range [][]int{chunk[:mid], chunk[mid:]} {
		res, err := c.collectionCall(ctx, subject, op, object, items, half)
		if hae := recordLevel(err); hae != nil {
			res, err = c.isolate(ctx, subject, op, object, items, half, hae, budget)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// recordLevel returns the Salesforce error of a request rejected for a record's content, nil
// for success and for failures of the whole request (authentication, limits, availability,
// a missing field) that no split can avoid.
func recordLevel(err error) *APIError {
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
		return nil
	}
	se := syncerr.As(err)
	if syncerr.ScopeOf(se.Code) != syncerr.ScopeRecord || se.Retryable() {
		return nil
	}
	return ae
}

// collectionCall sends one call. An optional field the org turns out not to have is dropped
// and the call sent again.
func (c *Connector) collectionCall(ctx context.Context, subject string, op collectionOp, object string, items []collectionItem, chunk []int) ([]collectionOutcome, error) {
	for {
		req := request{op: op.String(), subject: subject, write: true, idempotent: op != opCreate}
		switch op {
		case opDelete:
			ids := make([]string, len(chunk))
			for k, idx := range chunk {
				ids[k] = items[idx].key
			}
			req.method, req.path = http.MethodDelete, "composite/sobjects"
			req.query = url.Values{"ids": {strings.Join(ids, ",")}, "allOrNone": {"false"}}
		default:
			records := make([]map[string]any, len(chunk))
			for k, idx := range chunk {
				rec := map[string]any{"attributes": map[string]string{"type": object}}
				for f, v := range items[idx].body {
					if c.fields.has(object, f) {
						rec[f] = v
					}
				}
				records[k] = rec
			}
			req.body = map[string]any{"allOrNone": false, "records": records}
			switch op {
			case opCreate:
				req.method, req.path = http.MethodPost, "composite/sobjects"
			case opUpdate:
				req.method, req.path = http.MethodPatch, "composite/sobjects"
			case opUpsert:
				req.method, req.path = http.MethodPatch, "composite/sobjects/"+object+"/"+SyncKeyField
			}
		}
		resp, err := c.do(ctx, req)
		if err != nil {
			var ae *APIError
			if op != opDelete && errors.As(err, &ae) && ae.ErrorCode == "INVALID_FIELD" && c.fields.learnMissing(object, ae.Message) {
				c.log.InfoContext(ctx, "salesforce org lacks an optional field; writing without it",
					slog.String("object", object), slog.String("error", ae.Message))
				continue
			}
			return nil, err
		}
		results, err := ParseSaveResults(resp.body)
		if err == nil && len(results) != len(chunk) {
			err = fmt.Errorf("%d results for %d records", len(results), len(chunk))
		}
		if err != nil {
			return nil, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("%s: %w", op, err))
		}
		out := make([]collectionOutcome, len(chunk))
		for k, r := range results {
			out[k] = collectionOutcome{id: r.ID, created: r.Created != nil && *r.Created, err: r.apiError()}
			if op == opCreate && r.Success {
				out[k].created = true
			}
		}
		return out, nil
	}
}
