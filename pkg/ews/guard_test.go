package ews

import (
	"errors"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// TestHostileResponsesAreRefused checks that every hostile body is refused quickly with a
// MalformedResponseError saying why, classified EXCHANGE_MALFORMED_RESPONSE.
func TestHostileResponsesAreRefused(t *testing.T) {
	for _, h := range hostileXML() {
		t.Run(h.name, func(t *testing.T) {
			start := time.Now()
			_, err := parseEnvelope([]byte(h.body))
			var bad *MalformedResponseError
			if !errors.As(err, &bad) || !errors.Is(err, h.want) {
				t.Fatalf("parseEnvelope = %v, want a MalformedResponseError for %v", err, h.want)
			}
			if se := classify(err); se.Code != syncerr.ExchangeMalformedResponse {
				t.Errorf("classified %s, want %s", se.Code, syncerr.ExchangeMalformedResponse)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("refusing took %s", el)
			}
		})
	}
}

// TestWellFormedResponsesStillParse guards the guards: what EWS really sends is accepted.
func TestWellFormedResponsesStillParse(t *testing.T) {
	for _, body := range []string{
		soapBody(`<m:R xmlns:m="m">Zoë &amp; Søn &lt;!DOCTYPE&gt; 😀</m:R>`),
		soapBody(`<m:R xmlns:m="m"><![CDATA[a <b> c]]></m:R>`),
		`<?xml version="1.0" encoding="US-ASCII"?>` + soapBody("<x/>")[len(`<?xml version="1.0" encoding="utf-8"?>`):],
		soapBody(deepXML(maxXMLDepth - 3)),
	} {
		if _, err := parseEnvelope([]byte(body)); err != nil {
			t.Errorf("parseEnvelope(%.80q) = %v", body, err)
		}
	}
	for _, r := range loadRecordings(t) {
		if r.Body != "" && isSOAP(r) {
			if _, err := parseXML([]byte(r.Body)); err != nil {
				t.Errorf("recording %s refused: %v", r.File, err)
			}
		}
	}
}
