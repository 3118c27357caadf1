// Package certs serves a TLS certificate from PEM files that may change while the server runs:
// cert-manager renews a Kubernetes Secret and the kubelet swaps the mounted files, and the next
// handshake uses the new certificate without a restart.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultRecheck is how often, at most, the files are checked for a change.
const DefaultRecheck = time.Second

// Reloader holds the certificate of a certificate file and a key file, loading them again when
// either file changes.
type Reloader struct {
	certFile, keyFile string
	recheck           time.Duration
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // the files' sizes and modification times when cert was loaded
	checkedAt time.Time
}

// NewReloader loads the certificate of certFile and keyFile; it fails when they do not hold a
// matching certificate and key. log reports reloads and files that no longer load (nil discards).
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, recheck: DefaultRecheck, log: log, now: time.Now}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

// stampFiles describes both files' current versions.
func (r *Reloader) stampFiles() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS file: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

func (r *Reloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// Certificate returns the current certificate, loading the files again if they changed since
// they were last loaded. When the changed files do not load (a half-written update), it keeps
// serving the certificate it has and tries again at the next check.
func (r *Reloader) Certificate() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checkedAt) < r.recheck {
		return r.cert, nil
	}
	r.checkedAt = now
	stamp, err := r.stampFiles()
	if err == nil && stamp != r.stamp {
		if err = r.load(stamp); err == nil {
			r.log.Info("reloaded the TLS certificate", slog.String("cert", r.certFile))
		}
	}
	if err != nil {
		r.log.Warn("the TLS certificate files do not load; serving the previous certificate", slog.Any("error", err))
	}
	if r.cert == nil {
		return nil, errors.New("no TLS certificate")
	}
	return r.cert, nil
}

// ServerConfig is a TLS configuration (TLS 1.2 or later) serving the reloaded certificate.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.Certificate() },
	}
}

// Pool reads a PEM file of certificate authorities into a pool; it fails when the file holds no
// certificate.
func Pool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file) //nolint:gosec // the file the operator named
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}
