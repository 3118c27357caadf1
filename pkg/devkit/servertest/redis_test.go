package servertest

import (
	"net"
	"testing"
)

func TestRedis(t *testing.T) {
	client := Redis(t)
	ctx := t.Context()
	addr := client.Options().Addr
	if _, port, _ := net.SplitHostPort(addr); port == "6379" {
		t.Fatalf("test Redis on the standard port: %s", addr)
	}
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(info) == 0 {
		t.Fatal("empty INFO")
	}

	// Two servers in one test are independent.
	other := Redis(t)
	n, err := other.Exists(ctx, "k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a second server shares data with the first")
	}
}
