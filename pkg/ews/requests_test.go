package ews

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/ewsschema"

	"github.com/beevik/etree"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var update = flag.Bool("update", false, "rewrite the golden requests in testdata/requests")

// requestCases are every kind of request the client builds; each produces one golden file.
func requestCases() []struct {
	name string
	run  func(ctx context.Context, cl *Client, t Target) error
} {
	type rc = struct {
		name string
		run  func(ctx context.Context, cl *Client, t Target) error
	}
	folder := FolderID{ID: "AAMkFolder=", ChangeKey: "AQAAAA=="}
	cases := []rc{
		{"GetFolder", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.GetFolders(ctx, t, CalendarFolder, ContactsFolder)
			return err
		}},
		{"FindFolder", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.FindFolders(ctx, t, FolderID{ID: "AAMkContacts="}, "Salesforce_Sync")
			return err
		}},
		{"CreateFolder", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.CreateFolder(ctx, t, FolderID{ID: "AAMkContacts="}, "Salesforce_Sync", "IPF.Contact")
			return err
		}},
		{"SyncFolderItems-initial", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.SyncFolderItems(ctx, t, folder, "", 0)
			return err
		}},
		{"SyncFolderItems-state", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.SyncFolderItems(ctx, t, FolderID{ID: "AAMkFolder="}, "H4sIAAAAAAAEAGNgYGcAAotqE0tHE2NTA0ddZ3NHC10TR2djXSdnJ2ddNyMnC2cnczdLU1OD2vBgveDKvOTgksSSVOfEvMSiSgYr0nW65eekpBZ5pjBYkq43LLWoODM", 100)
			return err
		}},
		{"GetItem-contacts", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.GetItems(ctx, t, tandemv1.RecordKind_RECORD_KIND_CONTACT, []ItemID{{ID: "AAMkItem1="}, {ID: "AAMkItem2=", ChangeKey: "EQAAAB"}})
			return err
		}},
		{"GetItem-events", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.GetItems(ctx, t, tandemv1.RecordKind_RECORD_KIND_EVENT, []ItemID{{ID: "AAMkEvent1="}})
			return err
		}},
		{"FindItem-one-key", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.FindItemsBySyncKey(ctx, t, []FolderID{folder}, []string{"sk-1"})
			return err
		}},
		{"FindItem-keys", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.FindItemsBySyncKey(ctx, t, []FolderID{folder, DeletedItemsFolder}, []string{"sk-1", "sk-2", "sk-3"})
			return err
		}},
		{"CreateItem-contact-full", func(ctx context.Context, cl *Client, t Target) error {
			return createOK(cl.CreateItems(ctx, t, folder, []*tandemv1.Record{contactRecord("sk-full", fullContact())}))
		}},
		{"CreateItem-contacts-batch", func(ctx context.Context, cl *Client, t Target) error {
			return createOK(cl.CreateItems(ctx, t, folder, []*tandemv1.Record{
				contactRecord("sk-1", &tandemv1.Contact{GivenName: "Ann", Surname: "Lee"}),
				contactRecord("sk-2", &tandemv1.Contact{CompanyName: "Only Company Ltd"}),
				contactRecord("sk-3", &tandemv1.Contact{EmailAddress1: "only@mail.example"}),
			}))
		}},
		{"CreateItem-event-full", func(ctx context.Context, cl *Client, t Target) error {
			return createOK(cl.CreateItems(ctx, t, folder, []*tandemv1.Record{eventRecord("sk-ev", fullEvent())}))
		}},
		{"CreateItem-event-allday", func(ctx context.Context, cl *Client, t Target) error {
			return createOK(cl.CreateItems(ctx, t, folder, []*tandemv1.Record{eventRecord("sk-allday", allDayEvent())}))
		}},
		{"UpdateItem-contact-set-all", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkItem1=", ChangeKey: "EQAAAB"}, Record: contactRecord("", fullContact())}}))
		}},
		{"UpdateItem-contact-clear-all", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkItem1=", ChangeKey: "EQAAAB"},
				Record: contactRecord("", &tandemv1.Contact{GivenName: "Kept"})}}))
		}},
		{"UpdateItem-contact-fields", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{
				{ID: ItemID{ID: "AAMkItem1=", ChangeKey: "EQAAAB"}, Record: contactRecord("", fullContact()), Fields: []string{"mobile_phone", "surname"}},
				{ID: ItemID{ID: "AAMkItem2=", ChangeKey: "EQAAAC"}, Record: contactRecord("", &tandemv1.Contact{JobTitle: "CTO"}), Fields: []string{"job_title", "home_address"}},
			}))
		}},
		{"UpdateItem-contact-sync-key", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkItem1=", ChangeKey: "EQAAAB"},
				Record: contactRecord("", &tandemv1.Contact{JobTitle: "CTO"}), Fields: []string{"job_title"}, SyncKey: "sk-tag"}}))
		}},
		{"UpdateItem-event-sync-key", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkEvent1=", ChangeKey: "DwAAAB"},
				Record: eventRecord("", &tandemv1.Event{Subject: "Renamed"}), Fields: []string{"subject"}, SyncKey: "sk-tag"}}))
		}},
		{"UpdateItem-event-set-all", func(ctx context.Context, cl *Client, t Target) error {
			ev := fullEvent()
			ev.Recurrence = recurringEvents()["weekly-enddate"].Recurrence
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkEvent1=", ChangeKey: "DwAAAB"}, Record: eventRecord("", ev)}}))
		}},
		{"UpdateItem-event-clear-all", func(ctx context.Context, cl *Client, t Target) error {
			ev := &tandemv1.Event{Start: ts("2026-03-10T14:00:00Z"), End: ts("2026-03-10T15:00:00Z")}
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkEvent1=", ChangeKey: "DwAAAB"}, Record: eventRecord("", ev)}}))
		}},
		{"UpdateItem-event-allday", func(ctx context.Context, cl *Client, t Target) error {
			return updateOK(cl.UpdateItems(ctx, t, []ItemUpdate{{ID: ItemID{ID: "AAMkEvent1=", ChangeKey: "DwAAAB"},
				Record: eventRecord("", allDayEvent()), Fields: []string{"is_all_day", "start_date", "end_date", "subject"}}}))
		}},
		{"DeleteItem-contacts", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.DeleteItems(ctx, t, []ItemID{{ID: "AAMkItem1="}, {ID: "AAMkItem2=", ChangeKey: "EQAAAC"}}, false)
			return err
		}},
		{"DeleteItem-events", func(ctx context.Context, cl *Client, t Target) error {
			_, err := cl.DeleteItems(ctx, t, []ItemID{{ID: "AAMkEvent1=", ChangeKey: "DwAAAB"}}, true)
			return err
		}},
	}
	events := recurringEvents()
	names := make([]string, 0, len(events))
	for n := range events {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ev := events[n]
		cases = append(cases, rc{"CreateItem-event-recurrence-" + n, func(ctx context.Context, cl *Client, t Target) error {
			return createOK(cl.CreateItems(ctx, t, folder, []*tandemv1.Record{eventRecord("sk-"+n, ev)}))
		}})
	}
	return cases
}

func createOK(res []ItemResult, err error) error {
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func updateOK(res []ItemResult, err error) error { return createOK(res, err) }

// TestGoldenRequests checks every request the client builds against testdata/requests (run
// with -update to rewrite them) and validates them against Microsoft's EWS schema.
func TestGoldenRequests(t *testing.T) {
	srv := newFakeServer(t, answering)
	cl := newTestClient(t)
	target := Target{URL: srv.URL + "/EWS/Exchange.asmx", Address: testMailbox}
	docs := make(map[string][]byte)
	for _, tc := range requestCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.captured())
			if err := tc.run(t.Context(), cl, target); err != nil {
				t.Fatalf("request failed: %v", err)
			}
			reqs := srv.captured()[before:]
			if len(reqs) != 1 {
				t.Fatalf("sent %d requests, want 1", len(reqs))
			}
			req := reqs[0]
			if got := req.header.Get("X-AnchorMailbox"); got != testMailbox {
				t.Errorf("X-AnchorMailbox = %q, want %q", got, testMailbox)
			}
			if got := req.header.Get("Content-Type"); got != "text/xml; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			docs[tc.name] = req.body
			checkGolden(t, tc.name, req.body)
		})
	}
	t.Run("schema", func(t *testing.T) {
		validateRequests(t, docs)
	})
}

// checkGolden compares a request with testdata/requests/<name>.xml, or rewrites it with -update.
func checkGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	pretty := indentXML(t, body)
	path := filepath.Join("testdata", "requests", name+".xml")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden file (run go test -run %s -update): %v", t.Name(), err)
	}
	if !bytes.Equal(pretty, want) {
		t.Errorf("request differs from %s:\n%s", path, diffLines(string(want), string(pretty)))
	}
}

func indentXML(t *testing.T, data []byte) []byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		t.Fatalf("request is not XML: %v", err)
	}
	doc.WriteSettings.CanonicalText = true
	doc.Indent(2)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// validateRequests validates, with xmllint and Microsoft's schema, the element inside
// soap:Body and every SOAP header element of each request, as separate documents.
func validateRequests(t *testing.T, requests map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(requests))
	for n := range requests {
		names = append(names, n)
	}
	sort.Strings(names)
	envelopes := make([][]byte, len(names))
	for i, n := range names {
		envelopes[i] = requests[n]
	}
	ewsschema.Check(t, envelopes, names...)
}
