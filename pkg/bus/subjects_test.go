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
		{"exchange job", func() (string, error) { return bus.ExchangeJobSubject(testOrg, testUser) },
			"tandem.jobs." + testOrg + ".exchange." + testUser,
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, UserID: testUser, System: exchange}},
		{"salesforce job", func() (string, error) { return bus.SalesforceJobSubject(testOrg) },
			"tandem.jobs." + testOrg + ".salesforce",
			bus.Subject{Kind: bus.KindJob, OrgID: testOrg, System: salesforce}},
		{"changes", func() (string, error) { return bus.ChangesSubject(testOrg, testUser) },
			"tandem.changes." + testOrg + "." + testUser,
			bus.Subject{Kind: bus.KindChanges, OrgID: testOrg, UserID: testUser}},
		{"apply exchange", func() (string, error) { return bus.ApplySubject(testOrg, exchange, testUser) },
			"tandem.apply." + testOrg + ".exchange." + testUser,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, UserID: testUser, System: exchange}},
		{"apply salesforce", func() (string, error) { return bus.ApplySubject(testOrg, salesforce, testUser) },
			"tandem.apply." + testOrg + ".salesforce." + testUser,
			bus.Subject{Kind: bus.KindApply, OrgID: testOrg, UserID: testUser, System: salesforce}},
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
				"exchange job org":  func() (string, error) { return bus.ExchangeJobSubject(b.token, testUser) },
				"exchange job user": func() (string, error) { return bus.ExchangeJobSubject(testOrg, b.token) },
				"salesforce job":    func() (string, error) { return bus.SalesforceJobSubject(b.token) },
				"changes org":       func() (string, error) { return bus.ChangesSubject(b.token, testUser) },
				"changes user":      func() (string, error) { return bus.ChangesSubject(testOrg, b.token) },
				"apply user":        func() (string, error) { return bus.ApplySubject(testOrg, exchange, b.token) },
				"results user":      func() (string, error) { return bus.ResultsSubject(testOrg, b.token) },
				"dead":              func() (string, error) { return bus.DeadSubject(b.token) },
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
	if _, err := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_UNSPECIFIED, testUser); !errors.Is(err, bus.ErrInvalidSubject) {
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
		"tandem.jobs.org.salesforce.user",
		"tandem.jobs.org.graph.user",
		"tandem.changes.org",
		"tandem.changes.org.user.extra",
		"tandem.changes.org.*",
		"tandem.changes.>",
		"tandem.apply.org.user",
		"tandem.apply.org.crm.user",
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
	} {
		if got, err := s.Format(); !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("%+v.Format() = %q, %v; want ErrInvalidSubject", s, got, err)
		}
	}
}

// TestEverySubjectHasExactlyOneConsumer checks the routing the topology promises: every
// subject a builder makes lands in exactly one stream and is taken by exactly one consumer.
func TestEverySubjectHasExactlyOneConsumer(t *testing.T) {
	top := bus.NewTopology(bus.Config{Replicas: 1, DuplicateWindow: bus.DefaultDuplicateWindow,
		DeadLetterMaxAge: bus.DefaultDeadLetterMaxAge, AckWait: bus.DefaultAckWait, MaxDeliver: bus.DefaultMaxDeliver})
	subjects := map[string]string{ // subject -> consumer that must take it
		must(bus.ExchangeJobSubject(testOrg, testUser)):         bus.ConsumerExchangeJobs,
		must(bus.SalesforceJobSubject(testOrg)):                 bus.ConsumerSalesforceJobs,
		must(bus.ChangesSubject(testOrg, testUser)):             bus.ConsumerReconcilerChanges,
		must(bus.ApplySubject(testOrg, exchange, testUser)):     bus.ConsumerExchangeApply,
		must(bus.ApplySubject(testOrg, salesforce, testUser)):   bus.ConsumerSalesforceApply,
		must(bus.ResultsSubject(testOrg, testUser)):             bus.ConsumerReconcilerResults,
		must(bus.DeadSubject(testOrg)):                          bus.ConsumerStatusDead,
		must(bus.ExchangeJobSubject("salesforce", "exchange")):  bus.ConsumerExchangeJobs,
		must(bus.ApplySubject("exchange", salesforce, "apply")): bus.ConsumerSalesforceApply,
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
		for _, c := range top.Consumers {
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

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func FuzzParseSubject(f *testing.F) {
	for _, seed := range []string{
		"tandem.jobs." + testOrg + ".exchange." + testUser,
		"tandem.jobs." + testOrg + ".salesforce",
		"tandem.changes." + testOrg + "." + testUser,
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
		if strings.ContainsAny(route.OrgID+route.UserID, ".*>@ ") {
			t.Fatalf("ParseSubject(%q) accepted a non-id token: %+v", subject, route)
		}
	})
}
