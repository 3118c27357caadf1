// Package status stores and assembles users' sync statuses, the per-user half of the
// Lightning Sync status tables. Several services know parts of a user's status — the
// exchange-worker knows whether the mailbox can be impersonated and the sync folder found, the
// reconciler knows how far each direction has synced, the scheduler knows when the user is due —
// so each writes its own part, and readers merge the parts into one tandemv1.UserStatus. No
// part is ever read-modified-written by two services.
package status

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Part names a service's part of a user's status.
type Part string

// The parts, merged in this order. The admin part is written by the API: what an admin did to
// the user's sync (resumed_at).
const (
	PartScheduler Part = "scheduler"
	PartExchange  Part = "exchange"
	PartReconcile Part = "reconciler"
	PartAdmin     Part = "admin"
)

var partOrder = []Part{PartScheduler, PartExchange, PartReconcile, PartAdmin}

const kindFieldPrefix = "kind:"

// Store reads and writes status parts in Redis.
type Store struct{ st *store.Store }

// New returns a status store over st.
func New(st *store.Store) *Store { return &Store{st: st} }

func key(uk store.UserKey) (string, error) { return uk.Key("status") }

// Put replaces one part of a user's status, and announces the write on the org's changes
// channel (store.PublishChange), as PutKind and PutSalesforceUsage do theirs.
func (s *Store) Put(ctx context.Context, uk store.UserKey, part Part, us *tandemv1.UserStatus) error {
	k, err := key(uk)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(us)
	if err != nil {
		return fmt.Errorf("encode %s status of %s: %w", part, uk, err)
	}
	if err := s.st.Apply(ctx, store.HSet(k, string(part), b)); err != nil {
		return err
	}
	s.announce(ctx, uk.OrgID, uk.UserID)
	return nil
}

// PutKind replaces the reconciler's status of one record kind.
func (s *Store) PutKind(ctx context.Context, uk store.UserKey, ks *tandemv1.KindStatus) error {
	k, err := key(uk)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(ks)
	if err != nil {
		return fmt.Errorf("encode %s status of %s: %w", ks.GetKind(), uk, err)
	}
	if err := s.st.Apply(ctx, store.HSet(k, kindFieldPrefix+ks.GetKind().String(), b)); err != nil {
		return err
	}
	s.announce(ctx, uk.OrgID, uk.UserID)
	return nil
}

// announce tells whoever watches the org's statuses (the API's Watch RPCs) that userID's status,
// or with userID empty an org-level input of the org's status, was written. It is best effort
// and its failure is not the writer's: the write stands, and a watcher that missed it reads
// everything again on its fallback timer (see store.PublishChange).
func (s *Store) announce(ctx context.Context, orgID, userID string) {
	_ = s.st.PublishChange(ctx, orgID, userID)
}

// GetPart returns one part as its writer stored it (empty when none).
func (s *Store) GetPart(ctx context.Context, uk store.UserKey, part Part) (*tandemv1.UserStatus, error) {
	k, err := key(uk)
	if err != nil {
		return nil, err
	}
	raw, err := s.st.Client().HGet(ctx, k, string(part)).Bytes()
	us := &tandemv1.UserStatus{}
	if errors.Is(err, redis.Nil) {
		return us, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s status of %s: %w", part, uk, err)
	}
	if err := proto.Unmarshal(raw, us); err != nil {
		return nil, fmt.Errorf("decode %s status of %s: %w", part, uk, err)
	}
	return us, nil
}

// Get assembles a user's status from every part. A user nobody has reported on yet has an empty
// status with only the ids set. A suspension shows only while it holds (see Suspended): the
// org's and the configuration's last changes are looked up for a suspended user only.
func (s *Store) Get(ctx context.Context, uk store.UserKey) (*tandemv1.UserStatus, error) {
	k, err := key(uk)
	if err != nil {
		return nil, err
	}
	raw, err := s.st.Client().HGetAll(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("read status of %s: %w", uk, err)
	}
	us, err := Merge(uk, raw)
	if err != nil || !us.GetSuspended() {
		return us, err
	}
	settings, err := s.SettingsChangedFor(ctx, uk)
	if err != nil {
		return nil, err
	}
	if err := lift(us, raw, LiftedAt(settings, &tandemv1.UserStatus{ResumedAt: us.GetResumedAt()})); err != nil {
		return nil, fmt.Errorf("status of %s: %w", uk, err)
	}
	return us, nil
}

// Merge assembles a status from the raw fields of a user's status hash. A suspension an admin
// has lifted since (resumed_at) is not shown; one lifted by a change of settings is, because
// Merge does not know them (Get does).
func Merge(uk store.UserKey, raw map[string]string) (*tandemv1.UserStatus, error) {
	out, err := merge(uk, raw)
	if err != nil {
		return nil, err
	}
	if err := lift(out, raw, LiftedAt(time.Time{}, &tandemv1.UserStatus{ResumedAt: out.GetResumedAt()})); err != nil {
		return nil, fmt.Errorf("status of %s: %w", uk, err)
	}
	return out, nil
}

func merge(uk store.UserKey, raw map[string]string) (*tandemv1.UserStatus, error) {
	out := &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID}
	kinds := map[tandemv1.RecordKind]*tandemv1.KindStatus{}
	for _, p := range partOrder {
		v, ok := raw[string(p)]
		if !ok {
			continue
		}
		part := &tandemv1.UserStatus{}
		if err := proto.Unmarshal([]byte(v), part); err != nil {
			return nil, fmt.Errorf("decode %s status of %s: %w", p, uk, err)
		}
		for _, ks := range part.GetKinds() {
			mergeKind(kinds, ks)
		}
		part.Kinds = nil
		if part.GetLastError() != nil {
			out.LastError = nil // the later part's error replaces an earlier one
		}
		proto.Merge(out, part)
	}
	for field, v := range raw {
		if !strings.HasPrefix(field, kindFieldPrefix) {
			continue
		}
		ks := &tandemv1.KindStatus{}
		if err := proto.Unmarshal([]byte(v), ks); err != nil {
			return nil, fmt.Errorf("decode %s of %s: %w", field, uk, err)
		}
		mergeKind(kinds, ks)
	}
	for _, ks := range kinds {
		if out.GetMailboxClaimedByOrg() != "" {
			// Another org syncs the mailbox: whatever an earlier read of this org found, the
			// mailbox is not linked to this org's user now.
			ks.AddressesLinked = tandemv1.CheckResult_CHECK_RESULT_FAILED
		}
		out.Kinds = append(out.Kinds, ks)
	}
	sort.Slice(out.Kinds, func(i, j int) bool { return out.Kinds[i].GetKind() < out.Kinds[j].GetKind() })
	out.OrgId, out.UserId = uk.OrgID, uk.UserID
	return out, nil
}

func mergeKind(kinds map[tandemv1.RecordKind]*tandemv1.KindStatus, ks *tandemv1.KindStatus) {
	cur, ok := kinds[ks.GetKind()]
	if !ok {
		kinds[ks.GetKind()] = proto.Clone(ks).(*tandemv1.KindStatus)
		return
	}
	proto.Merge(cur, ks)
}

// Kind returns the status of kind within us, or nil.
func Kind(us *tandemv1.UserStatus, kind tandemv1.RecordKind) *tandemv1.KindStatus {
	for _, ks := range us.GetKinds() {
		if ks.GetKind() == kind {
			return ks
		}
	}
	return nil
}

// Settled reports whether a direction status means every record has synced.
func Settled(d tandemv1.DirectionStatus) bool {
	switch d {
	case tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC,
		tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_COMPLETED,
		tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_SET_TO_SYNC:
		return true
	}
	return false
}

func usageKey(orgID string) store.CursorKey {
	return store.CursorKey{Org: orgID, Name: "salesforce-usage"}
}

// PutSalesforceUsage stores the org's Salesforce API usage as the salesforce-worker last saw it.
func (s *Store) PutSalesforceUsage(ctx context.Context, orgID string, u *tandemv1.SalesforceApiUsage) error {
	b, err := proto.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode Salesforce usage of org %s: %w", orgID, err)
	}
	if err := s.st.PutCursor(ctx, usageKey(orgID), string(b)); err != nil {
		return err
	}
	s.announce(ctx, orgID, "")
	return nil
}

// SalesforceUsage returns the org's Salesforce API usage (empty before the first poll).
func (s *Store) SalesforceUsage(ctx context.Context, orgID string) (*tandemv1.SalesforceApiUsage, error) {
	raw, ok, err := s.st.GetCursor(ctx, usageKey(orgID))
	u := &tandemv1.SalesforceApiUsage{}
	if err != nil || !ok {
		return u, err
	}
	if err := proto.Unmarshal([]byte(raw), u); err != nil {
		return nil, fmt.Errorf("decode Salesforce usage of org %s: %w", orgID, err)
	}
	return u, nil
}
