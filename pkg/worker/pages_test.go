package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

type recorder struct {
	max  int
	msgs []*tandemv1.ChangeBatch
	ids  []string
}

func (r *recorder) Publish(_ context.Context, _ string, m proto.Message, id string) error {
	r.msgs = append(r.msgs, m.(*tandemv1.ChangeBatch))
	r.ids = append(r.ids, id)
	return nil
}

func (r *recorder) MaxPayload() int { return r.max }

func change(notes string) *tandemv1.Change {
	return &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: &tandemv1.Record{Id: "x",
		Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Notes: notes}}}}
}

func TestPagerSplitsAndNumbers(t *testing.T) {
	r := &recorder{max: 4096 + 3000}
	p, err := NewPager(r, "00Dorg", "005user", tandemv1.System_SYSTEM_EXCHANGE, tandemv1.RecordKind_RECORD_KIND_CONTACT, 9)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("n", 1000)
	now := time.Now()
	if err := p.Publish(t.Context(), []*tandemv1.Change{change(big), change(big), change(big), change(big)}, false, false, 8, now); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), nil, false, true, 8, now); err != nil {
		t.Fatal(err)
	}
	if !p.Finished() || len(r.msgs) < 3 {
		t.Fatalf("%d pages, finished %v", len(r.msgs), p.Finished())
	}
	for i, m := range r.msgs {
		if m.GetPage() != uint32(i) || m.GetPreviousCycle() != 8 || m.GetCycle() != 9 {
			t.Errorf("page %d = %v", i, m)
		}
		if proto.Size(m) > r.max {
			t.Errorf("page %d is %d bytes, over the limit", i, proto.Size(m))
		}
	}
	last := r.msgs[len(r.msgs)-1]
	if !last.GetLast() || last.GetPageCount() != uint32(len(r.msgs)) {
		t.Errorf("last page = %v", last)
	}
	if r.ids[0] == r.ids[1] {
		t.Error("pages with different content share a message id")
	}
}

func TestFullReadContinuesFromNothing(t *testing.T) {
	r := &recorder{max: 1 << 20}
	p, _ := NewPager(r, "00Dorg", "005user", tandemv1.System_SYSTEM_SALESFORCE, tandemv1.RecordKind_RECORD_KIND_CONTACT, 3)
	if err := p.Publish(t.Context(), nil, true, true, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if m := r.msgs[0]; m.GetPreviousCycle() != 0 || !m.GetFullSnapshot() || !m.GetLast() || m.GetPageCount() != 1 {
		t.Errorf("batch = %v", m)
	}
}

func TestContentIDIsDeterministic(t *testing.T) {
	a, _ := ContentID(&tandemv1.ChangeBatch{OrgId: "o", Page: 1})
	b, _ := ContentID(&tandemv1.ChangeBatch{OrgId: "o", Page: 1})
	c, _ := ContentID(&tandemv1.ChangeBatch{OrgId: "o", Page: 2})
	if a != b || a == c {
		t.Errorf("ids %s %s %s", a, b, c)
	}
}
