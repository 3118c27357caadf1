package salesforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// purgeSafeGap is how long after a poll the recycle bin is certain to still hold every record
// deleted since: Salesforce purges a full bin only of records deleted at least two hours ago.
const purgeSafeGap = time.Hour

// ReplicationResult is the answer of the getUpdated (sobjects/{SObject}/updated) and
// getDeleted (sobjects/{SObject}/deleted) resources.
type ReplicationResult struct {
	// IDs are the updated records (getUpdated).
	IDs []string
	// Deleted are the deleted records and when they were deleted (getDeleted).
	Deleted []DeletedRecord
	// EarliestDateAvailable is when the last record was physically removed from the recycle
	// bin (getDeleted): deletes before it may no longer be listed.
	EarliestDateAvailable time.Time
	// LatestDateCovered is the end of the period the answer covers.
	LatestDateCovered time.Time
}

// DeletedRecord is one record of a getDeleted answer.
type DeletedRecord struct {
	ID          string
	DeletedDate time.Time
}

// ParseReplicationResult reads a getUpdated or getDeleted answer.
func ParseReplicationResult(body []byte) (*ReplicationResult, error) {
	var wire struct {
		IDs            []string `json:"ids"`
		DeletedRecords []struct {
			ID          string `json:"id"`
			DeletedDate string `json:"deletedDate"`
		} `json:"deletedRecords"`
		EarliestDateAvailable string `json:"earliestDateAvailable"`
		LatestDateCovered     string `json:"latestDateCovered"`
	}
	if err := decodeJSON(body, &wire); err != nil {
		return nil, fmt.Errorf("decode replication result: %w", err)
	}
	r := &ReplicationResult{IDs: wire.IDs}
	var err error
	if wire.LatestDateCovered == "" {
		return nil, errors.New("replication result without latestDateCovered")
	}
	if r.LatestDateCovered, err = parseDateTime(wire.LatestDateCovered); err != nil {
		return nil, fmt.Errorf("latestDateCovered: %w", err)
	}
	if wire.EarliestDateAvailable != "" {
		if r.EarliestDateAvailable, err = parseDateTime(wire.EarliestDateAvailable); err != nil {
			return nil, fmt.Errorf("earliestDateAvailable: %w", err)
		}
	}
	for _, d := range wire.DeletedRecords {
		t, err := parseDateTime(d.DeletedDate)
		if err != nil || d.ID == "" {
			return nil, fmt.Errorf("deleted record %q: bad id or deletedDate %q", d.ID, d.DeletedDate)
		}
		r.Deleted = append(r.Deleted, DeletedRecord{ID: d.ID, DeletedDate: t})
	}
	return r, nil
}

// deletesComplete asks getDeleted whether every record of object deleted since start can
// still be read from the recycle bin. One API call.
func (c *Connector) deletesComplete(ctx context.Context, object string, start, end time.Time) (bool, error) {
	q := url.Values{"start": {start.UTC().Format(time.RFC3339)}, "end": {end.UTC().Format(time.RFC3339)}}
	resp, err := c.do(ctx, request{op: "getDeleted", method: http.MethodGet, path: "sobjects/" + object + "/deleted/",
		query: q, subject: c.auth.integrationSubject(), idempotent: true})
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode == "INVALID_REPLICATION_DATE":
		return false, nil // start is beyond what Salesforce keeps
	case err != nil:
		return false, err
	}
	r, err := ParseReplicationResult(resp.body)
	if err != nil {
		return false, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("getDeleted: %w", err))
	}
	// earliestDateAvailable has minute precision: a purge reported at 10:04 may have happened
	// at 10:04:59, so it is only certainly before start when a whole minute earlier.
	return r.EarliestDateAvailable.IsZero() || !r.EarliestDateAvailable.Add(time.Minute).After(start), nil
}

// coveredBefore is committedBefore, answered from cur's last answer when Salesforce could only
// repeat it: getUpdated counts whole minutes, so an answer that reached the start of the minute it
// was asked in stays the same until the next minute. Within that minute — every wake of a busy
// org starts a poll — no call is made. (An older answer would always be safe to use, since what
// was committed stays committed; asking again only lets the read-back end sooner.) cur records a
// new answer.
func (c *Connector) coveredBefore(ctx context.Context, object string, now time.Time, cur *pollCursor) (time.Time, error) {
	if cur.AskedAt != 0 {
		asked := time.UnixMilli(cur.AskedAt).UTC()
		minute := asked.Truncate(time.Minute)
		if now.UTC().Truncate(time.Minute).Equal(minute) && !now.Before(asked) && cur.Covered >= minute.UnixMilli() {
			return time.UnixMilli(cur.Covered).UTC(), nil
		}
	}
	covered, err := c.committedBefore(ctx, object, now)
	if err != nil || covered.IsZero() {
		return covered, err
	}
	cur.AskedAt, cur.Covered = now.UnixMilli(), covered.UnixMilli()
	return covered, nil
}

// committedBefore asks getUpdated up to when Salesforce has committed every change of object: a
// record stamped before the answer's latestDateCovered was committed when Salesforce answered,
// since an open transaction holds latestDateCovered at its start. The window is the minute
// before now (Salesforce cuts start and end to the minute), which keeps the answer's list of
// ids short. One API call.
func (c *Connector) committedBefore(ctx context.Context, object string, now time.Time) (time.Time, error) {
	q := url.Values{"start": {now.Add(-time.Minute).UTC().Format(time.RFC3339)}, "end": {now.UTC().Format(time.RFC3339)}}
	resp, err := c.do(ctx, request{op: "getUpdated", method: http.MethodGet, path: "sobjects/" + object + "/updated/",
		query: q, subject: c.auth.integrationSubject(), idempotent: true})
	if err != nil {
		return time.Time{}, err
	}
	r, err := ParseReplicationResult(resp.body)
	if err != nil {
		return time.Time{}, syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("getUpdated: %w", err))
	}
	return r.LatestDateCovered, nil
}
