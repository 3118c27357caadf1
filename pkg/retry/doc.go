// Package retry is Tandem's one retry policy: how long to wait before trying again, when to
// stop, and how an error that knows better (a server that sent Retry-After or
// BackOffMilliseconds, a failure that retrying cannot fix) overrides the formula.
//
// Every retrying part of Tandem uses it: the bus's connect loop, pull-request retries and
// per-message redelivery delay, the EWS client, the Salesforce transport and the Exchange
// worker's back-off of failing mailboxes. One formula means one place to reason about load on
// a struggling upstream.
//
// The exponential growth and its randomisation come from github.com/cenkalti/backoff/v5's
// ExponentialBackOff. The loop (Do) is this package's own rather than backoff.Retry because
// callers need three things that one does not give: the wait injected in tests, the error's own
// delay found through any wrapping (RetryAfter() time.Duration, as *syncerr.Error has), and the
// last failure kept when the context ends mid-wait.
package retry
