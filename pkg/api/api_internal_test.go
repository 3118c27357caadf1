package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/seal"
	"github.com/tandem-sync/tandem/pkg/store"
)

func TestGRPCErrorMapping(t *testing.T) {
	s := New(nil, nil, nil, nil)
	const secret = "hunter2"
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"not found", fmt.Errorf("user x of org y: %w", store.ErrNotFound), codes.NotFound},
		{"validation", &store.ValidationError{Violations: []store.FieldViolation{{Field: "name", Description: "is required"}}}, codes.InvalidArgument},
		{"invalid id", fmt.Errorf("get org: %w", store.ErrInvalidID), codes.InvalidArgument},
		{"invalid page token", fmt.Errorf("list errors: %w", store.ErrInvalidPageToken), codes.InvalidArgument},
		{"no keyring", fmt.Errorf("put org: seal: %w", store.ErrNoKeyring), codes.FailedPrecondition},
		{"cannot open", fmt.Errorf("get org: open %s: %w", secret, seal.ErrOpen), codes.FailedPrecondition},
		{"unknown key", fmt.Errorf("get org: %w", seal.ErrUnknownKey), codes.FailedPrecondition},
		{"canceled", fmt.Errorf("read: %w", context.Canceled), codes.Canceled},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"anything else", fmt.Errorf("dial redis://:%s@redis:6379: connection refused", secret), codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.grpcError(t.Context(), tc.err)
			st, ok := status.FromError(err)
			if !ok || st.Code() != tc.want {
				t.Fatalf("grpcError(%v) = %v, want code %s", tc.err, err, tc.want)
			}
			// Errors that do not describe the request itself are reported without detail.
			if tc.want == codes.Internal || tc.want == codes.FailedPrecondition {
				if strings.Contains(st.Message(), secret) {
					t.Fatalf("message %q leaks the error's detail", st.Message())
				}
			}
		})
	}
	if err := s.grpcError(t.Context(), nil); err != nil {
		t.Fatalf("grpcError(nil) = %v", err)
	}
}

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		in   int32
		want int
	}{{-1, 100}, {0, 100}, {1, 1}, {250, 250}, {1000, 1000}, {1001, 1000}, {1 << 30, 1000}} {
		if got := pageSize(tc.in); got != tc.want {
			t.Errorf("pageSize(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
