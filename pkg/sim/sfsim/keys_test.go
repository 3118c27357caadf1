package sfsim

import "testing"

func TestNewConnectedAppKeyIsAcceptedByConfig(t *testing.T) {
	_, cert, err := NewConnectedAppKey("test-app")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ConnectedApps: []ConnectedApp{{ClientID: "test-app", CertificatePEM: cert}}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the generated certificate is refused: %v", err)
	}
}
