package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

func TestConnect(t *testing.T) {
	srv := servertest.RedisServer(t)
	ctx := t.Context()
	tests := []struct {
		name string
		url  string
	}{
		{"redis URL", srv.URL()},
		{"bare address", srv.Addr()},
		{"database 3", "redis://" + srv.Addr() + "/3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Connect(ctx, tc.url, testKeyring(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Client().(*redis.Client); !ok {
				t.Fatalf("client is %T, want *redis.Client", s.Client())
			}
		})
	}

	// Nothing listens on port 1; Connect must fail its PING (within the context's deadline,
	// since the client retries).
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := Connect(short, "redis://127.0.0.1:1/0", nil); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
}

func TestNewClient(t *testing.T) {
	const password = "s3cret-pa55"
	tests := []struct {
		name        string
		url         string
		wantCluster bool
		wantErr     bool
	}{
		{"single", "redis://localhost:6380/0", false, false},
		{"tls", "rediss://user:" + password + "@redis.example:6380/1", false, false},
		{"cluster", "redis://:" + password + "@n1:7000,n2:7001,redis://n3:7002", true, false},
		{"tls cluster", "rediss://n1:7000,rediss://n2:7000", true, false},
		{"cluster with database", "redis://n1:7000/2,redis://n2:7000", false, true},
		{"cluster mixing tls", "rediss://n1:7000,redis://n2:7000", false, true},
		{"bad scheme", "http://user:" + password + "@n1:7000", false, true},
		{"empty", "", false, true},
		{"empty cluster member", "redis://n1:7000,", false, true},
		{"bad database", "redis://:" + password + "@n1:7000/x", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(tc.url)
			if tc.wantErr {
				if err == nil {
					_ = c.Close()
					t.Fatal("NewClient succeeded")
				}
				if strings.Contains(err.Error(), password) {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, isCluster := c.(*redis.ClusterClient); isCluster != tc.wantCluster {
				t.Fatalf("client is %T, want cluster %v", c, tc.wantCluster)
			}
		})
	}
}
