package ews

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzStreamingEvents feeds arbitrary bytes to the streaming response reader as a connection's
// body: it must never panic, and whatever it hands out must be well formed.
func FuzzStreamingEvents(f *testing.F) {
	ok, closed := streamStatus("OK"), streamStatus("Closed")
	bare := func(s string) string { return strings.TrimPrefix(s, `<?xml version="1.0" encoding="utf-8"?>`) }
	for _, s := range []string{
		ok + streamNotes("m", "sub-1", createdEvent) + closed,
		bare(ok) + "\r\n" + bare(streamNotes("t", "sub-2", movedEvent+folderModified)) + "\n" + bare(closed),
		streamError("ErrorSubscriptionNotFound", "Closed", "sub-1", "sub-2"),
		streamError("ErrorMissedNotificationEvents", "OK", "sub-1") + ok + closed,
		streamError("ErrorInvalidRequest", "Closed"),
		ok + ok + ok,
		faultResponse("ErrorServerBusy", "busy", 1000),
	} {
		f.Add([]byte(s))
		f.Add([]byte(s[:len(s)/2]))
		f.Add([]byte(strings.Replace(s, "<", "<!DOCTYPE x [<!ENTITY a 'b'>]><", 1)))
	}
	for _, broken := range []string{"", "<", "text", ok + "text" + closed, "<html>oops</html>", "\xff\xfe<\x00",
		strings.Repeat("<a>", 500) + strings.Repeat("</a>", 500), ok + deepXML(maxXMLDepth+1),
		`<?xml version="1.0" encoding="ISO-8859-1"?>` + bare(closed)} {
		f.Add([]byte(broken))
	}
	for _, h := range hostileXML() {
		f.Add([]byte(h.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip()
		}
		var last StreamMessage
		handled := 0
		err := readStream(bytes.NewReader(data), 64<<10, func(*envelope) {}, func(m StreamMessage) error {
			handled++
			last = m
			for _, n := range m.Notifications {
				if n.SubscriptionID == "" {
					t.Fatal("a notification without a subscription id")
				}
			}
			if m.Err != nil && (len(m.Err.SubscriptionIDs) == 0 || m.Err.ResponseError == nil || m.Err.Code == "") {
				t.Fatalf("a subscription error without subscriptions or code: %+v", m.Err)
			}
			return nil
		})
		if err == nil && (handled == 0 || last.Status != "Closed") {
			t.Fatal("the stream ended well without a ConnectionStatus Closed")
		}
		var se *SubscriptionError
		if errors.As(err, &se) && len(se.SubscriptionIDs) == 0 {
			t.Fatal("a refused request without its subscriptions")
		}
	})
}
