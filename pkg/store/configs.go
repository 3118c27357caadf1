package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Limits of a sync configuration, from the Lightning Sync admin guide where it has them.
const (
	maxConfigNameLen = 255
	maxRangeDays     = 180
	// optimisticRetries bounds the WATCH/MULTI retries of a contended read-modify-write.
	optimisticRetries = 16
)

// sfFieldPattern is a Salesforce field API name, optionally through relationships
// (Account.Name). Filters end up in SOQL, so nothing else may pass.
var sfFieldPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}(\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$`)

// ValidateConfiguration checks a configuration of org as PutConfiguration would, and stores
// nothing: a *ValidationError lists every problem. It returns the configuration as it would be
// stored (without an id if it had none, and without an update time).
func ValidateConfiguration(orgID string, cfg *tandemv1.SyncConfiguration) (*tandemv1.SyncConfiguration, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("validate configuration: %w", err)
	}
	if cfg == nil {
		return nil, &ValidationError{Violations: []FieldViolation{{Field: "configuration", Description: "is required"}}}
	}
	c, err := prepareConfiguration(orgID, cfg)
	if err != nil {
		return nil, err
	}
	c.Id = cfg.GetId()
	c.UpdatedAt = nil
	return c, nil
}

// prepareConfiguration returns a copy of cfg as it would be stored, but for its update time:
// org and id filled in, name trimmed, user and profile lists without duplicates, validated.
func prepareConfiguration(orgID string, cfg *tandemv1.SyncConfiguration) (*tandemv1.SyncConfiguration, error) {
	c := proto.Clone(cfg).(*tandemv1.SyncConfiguration)
	if c.OrgId == "" {
		c.OrgId = orgID
	}
	if c.Id == "" {
		id, err := newConfigID()
		if err != nil {
			return nil, fmt.Errorf("put configuration: %w", err)
		}
		c.Id = id
	}
	c.Name = strings.TrimSpace(c.Name)
	c.UserIds = dedupe(c.UserIds)
	c.ProfileIds = dedupe(c.ProfileIds)
	if err := validateConfiguration(orgID, c); err != nil {
		return nil, err
	}
	return c, nil
}

// PutConfiguration creates (empty id) or replaces a sync configuration of org and returns it
// as stored. It validates the configuration (a *ValidationError lists every problem), and
// applies the Lightning Sync assignment rule atomically with the write: a user assigned
// individually to this configuration is removed from every other configuration's user list,
// so a user stays only in the configuration it was added to last.
func (s *Store) PutConfiguration(ctx context.Context, orgID string, cfg *tandemv1.SyncConfiguration) (*tandemv1.SyncConfiguration, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("put configuration: %w", err)
	}
	if cfg == nil {
		return nil, &ValidationError{Violations: []FieldViolation{{Field: "configuration", Description: "is required"}}}
	}
	c, err := prepareConfiguration(orgID, cfg)
	if err != nil {
		return nil, err
	}
	c.UpdatedAt = timestamppb.New(s.now())

	key := orgKey(orgID, orgConfigsName)
	txf := func(tx *redis.Tx) error {
		others, err := decodeConfigs(ctx, tx, key)
		if err != nil {
			return err
		}
		raw, err := proto.Marshal(c)
		if err != nil {
			return fmt.Errorf("marshal: %w", err)
		}
		values := []any{c.Id, raw}
		assigned := make(map[string]bool, len(c.UserIds))
		for _, u := range c.UserIds {
			assigned[u] = true
		}
		for _, o := range others {
			if o.Id == c.Id {
				continue
			}
			if strings.EqualFold(o.Name, c.Name) {
				return &ValidationError{Violations: []FieldViolation{{Field: "name", Description: fmt.Sprintf("another configuration (%s) is named %q", o.Id, o.Name)}}}
			}
			kept := slices.DeleteFunc(slices.Clone(o.UserIds), func(u string) bool { return assigned[u] })
			if len(kept) == len(o.UserIds) {
				continue
			}
			o.UserIds = kept
			o.UpdatedAt = c.UpdatedAt
			raw, err := proto.Marshal(o)
			if err != nil {
				return fmt.Errorf("marshal %s: %w", o.Id, err)
			}
			values = append(values, o.Id, raw)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, values...)
			return nil
		})
		return err
	}
	if err := s.optimistic(ctx, txf, key); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return nil, ve
		}
		return nil, fmt.Errorf("put configuration %s of org %s: %w", c.Id, orgID, err)
	}
	_ = s.PublishChange(ctx, orgID, "")
	return c, nil
}

// optimistic runs txf under WATCH keys, retrying when another writer got in between.
func (s *Store) optimistic(ctx context.Context, txf func(*redis.Tx) error, keys ...string) error {
	for range optimisticRetries {
		err := s.rdb.Watch(ctx, txf, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("too much contention on %s: %w", keys[0], redis.TxFailedErr)
}

func decodeConfigs(ctx context.Context, c redis.Cmdable, key string) ([]*tandemv1.SyncConfiguration, error) {
	all, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	cfgs := make([]*tandemv1.SyncConfiguration, 0, len(all))
	for id, raw := range all {
		cfg := &tandemv1.SyncConfiguration{}
		if err := proto.Unmarshal([]byte(raw), cfg); err != nil {
			return nil, fmt.Errorf("configuration %s: unmarshal: %w", id, err)
		}
		cfgs = append(cfgs, cfg)
	}
	slices.SortFunc(cfgs, func(a, b *tandemv1.SyncConfiguration) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Id, b.Id))
	})
	return cfgs, nil
}

// GetConfiguration returns one configuration, or ErrNotFound.
func (s *Store) GetConfiguration(ctx context.Context, orgID, id string) (*tandemv1.SyncConfiguration, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("get configuration: %w", err)
	}
	raw, err := s.rdb.HGet(ctx, orgKey(orgID, orgConfigsName), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("configuration %s of org %s: %w", id, orgID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get configuration %s of org %s: %w", id, orgID, err)
	}
	cfg := &tandemv1.SyncConfiguration{}
	if err := proto.Unmarshal([]byte(raw), cfg); err != nil {
		return nil, fmt.Errorf("configuration %s of org %s: unmarshal: %w", id, orgID, err)
	}
	return cfg, nil
}

// ListConfigurations returns an org's configurations ordered by name.
func (s *Store) ListConfigurations(ctx context.Context, orgID string) ([]*tandemv1.SyncConfiguration, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("list configurations: %w", err)
	}
	cfgs, err := decodeConfigs(ctx, s.rdb, orgKey(orgID, orgConfigsName))
	if err != nil {
		return nil, fmt.Errorf("list configurations of org %s: %w", orgID, err)
	}
	return cfgs, nil
}

// DeleteConfiguration deletes a configuration; its users stop syncing. ErrNotFound if it
// does not exist.
func (s *Store) DeleteConfiguration(ctx context.Context, orgID, id string) error {
	if err := checkID("org id", orgID); err != nil {
		return fmt.Errorf("delete configuration: %w", err)
	}
	n, err := s.rdb.HDel(ctx, orgKey(orgID, orgConfigsName), id).Result()
	if err != nil {
		return fmt.Errorf("delete configuration %s of org %s: %w", id, orgID, err)
	}
	if n == 0 {
		return fmt.Errorf("configuration %s of org %s: %w", id, orgID, ErrNotFound)
	}
	_ = s.PublishChange(ctx, orgID, "")
	return nil
}

// ResolveConfiguration returns the configuration user syncs with, as SelectConfiguration
// decides among the org's configurations. ok is false when none applies.
func (s *Store) ResolveConfiguration(ctx context.Context, orgID string, user *tandemv1.SyncUser) (cfg *tandemv1.SyncConfiguration, ok bool, err error) {
	if user == nil || !user.GetActive() {
		return nil, false, nil
	}
	cfgs, err := s.ListConfigurations(ctx, orgID)
	if err != nil {
		return nil, false, fmt.Errorf("resolve configuration of %s/%s: %w", orgID, user.GetUserId(), err)
	}
	cfg, ok = SelectConfiguration(cfgs, user)
	return cfg, ok, nil
}

// Assignment is a user of an org's directory with the configuration the user syncs with.
type Assignment struct {
	User *tandemv1.SyncUser
	// Config is the user's configuration, nil when none applies (SelectConfiguration).
	Config *tandemv1.SyncConfiguration
}

// ListAssignments returns every user of the org's directory with the configuration each syncs
// with, reading the users and the configurations once.
func (s *Store) ListAssignments(ctx context.Context, orgID string) ([]Assignment, error) {
	users, err := s.ListUsers(ctx, orgID)
	if err != nil {
		return nil, err
	}
	cfgs, err := s.ListConfigurations(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]Assignment, len(users))
	for i, u := range users {
		cfg, _ := SelectConfiguration(cfgs, u)
		out[i] = Assignment{User: u, Config: cfg}
	}
	return out, nil
}

// SyncedKinds lists the record kinds a configuration syncs, in a stable order; none for nil.
func SyncedKinds(cfg *tandemv1.SyncConfiguration) []tandemv1.RecordKind {
	var kinds []tandemv1.RecordKind
	if cfg.GetContacts().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		kinds = append(kinds, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	}
	if cfg.GetEvents().GetDirection() != tandemv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		kinds = append(kinds, tandemv1.RecordKind_RECORD_KIND_EVENT)
	}
	return kinds
}

// SelectConfiguration picks user's configuration among cfgs as Lightning Sync does: only
// active configurations count; one that lists the user individually wins over one that
// lists the user's profile; among several listing the profile, the first by name wins (cfgs
// in ListConfigurations order). An inactive user syncs with none. Callers that resolve many
// users list the configurations once and call this for each.
func SelectConfiguration(cfgs []*tandemv1.SyncConfiguration, user *tandemv1.SyncUser) (*tandemv1.SyncConfiguration, bool) {
	if user == nil || !user.GetActive() {
		return nil, false
	}
	var byProfile *tandemv1.SyncConfiguration
	for _, c := range cfgs {
		if !c.GetActive() {
			continue
		}
		if slices.Contains(c.GetUserIds(), user.GetUserId()) {
			return c, true
		}
		if byProfile == nil && user.GetProfileId() != "" && slices.Contains(c.GetProfileIds(), user.GetProfileId()) {
			byProfile = c
		}
	}
	return byProfile, byProfile != nil
}

func validateConfiguration(orgID string, c *tandemv1.SyncConfiguration) error {
	var v violations
	if !ValidID(c.Id) {
		v.add("id", idRule)
	}
	if c.OrgId != orgID {
		v.add("org_id", fmt.Sprintf("is %q, but the configuration is put into org %q", c.OrgId, orgID))
	}
	switch {
	case c.Name == "":
		v.add("name", "is required")
	case len(c.Name) > maxConfigNameLen:
		v.add("name", fmt.Sprintf("is longer than %d characters", maxConfigNameLen))
	}
	for i, u := range c.UserIds {
		if !ValidID(u) {
			v.add(fmt.Sprintf("user_ids[%d]", i), idRule)
		}
	}
	for i, p := range c.ProfileIds {
		if !ValidID(p) {
			v.add(fmt.Sprintf("profile_ids[%d]", i), idRule)
		}
	}
	if ct := c.Contacts; ct != nil {
		checkEnum(&v, "contacts.direction", ct.Direction)
		checkEnum(&v, "contacts.scope", ct.Scope)
		checkEnum(&v, "contacts.conflict_policy", ct.ConflictPolicy)
		checkEnum(&v, "contacts.exchange_delete", ct.ExchangeDelete)
		checkThreshold(&v, "contacts.mass_delete_threshold_percent", ct.MassDeleteThresholdPercent)
		if ct.MaxRecords < 0 {
			v.add("contacts.max_records", "must not be negative (0 means the default)")
		}
		checkFieldMappings(&v, "contacts", tandemv1.RecordKind_RECORD_KIND_CONTACT, ct.Direction, ct.FieldMappings)
		for i, f := range ct.Filters {
			p := fmt.Sprintf("contacts.filters[%d]", i)
			if !sfFieldPattern.MatchString(f.GetField()) {
				v.add(p+".field", "must be a Salesforce field API name, e.g. MailingState or Account.Name")
			}
			if f.GetOperator() == tandemv1.FilterOperator_FILTER_OPERATOR_UNSPECIFIED {
				v.add(p+".operator", "is required")
			} else {
				checkEnum(&v, p+".operator", f.GetOperator())
			}
			if len(f.GetValues()) == 0 {
				v.add(p+".values", "needs at least one value")
			}
		}
	}
	if ev := c.Events; ev != nil {
		checkEnum(&v, "events.direction", ev.Direction)
		checkEnum(&v, "events.selection", ev.Selection)
		checkEnum(&v, "events.range_start", ev.RangeStart)
		checkEnum(&v, "events.conflict_policy", ev.ConflictPolicy)
		checkThreshold(&v, "events.mass_delete_threshold_percent", ev.MassDeleteThresholdPercent)
		switch {
		case ev.RangeStart == tandemv1.EventRangeStart_EVENT_RANGE_START_LAST_N_DAYS && (ev.RangeDays < 1 || ev.RangeDays > maxRangeDays):
			v.add("events.range_days", fmt.Sprintf("must be 1 to %d for the last N days", maxRangeDays))
		case ev.RangeDays < 0 || ev.RangeDays > maxRangeDays:
			v.add("events.range_days", fmt.Sprintf("must be 0 (the default) to %d", maxRangeDays))
		}
		if ev.MaxRecords < 0 {
			v.add("events.max_records", "must not be negative (0 means the default)")
		}
		checkFieldMappings(&v, "events", tandemv1.RecordKind_RECORD_KIND_EVENT, ev.Direction, ev.FieldMappings)
	}
	return v.err()
}

// checkFieldMappings checks a kind's field mappings: each names a field both sides read and
// write (record.SyncFields), once, with a direction the kind's direction allows.
func checkFieldMappings(v *violations, prefix string, kind tandemv1.RecordKind, direction tandemv1.SyncDirection, mappings []*tandemv1.FieldMapping) {
	fields := record.SyncFields(kind)
	seen := map[string]bool{}
	for i, m := range mappings {
		p := fmt.Sprintf("%s.field_mappings[%d]", prefix, i)
		switch f := m.GetField(); {
		case !slices.Contains(fields, f):
			v.add(p+".field", fmt.Sprintf("%q is not a field both Exchange and Salesforce read and write; choose one of %s", f, strings.Join(fields, ", ")))
		case seen[f]:
			v.add(p+".field", fmt.Sprintf("%q is mapped twice", f))
		}
		seen[m.GetField()] = true
		checkEnum(v, p+".direction", m.GetDirection())
		d := m.GetDirection()
		allowed := d == tandemv1.FieldDirection_FIELD_DIRECTION_UNSPECIFIED || d == tandemv1.FieldDirection_FIELD_DIRECTION_NONE
		switch direction {
		case tandemv1.SyncDirection_SYNC_DIRECTION_BOTH:
			allowed = true
		case tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE:
			allowed = allowed || d == tandemv1.FieldDirection_FIELD_DIRECTION_EXCHANGE_TO_SALESFORCE
		case tandemv1.SyncDirection_SYNC_DIRECTION_SALESFORCE_TO_EXCHANGE:
			allowed = allowed || d == tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE
		}
		if known := d.Descriptor().Values().ByNumber(d.Number()) != nil; known && !allowed {
			v.add(p+".direction", fmt.Sprintf("%s goes beyond %s.direction %s: a field syncs at most the ways its kind does", d, prefix, direction))
		}
	}
}

func checkThreshold(v *violations, field string, pct int32) {
	// 0 means the default (50%).
	if pct < 0 || pct > 100 {
		v.add(field, "must be 1 to 100 percent, or 0 for the default")
	}
}

func checkEnum(v *violations, field string, e protoreflect.Enum) {
	if e.Descriptor().Values().ByNumber(e.Number()) == nil {
		v.add(field, fmt.Sprintf("has no value %d", e.Number()))
	}
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func newConfigID() (string, error) {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate configuration id: %w", err)
	}
	return "cfg_" + hex.EncodeToString(b), nil
}
