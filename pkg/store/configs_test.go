package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const testOrg = "00D000000000001"

func validConfig(name string) *tandemv1.SyncConfiguration {
	return &tandemv1.SyncConfiguration{
		Name:   name,
		Active: true,
		Contacts: &tandemv1.ContactSyncSettings{
			Direction:                  tandemv1.SyncDirection_SYNC_DIRECTION_BOTH,
			Scope:                      tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS,
			Filters:                    []*tandemv1.FieldFilter{{Field: "MailingState", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS, Values: []string{"CA"}}},
			MassDeleteThresholdPercent: 50,
		},
		Events: &tandemv1.EventSyncSettings{
			Direction:  tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE,
			RangeStart: tandemv1.EventRangeStart_EVENT_RANGE_START_LAST_N_DAYS,
			RangeDays:  30,
		},
	}
}

func TestConfigurationValidation(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(c *tandemv1.SyncConfiguration)
		wantFields []string // nil: valid
	}{
		{"valid", func(*tandemv1.SyncConfiguration) {}, nil},
		{"defaults", func(c *tandemv1.SyncConfiguration) {
			c.Contacts.MassDeleteThresholdPercent = 0
			c.Events.RangeStart = tandemv1.EventRangeStart_EVENT_RANGE_START_UNSPECIFIED
			c.Events.RangeDays = 0
		}, nil},
		{"threshold 100", func(c *tandemv1.SyncConfiguration) { c.Contacts.MassDeleteThresholdPercent = 100 }, nil},
		{"range 180", func(c *tandemv1.SyncConfiguration) { c.Events.RangeDays = 180 }, nil},
		{"relationship filter", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters[0].Field = "Account.Industry" }, nil},
		{"empty name", func(c *tandemv1.SyncConfiguration) { c.Name = "  " }, []string{"name"}},
		{"long name", func(c *tandemv1.SyncConfiguration) { c.Name = strings.Repeat("n", 256) }, []string{"name"}},
		{"bad id", func(c *tandemv1.SyncConfiguration) { c.Id = "a/b" }, []string{"id"}},
		{"other org", func(c *tandemv1.SyncConfiguration) { c.OrgId = "00D999" }, []string{"org_id"}},
		{"bad user id", func(c *tandemv1.SyncConfiguration) { c.UserIds = []string{"005ok", "bad id"} }, []string{"user_ids[1]"}},
		{"bad profile id", func(c *tandemv1.SyncConfiguration) { c.ProfileIds = []string{"00e:x"} }, []string{"profile_ids[0]"}},
		{"threshold 101", func(c *tandemv1.SyncConfiguration) { c.Contacts.MassDeleteThresholdPercent = 101 }, []string{"contacts.mass_delete_threshold_percent"}},
		{"negative threshold", func(c *tandemv1.SyncConfiguration) { c.Events.MassDeleteThresholdPercent = -1 }, []string{"events.mass_delete_threshold_percent"}},
		{"range 0 with last N days", func(c *tandemv1.SyncConfiguration) { c.Events.RangeDays = 0 }, []string{"events.range_days"}},
		{"range 181", func(c *tandemv1.SyncConfiguration) { c.Events.RangeDays = 181 }, []string{"events.range_days"}},
		{"range 181 with today", func(c *tandemv1.SyncConfiguration) {
			c.Events.RangeStart = tandemv1.EventRangeStart_EVENT_RANGE_START_TODAY
			c.Events.RangeDays = 181
		}, []string{"events.range_days"}},
		{"filter without field", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters[0].Field = "" }, []string{"contacts.filters[0].field"}},
		{"filter field with SOQL", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters[0].Field = "Name) OR (Id != null" }, []string{"contacts.filters[0].field"}},
		{"filter without operator", func(c *tandemv1.SyncConfiguration) {
			c.Contacts.Filters[0].Operator = tandemv1.FilterOperator_FILTER_OPERATOR_UNSPECIFIED
		}, []string{"contacts.filters[0].operator"}},
		{"filter with unknown operator", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters[0].Operator = 99 }, []string{"contacts.filters[0].operator"}},
		{"filter without values", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters[0].Values = nil }, []string{"contacts.filters[0].values"}},
		{"nil filter", func(c *tandemv1.SyncConfiguration) { c.Contacts.Filters = append(c.Contacts.Filters, nil) },
			[]string{"contacts.filters[1].field", "contacts.filters[1].operator", "contacts.filters[1].values"}},
		{"unknown direction", func(c *tandemv1.SyncConfiguration) { c.Events.Direction = 7 }, []string{"events.direction"}},
		{"negative max records", func(c *tandemv1.SyncConfiguration) { c.Contacts.MaxRecords = -5 }, []string{"contacts.max_records"}},
		{"field mappings", func(c *tandemv1.SyncConfiguration) {
			c.Contacts.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_BOTH
			c.Contacts.FieldMappings = []*tandemv1.FieldMapping{
				{Field: "mobile_phone", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_NONE},
				{Field: "job_title", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_EXCHANGE_TO_SALESFORCE},
				{Field: "notes", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE},
			}
			c.Events.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE
			c.Events.FieldMappings = []*tandemv1.FieldMapping{{Field: "body", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_NONE}}
		}, nil},
		{"field mapping problems", func(c *tandemv1.SyncConfiguration) {
			c.Contacts.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE
			c.Contacts.FieldMappings = []*tandemv1.FieldMapping{
				{Field: "home_address", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_NONE},                // Exchange only
				{Field: "job_title", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE}, // against the kind
				{Field: "notes", Direction: 9},
				{Field: "notes", Direction: tandemv1.FieldDirection_FIELD_DIRECTION_NONE},
			}
		}, []string{"contacts.field_mappings[0].field", "contacts.field_mappings[1].direction", "contacts.field_mappings[2].direction",
			"contacts.field_mappings[3].field"}},
		{"several problems", func(c *tandemv1.SyncConfiguration) {
			c.Name = ""
			c.Contacts.MassDeleteThresholdPercent = 200
			c.Events.RangeDays = 365
		}, []string{"name", "contacts.mass_delete_threshold_percent", "events.range_days"}},
	}
	s := newTestStore(t, miniRedis.start(t))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig("Config " + string(rune('A'+i)))
			tc.edit(c)
			_, err := s.PutConfiguration(t.Context(), testOrg, c)
			if tc.wantFields == nil {
				if err != nil {
					t.Fatalf("PutConfiguration: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutConfiguration error = %v, want *ValidationError", err)
			}
			var fields []string
			for _, v := range ve.Violations {
				fields = append(fields, v.Field)
			}
			if diff := cmp.Diff(tc.wantFields, fields); diff != "" {
				t.Fatalf("violations (-want +got):\n%s\n%v", diff, ve)
			}
		})
	}
}

func TestConfigurationRepository(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		clock := newFakeClock()
		s := newTestStore(t, rdb, WithClock(clock.Now))

		in := validConfig("Sales West")
		in.UserIds = []string{"005A", "005B", "005A"}
		created, err := s.PutConfiguration(ctx, testOrg, in)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(created.Id) || created.OrgId != testOrg || !created.UpdatedAt.AsTime().Equal(clock.Now()) {
			t.Fatalf("created = id %q org %q updated %v", created.Id, created.OrgId, created.UpdatedAt.AsTime())
		}
		if !slices.Equal(created.UserIds, []string{"005A", "005B"}) {
			t.Errorf("user ids = %v, want duplicates removed", created.UserIds)
		}
		if in.Id != "" {
			t.Error("PutConfiguration modified its argument")
		}
		got, err := s.GetConfiguration(ctx, testOrg, created.Id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(created, got, protocmp.Transform()); diff != "" {
			t.Fatalf("GetConfiguration (-want +got):\n%s", diff)
		}

		// Names are unique in the org, whatever their case.
		if _, err := s.PutConfiguration(ctx, testOrg, validConfig("sales west")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("duplicate name = %v, want ErrInvalid", err)
		}
		// ...but a configuration keeps its own name when replaced.
		replace := proto.Clone(created).(*tandemv1.SyncConfiguration)
		replace.Active = false
		if _, err := s.PutConfiguration(ctx, testOrg, replace); err != nil {
			t.Fatalf("replace: %v", err)
		}
		if _, err := s.PutConfiguration(ctx, testOrg, validConfig("Sales West")); !errors.Is(err, ErrInvalid) {
			t.Fatal("duplicate name accepted after a replace")
		}
		// The same name in another org is fine.
		if _, err := s.PutConfiguration(ctx, "00D000000000002", validConfig("Sales West")); err != nil {
			t.Fatal(err)
		}

		if _, err := s.PutConfiguration(ctx, testOrg, validConfig("Alpha")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutConfiguration(ctx, testOrg, validConfig("zulu")); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListConfigurations(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range list {
			names = append(names, c.Name)
		}
		if diff := cmp.Diff([]string{"Alpha", "Sales West", "zulu"}, names); diff != "" {
			t.Fatalf("ListConfigurations names (-want +got):\n%s", diff)
		}

		if err := s.DeleteConfiguration(ctx, testOrg, created.Id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetConfiguration(ctx, testOrg, created.Id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetConfiguration after delete = %v, want ErrNotFound", err)
		}
		if err := s.DeleteConfiguration(ctx, testOrg, created.Id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete = %v, want ErrNotFound", err)
		}
	})
}

func TestAssigningAUserMovesItBetweenConfigurations(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		a := validConfig("A")
		a.UserIds = []string{"005u1", "005u2", "005u3"}
		a, err := s.PutConfiguration(ctx, testOrg, a)
		if err != nil {
			t.Fatal(err)
		}
		b := validConfig("B")
		b.UserIds = []string{"005u2"}
		b, err = s.PutConfiguration(ctx, testOrg, b)
		if err != nil {
			t.Fatal(err)
		}
		c := validConfig("C")
		c.UserIds = []string{"005u3", "005u4"}
		if _, err = s.PutConfiguration(ctx, testOrg, c); err != nil {
			t.Fatal(err)
		}

		users := map[string][]string{}
		list, err := s.ListConfigurations(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		for _, cfg := range list {
			users[cfg.Name] = cfg.UserIds
		}
		want := map[string][]string{"A": {"005u1"}, "B": {"005u2"}, "C": {"005u3", "005u4"}}
		if diff := cmp.Diff(want, users); diff != "" {
			t.Fatalf("user lists (-want +got):\n%s", diff)
		}

		// Adding u1 to B moves it out of A, even though A was put first.
		b.UserIds = append(b.UserIds, "005u1")
		if _, err := s.PutConfiguration(ctx, testOrg, b); err != nil {
			t.Fatal(err)
		}
		gotA, err := s.GetConfiguration(ctx, testOrg, a.Id)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotA.UserIds) != 0 {
			t.Fatalf("A still lists %v", gotA.UserIds)
		}
	})
}

// TestConcurrentAssignmentsKeepEachUserInOneConfiguration races puts that assign the same
// users to different configurations: afterwards no user is in two user lists.
func TestConcurrentAssignmentsKeepEachUserInOneConfiguration(t *testing.T) {
	rdb := redisServer.start(t)
	s := newTestStore(t, rdb)
	ctx := t.Context()
	shared := []string{"005s1", "005s2", "005s3"}
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c := validConfig("Config " + string(rune('A'+i)))
			c.UserIds = append(slices.Clone(shared), "005own"+string(rune('a'+i)))
			_, err := s.PutConfiguration(ctx, testOrg, c)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListConfigurations(ctx, testOrg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d configurations, want %d", len(list), n)
	}
	seen := map[string]string{}
	for _, c := range list {
		for _, u := range c.UserIds {
			if other, dup := seen[u]; dup {
				t.Fatalf("user %s is in %s and %s", u, other, c.Name)
			}
			seen[u] = c.Name
		}
	}
	for _, u := range shared {
		if seen[u] == "" {
			t.Errorf("user %s ended in no configuration", u)
		}
	}
}

func TestResolveConfiguration(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		put := func(name string, active bool, users, profiles []string) string {
			t.Helper()
			c := validConfig(name)
			c.Active, c.UserIds, c.ProfileIds = active, users, profiles
			stored, err := s.PutConfiguration(ctx, testOrg, c)
			if err != nil {
				t.Fatal(err)
			}
			return stored.Name
		}
		put("Individual", true, []string{"005ind"}, nil)
		put("By profile", true, nil, []string{"00eSales", "00eBoth"})
		put("Another by profile", true, nil, []string{"00eBoth"})
		put("Inactive individual", false, []string{"005inactivecfg"}, []string{"00eSales"})
		put("Inactive profile", false, nil, []string{"00eOnlyInactive"})

		tests := []struct {
			name string
			user *tandemv1.SyncUser
			want string // "" means none
		}{
			{"listed individually beats profile", &tandemv1.SyncUser{UserId: "005ind", ProfileId: "00eSales", Active: true}, "Individual"},
			{"by profile", &tandemv1.SyncUser{UserId: "005p", ProfileId: "00eSales", Active: true}, "By profile"},
			{"two profile matches: first by name", &tandemv1.SyncUser{UserId: "005p", ProfileId: "00eBoth", Active: true}, "Another by profile"},
			{"individual in an inactive config falls back to profile", &tandemv1.SyncUser{UserId: "005inactivecfg", ProfileId: "00eSales", Active: true}, "By profile"},
			{"only an inactive config", &tandemv1.SyncUser{UserId: "005x", ProfileId: "00eOnlyInactive", Active: true}, ""},
			{"no match", &tandemv1.SyncUser{UserId: "005x", ProfileId: "00eNone", Active: true}, ""},
			{"inactive user", &tandemv1.SyncUser{UserId: "005ind", ProfileId: "00eSales", Active: false}, ""},
			{"nil user", nil, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				cfg, ok, err := s.ResolveConfiguration(t.Context(), testOrg, tc.user)
				if err != nil {
					t.Fatal(err)
				}
				if ok != (tc.want != "") || cfg.GetName() != tc.want {
					t.Fatalf("resolved %q (%v), want %q", cfg.GetName(), ok, tc.want)
				}
			})
		}

		// ListAssignments resolves every user of the directory the same way.
		var users []*tandemv1.SyncUser
		want := map[string]string{}
		for i, tc := range tests {
			if tc.user == nil {
				continue
			}
			u := proto.Clone(tc.user).(*tandemv1.SyncUser)
			if _, taken := want[u.UserId]; taken {
				// Only the first case of an id depends on it; the others match by profile or not at all.
				u.UserId = fmt.Sprintf("005user%02d", i)
			}
			users = append(users, u)
			want[u.UserId] = tc.want
		}
		if err := s.PutUsers(ctx, testOrg, users); err != nil {
			t.Fatal(err)
		}
		assigned, err := s.ListAssignments(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, a := range assigned {
			got[a.User.GetUserId()] = a.Config.GetName()
		}
		if !maps.Equal(got, want) {
			t.Fatalf("ListAssignments: %v, want %v", got, want)
		}
	})
}

func TestSyncedKinds(t *testing.T) {
	both := tandemv1.SyncDirection_SYNC_DIRECTION_BOTH
	for _, tc := range []struct {
		name string
		cfg  *tandemv1.SyncConfiguration
		want []tandemv1.RecordKind
	}{
		{"none", nil, nil},
		{"nothing set", &tandemv1.SyncConfiguration{}, nil},
		{"contacts", &tandemv1.SyncConfiguration{Contacts: &tandemv1.ContactSyncSettings{Direction: both}}, []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT}},
		{"events", &tandemv1.SyncConfiguration{Events: &tandemv1.EventSyncSettings{Direction: both}}, []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_EVENT}},
		{"both", &tandemv1.SyncConfiguration{Contacts: &tandemv1.ContactSyncSettings{Direction: both}, Events: &tandemv1.EventSyncSettings{Direction: both}},
			[]tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT}},
	} {
		if got := SyncedKinds(tc.cfg); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
