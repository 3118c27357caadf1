package exchangeworker

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Why a job read a mailbox's kind, or did not (Worker.unread): the "reason" attribute of
// tandem.exchange.mailbox_reads.
const (
	readFull       = "full"             // a first read, or one the job asks for in full
	readEveryCycle = "no_poll_interval" // the job reads every mailbox
	readPollDue    = "poll_due"         // its last read is the poll interval old
	readUnwatched  = "unwatched"        // not watched without a break since its last read
	readManyNotes  = "many_notes"       // too many notifications since its last read to look at
	readCannotTell = "cannot_tell"      // its notes or Tandem's versions could not be read
	readChanged    = "changed"          // a notification told of a change Tandem did not make
	skipUnchanged  = "unchanged"        // no notification since its last read
	skipOwnWrites  = "own_writes"       // notifications of Tandem's own writes only
)

// metrics are the exchange-worker's OpenTelemetry instruments.
type metrics struct {
	reads metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter("github.com/tandem-sync/tandem/services/exchange-worker")
	reads, err := m.Int64Counter("tandem.exchange.mailbox_reads",
		metric.WithDescription("Exchange jobs' reads of a mailbox's record kind, by whether Exchange was asked (read) and why: "+
			"full, no_poll_interval, poll_due, unwatched, many_notes, cannot_tell or changed when it was; "+
			"unchanged or own_writes when the mailbox's notifications said nothing new."),
		metric.WithUnit("{read}"))
	if err != nil {
		return nil, fmt.Errorf("create the exchange-worker's metrics: %w", err)
	}
	return &metrics{reads: reads}, nil
}

// read counts a job's read of kind, made or skipped, and why.
func (m *metrics) read(ctx context.Context, kind tandemv1.RecordKind, made bool, reason string) {
	m.reads.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", store.KindName(kind)),
		attribute.Bool("read", made), attribute.String("reason", reason)))
}
