package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg  = "00D5g000004SBdtEAG"
	testUser = "0055g00000A1bCdAAJ"
	testPool = "shared"
)

var (
	exchange   = tandemv1.System_SYSTEM_EXCHANGE
	salesforce = tandemv1.System_SYSTEM_SALESFORCE
)

func TestSubjectBuilders(t *testing.T) {
	tests := []struct {
		name  string
		build func() (string, error)
		want  string
		route bus.Subject
	}{
		{"exchange job", func() (string, error) { return bus.ExchangeJobSubject(testOrg, testPool, testUser) },
			"tandem.jobs." + testOrg + ".exchange.shared." + testUser,
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser, System: exchange, Pool: testPool}},
		{"exchange job, pool big", func() (string, error) { return bus.ExchangeJobSubject(testOrg, "big", testUser) },
			"tandem.jobs." + testOrg + ".exchange.big." + testUser,
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser, System: exchange, Pool: "big"}},
		{"salesforce job", func() (string, error) { return bus.SalesforceJobSubject(testOrg, testPool) },
			"tandem.jobs." + testOrg + ".salesforce.shared",
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, System: salesforce, Pool: testPool}},
		{"salesforce job, pool acme-2", func() (string, error) { return bus.SalesforceJobSubject(testOrg, "acme-2") },
			"tandem.jobs." + testOrg + ".salesforce.acme-2",
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, System: salesforce, Pool: "acme-2"}},
		{"changes", func() (string, error) { return bus.ChangesSubject(testOrg, testUser) },
			"tandem.changes." + testOrg + "." + testUser,
			bus.Subject{Kind: bus.KindChanges, OrgID: testOrg, UserID: testUser}},
		{"apply exchange", func() (string, error) { return bus.ApplySubject(testOrg, exchange, testPool, testUser) },
			"tandem.apply." + testOrg + ".exchange.shared." + testUser,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, UserID: testUser, System: exchange, Pool: testPool}},
		{"apply salesforce, pool big", func() (string, error) { return bus.ApplySubject(testOrg, salesforce, "big", testUser) },
			"tandem.apply." + testOrg + ".salesforce.big." + testUser,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, UserID: testUser, System: salesforce, Pool: "big"}},
		{"results", func() (string, error) { return bus.ResultsSubject(testOrg, testUser) },
			"tandem.results." + testOrg + "." + testUser,
			bus.Subject{Kind: bus.KindResults, OrgID: testOrg, UserID: testUser}},
		{"dead", func() (string, error) { return bus.DeadSubject(testOrg) },
			"tandem.dead." + testOrg,
			bus.Subject{Kind: bus.KindDead, OrgID: testOrg}},
		{"ids with dash and underscore", func() (string, error) { return bus.ChangesSubject("org_1", "user-2") },
			"tandem.changes.org_1.user-2",
			bus.Subject{Kind: bus.KindChanges, OrgID: "org_1", UserID: "user-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if got != tt.want {
				t.Fatalf("subject %q, want %q", got, tt.want)
			}
			route, err := bus.ParseSubject(got)
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", got, err)
			}
			if route != tt.route {
				t.Fatalf("ParseSubject(%q) = %+v, want %+v", got, route, tt.route)
			}
			again, err := route.Format()
			if err != nil || again != got {
				t.Fatalf("Format() = %q, %v; want %q", again, err, got)
			}
		})
	}
}

func TestSubjectBuildersRejectNonIDs(t *testing.T) {
	bad := []struct {
		name, token string
	}{
		{"email", "jane.doe@example.com"},
		{"dot", "a.b"},
		{"star wildcard", "*"},
		{"tail wildcard", ">"},
		{"empty", ""},
		{"space", "a b"},
		{"non-ascii", "usér"},
		{"too long", strings.Repeat("a", 129)},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			builds := map[string]func() (string, error){
				"exchange job org":    func() (string, error) { return bus.ExchangeJobSubject(b.token, testPool, testUser) },
				"exchange job pool":   func() (string, error) { return bus.ExchangeJobSubject(testOrg, b.token, testUser) },
				"exchange job user":   func() (string, error) { return bus.ExchangeJobSubject(testOrg, testPool, b.token) },
				"salesforce job org":  func() (string, error) { return bus.SalesforceJobSubject(b.token, testPool) },
				"salesforce job pool": func() (string, error) { return bus.SalesforceJobSubject(testOrg, b.token) },
				"changes org":         func() (string, error) { return bus.ChangesSubject(b.token, testUser) },
				"changes user":        func() (string, error) { return bus.ChangesSubject(testOrg, b.token) },
				"apply pool":          func() (string, error) { return bus.ApplySubject(testOrg, exchange, b.token, testUser) },
				"apply user":          func() (string, error) { return bus.ApplySubject(testOrg, exchange, testPool, b.token) },
				"results user":        func() (string, error) { return bus.ResultsSubject(testOrg, b.token) },
				"dead":                func() (string, error) { return bus.DeadSubject(b.token) },
			}
			for what, build := range builds {
				if s, err := build(); !errors.Is(err, bus.ErrInvalidSubject) {
					t.Errorf("%s with %q = %q, %v; want ErrInvalidSubject", what, b.token, s, err)
				}
			}
		})
	}
	if _, err := bus.ChangesSubject(testOrg, strings.Repeat("a", 128)); err != nil {
		t.Errorf("128-byte token refused: %v", err)
	}
	if _, err := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_UNSPECIFIED, testPool, testUser); !errors.Is(err, bus.ErrInvalidSubject) {
		t.Errorf("apply to unspecified system: %v, want ErrInvalidSubject", err)
	}
}

func TestParseSubjectRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"tandem",
		"tandem.jobs",
		"other.jobs.org.exchange.user",
		"tandem.jobs.org.exchange",
		"tandem.jobs.org.exchange.user",
		"tandem.jobs.org.exchange.shared",
		"tandem.jobs.org.exchange.*.user",
		"tandem.jobs.org.exchange.a.b.user",
		"tandem.jobs.org.salesforce",
		"tandem.jobs.org.salesforce.shared.user",
		"tandem.jobs.org.salesforce.>",
		"tandem.jobs.org.graph.shared.user",
		"tandem.changes.org",
		"tandem.changes.org.user.extra",
		"tandem.changes.org.*",
		"tandem.changes.>",
		"tandem.apply.org.user",
		"tandem.apply.org.exchange.user",
		"tandem.apply.org.crm.shared.user",
		"tandem.apply.org.exchange..user",
		"tandem.apply.org.salesforce.*.user",
		"tandem.results.org",
		"tandem.dead.org.user",
		"tandem.dead",
		"tandem.unknown.org.user",
		"tandem.changes..user",
		"tandem.changes.org.jane@example.com",
	} {
		if got, err := bus.ParseSubject(s); !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("ParseSubject(%q) = %+v, %v; want ErrInvalidSubject", s, got, err)
		}
	}
}

func TestSubjectFormatRejects(t *testing.T) {
	for _, s := range []bus.Subject{
		{},
		{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser},
		{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser, System: salesforce},
		{Kind: bus.KindDead, OrgID: testOrg, UserID: testUser},
		{Kind: bus.KindChanges, OrgID: testOrg},
		{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser, System: exchange},
		{Kind: bus.KindApply, OrgID: testOrg, UserID: testUser, System: exchange, Pool: "a.b"},
		{Kind: bus.KindChanges, OrgID: testOrg, UserID: testUser, Pool: testPool},
	} {
		if got, err := s.Format(); !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("%+v.Format() = %q, %v; want ErrInvalidSubject", s, got, err)
		}
	}
}

// TestEverySubjectHasExactlyOneConsumer checks the routing the topology promises: every
// subject a builder makes lands in exactly one stream and is taken by exactly one consumer,
// the workers' subjects by their pool's consumer and no other pool's.
func TestEverySubjectHasExactlyOneConsumer(t *testing.T) {
	top := bus.NewTopology(bus.Config{Replicas: 1, DuplicateWindow: bus.DefaultDuplicateWindow,
		DeadLetterMaxAge: bus.DefaultDeadLetterMaxAge, AckWait: bus.DefaultAckWait, MaxDeliver: bus.DefaultMaxDeliver})
	pools := []string{testPool, "big", "exchange", "shared-2"}
	pooled := func(role, pool string) string { return bus.PoolConsumer(role, pool) }
	subjects := map[string]string{ // subject -> consumer that must take it
		must(bus.ChangesSubject(testOrg, testUser)): bus.ConsumerReconcilerChanges,
		must(bus.ResultsSubject(testOrg, testUser)): bus.ConsumerReconcilerResults,
		must(bus.DeadSubject(testOrg)):              bus.ConsumerStatusDead,
		must(bus.ChangesSubject("exchange", "big")): bus.ConsumerReconcilerChanges,
	}
	for _, pool := range pools {
		subjects[must(bus.ExchangeJobSubject(testOrg, pool, testUser))] = pooled(bus.ConsumerExchangeJobs, pool)
		subjects[must(bus.SalesforceJobSubject(testOrg, pool))] = pooled(bus.ConsumerSalesforceJobs, pool)
		subjects[must(bus.ApplySubject(testOrg, exchange, pool, testUser))] = pooled(bus.ConsumerExchangeApply, pool)
		subjects[must(bus.ApplySubject(testOrg, salesforce, pool, testUser))] = pooled(bus.ConsumerSalesforceApply, pool)
		// Ids that look like other tokens of the grammar do not fool the filters.
		subjects[must(bus.ExchangeJobSubject("salesforce", pool, "exchange"))] = pooled(bus.ConsumerExchangeJobs, pool)
		subjects[must(bus.ApplySubject("exchange", salesforce, pool, "big"))] = pooled(bus.ConsumerSalesforceApply, pool)
	}
	consumerSpecs := top.Consumers
	for _, role := range []string{bus.ConsumerExchangeJobs, bus.ConsumerSalesforceJobs, bus.ConsumerExchangeApply, bus.ConsumerSalesforceApply} {
		for _, pool := range pools {
			spec, ok := top.Consumer(pooled(role, pool))
			if !ok || spec.Pool != pool || spec.Config.Durable != pooled(role, pool) {
				t.Fatalf("Consumer(%s) = %+v, %v", pooled(role, pool), spec, ok)
			}
			consumerSpecs = append(consumerSpecs, spec)
		}
	}
	for subject, want := range subjects {
		var streams []string
		for _, s := range top.Streams {
			for _, f := range s.Subjects {
				if subjectMatches(f, subject) {
					streams = append(streams, s.Name)
				}
			}
		}
		var consumers []string
		for _, c := range consumerSpecs {
			if subjectMatches(c.Config.FilterSubject, subject) {
				consumers = append(consumers, c.Config.Durable)
				if len(streams) == 1 && c.Stream != streams[0] {
					t.Errorf("%s: consumer %s reads stream %s, subject is stored in %s", subject, c.Config.Durable, c.Stream, streams[0])
				}
			}
		}
		if len(streams) != 1 {
			t.Errorf("%s is stored in streams %v, want exactly one", subject, streams)
		}
		if len(consumers) != 1 || consumers[0] != want {
			t.Errorf("%s is taken by consumers %v, want [%s]", subject, consumers, want)
		}
	}
}

// subjectMatches implements NATS wildcard matching for the test's routing check.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// TestPoolConsumerNames: a pool's consumer is named for its role and pool; names with no valid
// pool are unknown.
func TestPoolConsumerNames(t *testing.T) {
	top := bus.NewTopology(bus.Config{Replicas: 1, DuplicateWindow: bus.DefaultDuplicateWindow,
		DeadLetterMaxAge: bus.DefaultDeadLetterMaxAge, AckWait: bus.DefaultAckWait, MaxDeliver: bus.DefaultMaxDeliver})
	if got := bus.PoolConsumer(bus.ConsumerExchangeJobs, "shared"); got != "exchange-worker-jobs-shared" {
		t.Errorf("PoolConsumer = %q, want exchange-worker-jobs-shared", got)
	}
	spec, ok := top.Consumer("salesforce-worker-apply-big-2")
	if !ok || spec.Pool != "big-2" || spec.Config.FilterSubject != "tandem.apply.*.salesforce.big-2.*" || !spec.DoubleAck {
		t.Errorf("Consumer(salesforce-worker-apply-big-2) = %+v, %v", spec, ok)
	}
	for _, name := range []string{
		bus.ConsumerExchangeJobs, bus.ConsumerExchangeJobs + "-", bus.ConsumerExchangeJobs + "-a.b",
		bus.ConsumerExchangeJobs + "-*", bus.ConsumerExchangeJobs + "->", "reconciler-changes-shared",
	} {
		if spec, ok := top.Consumer(name); ok {
			t.Errorf("Consumer(%q) = %+v, want unknown", name, spec)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func FuzzParseSubject(f *testing.F) {
	for _, seed := range []string{
		"tandem.jobs." + testOrg + ".exchange.shared." + testUser,
		"tandem.jobs." + testOrg + ".salesforce.big",
		"tandem.changes." + testOrg + "." + testUser,
		"tandem.apply." + testOrg + ".salesforce.shared." + testUser,
		"tandem.apply." + testOrg + ".exchange.big." + testUser,
		"tandem.jobs." + testOrg + ".exchange." + testUser,
		"tandem.apply." + testOrg + ".salesforce." + testUser,
		"tandem.results." + testOrg + "." + testUser,
		"tandem.dead." + testOrg,
		"tandem.changes.org.jane@example.com",
		"tandem.changes.*.>",
		"tandem..",
		"tandem.jobs.org.exchange.",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		route, err := bus.ParseSubject(subject)
		if err != nil {
			if !errors.Is(err, bus.ErrInvalidSubject) {
				t.Fatalf("ParseSubject(%q) error %v is not ErrInvalidSubject", subject, err)
			}
			return
		}
		again, err := route.Format()
		if err != nil {
			t.Fatalf("ParseSubject(%q) = %+v, which does not format: %v", subject, route, err)
		}
		if again != subject {
			t.Fatalf("ParseSubject(%q) formats back as %q", subject, again)
		}
		if strings.ContainsAny(route.OrgID+route.UserID+route.Pool, ".*>@ ") {
			t.Fatalf("ParseSubject(%q) accepted a non-id token: %+v", subject, route)
		}
	})
}
