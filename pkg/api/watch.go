package api

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/access"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Watches. WatchOrgStatus and WatchUserStatus push a status when it changes, so that a
// dashboard need not poll GetOrgStatus every second. A watch
//
//  1. subscribes to the org's changes channel (store.SubscribeChanges) before it reads
//     anything, so that no write after its first read goes unheard;
//  2. reads the status (or every user's) and sends it;
//  3. reads again watchGap after a write is announced (or as long as its last read took, if
//     longer): the announcements that arrive meanwhile (a cycle writes several parts of a
//     user's status within milliseconds) are read once; and reads everything again every
//     watchFallback, announced or not (below);
//  4. sends a status only when it differs (proto.Equal) from the one it last sent of it;
//  5. ends when its context does — the client cancels, or the server stops — or, with its
//     error, when a read fails (UNAVAILABLE if it stopped hearing of changes: watch again).
//
// Every write of a status's inputs is announced (see store.PublishChange): a user's status
// parts (an admin's resume included), kind statuses and reset mark with the user's id; the
// org's activity, Salesforce API usage, settings, configurations, user directory and the start
// of a cycle as org-level changes, which a watch of one user also reads again for (an
// assignment or a lifted suspension changes its status). Not announced, and so seen only by the
// fallback read: the "last 60 minutes" and "last 24 hours" counts, which move with the clock, and
// any announcement lost to a failed PUBLISH or a dropped subscription.
//
// A watch never ends by itself, and gRPC's GracefulStop waits for every call: a stopping server
// calls StopWatches first, which ends open watches with UNAVAILABLE (the status-api does, when
// its shutdown begins), so that shutdown waits only for the calls that end by themselves.

const (
	// watchGap is the least time between two reads of a watch after announced changes. A read
	// that took longer than watchGap (a large org's status reads every user's) makes the next
	// wait as long, so that a busy org keeps a watch reading at most half of the time.
	watchGap = 250 * time.Millisecond
	// watchFallback is how often a watch reads everything again, announced or not.
	watchFallback = 30 * time.Second
	// watchPageSize is how many users' statuses a watch of every user reads at a time.
	watchPageSize = 1000
)

// maxWatches bounds the watch streams one Server keeps open at once; one more is refused with
// RESOURCE_EXHAUSTED. Each holds a Redis connection of its own for its
// subscription (a subscribed connection can serve nothing else, and Redis accepts 10,000
// clients by default, shared by every service of the deployment), a few goroutines, and reads
// on every announced change: without a bound, callers opening watches would take Redis
// connections from the engine itself.
const maxWatches = 500

// maxWatchesPerToken bounds the watches one API token keeps open at once, so that one caller
// (a dashboard opening a watch per user and never closing them) cannot take every slot of
// maxWatches from the others.
const maxWatchesPerToken = 50

// watchConfig are a watch's timings, the slots it takes one of and how many one token may
// take; tests shorten them.
type watchConfig struct {
	gap, fallback time.Duration
	slots         chan struct{}
	perToken      int
}

func (s *Server) defaultWatch() watchConfig {
	return watchConfig{gap: watchGap, fallback: watchFallback, slots: s.watchSlots, perToken: maxWatchesPerToken}
}

// takeTokenWatch counts a watch against the caller's token, refusing it with
// RESOURCE_EXHAUSTED when the token has cfg.perToken open already; release gives it back. A
// call without a caller (outside the Guard) is not counted.
func (s *Server) takeTokenWatch(ctx context.Context, cfg watchConfig) (release func(), err error) {
	caller := access.CallerFrom(ctx)
	if caller == nil || cfg.perToken <= 0 {
		return func() {}, nil
	}
	s.tokenWatchesMu.Lock()
	defer s.tokenWatchesMu.Unlock()
	if s.tokenWatches[caller.TokenID] >= cfg.perToken {
		return nil, status.Errorf(codes.ResourceExhausted,
			"token %q has %d watches open, as many as one token may: close one, or watch the whole org with WatchOrgStatus", caller.Name, cfg.perToken)
	}
	s.tokenWatches[caller.TokenID]++
	return func() {
		s.tokenWatchesMu.Lock()
		defer s.tokenWatchesMu.Unlock()
		if s.tokenWatches[caller.TokenID]--; s.tokenWatches[caller.TokenID] <= 0 {
			delete(s.tokenWatches, caller.TokenID)
		}
	}, nil
}

// StopWatches ends every open watch, and refuses new ones, with UNAVAILABLE: a stopping server
// calls it first, since a graceful stop of gRPC waits for open streams, which a watch never
// ends by itself. Clients watch again, on another replica.
func (s *Server) StopWatches() {
	s.stopWatches.Do(func() { close(s.watchesStopped) })
}

// readFunc reads what a watch watches and sends what changed. all asks for everything; else
// changes says what was announced.
type readFunc func(ctx context.Context, changes store.Changes, all bool) error

// WatchOrgStatus sends the org's status at once, then again each time it changes.
func (s *Server) WatchOrgStatus(req *tandemv1.WatchOrgStatusRequest, stream grpc.ServerStreamingServer[tandemv1.WatchOrgStatusResponse]) error {
	return s.watchOrgStatus(req, stream, s.defaultWatch())
}

func (s *Server) watchOrgStatus(req *tandemv1.WatchOrgStatusRequest, stream grpc.ServerStreamingServer[tandemv1.WatchOrgStatusResponse], cfg watchConfig) error {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return err
	}
	var last *tandemv1.OrgStatus
	// Any user's status may change the org's counts: every announcement is read.
	return s.watch(stream.Context(), cfg, req.GetOrgId(), func(ctx context.Context, _ store.Changes, _ bool) error {
		resp, err := s.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: req.GetOrgId()})
		if err != nil {
			return err
		}
		if last != nil && proto.Equal(resp.GetStatus(), last) {
			return nil
		}
		last = resp.GetStatus()
		return stream.Send(&tandemv1.WatchOrgStatusResponse{Status: last})
	})
}

// WatchUserStatus sends the status of one user, or of every user of the org, at once, then
// each user's status again each time it changes.
func (s *Server) WatchUserStatus(req *tandemv1.WatchUserStatusRequest, stream grpc.ServerStreamingServer[tandemv1.WatchUserStatusResponse]) error {
	return s.watchUserStatus(req, stream, s.defaultWatch())
}

func (s *Server) watchUserStatus(req *tandemv1.WatchUserStatusRequest, stream grpc.ServerStreamingServer[tandemv1.WatchUserStatusResponse], cfg watchConfig) error {
	if err := required("org_id", req.GetOrgId()); err != nil {
		return err
	}
	ctx := stream.Context()
	if req.GetUserId() == "" && req.GetEmail() == "" {
		return s.watchEveryUser(ctx, req.GetOrgId(), stream, cfg)
	}
	u, err := s.user(ctx, req.GetOrgId(), req.GetUserId(), req.GetEmail())
	if err != nil {
		return s.grpcError(ctx, err)
	}
	get := &tandemv1.GetUserStatusRequest{OrgId: req.GetOrgId(), UserId: u.GetUserId()}
	var last *tandemv1.UserStatus
	return s.watch(ctx, cfg, req.GetOrgId(), func(ctx context.Context, c store.Changes, all bool) error {
		// An org-level change (settings, configurations, the directory) may change the user's
		// status as read (an assignment, a lifted suspension).
		if !all && !c.Org && !slices.Contains(c.Users, get.GetUserId()) {
			return nil
		}
		// A user removed from the directory since ends the watch with NOT_FOUND.
		resp, err := s.GetUserStatus(ctx, get)
		if err != nil {
			return err
		}
		if last != nil && proto.Equal(resp.GetStatus(), last) {
			return nil
		}
		last = resp.GetStatus()
		return stream.Send(&tandemv1.WatchUserStatusResponse{Status: last})
	})
}

// watchEveryUser watches every user of the org: on an announcement it reads the users
// announced, and everything (in pages, ordered by user id) at first and on the fallback.
func (s *Server) watchEveryUser(ctx context.Context, orgID string, stream grpc.ServerStreamingServer[tandemv1.WatchUserStatusResponse], cfg watchConfig) error {
	// Of a missing org there would be nothing to send, ever.
	if _, err := s.st.GetOrgRedacted(ctx, orgID); err != nil {
		return s.grpcError(ctx, err)
	}
	last := map[string]*tandemv1.UserStatus{}
	send := func(us *tandemv1.UserStatus) error {
		if prev, ok := last[us.GetUserId()]; ok && proto.Equal(us, prev) {
			return nil
		}
		last[us.GetUserId()] = us
		return stream.Send(&tandemv1.WatchUserStatusResponse{Status: us})
	}
	return s.watch(ctx, cfg, orgID, func(ctx context.Context, c store.Changes, all bool) error {
		if !all {
			slices.Sort(c.Users)
			for _, id := range c.Users {
				resp, err := s.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: orgID, UserId: id})
				if status.Code(err) == codes.NotFound {
					continue // a status of someone not (or no longer) in the directory
				}
				if err != nil {
					return err
				}
				if err := send(resp.GetStatus()); err != nil {
					return err
				}
			}
			return nil
		}
		seen := make(map[string]bool, len(last))
		req := &tandemv1.ListUserStatusesRequest{OrgId: orgID, PageSize: watchPageSize}
		for {
			resp, err := s.ListUserStatuses(ctx, req)
			if err != nil {
				return err
			}
			for _, us := range resp.GetStatuses() {
				seen[us.GetUserId()] = true
				if err := send(us); err != nil {
					return err
				}
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
		// Users gone from the directory are forgotten; were one to come back, it is sent again.
		for id := range last {
			if !seen[id] {
				delete(last, id)
			}
		}
		return nil
	})
}

// watch runs a watch of the org's changes: it takes a slot, subscribes, reads everything at
// once, then reads again after announced changes and on the fallback timer (see Watches above),
// until ctx ends or read fails.
func (s *Server) watch(ctx context.Context, cfg watchConfig, orgID string, read readFunc) error {
	select {
	case <-s.watchesStopped:
		return status.Error(codes.Unavailable, "the server is stopping: watch again")
	default:
	}
	release, err := s.takeTokenWatch(ctx, cfg)
	if err != nil {
		return err
	}
	defer release()
	select {
	case cfg.slots <- struct{}{}:
		defer func() { <-cfg.slots }()
	default:
		return status.Errorf(codes.ResourceExhausted, "this server has %d watches open, as many as it keeps: watch again later", cap(cfg.slots))
	}
	feed, err := s.st.SubscribeChanges(ctx, orgID)
	if err != nil {
		return s.grpcError(ctx, err)
	}
	// Closed before the handler returns, so that a watch leaves no subscription behind.
	defer feed.Close()

	if err := read(ctx, store.Changes{}, true); err != nil {
		return watchEnded(ctx, err)
	}
	fallback := time.NewTimer(cfg.fallback)
	defer fallback.Stop()
	var (
		due   <-chan time.Time // set while announced changes wait for the gap
		pause = cfg.gap
	)
	for {
		all := false
		select {
		case <-ctx.Done():
			return watchEnded(ctx, ctx.Err())
		case <-s.watchesStopped:
			return status.Error(codes.Unavailable, "the server is stopping: watch again")
		case <-feed.Done():
			// The feed also ends with ctx, and may be seen first.
			return watchEnded(ctx, status.Error(codes.Unavailable, "the watch stopped hearing of changes: watch again"))
		case <-feed.Ready():
			if due == nil {
				due = time.After(pause)
			}
			continue
		case <-due:
		case <-fallback.C:
			all = true
		}
		due = nil
		c := feed.Take()
		all = all || c.Lost
		if !all && c.Empty() {
			continue
		}
		start := time.Now()
		if err := read(ctx, c, all); err != nil {
			return watchEnded(ctx, err)
		}
		pause = max(cfg.gap, time.Since(start))
		if all {
			fallback.Reset(cfg.fallback)
		}
	}
}

// watchEnded is the error a watch ends with: its context's when that ended (the client is
// gone, or the server stops), else err.
func watchEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}
