package certs

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/certtest"
)

// served returns the serial number of the certificate a TLS server with cfg presents.
func served(t *testing.T, r *Reloader) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		c, err := lis.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the served certificate, whichever it is
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestReloaderServesTheFilesCurrentCertificate(t *testing.T) {
	dir := t.TempDir()
	first := certtest.SelfSigned(t, dir)
	r, err := NewReloader(first.Cert, first.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.recheck = 0
	if got := served(t, r); got != first.Serial.String() {
		t.Fatalf("serves %s, want the first certificate %s", got, first.Serial)
	}

	// Renewed in place (as the kubelet swaps a Secret's files): the next handshake has it.
	time.Sleep(10 * time.Millisecond) // a distinct modification time on coarse file systems
	second := certtest.SelfSigned(t, dir)
	if got := served(t, r); got != second.Serial.String() {
		t.Fatalf("after renewal serves %s, want the second certificate %s", got, second.Serial)
	}

	// A half-written update keeps the certificate that works.
	if err := os.WriteFile(second.Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(t, r); got != second.Serial.String() {
		t.Fatalf("with a broken key file serves %s, want the last good certificate %s", got, second.Serial)
	}
}

func TestNewReloaderRefusesFilesThatDoNotLoad(t *testing.T) {
	f := certtest.SelfSigned(t, "")
	if err := os.WriteFile(f.Key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewReloader(f.Cert, f.Key, nil); err == nil {
		t.Fatal("NewReloader accepted a key file that is not a key")
	}
	if _, err := NewReloader(f.Cert+".missing", f.Key, nil); err == nil {
		t.Fatal("NewReloader accepted a missing certificate file")
	}
}

func TestPoolReadsAuthorities(t *testing.T) {
	f := certtest.SelfSigned(t, "")
	if pool, err := Pool(f.Cert); err != nil || pool == nil {
		t.Fatalf("Pool(a certificate) = %v, %v", pool, err)
	}
	if _, err := Pool(f.Key); err == nil {
		t.Fatal("Pool accepted a file without a certificate")
	}
}
