package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/cmd/tandem/internal/firstsync"
	"github.com/tandem-sync/tandem/pkg/ews"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// floor times a bare copy between fresh simulators seeded like the system's: Tandem's own
// clients (the EWS connector and client, the Salesforce connector) read every contact of every
// rep from both sides and create the missing ones on the other side, in the largest batches the
// clients send (in Salesforce, shared by all the reps), with the concurrency Tandem's workers run
// with — and nothing else: no bus, no Redis, no ledger, no tagging of the people already on both
// sides, no echo read.
func (r *run) floor(ctx context.Context, seeding devenv.Seeding) error {
	sims, err := devenv.NewSimulators(seeding)
	if err != nil {
		return err
	}
	ewsURL, stopEWS, err := serve(sims.EWS)
	if err != nil {
		return err
	}
	defer stopEWS()
	sims.EWS.SetBaseURL(ewsURL)
	sfURL, stopSF, err := serve(sims.Salesforce)
	if err != nil {
		return err
	}
	defer stopSF()
	sims.Salesforce.SetBaseURL(sfURL)
	org, _, err := sims.Org(ewsURL, sfURL, r.opts.Interval)
	if err != nil {
		return err
	}
	ex, err := ews.NewConnector(ews.ConnectorConfig{Connection: org.GetExchange(), AllowHTTP: true})
	if err != nil {
		return err
	}
	sf, err := salesforce.NewConnector(org, salesforce.WithClientName("tandem-bench"), salesforce.WithAllowHTTP(true))
	if err != nil {
		return err
	}
	c := &copier{org: org.GetOrgId(), sims: sims, ex: ex, sf: sf, ewsURL: sims.EWS.EWSURL(),
		exRecords: map[string][]*tandemv1.Record{}, sfRecords: map[string][]*tandemv1.Record{}, folders: map[string]string{}}
	before := countsOf(sims.EWS.Counts(), sims.Salesforce.Counts())
	start := time.Now()
	if err := c.copy(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	used := countsOf(sims.EWS.Counts(), sims.Salesforce.Counts()).minus(before)
	records, err := c.check()
	if err != nil {
		return err
	}
	r.res.FloorSeconds = took.Seconds()
	r.res.FloorRecordsPerSecond = float64(records) / took.Seconds()
	r.res.FloorEWSCalls, r.res.FloorSalesforceCalls = used.ewsTotal, used.salesforceTotal
	return nil
}

// serve serves h on a free local port until stop.
func serve(h http.Handler) (url string, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return "http://" + lis.Addr().String(), func() { _ = srv.Close() }, nil
}

// copier is the floor's copy loop.
type copier struct {
	org    string
	sims   *devenv.Simulators
	ex     *ews.Connector
	sf     *salesforce.Connector
	ewsURL string

	mu        sync.Mutex
	users     map[string]*tandemv1.SyncUser // the reps, by Salesforce user id
	exRecords map[string][]*tandemv1.Record // by user id
	sfRecords map[string][]*tandemv1.Record
	folders   map[string]string // Salesforce_Sync folder ids, by user id
}

func (c *copier) mailbox(userID string) exchange.Mailbox {
	return exchange.Mailbox{OrgID: c.org, UserID: userID, Address: c.sims.Users[userID]}
}

// copy reads both sides at once, then writes both sides at once.
func (c *copier) copy(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.readExchange(gctx) })
	g.Go(func() error { return c.readSalesforce(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	toExchange, toSalesforce := map[string][]*tandemv1.Record{}, map[string][]*tandemv1.Record{}
	for id := range c.sims.Users {
		toExchange[id] = firstsync.Missing(c.sfRecords[id], c.exRecords[id])
		toSalesforce[id] = firstsync.Missing(c.exRecords[id], c.sfRecords[id])
	}
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error { return c.writeExchange(gctx, toExchange) })
	g.Go(func() error { return c.writeSalesforce(gctx, toSalesforce) })
	return g.Wait()
}

// readExchange reads every rep's Salesforce_Sync folder as the exchange-worker does (find the
// folder, SyncFolderItems from scratch, GetItem), as many reps at once as it reads.
func (c *copier) readExchange(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(devenv.ExchangeJobConcurrency)
	for id := range c.sims.Users {
		g.Go(func() error {
			mb := c.mailbox(id)
			folders, err := c.ex.Prepare(ctx, mb)
			if err != nil {
				return err
			}
			var recs []*tandemv1.Record
			err = c.ex.Changes(ctx, mb, tandemv1.RecordKind_RECORD_KIND_CONTACT, "", func(_ context.Context, p exchange.Page) error {
				for _, ch := range p.Changes {
					if ch.GetType() == tandemv1.ChangeType_CHANGE_TYPE_UPSERT {
						recs = append(recs, ch.GetRecord())
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("read %s: %w", mb.Address, err)
			}
			c.mu.Lock()
			c.exRecords[id], c.folders[id] = recs, folders.ContactsFolderID
			c.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// readSalesforce reads the org's directory and polls every rep's contacts at once.
func (c *copier) readSalesforce(ctx context.Context) error {
	dir, err := c.sf.Users(ctx)
	if err != nil {
		return err
	}
	users := map[string]*tandemv1.SyncUser{}
	var audience []salesforce.Audience
	for _, u := range dir {
		if _, ok := c.sims.Users[u.GetUserId()]; ok {
			users[u.GetUserId()] = u
			audience = append(audience, salesforce.Audience{User: u, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS})
		}
	}
	if len(users) != len(c.sims.Users) {
		return fmt.Errorf("the directory lists %d of the %d reps", len(users), len(c.sims.Users))
	}
	recs := map[string][]*tandemv1.Record{}
	_, err = c.sf.Poll(ctx, salesforce.PollRequest{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, Audience: audience},
		func(_ context.Context, userID string, changes []*tandemv1.Change, _ bool) error {
			for _, ch := range changes {
				if ch.GetType() == tandemv1.ChangeType_CHANGE_TYPE_UPSERT && !ch.GetOutOfScope() {
					recs[userID] = append(recs[userID], ch.GetRecord())
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.users, c.sfRecords = users, recs
	c.mu.Unlock()
	return nil
}

// writeExchange creates the missing contacts in each rep's folder: one CreateItem per 100
// contacts, as many reps at once as the exchange-worker writes.
func (c *copier) writeExchange(ctx context.Context, recs map[string][]*tandemv1.Record) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(devenv.ExchangeApplyConcurrency)
	for id, list := range recs {
		if len(list) == 0 {
			continue
		}
		g.Go(func() error {
			mb := c.mailbox(id)
			out := make([]*tandemv1.Record, len(list))
			for i, r := range list {
				out[i] = record.Content(r)
				out[i].SyncKey = record.SyncKey(c.org, id, tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_SALESFORCE, r.GetId())
			}
			res, err := c.ex.Client().CreateItems(ctx, ews.Target{URL: c.ewsURL, Address: mb.Address}, ews.FolderID{ID: c.folders[id]}, out)
			if err != nil {
				return fmt.Errorf("create in %s: %w", mb.Address, err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("create in %s: %w", mb.Address, r.Err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// writeSalesforce creates the missing contacts of every rep at once, as the salesforce-worker
// writes the batches of an org's reps that arrive together: as the integration user, in shared
// sObject Collections calls of 200 records, each contact owned by its rep.
func (c *copier) writeSalesforce(ctx context.Context, recs map[string][]*tandemv1.Record) error {
	var batches []salesforce.UserCommands
	for id, list := range recs {
		if len(list) == 0 {
			continue
		}
		cmds := make([]*tandemv1.WriteCommand, len(list))
		for i, r := range list {
			key := record.SyncKey(c.org, id, tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_EXCHANGE, r.GetId())
			cmds[i] = &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: record.Content(r)}
		}
		batches = append(batches, salesforce.UserCommands{User: c.users[id], Commands: cmds})
	}
	for i, out := range c.sf.ApplyMany(ctx, tandemv1.RecordKind_RECORD_KIND_CONTACT, batches) {
		who := c.sims.Users[batches[i].User.GetUserId()]
		if out.Err != nil {
			return fmt.Errorf("create for %s: %w", who, out.Err)
		}
		for _, r := range out.Results {
			if !r.GetOk() {
				return fmt.Errorf("create for %s: %s: %s", who, r.GetError().GetCode(), r.GetError().GetMessage())
			}
		}
	}
	return nil
}

// check counts the records the copy left on each side, which must agree per rep.
func (c *copier) check() (int64, error) {
	perOwner := map[string]int{}
	for _, ct := range c.sims.Salesforce.List("Contact") {
		perOwner[fmt.Sprint(ct["OwnerId"])]++
	}
	var total int64
	var errs []error
	for id, email := range c.sims.Users {
		n := len(c.sims.EWS.Items(email, exchange.SyncFolderName))
		if n != perOwner[id] {
			errs = append(errs, fmt.Errorf("%s: %d contacts in Exchange, %d in Salesforce after the copy", email, n, perOwner[id]))
		}
		total += int64(n)
	}
	return total, errors.Join(errs...)
}
