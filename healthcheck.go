package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// healthcheck probes a running gateway, for container health checks in images
// with no shell or curl. It exits 0 only on a 200 from /readyz (--live:
// /healthz). By default it asks the address this gateway would listen on,
// over HTTPS when TLS_CERT_FILE is set.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	live := fs.Bool("live", false, "probe liveness (/healthz) instead of readiness (/readyz)")
	base := fs.String("url", "", "the gateway's URL (default: from HTTP_ADDR or PORT, on loopback; https when TLS_CERT_FILE is set)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := fs.Bool("insecure", false, "accept any certificate over HTTPS")
	if err := fs.Parse(args); err != nil {
		return err
	}

	target, err := probeURL(*base, getenv, *live)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	u, _ := url.Parse(target) // probeURL made it
	client, err := probeClient(getenv("TLS_CERT_FILE"), *insecure, u.Hostname())
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", target, resp.StatusCode, body)
	}
	return nil
}

func probeURL(base string, getenv func(string) string, live bool) (string, error) {
	path := "/readyz"
	if live {
		path = "/healthz"
	}
	if base == "" {
		e := envReader{getenv: getenv}
		addr := e.addr(false)
		if len(e.errs) > 0 {
			return "", e.errs[0]
		}
		host, port, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		scheme := "http"
		if getenv("TLS_CERT_FILE") != "" {
			scheme = "https"
		}
		return scheme + "://" + net.JoinHostPort(host, port) + path, nil
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--url %q is not an absolute URL", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = path
	}
	return u.String(), nil
}

// probeClient is the HTTP client of the probe. Over HTTPS it accepts the
// certificate the gateway serves, that of TLS_CERT_FILE, whatever name the
// probe used to reach it (the probe asks 127.0.0.1, the certificate names
// the service); any other certificate must verify against the system's roots
// and the URL's host. With insecure, any certificate passes.
func probeClient(certFile string, insecure bool, host string) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if !insecure && certFile != "" {
		own, err := readCertificates(certFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CERT_FILE: %w", err)
		}
		cfg.InsecureSkipVerify = true // VerifyConnection below does the verifying
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			for _, c := range own {
				if leaf.Equal(c) {
					return nil
				}
			}
			opts := x509.VerifyOptions{DNSName: host, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := leaf.Verify(opts)
			return err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// readCertificates parses every certificate of a PEM file.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return certs, nil
}
