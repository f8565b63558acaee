package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned is a certificate for name (and no IP address), with its key,
// both PEM-encoded.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), cert
}

// servedCertificate is the certificate the listener presents now.
func servedCertificate(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func trusting(cert *x509.Certificate, name string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
	}}
}

// TestE2ETLSListener serves HTTPS, reloads a renewed certificate without a
// restart, keeps the one in force when the files are bad, and the
// healthcheck subcommand probes it over HTTPS.
func TestE2ETLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certA, keyA, leafA := selfSigned(t, "gateway-a.test")
	replaceFile(t, certFile, string(certA))
	replaceFile(t, keyFile, string(keyA))

	// Every handshake a millisecond after the last looks at the files, so
	// the test waits for what the listener logs, not for an interval.
	g := mustStartGateway(t, "memory://", "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile, "TLS_CERT_CHECK_INTERVAL=1ms")
	base := "https://" + g.Addr

	resp, err := trusting(leafA, "gateway-a.test").Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("GET /readyz over TLS: %d, TLS %+v", resp.StatusCode, resp.TLS)
	}

	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", g.Addr, old); err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}
	if resp, err := http.Get("http://" + g.Addr + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: status %d, want 400", resp.StatusCode)
		}
	}

	// The certificate is renewed: key first, then the certificate, as a
	// careless renewal might. In between, the pair does not match, and the
	// listener keeps the old one.
	certB, keyB, leafB := selfSigned(t, "gateway-b.test")
	replaceFile(t, keyFile, string(keyB))
	refused := "listener certificate not reloaded"
	servedUntilLogged(t, g, leafA, refused, 1, "with a key that does not match the certificate")
	replaceFile(t, certFile, string(certB))
	deadline := time.Now().Add(5 * time.Second)
	for !servedCertificate(t, g.Addr).Equal(leafB) {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served within 5s\n%s", g.Stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(g.Stdout.String(), "listener certificate not reloaded") ||
		!strings.Contains(g.Stdout.String(), "listener certificate reloaded") {
		t.Errorf("the logs do not tell the refused pair and the reload apart:\n%s", g.Stdout)
	}

	otherCert, _, _ := selfSigned(t, "someone-else.test")
	otherFile := filepath.Join(dir, "other.crt")
	replaceFile(t, otherFile, string(otherCert))
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "" for success
	}{
		{name: "own address, own certificate", env: map[string]string{"HTTP_ADDR": g.Addr, "TLS_CERT_FILE": certFile}},
		{name: "--live", env: map[string]string{"HTTP_ADDR": g.Addr, "TLS_CERT_FILE": certFile}, args: []string{"--live"}},
		{name: "--url, own certificate", env: map[string]string{"TLS_CERT_FILE": certFile}, args: []string{"--url", base}},
		{name: "another certificate", env: map[string]string{"HTTP_ADDR": g.Addr, "TLS_CERT_FILE": otherFile}, wantErr: "certificate"},
		{name: "--url, no certificate to trust", args: []string{"--url", base}, wantErr: "certificate"},
		{name: "--url --insecure", args: []string{"--url", base, "--insecure"}},
		{name: "plain HTTP to the TLS port", env: map[string]string{"HTTP_ADDR": g.Addr}, wantErr: "400"},
	}
	for _, tt := range tests {
		t.Run("healthcheck "+tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			_, _, _, err := runOnce(t, 10*time.Second, env, append([]string{"healthcheck"}, tt.args...)...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("healthcheck %q: %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("healthcheck %q: err = %v, want one mentioning %q", tt.args, err, tt.wantErr)
			}
		})
	}

	replaceFile(t, certFile, "not a certificate")
	servedUntilLogged(t, g, leafB, refused, 2, "with a broken certificate file")
}

// servedUntilLogged makes handshakes until the gateway has logged line n
// times, and fails the test if one of them is not served want.
func servedUntilLogged(t *testing.T, g *gateway, want *x509.Certificate, line string, n int, when string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got := servedCertificate(t, g.Addr); !got.Equal(want) {
			t.Fatalf("%s, the listener serves %s, want %s", when, got.Subject, want.Subject)
		}
		if strings.Count(g.Stdout.String(), line) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, the gateway did not log %q within 10s:\n%s", when, line, g.Stdout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown over TLS: an open event stream ends, an idle keep-alive
// connection closes, and run returns without error.
func TestE2ETLSShutdown(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM, keyPEM, leaf := selfSigned(t, "gateway.test")
	replaceFile(t, certFile, string(certPEM))
	replaceFile(t, keyFile, string(keyPEM))
	g := mustStartGateway(t, "memory://", "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile)
	base := "https://" + g.Addr
	client := trusting(leaf, "gateway.test")
	client.Timeout = 0

	// An idle keep-alive connection.
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	req, _ := http.NewRequest(http.MethodGet, base+"/subscribe/c", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	stream, err := client.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("GET /subscribe/c over TLS: %v %v", stream, err)
	}
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
		}
		ended <- sc.Err()
	}()

	start := time.Now()
	if err := g.stop(); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("shutdown took %s with a stream open, want well under SHUTDOWN_TIMEOUT", took)
	}
	select {
	case err := <-ended:
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("the stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the event stream did not end with the shutdown")
	}
	stream.Body.Close()
}
