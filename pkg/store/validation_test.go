package store

import (
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestCaseSafeOrgID(t *testing.T) {
	for _, tc := range []struct {
		id, want string
		ok       bool
	}{
		// The suffix sets one bit per upper-case letter of each chunk of five: D is the third
		// character of "00D00" (bit 2: E), the other chunks have none (A).
		{"00D000000000062", "00D000000000062EAA", true},
		// "0IZ3Z": I, Z, Z are bits 1, 2 and 4: 2+4+16 = 22, W.
		{"00D50000000IZ3Z", "00D50000000IZ3ZEAW", true},
		// "01gPL": P and L are bits 3 and 4: 8+16 = 24, Y; g is lower case.
		{"00Dxx0000001gPL", "00Dxx0000001gPLEAY", true},
		// "00DAB": bits 2, 3, 4 (28, "2"); "CDEFG" and "HIJKL" all five (31, "5").
		{"00DABCDEFGHIJKL", "00DABCDEFGHIJKL255", true},
		// The 18-character form is its own, and read case-insensitively.
		{"00D000000000062EAA", "00D000000000062EAA", true},
		{"00d000000000062eaa", "00D000000000062EAA", true},
		{"00DXX0000001GPLEAY", "00Dxx0000001gPLEAY", true},
		// Not org ids.
		{"", "", false},
		{"org1", "", false},
		{"00D00000000006", "", false},        // 14 characters
		{"00D0000000000622", "", false},      // 16
		{"00E000000000062", "", false},       // another object's key prefix
		{"00d000000000062", "", false},       // a 15-character id is case-sensitive
		{"00D00000000006!", "", false},       // not alphanumeric
		{"00D000000000062EAB", "", false},    // B marks a digit upper case
		{"00D000000000062EA9", "", false},    // 9 encodes nothing
		{"00D000000000062AAA", "", false},    // A says the D is lower case: 00d is no org
		{"00D000000000é2EAA", "", false},     // 18 bytes, not ASCII
		{"00Dorg000000001XYZ", "", false},    // X marks digits upper case
		{"00D000000000062EAA ", "", false},   // 19 with the space
		{" 00D000000000062EAA", "", false},   // so is this
		{"00D000000000062\x00AA", "", false}, // a NUL
	} {
		got, ok := CaseSafeOrgID(tc.id)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CaseSafeOrgID(%q) = %q, %v; want %q, %v", tc.id, got, ok, tc.want, tc.ok)
		}
	}
}

// TestCaseSafeOrgIDMatchesTheSimulator compares with the Salesforce simulator's own
// implementation of the same suffix, written apart from this one.
func TestCaseSafeOrgIDMatchesTheSimulator(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id15 := "00D" + rapid.StringMatching(`[0-9A-Za-z]{12}`).Draw(t, "rest")
		got, ok := CaseSafeOrgID(id15)
		want, simOK := sfsim.NormalizeID(id15)
		if !ok || !simOK || got != want {
			t.Fatalf("CaseSafeOrgID(%q) = %q, %v; the simulator's is %q, %v", id15, got, ok, want, simOK)
		}
		if again, ok := CaseSafeOrgID(strings.ToLower(got)); !ok || again != got {
			t.Fatalf("CaseSafeOrgID(%q) = %q, %v; want %q", strings.ToLower(got), again, ok, got)
		}
	})
}

func FuzzCaseSafeOrgID(f *testing.F) {
	for _, s := range []string{"00D000000000062", "00D000000000062EAA", "00d000000000062eaa", "00D000000000062EAB", "org1", "", "00DABCDEFGHIJKL255"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got, ok := CaseSafeOrgID(id)
		if !ok {
			return
		}
		if len(got) != 18 || !strings.HasPrefix(got, orgIDPrefix) || !strings.EqualFold(got[:15], id[:15]) {
			t.Fatalf("CaseSafeOrgID(%q) = %q", id, got)
		}
		if len(id) == 15 && got[:15] != id {
			t.Fatalf("CaseSafeOrgID(%q) = %q changed the case of a 15-character id", id, got)
		}
		if again, ok := CaseSafeOrgID(got); !ok || again != got {
			t.Fatalf("CaseSafeOrgID(%q) = %q, %v; not its own form", got, again, ok)
		}
	})
}

func TestOrgRulesCheck(t *testing.T) {
	const id = "00D000000000062EAA"
	withURLs := func(ews, autodiscover, token, myDomain, audience string) *tandemv1.Org {
		return &tandemv1.Org{
			OrgId:      id,
			Exchange:   &tandemv1.ExchangeConnection{EwsUrl: ews, AutodiscoverUrl: autodiscover, TokenUrl: token},
			Salesforce: &tandemv1.SalesforceConnection{MyDomainUrl: myDomain, Audience: audience},
		}
	}
	https := withURLs("https://mail.example.com/EWS/Exchange.asmx", "https://autodiscover.example.com/autodiscover/autodiscover.svc",
		"https://login.microsoftonline.com/t/oauth2/v2.0/token", "https://acme.my.salesforce.com", "https://test.salesforce.com")
	plain := withURLs("http://mail.example.com/EWS/Exchange.asmx", "http://autodiscover.example.com/autodiscover/autodiscover.svc",
		"http://127.0.0.1:9000/token", "http://127.0.0.1:8443", "http://127.0.0.1:8443")

	type want struct{ field, says string }
	for _, tc := range []struct {
		name  string
		rules OrgRules
		org   *tandemv1.Org
		want  []want
		never []string // must not appear in the message
	}{
		{name: "an 18-character id and https everywhere", org: https},
		{name: "no URLs at all", org: &tandemv1.Org{OrgId: id}},
		{name: "plain http with --allow-http", rules: OrgRules{AllowHTTP: true}, org: plain},
		{name: "no org", org: nil, want: []want{{"org", "is required"}}},
		{name: "no id", org: &tandemv1.Org{}, want: []want{{"org_id", "is required: enter the org's 18-character Salesforce org id, which starts with 00D (Setup → Company Information"}}},
		{
			name: "a 15-character id", org: &tandemv1.Org{OrgId: "00D000000000062"},
			want: []want{{"org_id", `"00D000000000062" is the 15-character form of the org id: enter its 18-character form, 00D000000000062EAA`}},
		},
		{
			name: "an 18-character id in lower case", org: &tandemv1.Org{OrgId: "00d000000000062eaa"},
			want: []want{{"org_id", "enter it as 00D000000000062EAA"}},
		},
		{
			name: "a mistyped 18-character id", org: &tandemv1.Org{OrgId: "00D000000000062EAB"},
			want: []want{{"org_id", "its last three characters do not match the first 15"}},
		},
		{
			name: "a name, not an id", org: &tandemv1.Org{OrgId: "acme"},
			want: []want{{"org_id", `"acme" is not a Salesforce org id: enter the org's 18-character Salesforce org id, which starts with 00D (Setup → Company Information in Salesforce shows its first 15 characters as the Salesforce.com Organization ID: entered alone, they are answered with all 18)`}},
		},
		{
			name: "plain http everywhere", org: plain,
			want: []want{
				{"exchange.ews_url", `"http://mail.example.com/EWS/Exchange.asmx" is plain http, which would send credentials in clear: enter the https URL of the EWS endpoint, such as https://mail.example.com/EWS/Exchange.asmx, or nothing to find it with Autodiscover (plain http is accepted only when Tandem runs with --allow-http`},
				{"exchange.autodiscover_url", "enter the https URL of the Autodiscover endpoint"},
				{"exchange.token_url", "enter the https URL of the OAuth token endpoint"},
				{"salesforce.my_domain_url", `"http://127.0.0.1:8443" is plain http, which would send credentials in clear: enter the org's My Domain URL, such as https://acme.my.salesforce.com`},
				{"salesforce.audience", "https://test.salesforce.com for a sandbox"},
			},
		},
		{
			name: "credentials in a URL are refused and not quoted", rules: OrgRules{AllowHTTP: true},
			org:   withURLs("https://svc:hunter2@mail.example.com/EWS/Exchange.asmx", "", "", "", ""),
			want:  []want{{"exchange.ews_url", `"https://mail.example.com/EWS/Exchange.asmx" carries a user name or password, which would be stored unsealed: put credentials in the connection's own fields, which are sealed, and enter the https URL of the EWS endpoint`}},
			never: []string{"hunter2", "svc:"},
		},
		{
			name:  "a query is not quoted",
			org:   withURLs("", "", "http://login.example.com/token?client_secret=hunter2", "", ""),
			want:  []want{{"exchange.token_url", `"http://login.example.com/token?…" is plain http`}},
			never: []string{"hunter2"},
		},
		{
			name: "no scheme", org: withURLs("", "", "", "acme.my.salesforce.com", ""),
			want: []want{{"salesforce.my_domain_url", `"acme.my.salesforce.com" is not an absolute URL: enter the org's My Domain URL`}},
		},
		{
			name: "another scheme", org: withURLs("", "ftp://autodiscover.example.com/x", "", "", ""),
			want: []want{{"exchange.autodiscover_url", `"ftp://autodiscover.example.com/x" is not an http URL`}},
		},
		{
			name:  "a URL that cannot be parsed, with what may be a password, is not quoted",
			org:   withURLs("https://svc:p%zz@mail.example.com/", "", "", "", ""),
			want:  []want{{"exchange.ews_url", "the URL given (not quoted: it may hold a credential) is not an absolute URL"}},
			never: []string{"p%zz"},
		},
		{
			name: "everything at once", org: &tandemv1.Org{OrgId: "org1", Salesforce: &tandemv1.SalesforceConnection{MyDomainUrl: "http://acme.my.salesforce.com"}},
			want: []want{{"org_id", "is not a Salesforce org id"}, {"salesforce.my_domain_url", "is plain http"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Check(tc.org)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Check = %v, want a *ValidationError", err)
			}
			if len(verr.Violations) != len(tc.want) {
				t.Errorf("violations %v, want %d", verr.Violations, len(tc.want))
			}
			for i, w := range tc.want {
				if i >= len(verr.Violations) {
					break
				}
				if v := verr.Violations[i]; v.Field != w.field || !strings.Contains(v.Description, w.says) {
					t.Errorf("violation %d = %s: %s\nwant %s: …%s…", i, v.Field, v.Description, w.field, w.says)
				}
			}
			for _, never := range tc.never {
				if strings.Contains(err.Error(), never) {
					t.Errorf("message quotes %q: %v", never, err)
				}
			}
		})
	}
}
