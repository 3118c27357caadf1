package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// An org is stored as a hash: the settings without secrets under "settings", and each secret
// sealed under "secret:<name>", its associated data binding it to the org and field so that a
// sealed value copied elsewhere does not open.
const orgSettingsField = "settings"

// secretField is one write-only secret of an Org.
type secretField struct {
	name string
	get  func(*tandemv1.Org) string
	set  func(*tandemv1.Org, string)
}

// secretFields lists the Org's secrets. It is read-only.
var secretFields = []secretField{
	{
		name: "exchange.password",
		get:  func(o *tandemv1.Org) string { return o.GetExchange().GetPassword() },
		set:  func(o *tandemv1.Org, v string) { exchangeOf(o).Password = v },
	},
	{
		name: "exchange.client_secret",
		get:  func(o *tandemv1.Org) string { return o.GetExchange().GetClientSecret() },
		set:  func(o *tandemv1.Org, v string) { exchangeOf(o).ClientSecret = v },
	},
	{
		name: "salesforce.private_key_pem",
		get:  func(o *tandemv1.Org) string { return o.GetSalesforce().GetPrivateKeyPem() },
		set:  func(o *tandemv1.Org, v string) { salesforceOf(o).PrivateKeyPem = v },
	},
	{
		name: "salesforce.client_secret",
		get:  func(o *tandemv1.Org) string { return o.GetSalesforce().GetClientSecret() },
		set:  func(o *tandemv1.Org, v string) { salesforceOf(o).ClientSecret = v },
	},
}

func exchangeOf(o *tandemv1.Org) *tandemv1.ExchangeConnection {
	if o.Exchange == nil {
		o.Exchange = &tandemv1.ExchangeConnection{}
	}
	return o.Exchange
}

func salesforceOf(o *tandemv1.Org) *tandemv1.SalesforceConnection {
	if o.Salesforce == nil {
		o.Salesforce = &tandemv1.SalesforceConnection{}
	}
	return o.Salesforce
}

func secretHashField(name string) string { return "secret:" + name }

func secretAD(orgID, name string) []byte { return []byte(orgID + "\x00" + name) }

// Redact returns a copy of org without its secrets, for the API and for logs.
func Redact(org *tandemv1.Org) *tandemv1.Org {
	if org == nil {
		return nil
	}
	c := proto.Clone(org).(*tandemv1.Org)
	for _, f := range secretFields {
		if f.get(c) != "" {
			f.set(c, "")
		}
	}
	return c
}

// PutOrg creates or replaces an org's settings. Secret fields are sealed; secret fields left
// empty keep their stored values (the API never returns secrets, so a client that edits
// other settings sends them empty) — unless the edit changes where, or as whom, such a stored
// secret is sent: that is refused with ErrSecretNotBound, and nothing is stored (see bindings).
// It returns the org as stored, secrets removed.
func (s *Store) PutOrg(ctx context.Context, org *tandemv1.Org) (*tandemv1.Org, error) {
	if org == nil {
		return nil, &ValidationError{Violations: []FieldViolation{{Field: "org", Description: "is required"}}}
	}
	var v violations
	switch {
	case !ValidID(org.GetOrgId()):
		v.add("org_id", idRule)
	case org.GetOrgId() == globalTag:
		// Its keys would share the tag of the keys that span orgs (the org index, tokens).
		v.add("org_id", "is reserved; use the org's Salesforce org id")
	}
	if p := org.GetWorkerPool(); p != "" && !ValidWorkerPool(p) {
		v.add("worker_pool", workerPoolRule)
	}
	if sf := org.GetSalesforce(); sf != nil {
		checkEnum(&v, "salesforce.write_as", sf.GetWriteAs())
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	id := org.GetOrgId()
	settings := Redact(org)
	settings.UpdatedAt = timestamppb.New(s.now())
	raw, err := proto.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("put org %s: marshal: %w", id, err)
	}
	values := []any{orgSettingsField, raw}
	for _, f := range secretFields {
		plain := f.get(org)
		if plain == "" {
			continue
		}
		if s.keyring == nil {
			return nil, fmt.Errorf("put org %s: seal %s: %w", id, f.name, ErrNoKeyring)
		}
		sealed, err := s.keyring.Seal([]byte(plain), secretAD(id, f.name))
		if err != nil {
			return nil, fmt.Errorf("put org %s: seal %s: %w", id, f.name, err)
		}
		values = append(values, secretHashField(f.name), sealed)
	}
	key := orgKey(id, orgSettingsName)
	// The binding check reads what is stored, so the write is made only if nothing changed
	// it in between: otherwise a secret stored meanwhile would go where this request says.
	txf := func(tx *redis.Tx) error {
		if err := checkStoredBindings(ctx, tx, id, key, org); err != nil {
			return err
		}
		// The index first: ListOrgs skips an indexed id whose settings are missing, so a crash
		// between the two writes leaves nothing inconsistent. The two keys are in different
		// slots and cannot be written in one transaction on Cluster.
		if err := s.rdb.SAdd(ctx, orgIndexKey(), id).Err(); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, values...)
			return nil
		})
		return err
	}
	if err := s.optimistic(ctx, txf, key); err != nil {
		return nil, fmt.Errorf("put org %s: %w", id, err)
	}
	_ = s.PublishChange(ctx, org.GetOrgId(), "")
	return settings, nil
}

// checkStoredBindings refuses org, with ErrSecretNotBound, if it would send a secret stored for
// the org somewhere new (see bindings).
func checkStoredBindings(ctx context.Context, tx *redis.Tx, id, key string, org *tandemv1.Org) error {
	fields := make([]string, 0, 1+len(secretFields))
	fields = append(fields, orgSettingsField)
	for _, f := range secretFields {
		fields = append(fields, secretHashField(f.name))
	}
	vals, err := tx.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return fmt.Errorf("read stored org: %w", err)
	}
	stored := make(map[string]bool, len(secretFields))
	for i, f := range secretFields {
		stored[f.name] = vals[1+i] != nil
	}
	var old *tandemv1.Org
	if raw, ok := vals[0].(string); ok && raw != "" {
		if old, err = decodeOrg(id, raw); err != nil {
			return err
		}
	}
	return checkBindings(old, org, stored)
}

// GetOrg returns an org with its secrets opened, for the workers that connect with them.
// Never return its result through the API: use Redact or GetOrgRedacted.
func (s *Store) GetOrg(ctx context.Context, id string) (*tandemv1.Org, error) {
	if err := checkID("org id", id); err != nil {
		return nil, fmt.Errorf("get org: %w", err)
	}
	fields, err := s.rdb.HGetAll(ctx, orgKey(id, orgSettingsName)).Result()
	if err != nil {
		return nil, fmt.Errorf("get org %s: %w", id, err)
	}
	org, err := decodeOrg(id, fields[orgSettingsField])
	if err != nil {
		return nil, err
	}
	for _, f := range secretFields {
		sealed, ok := fields[secretHashField(f.name)]
		if !ok {
			continue
		}
		if s.keyring == nil {
			return nil, fmt.Errorf("get org %s: open %s: %w", id, f.name, ErrNoKeyring)
		}
		plain, err := s.keyring.Open([]byte(sealed), secretAD(id, f.name))
		if err != nil {
			return nil, fmt.Errorf("get org %s: open %s: %w", id, f.name, err)
		}
		f.set(org, string(plain))
	}
	return org, nil
}

// GetOrgRedacted returns an org's settings without secrets; it needs no keyring.
func (s *Store) GetOrgRedacted(ctx context.Context, id string) (*tandemv1.Org, error) {
	if err := checkID("org id", id); err != nil {
		return nil, fmt.Errorf("get org: %w", err)
	}
	raw, err := s.rdb.HGet(ctx, orgKey(id, orgSettingsName), orgSettingsField).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("get org %s: %w", id, err)
	}
	return decodeOrg(id, raw)
}

func decodeOrg(id, raw string) (*tandemv1.Org, error) {
	if raw == "" {
		return nil, fmt.Errorf("org %s: %w", id, ErrNotFound)
	}
	org := &tandemv1.Org{}
	if err := proto.Unmarshal([]byte(raw), org); err != nil {
		return nil, fmt.Errorf("org %s: unmarshal: %w", id, err)
	}
	return org, nil
}

// ListOrgs returns every org, without secrets, ordered by id.
func (s *Store) ListOrgs(ctx context.Context) ([]*tandemv1.Org, error) {
	ids, err := s.rdb.SMembers(ctx, orgIndexKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	slices.Sort(ids)
	cmds := make([]*redis.StringCmd, 0, len(ids))
	ids = slices.DeleteFunc(ids, func(id string) bool { return !ValidID(id) })
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			cmds = append(cmds, p.HGet(ctx, orgKey(id, orgSettingsName), orgSettingsField))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	orgs := make([]*tandemv1.Org, 0, len(ids))
	for i, cmd := range cmds {
		raw, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list orgs: %s: %w", ids[i], err)
		}
		org, err := decodeOrg(ids[i], raw)
		if err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		orgs = append(orgs, org)
	}
	return orgs, nil
}
