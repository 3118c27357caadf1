package devenv

import (
	"strings"
	"testing"
)

func TestCheckEndpointURL(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		want     string // part of the error; empty: accepted
	}{
		{"https://mail.acme.example/EWS/Exchange.asmx", false, ""},
		{"", false, ""},
		{"http://127.0.0.1:8443/EWS/Exchange.asmx", false, "--insecure-http"},
		{"http://127.0.0.1:8443/EWS/Exchange.asmx", true, ""},
		{"ftp://mail.acme.example", true, "not an absolute https URL"},
		{"mail.acme.example", false, "not an absolute https URL"},
	}
	for _, tt := range tests {
		err := checkEndpointURL("--exchange-ews-url", tt.url, tt.insecure)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%q insecure=%v: %v, want %q", tt.url, tt.insecure, err, tt.want)
		}
	}
}
