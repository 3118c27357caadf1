package salesforce

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pagedQuery serves a query of pages pages of one row each; asked tells of every queryMore the
// moment it arrives.
func pagedQuery(pages int, asked chan<- int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		n := 1
		if _, after, ok := strings.Cut(r.URL.Path, "/query/01gQ-"); ok {
			if _, err := fmt.Sscanf(after, "%d", &n); err != nil {
				http.Error(w, "bad query locator", http.StatusBadRequest)
				return
			}
			asked <- n
		}
		next := ""
		if n < pages {
			next = fmt.Sprintf(`,"nextRecordsUrl":"/services/data/v62.0/query/01gQ-%d"`, n+1)
		}
		fmt.Fprintf(w, `{"totalSize":%d,"done":%t%s,"records":[{"Id":"003%012d"}]}`, pages, n == pages, next, n)
	}
}

func TestQueryFetchesTheNextPageWhileOneIsHandled(t *testing.T) {
	asked := make(chan int, 3)
	f := newFakeOrg(t, pagedQuery(3, asked))
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	var ids []string
	err := c.queryPages(t.Context(), testIntegration, "SELECT Id FROM Contact", false, func(page *QueryResult) error {
		for _, r := range page.Records {
			ids = append(ids, r.String("Id"))
		}
		if page.Done {
			return nil
		}
		// The page after this one is asked for before this one is handled.
		select {
		case n := <-asked:
			if want := len(ids) + 1; n != want {
				t.Errorf("page %d asked for while page %d is handled, want page %d", n, len(ids), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("page %d handled for 10 s and the next page was not asked for", len(ids))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"003000000000001", "003000000000002", "003000000000003"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("pages handled %v, want %v in order", ids, want)
	}
}

func TestQueryStopsAtAPageThatFails(t *testing.T) {
	asked := make(chan int, 3)
	f := newFakeOrg(t, pagedQuery(3, asked))
	c := newTestConnector(t, jwtOrg(t, f.srv.URL))
	failed := errors.New("no room for the page")
	handled := 0
	err := c.queryPages(t.Context(), testIntegration, "SELECT Id FROM Contact", false, func(*QueryResult) error {
		handled++
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("err = %v, want the page's own error", err)
	}
	if handled != 1 {
		t.Errorf("%d pages handled, want 1: nothing after the page that failed", handled)
	}
	if got := f.callCount("GET /services/data/v62.0/query/01gQ-3"); got != 0 {
		t.Errorf("page 3 asked for %d times after page 1 failed, want 0", got)
	}
}
