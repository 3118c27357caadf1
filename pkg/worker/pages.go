// Package worker is what the exchange-worker and the salesforce-worker share: their half of
// the conversation with the reconciler. It publishes a side's changes as numbered pages that
// fit the bus's message size, with ids derived from their content; and it carries out the
// reconciler's write batches (only the commands the ledger still has in flight, seen through
// ledger.Outbox) and reports their results.
package worker

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Publisher publishes on the bus.
type Publisher interface {
	Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error
	MaxPayload() int
}

// headroom keeps a page well under the bus's limit once the batch's own fields are added.
const headroom = 4096

// Pager publishes the pages of one read: one user, one side, one kind, one cycle.
type Pager struct {
	pub      Publisher
	subject  string
	template *tandemv1.ChangeBatch
	page     uint32
	finished bool
}

// NewPager returns a pager for the reads of side for a user's kind in cycle.
func NewPager(pub Publisher, orgID, userID string, side tandemv1.System, kind tandemv1.RecordKind, cycle uint64) (*Pager, error) {
	subject, err := bus.ChangesSubject(orgID, userID)
	if err != nil {
		return nil, err
	}
	return &Pager{pub: pub, subject: subject, template: &tandemv1.ChangeBatch{
		OrgId: orgID, UserId: userID, Source: side, Kind: kind, Cycle: cycle,
	}}, nil
}

// Finished reports whether the last page was published.
func (p *Pager) Finished() bool { return p.finished }

// Publish publishes changes as the next page (or pages, if they would exceed the message size).
// full marks a full read, previous is the cycle of the read this one continues from (0 for a
// full read), readAt is when the read started; last ends the read.
func (p *Pager) Publish(ctx context.Context, changes []*tandemv1.Change, full, last bool, previous uint64, readAt time.Time) error {
	if full {
		previous = 0
	}
	parts := SplitChanges(changes, p.pub.MaxPayload()-headroom)
	for i, part := range parts {
		b := proto.Clone(p.template).(*tandemv1.ChangeBatch)
		b.Page, b.Changes, b.FullSnapshot, b.PreviousCycle, b.ReadAt = p.page, part, full, previous, timestamppb.New(readAt)
		if last && i == len(parts)-1 {
			b.Last, b.PageCount = true, p.page+1
			p.finished = true
		}
		id, err := ContentID(b)
		if err != nil {
			return err
		}
		if err := p.pub.Publish(ctx, p.subject, b, id); err != nil {
			return err
		}
		p.page++
	}
	return nil
}

// SplitChanges splits changes into parts whose encoding stays under limit bytes (a single
// change larger than the limit travels alone). It always returns at least one part.
func SplitChanges(changes []*tandemv1.Change, limit int) [][]*tandemv1.Change {
	var parts [][]*tandemv1.Change
	var cur []*tandemv1.Change
	size := 0
	for _, c := range changes {
		n := proto.Size(c) + 8
		if len(cur) > 0 && size+n > limit {
			parts = append(parts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, c)
		size += n
	}
	return append(parts, cur)
}

// ContentID is a message id derived from a message's content: a retried publish of the same
// page is de-duplicated, while a page that reads differently on a retry is not mistaken for it.
func ContentID(m proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode %T: %w", m, err)
	}
	return bus.MsgID(string(b)), nil
}

// PublishResults reports the results of a write batch's commands to the reconciler.
func PublishResults(ctx context.Context, pub Publisher, batch *tandemv1.WriteBatch, results []*tandemv1.WriteResult, completed time.Time) error {
	subject, err := bus.ResultsSubject(batch.GetOrgId(), batch.GetUserId())
	if err != nil {
		return err
	}
	rb := &tandemv1.WriteResultBatch{
		BatchId: batch.GetBatchId(), OrgId: batch.GetOrgId(), UserId: batch.GetUserId(), Target: batch.GetTarget(),
		Kind: batch.GetKind(), Cycle: batch.GetCycle(), Results: results, CompletedAt: timestamppb.New(completed),
	}
	return pub.Publish(ctx, subject, rb, bus.MsgID(batch.GetBatchId(), "results"))
}
