package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// request is one REST call.
type request struct {
	op      string // operation name for metrics and logs, e.g. "query" or "collections.upsert"
	method  string
	path    string // relative to /services/data/vXX.X/, or an absolute path such as a nextRecordsUrl
	query   url.Values
	body    any // JSON-encoded when non-nil
	subject string
	// idempotent requests are retried after server errors and timeouts; the others only after
	// an expired session, which proves Salesforce did not act on them.
	idempotent bool
	// write requests carry Sforce-Call-Options so the org can tell Tandem's changes apart.
	write bool
}

// response is a successful REST answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals a response body into v.
func (r *response) decode(op string, v any) error {
	if err := decodeJSON(r.body, v); err != nil {
		return syncerr.Wrap(syncerr.SalesforceMalformedResponse, fmt.Errorf("%s: decode response: %w", op, err))
	}
	return nil
}

// do sends req with the subject's token, within the org's budget and concurrency cap, renews
// an expired session once, and retries idempotent requests after server errors and timeouts.
// Every error it returns is a *syncerr.Error, except the caller's own cancellation.
func (c *Connector) do(ctx context.Context, req request) (*response, error) {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return nil, fmt.Errorf("salesforce %s: encode request: %w", req.op, err)
		}
	}
	tok, err := c.auth.token(ctx, req.subject)
	if err != nil {
		return nil, err
	}
	renewed := false
	var resp *response
	err = retry.Do(ctx, c.cfg.retry.policy(), func(ctx context.Context) error {
		var err error
		resp, err = c.sendRenewing(ctx, req, &tok, &renewed, payload)
		switch {
		case err == nil, ctx.Err() != nil:
			return err
		case !req.idempotent || !retryableTransient(syncerr.As(err).Code):
			// Sent again only if idempotent (the failure may have been acted on) and transient.
			return retry.Abort(err)
		}
		return err
	}, retry.OnRetry(func(err error, attempt int, wait time.Duration) {
		c.log.WarnContext(ctx, "salesforce request failed; retrying", slog.String("operation", req.op),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
	}), retry.WithSleep(func(ctx context.Context, d time.Duration) error {
		if err := retry.Sleep(ctx, d); err != nil {
			return fmt.Errorf("salesforce %s: %w", req.op, err)
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// sendRenewing makes one attempt, renewing an expired session once per call: a renewal
// proves Salesforce did not act on the request, and it is not a retry.
func (c *Connector) sendRenewing(ctx context.Context, req request, tok **token, renewed *bool, payload []byte) (*response, error) {
	for {
		resp, err := c.send(ctx, req, *tok, payload)
		if err == nil || !errors.Is(err, errSessionExpired) {
			return resp, err
		}
		if *renewed {
			c.auth.forget(req.subject, *tok)
			return nil, &syncerr.Error{Code: syncerr.SalesforceAuthFailed, Upstream: "INVALID_SESSION_ID",
				Detail: fmt.Sprintf("%s: Salesforce rejected a freshly issued session", req.op), Err: err}
		}
		c.log.InfoContext(ctx, "salesforce session expired; renewing", slog.String("operation", req.op))
		if *tok, err = c.auth.renew(ctx, req.subject, *tok); err != nil {
			return nil, err
		}
		*renewed = true
	}
}

// errSessionExpired marks a 401 answer: the token expired or was revoked.
var errSessionExpired = errors.New("session expired or invalid")

// retryableTransient reports whether a failed request may be sent again as it is.
func retryableTransient(code syncerr.Code) bool {
	return code == syncerr.SalesforceUnavailable || code == syncerr.SalesforceTimeout
}

// send makes one attempt.
func (c *Connector) send(ctx context.Context, req request, tok *token, payload []byte) (*response, error) {
	if err := c.budget.admit(c.now()); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("salesforce %s: %w", req.op, ctx.Err())
	}
	start := time.Now()
	resp, err := c.roundTrip(ctx, req, tok, payload)
	<-c.sem
	c.metrics.request(ctx, req.op, time.Since(start), err)
	return resp, err
}

// roundTrip makes one HTTP exchange. With a tracer provider (WithTracerProvider), the client
// makes it a span named "salesforce <op>" (see NewConnector).
func (c *Connector) roundTrip(ctx context.Context, req request, tok *token, payload []byte) (*response, error) {
	ctx = telemetry.WithHTTPOperation(ctx, "salesforce "+req.op)
	target := tok.instanceURL + c.resolve(req.path)
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("salesforce %s: %w", req.op, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok.accessToken)
	hreq.Header.Set("Accept", "application/json")
	if payload != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if req.write {
		hreq.Header.Set("Sforce-Call-Options", "client="+c.cfg.clientName)
	}
	hresp, err := c.cfg.httpClient.Do(hreq)
	if err != nil {
		if ctx.Err() == context.Canceled {
			return nil, fmt.Errorf("salesforce %s: %w", req.op, ctx.Err())
		}
		return nil, transportError(req.op, err)
	}
	defer hresp.Body.Close()
	if v := hresp.Header.Get(LimitInfoHeader); v != "" {
		if used, allocation, err := ParseLimitInfo(v); err == nil {
			c.budget.observe(c.now(), used, allocation)
			c.metrics.usage(ctx, used, allocation)
		}
	}
	data, err := io.ReadAll(io.LimitReader(hresp.Body, c.cfg.maxResponseBytes+1))
	if err != nil {
		return nil, transportError(req.op, err)
	}
	if int64(len(data)) > c.cfg.maxResponseBytes {
		return nil, syncerr.Wrap(syncerr.SalesforceResponseTooLarge, fmt.Errorf("%s: %w", req.op, &ResponseTooLargeError{Limit: c.cfg.maxResponseBytes}))
	}
	if hresp.StatusCode >= 200 && hresp.StatusCode < 300 {
		c.budget.succeeded()
		return &response{status: hresp.StatusCode, header: hresp.Header, body: data}, nil
	}
	return nil, c.statusError(ctx, req.op, hresp, data)
}

// statusError classifies a non-2xx answer.
func (c *Connector) statusError(ctx context.Context, op string, hresp *http.Response, body []byte) error {
	errs := parseErrorBody(hresp.StatusCode, body)
	first := errs[0]
	se := classifyAPIError(first)
	se.Detail = op + ": " + se.Detail
	switch {
	case hresp.StatusCode == http.StatusUnauthorized:
		se.Code = syncerr.SalesforceAuthFailed
		se.Err = errors.Join(errSessionExpired, first)
	case first.ErrorCode == "REQUEST_LIMIT_EXCEEDED":
		until := c.budget.limitExceeded(c.now())
		se.Delay = until.Sub(c.now())
		c.log.WarnContext(ctx, "salesforce org exceeded its API request limit; pausing the org", slog.Time("until", until))
	case hresp.StatusCode >= 500 || hresp.StatusCode == http.StatusTooManyRequests:
		if se.Code == syncerr.SalesforceRejected || se.Code == syncerr.SalesforceAuthFailed {
			se.Code = syncerr.SalesforceUnavailable
		}
		se.Delay = retryAfter(hresp.Header.Get("Retry-After"), c.now())
	}
	return se
}

// transportError classifies a failure to get an answer at all.
func transportError(op string, err error) *syncerr.Error {
	code := syncerr.SalesforceUnavailable
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		code = syncerr.SalesforceTimeout
	}
	return syncerr.Wrap(code, fmt.Errorf("%s: %w", op, err))
}

// resolve turns a request path into the path on the instance.
func (c *Connector) resolve(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/services/data/" + c.apiVersion + "/" + p
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
