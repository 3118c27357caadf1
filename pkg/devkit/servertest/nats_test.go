package servertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
)

func TestNATSConnRoundTrip(t *testing.T) {
	nc := servertest.NATSConn(t)
	if strings.HasSuffix(nc.ConnectedUrl(), ":4222") {
		t.Fatalf("test server listens on the standard port 4222")
	}
	sub, err := nc.SubscribeSync("servertest.ping")
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Publish("servertest.ping", []byte("pong")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	if got := string(msg.Data); got != "pong" {
		t.Fatalf("got %q, want %q", got, "pong")
	}
}

func TestNATSServersAreIndependent(t *testing.T) {
	a, b := servertest.NATS(t), servertest.NATS(t)
	if a.ClientURL() == b.ClientURL() {
		t.Fatalf("two test servers share the URL %s", a.ClientURL())
	}
}
