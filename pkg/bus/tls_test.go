package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tandem-sync/tandem/pkg/bus"
)

// writePEM writes one PEM block to a file in dir and returns its path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsServer starts a JetStream server whose certificate a private CA signed; it returns the
// server's tls:// URL and the CA's PEM file.
func tlsServer(t *testing.T) (url, caFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tandem test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = writePEM(t, dir, "ca.crt", "CERTIFICATE", caDER)
	cert, err := tls.LoadX509KeyPair(writePEM(t, dir, "tls.crt", "CERTIFICATE", srvDER), writePEM(t, dir, "tls.key", "EC PRIVATE KEY", keyDER))
	if err != nil {
		t.Fatal(err)
	}
	ns := startServer(t, &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: filepath.Join(dir, "js"),
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	return strings.Replace(ns.ClientURL(), "nats://", "tls://", 1), caFile
}

func TestConnectTrustsTheConfiguredCA(t *testing.T) {
	url, caFile := tlsServer(t)
	b, err := bus.Connect(t.Context(), bus.Config{URL: url, CAFile: caFile}, nil)
	if err != nil {
		t.Fatalf("connect with the server's CA: %v", err)
	}
	if err := b.Declare(t.Context()); err != nil {
		t.Fatalf("declare over TLS: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectRefusesAnUnknownCA(t *testing.T) {
	url, _ := tlsServer(t)
	_, otherCA := tlsServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: url, CAFile: otherCA}, nil)
	if err == nil {
		_ = b.Close()
		t.Fatal("connected to a server whose certificate another CA signed")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %q does not say the certificate was refused", err)
	}
}
