package salesforceworker

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// combiner lets the apply handlers that run at the same time on a replica, for the same org and
// kind, carry out their write batches together in one ApplyMany: as the integration user, the
// writes of all their users then share sObject Collections calls of up to 200 records and one
// Account lookup, instead of costing calls per user (see salesforce.Connector.ApplyMany).
//
// A handler enters the combiner as soon as it has decoded its batch (org and kind), then
// submits its user's commands still in flight and waits for their results, or leaves without
// submitting when nothing of the batch is in flight or it fails before. What is waiting is sent:
//
//   - when no handler of the org and kind that entered is still about to submit and no call of
//     theirs is under way, after a linger (a few milliseconds) in which none enters: waiting
//     longer could only add the writes of handlers not yet started, and a handler alone is
//     delayed by the linger only. While a call is under way, what arrives waits for it to end
//     and then goes in one call, as a database's group commit does: under a steady stream of
//     batches the calls grow instead of multiplying;
//   - at the latest maxDelay after the first waiting submission, so that a handler slow to
//     submit (a slow Redis read) or a slow call holds the others up by that much at most;
//   - at once when maxCommands commands are waiting.
//
// A call sent while more submissions are on their way (handlers still to submit, or another
// call of the group under way) holds back the commands that would go in a short last call of an
// operation, for the group's next call, where they fill up a call with others' (see holdBack):
// a first sync's writes then take whole calls, not one short call per operation and group.
//
// It is not sent as soon as 200 records of an operation are waiting: the rest of the group
// would then go in a call of its own, where waiting the milliseconds until the other handlers
// have submitted lets it share a call with theirs. The handlers that can wait together are at
// most the apply consumer's concurrency, which bounds a group anyway; waiting handlers cost
// goroutines, not Salesforce connections (the org's max_concurrent_requests caps those).
//
// Under write_as REP, where each rep writes with their own token, nothing can be shared: a
// submission is carried out at once, alone.
//
// A call's results go back to each handler, per user and command; an error of a call as a whole
// goes to every handler with a command in it. A handler whose context ends while it waits
// withdraws its submission if it has not been sent, and otherwise stops waiting: the call goes
// on for the others. The call runs on a context of its own, cancelled only once every handler
// in it has stopped waiting, so no one handler's cancellation cancels the others' writes.
type combiner struct {
	linger      time.Duration
	maxDelay    time.Duration
	maxCommands int
	tracer      trace.Tracer
	log         *slog.Logger

	mu     sync.Mutex
	groups map[groupKey]*group
	// calls are the combined calls running; wait waits for them.
	calls sync.WaitGroup
}

// groupKey is what the handlers that may combine share.
type groupKey struct {
	org  string
	kind tandemv1.RecordKind
}

// group is the handlers of one org and kind in the combiner and their submissions still
// waiting. It is dropped from the combiner when neither remains.
type group struct {
	key groupKey
	// entered counts the handlers that entered and have neither submitted nor left.
	entered int
	// running counts the group's calls under way.
	running  int
	waiting  []*submission
	commands int
	deadline *time.Timer // maxDelay after the first waiting submission
	lingered *time.Timer // linger after the last handler submitted or left
}

// submission is one handler's user commands, waiting to be sent and then for the results.
type submission struct {
	ctx   context.Context
	conn  Connector
	batch salesforce.UserCommands
	// entered and submitted are when the handler entered and submitted, for the log of how long
	// handlers take to submit and submissions wait.
	entered, submitted time.Time
	sent               bool          // guarded by combiner.mu
	done               chan struct{} // closed once res is set
	res                salesforce.UserResults
	// rest is the part of the submission's commands held back for a later call (see holdBack),
	// set before the submission is sent; pos, for a submission split so, are the positions of
	// its commands among the handler's. held marks a part held back once, never held again.
	rest *submission
	pos  []int
	held bool
}

// Defaults of the combiner's timing. Measured with `tandem bench` (100 reps × 1,000 contacts),
// a linger of 2 ms, a delay of 50 ms and 1,000 commands made 263 combined calls during the first
// sync, 652 collections calls where 503 would have held their records, and 116 Account lookups;
// 20 ms, 250 ms and 2,000 made 114, 592 and 50, and left the latency of a single edit alone (a
// lone batch waits the linger only).
const (
	DefaultApplyLinger   = 20 * time.Millisecond
	DefaultApplyMaxDelay = 250 * time.Millisecond
	// maxCombinedCommands sends a group at once however many handlers are still to submit:
	// ten full calls' worth, past which waiting saves a small share of the calls.
	maxCombinedCommands = 2000
)

func newCombiner(linger, maxDelay time.Duration, tp trace.TracerProvider, log *slog.Logger) *combiner {
	return &combiner{linger: linger, maxDelay: maxDelay, maxCommands: maxCombinedCommands,
		tracer: tp.Tracer("github.com/tandem-sync/tandem/services/salesforce-worker"), log: log, groups: map[groupKey]*group{}}
}

// ticket is one handler's place in the combiner, from enter to submit or leave.
type ticket struct {
	c       *combiner
	g       *group
	entered time.Time
	used    bool // submitted or left; guarded by combiner.mu
}

// enter records a handler of org and kind that is about to submit. Its ticket must be
// submitted or left (leave after submit does nothing), or the org's writes wait maxDelay.
func (c *combiner) enter(org string, kind tandemv1.RecordKind) *ticket {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := groupKey{org, kind}
	g := c.groups[key]
	if g == nil {
		g = &group{key: key}
		c.groups[key] = g
	}
	g.entered++
	return &ticket{c: c, g: g, entered: time.Now()}
}

// leave withdraws a handler that will not submit; after submit it does nothing.
func (t *ticket) leave() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.used {
		return
	}
	t.used = true
	t.g.entered--
	t.c.settle(t.g)
}

// apply carries out the user's commands, combined with those of the other handlers of the org
// and kind, and returns their results, one per command, in order.
func (t *ticket) apply(ctx context.Context, conn Connector, user *tandemv1.SyncUser, cmds []*tandemv1.WriteCommand, redelivered bool) ([]*tandemv1.WriteResult, error) {
	c, g := t.c, t.g
	batch := salesforce.UserCommands{User: user, Commands: cmds, Redelivered: redelivered}
	c.mu.Lock()
	if t.used {
		c.mu.Unlock()
		panic("salesforceworker: a combiner ticket submitted twice")
	}
	t.used = true
	g.entered--
	if !conn.SharesWrites() {
		c.settle(g)
		c.mu.Unlock()
		res := conn.ApplyMany(ctx, g.key.kind, []salesforce.UserCommands{batch})[0]
		return res.Results, res.Err
	}
	s := &submission{ctx: ctx, conn: conn, batch: batch, entered: t.entered, submitted: time.Now(), done: make(chan struct{})}
	g.waiting = append(g.waiting, s)
	g.commands += len(cmds)
	if len(g.waiting) == 1 {
		c.arm(g, &g.deadline, c.maxDelay)
	}
	c.settle(g)
	c.mu.Unlock()

	// The submission's commands go in one call, or in two when a part was held back.
	parts := []*submission{s}
	for i := 0; i < len(parts); i++ {
		select {
		case <-parts[i].done:
			if r := parts[i].rest; r != nil {
				parts = append(parts, r)
			}
			if err := parts[i].res.Err; err != nil {
				c.withdraw(g, parts[i])
				return nil, err
			}
		case <-ctx.Done():
			c.withdraw(g, parts[i])
			return nil, ctx.Err()
		}
	}
	if len(parts) == 1 {
		return s.res.Results, nil
	}
	results := make([]*tandemv1.WriteResult, len(cmds))
	for _, p := range parts {
		for i, r := range p.res.Results {
			results[p.pos[i]] = r
		}
	}
	return results, nil
}

// withdraw takes s and the part held back from it, where not yet sent, out of g.
func (c *combiner) withdraw(g *group, s *submission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; s != nil; s = s.rest {
		if s.sent {
			continue
		}
		g.waiting = slices.DeleteFunc(g.waiting, func(w *submission) bool { return w == s })
		g.commands -= len(s.batch.Commands)
	}
	c.settle(g)
}

// settle sends g's waiting submissions if it is time, arms the linger if it is nearly time, and
// drops g when nothing is left of it. c.mu is held.
func (c *combiner) settle(g *group) {
	switch {
	case len(g.waiting) == 0:
		stop(&g.deadline)
		stop(&g.lingered)
		if g.entered == 0 && g.running == 0 && c.groups[g.key] == g {
			delete(c.groups, g.key)
		}
	case g.commands >= c.maxCommands:
		c.send(g)
	case g.entered > 0 || g.running > 0:
		// More may come: from the handlers still to submit, and from those that arrive while a
		// call of the group is under way (which would only queue behind it for the org's
		// connections). The deadline bounds the wait.
	case c.linger <= 0:
		c.send(g)
	case g.lingered == nil:
		c.arm(g, &g.lingered, c.linger)
	}
}

// arm sets the timer in slot (g.deadline or g.lingered) to expire after d. c.mu is held.
func (c *combiner) arm(g *group, slot **time.Timer, d time.Duration) {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		// t was set before c.mu was released: read it only holding c.mu.
		c.mu.Lock()
		defer c.mu.Unlock()
		c.expire(g, slot, t)
	})
	*slot = t
}

// expire is timer t of g firing, unless it was stopped or replaced since: the deadline sends what
// is waiting; the linger sends it unless a handler entered meanwhile (whose submit or leave
// settles g again). c.mu is held.
func (c *combiner) expire(g *group, slot **time.Timer, t *time.Timer) {
	if *slot != t {
		return
	}
	*slot = nil
	if len(g.waiting) > 0 && (slot == &g.deadline || (g.entered == 0 && g.running == 0)) {
		c.send(g)
	}
}

func stop(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// send starts the call of g's waiting submissions, but for what it holds back while more
// submissions are on their way (see holdBack). c.mu is held.
func (c *combiner) send(g *group) {
	subs := g.waiting
	var held []*submission
	if g.entered > 0 || g.running > 0 {
		subs, held = holdBack(subs)
	}
	for _, s := range subs {
		s.sent = true
	}
	g.waiting, g.commands = held, 0
	for _, s := range held {
		g.commands += len(s.batch.Commands)
	}
	if len(held) > 0 && g.deadline == nil {
		c.arm(g, &g.deadline, c.maxDelay)
	}
	g.running++
	c.settle(g)
	c.calls.Go(func() {
		c.run(g.key, subs)
		c.mu.Lock()
		defer c.mu.Unlock()
		g.running--
		c.settle(g)
	})
}

// opClass is which sObject Collections calls a command goes in (see salesforce.Connector.ApplyMany).
type opClass struct {
	op     tandemv1.WriteOp
	upsert bool // a create with a sync key
}

func classOf(cmd *tandemv1.WriteCommand) opClass {
	return opClass{op: cmd.GetOp(), upsert: cmd.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE && cmd.GetSyncKey() != ""}
}

// holdBack splits subs, about to be sent while more submissions are on their way, into what to
// send now and what to hold back for the group's next call: for each operation whose commands
// would end in a short last call (fewer than salesforce.MaxCollection), that call's worth of
// commands, taken from the submissions submitted last. A submission that gives some of its
// commands keeps the rest in this call and carries the held part as its rest. The commands of
// one write batch are for distinct pairs, so the order between the two parts does not matter.
// What was held back once is never held back again, so a command waits one call more at most;
// and nothing is held back when nothing would be left to send.
func holdBack(subs []*submission) (send, held []*submission) {
	total, free, all := map[opClass]int{}, map[opClass]int{}, 0
	for _, s := range subs {
		all += len(s.batch.Commands)
		for _, cmd := range s.batch.Commands {
			total[classOf(cmd)]++
			if !s.held {
				free[classOf(cmd)]++
			}
		}
	}
	hold, holding := map[opClass]int{}, 0
	for cl, n := range total {
		if r := n % salesforce.MaxCollection; r > 0 && r <= free[cl] {
			hold[cl] = r
			holding += r
		}
	}
	if holding == 0 || holding == all {
		return subs, nil
	}
	for i := len(subs) - 1; i >= 0; i-- {
		s := subs[i]
		if s.held {
			continue
		}
		var keep, take []int
		for k := len(s.batch.Commands) - 1; k >= 0; k-- {
			if cl := classOf(s.batch.Commands[k]); hold[cl] > 0 {
				hold[cl]--
				take = append(take, k)
			} else {
				keep = append(keep, k)
			}
		}
		switch {
		case len(take) == 0:
		case len(keep) == 0:
			s.held = true
			held = append(held, s)
			subs = slices.Delete(subs, i, i+1)
		default:
			slices.Reverse(keep)
			slices.Reverse(take)
			rest := &submission{ctx: s.ctx, conn: s.conn, entered: s.entered, submitted: s.submitted, done: make(chan struct{}), held: true,
				batch: salesforce.UserCommands{User: s.batch.User, Redelivered: s.batch.Redelivered}}
			rest.batch.Commands, rest.pos = s.pick(take)
			s.batch.Commands, s.pos = s.pick(keep)
			s.rest = rest
			held = append(held, rest)
		}
	}
	slices.Reverse(held) // in the order submitted
	return subs, held
}

// pick returns the commands of s at positions (of s's commands) and their positions among the
// handler's.
func (s *submission) pick(positions []int) ([]*tandemv1.WriteCommand, []int) {
	cmds, pos := make([]*tandemv1.WriteCommand, len(positions)), make([]int, len(positions))
	for i, k := range positions {
		cmds[i], pos[i] = s.batch.Commands[k], k
		if s.pos != nil {
			pos[i] = s.pos[k]
		}
	}
	return cmds, pos
}

// run carries out subs with ApplyMany and hands each its results. Submissions made with
// different connectors (the org's settings changed while the group formed) are carried out
// separately, each with its own.
func (c *combiner) run(key groupKey, subs []*submission) {
	for len(subs) > 0 {
		conn := subs[0].conn
		var same, rest []*submission
		for _, s := range subs {
			if s.conn == conn {
				same = append(same, s)
			} else {
				rest = append(rest, s)
			}
		}
		c.call(key, conn, same)
		subs = rest
	}
}

// call carries out subs in one ApplyMany, on a context that ends only when every submitter has
// stopped waiting, and linked to each submitter's trace.
func (c *combiner) call(key groupKey, conn Connector, subs []*submission) {
	ctx, cancel := context.WithCancel(telemetry.WithScope(context.WithoutCancel(subs[0].ctx), key.org, ""))
	defer cancel()
	var waiting atomic.Int64
	waiting.Store(int64(len(subs)))
	links := make([]trace.Link, 0, len(subs))
	batches := make([]salesforce.UserCommands, len(subs))
	commands := 0
	ops := map[tandemv1.WriteOp]int{}
	var waited, preparing time.Duration
	for i, s := range subs {
		preparing = max(preparing, s.submitted.Sub(s.entered))
		for _, cmd := range s.batch.Commands {
			ops[cmd.GetOp()]++
		}
		waited = max(waited, time.Since(s.submitted))
		stopAfter := context.AfterFunc(s.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stopAfter()
		links = append(links, trace.LinkFromContext(s.ctx))
		batches[i] = s.batch
		commands += len(s.batch.Commands)
	}
	ctx, span := c.tracer.Start(ctx, "salesforce-worker.combinedApply", trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("tandem.org_id", key.org), attribute.String("tandem.record_kind", key.kind.String()),
		attribute.Int("tandem.users", len(subs)), attribute.Int("tandem.commands", commands)))
	c.log.DebugContext(ctx, "salesforce writes combined", slog.String("kind", key.kind.String()), slog.Int("users", len(subs)),
		slog.Int("creates", ops[tandemv1.WriteOp_WRITE_OP_CREATE]), slog.Int("updates", ops[tandemv1.WriteOp_WRITE_OP_UPDATE]),
		slog.Int("deletes", ops[tandemv1.WriteOp_WRITE_OP_DELETE]), slog.Duration("longest_wait", waited), slog.Duration("slowest_to_submit", preparing))
	out := conn.ApplyMany(ctx, key.kind, batches)
	span.End()
	for i, s := range subs {
		s.res = out[i]
		close(s.done)
	}
}

// wait waits for the combined calls running.
func (c *combiner) wait() { c.calls.Wait() }
