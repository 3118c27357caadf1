package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
)

// pair is one person held on both sides by a rep.
type pair struct {
	userID, mailbox string
	itemID          string // in Exchange
	contactID       string // in Salesforce
}

// edit is one measured edit: a new title for pair, made on one side.
type edit struct {
	pair       pair
	inExchange bool // made in Exchange, awaited in Salesforce; else the other way round
	title      string
	at         time.Time
	took       time.Duration
	done       bool
}

// latency makes opts.Edits edits in waves of opts.Wave, each wave on as many reps (one edit
// each), alternately in Exchange and in Salesforce, through the simulators' backdoors as a
// user would, and measures for each how long until the other simulator holds the new value.
func (r *run) latency(ctx context.Context) error {
	pairs, err := r.pairs()
	if err != nil {
		return err
	}
	// Reps in a stable order, and the next unused pair of each.
	var users []string
	for id := range pairs {
		users = append(users, id)
	}
	sort.Strings(users)
	if len(users) == 0 {
		return fmt.Errorf("no contact is held on both sides with a unique email to edit")
	}
	next := map[string]int{}
	var samples, toSalesforce, toExchange []time.Duration
	timeouts := 0
	n := 0
	for wave := 0; n < r.opts.Edits; wave++ {
		var edits []*edit
		for k := 0; k < r.opts.Wave && n < r.opts.Edits && k < len(users); k++ {
			user := users[(wave*r.opts.Wave+k)%len(users)]
			list := pairs[user]
			if len(list) == 0 {
				continue
			}
			p := list[next[user]%len(list)]
			next[user]++
			edits = append(edits, &edit{pair: p, inExchange: n%2 == 0, title: fmt.Sprintf("Bench title %d", n+1)})
			n++
		}
		if len(edits) == 0 {
			return fmt.Errorf("no pair left to edit")
		}
		if err := r.wave(ctx, edits); err != nil {
			return err
		}
		for _, e := range edits {
			if e.done {
				samples = append(samples, e.took)
				if e.inExchange {
					toSalesforce = append(toSalesforce, e.took)
				} else {
					toExchange = append(toExchange, e.took)
				}
			} else {
				timeouts++
			}
		}
	}
	r.res.LatencySamples, r.res.LatencyTimeouts = len(samples), timeouts
	r.res.LatencyP50Ms = ms(percentile(samples, 0.50))
	r.res.LatencyP99Ms = ms(percentile(samples, 0.99))
	r.res.LatencyMaxMs = ms(percentile(samples, 1))
	r.res.LatencyToSalesforceP50Ms, r.res.LatencyToSalesforceMaxMs = ms(percentile(toSalesforce, 0.50)), ms(percentile(toSalesforce, 1))
	r.res.LatencyToExchangeP50Ms, r.res.LatencyToExchangeMaxMs = ms(percentile(toExchange, 0.50)), ms(percentile(toExchange, 1))
	return nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

// percentile is the nearest-rank percentile of samples (0 when there are none).
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// wave makes the edits at once and waits, reading the other side, until each has arrived or
// the timeout has passed. The reads run every 10 ms, or less often when a round of them takes
// over 2.5 ms (mailboxes of many items are copied whole), so that they never take more than a
// fifth of a core from the system measured.
func (r *run) wave(ctx context.Context, edits []*edit) error {
	for _, e := range edits {
		e.at = time.Now()
		var err error
		if e.inExchange {
			err = r.env.EWS.UpdateItem(e.pair.mailbox, e.pair.itemID, func(it *ewssim.Item) { it.Contact.JobTitle = e.title })
		} else {
			err = r.env.Salesforce.Update("Contact", e.pair.contactID, map[string]any{"Title": e.title}, e.pair.userID)
		}
		if err != nil {
			return fmt.Errorf("edit %s: %w", e.pair.mailbox, err)
		}
	}
	deadline := time.Now().Add(r.opts.Timeout)
	for {
		now := time.Now()
		waiting := 0
		mailboxes := map[string][]ewssim.Item{}
		for _, e := range edits {
			if e.done {
				continue
			}
			if r.arrived(e, mailboxes) {
				e.done, e.took = true, now.Sub(e.at)
				continue
			}
			waiting++
		}
		if waiting == 0 {
			return nil
		}
		checked := time.Since(now)
		if now.After(deadline) {
			var lost []string
			for _, e := range edits {
				if !e.done {
					lost = append(lost, fmt.Sprintf("%s %q", e.pair.mailbox, e.title))
				}
			}
			r.progress("latency: %d edits did not arrive within %s: %s", waiting, r.opts.Timeout, strings.Join(lost, ", "))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(10*time.Millisecond, 4*checked)):
		}
	}
}

// arrived reports whether the other side holds e's title, read from the simulator itself.
// mailboxes caches the mailboxes' items for one round of checks.
func (r *run) arrived(e *edit, mailboxes map[string][]ewssim.Item) bool {
	if e.inExchange {
		c, ok := r.env.Salesforce.Get("Contact", e.pair.contactID)
		return ok && fmt.Sprint(c["Title"]) == e.title
	}
	items, ok := mailboxes[e.pair.mailbox]
	if !ok {
		items = r.env.EWS.Items(e.pair.mailbox, exchange.SyncFolderName)
		mailboxes[e.pair.mailbox] = items
	}
	for _, it := range items {
		if it.ItemID == e.pair.itemID {
			return it.Contact != nil && it.Contact.JobTitle == e.title
		}
	}
	return false
}

// pairs finds, per rep, the people held on both sides, by an email that is unique to one
// contact on each side.
func (r *run) pairs() (map[string][]pair, error) {
	byEmail := func(emails []string) map[string]int {
		n := map[string]int{}
		for _, e := range emails {
			n[strings.ToLower(strings.TrimSpace(e))]++
		}
		return n
	}
	sfByOwner := map[string]map[string]string{} // owner → email → contact id
	var sfEmails = map[string][]string{}
	for _, c := range r.env.Salesforce.List("Contact") {
		owner := fmt.Sprint(c["OwnerId"])
		email, _ := c["Email"].(string)
		if email == "" {
			continue
		}
		if sfByOwner[owner] == nil {
			sfByOwner[owner] = map[string]string{}
		}
		sfByOwner[owner][strings.ToLower(strings.TrimSpace(email))] = fmt.Sprint(c["Id"])
		sfEmails[owner] = append(sfEmails[owner], email)
	}
	out := map[string][]pair{}
	for userID, mailbox := range r.env.Mailboxes {
		items := r.env.EWS.Items(mailbox, exchange.SyncFolderName)
		var exEmails []string
		for _, it := range items {
			if it.Contact != nil {
				exEmails = append(exEmails, it.Contact.Email("EmailAddress1"))
			}
		}
		exCount, sfCount := byEmail(exEmails), byEmail(sfEmails[userID])
		for _, it := range items {
			if it.Contact == nil {
				continue
			}
			email := strings.ToLower(strings.TrimSpace(it.Contact.Email("EmailAddress1")))
			id, ok := sfByOwner[userID][email]
			if email == "" || !ok || exCount[email] != 1 || sfCount[email] != 1 {
				continue
			}
			out[userID] = append(out[userID], pair{userID: userID, mailbox: mailbox, itemID: it.ItemID, contactID: id})
		}
	}
	return out, nil
}
