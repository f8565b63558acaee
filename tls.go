package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// listenerTLS is the listener's TLS configuration: TLS 1.2 and later, HTTP/1.1
// (the shutdown sequence is built and tested on it), and the certificate of
// certs.
func listenerTLS(certs *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: certs.get,
	}
}

// certReloader serves the certificate and key of TLS_CERT_FILE and
// TLS_KEY_FILE, and loads them again when they change, so a renewed
// certificate (cert-manager, a Kubernetes secret, certbot) needs no restart.
// A pair that does not load, as when one file is written before the other,
// keeps the certificate in force.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration // TLS_CERT_CHECK_INTERVAL: how often, at most, a handshake looks at the files
	logger            *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certPEM   []byte // the contents behind cert
	keyPEM    []byte
	checked   time.Time
	lastError string // logged once per kind of failure
}

func newCertReloader(certFile, keyFile string, every time.Duration, logger *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, every: every, logger: logger}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.checked = time.Now()
	return c, nil
}

// load reads both files and takes the pair when it changed and is valid.
func (c *certReloader) load() error {
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS_KEY_FILE: %w", err)
	}
	if c.cert != nil && bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE and TLS_KEY_FILE: %w", err)
	}
	if c.cert != nil {
		c.logger.Info("listener certificate reloaded", "cert_file", c.certFile,
			"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	c.cert, c.certPEM, c.keyPEM = &cert, certPEM, keyPEM
	return nil
}

// get is the listener's tls.Config.GetCertificate.
func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.every {
		c.checked = now
		if err := c.load(); err != nil {
			if err.Error() != c.lastError {
				c.logger.Error("listener certificate not reloaded; the one in force stays", "error", err.Error())
			}
			c.lastError = err.Error()
		} else {
			c.lastError = ""
		}
	}
	return c.cert, nil
}
