package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/internal/redistest"
)

// Real TLS servers with certificates the test makes: what connects, and what
// a failure says when it does not.
func TestTLS(t *testing.T) {
	ca := redistest.NewCA(t)
	other := redistest.NewCA(t)
	plain := redistest.Start(t)
	srv := redistest.StartTLS(t, redistest.TLS{CA: ca, Server: ca.Issue("localhost")})
	mutual := redistest.StartTLS(t, redistest.TLS{CA: ca, Server: ca.Issue("localhost"), AuthClients: true})
	client := ca.Issue("gateway")
	port := func(s *redistest.Server) string { return strings.TrimPrefix(s.Addr(), "127.0.0.1") }

	tests := []struct {
		name string
		url  string
		tls  TLSOptions
		want []string // in the error; none: Ping succeeds
	}{
		{"private CA", "rediss://localhost" + port(srv), TLSOptions{CAFile: ca.File}, nil},
		{"IP address with a server name", "rediss://127.0.0.1" + port(srv), TLSOptions{CAFile: ca.File, ServerName: "localhost"}, nil},
		{"TLS on for a redis:// URL", "redis://localhost" + port(srv), TLSOptions{Enabled: true, CAFile: ca.File}, nil},
		{"unknown CA", "rediss://localhost" + port(srv), TLSOptions{CAFile: other.File}, []string{"TLS", "unknown authority", "REDIS_TLS_CA_FILE"}},
		{"system roots", "rediss://localhost" + port(srv), TLSOptions{}, []string{"TLS", "unknown authority"}},
		{"name mismatch", "rediss://localhost" + port(srv), TLSOptions{CAFile: ca.File, ServerName: "redis.example.com"}, []string{"TLS", "name mismatch", "redis.example.com"}},
		{"IP address without a name", "rediss://127.0.0.1" + port(srv), TLSOptions{CAFile: ca.File}, []string{"TLS", "name mismatch", "127.0.0.1"}},
		{"plain-text server", "rediss://localhost" + port(plain), TLSOptions{CAFile: ca.File}, []string{"TLS", "plain-text"}},
		{"client certificate required and given", "rediss://localhost" + port(mutual), TLSOptions{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, nil},
		{"client certificate required and missing", "rediss://localhost" + port(mutual), TLSOptions{CAFile: ca.File}, []string{"TLS", "client certificate", "REDIS_TLS_CERT_FILE"}},
		{"skip verify", "rediss://127.0.0.1" + port(srv), TLSOptions{InsecureSkipVerify: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{URL: tt.url, TLS: tt.tls, MaxRetries: -1, DialTimeout: time.Second})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = s.Ping(ctx)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Ping = %v, want it to wrap ErrUnavailable", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ping = %q, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestTLSSettings(t *testing.T) {
	ca := redistest.NewCA(t)
	pair := ca.Issue("localhost")
	tests := []struct {
		name string
		opts Options
		want string // in New's error; "" = no error
	}{
		{"CA without TLS", Options{URL: "redis://localhost:1", TLS: TLSOptions{CAFile: ca.File}}, "TLS is off"},
		{"memory with TLS", Options{URL: "memory://", TLS: TLSOptions{Enabled: true}}, "memory://"},
		{"missing CA file", Options{URL: "rediss://localhost:1", TLS: TLSOptions{CAFile: ca.File + ".missing"}}, "REDIS_TLS_CA_FILE"},
		{"CA file without PEM", Options{URL: "rediss://localhost:1", TLS: TLSOptions{CAFile: pair.KeyFile}}, "REDIS_TLS_CA_FILE"},
		{"certificate without key", Options{URL: "rediss://localhost:1", TLS: TLSOptions{CertFile: pair.CertFile}}, "REDIS_TLS_KEY_FILE"},
		{"key that does not match", Options{URL: "rediss://localhost:1", TLS: TLSOptions{CertFile: pair.CertFile, KeyFile: ca.Issue("x").KeyFile}}, "REDIS_TLS_CERT_FILE"},
		{"client certificate", Options{URL: "rediss://localhost:1", TLS: TLSOptions{CertFile: pair.CertFile, KeyFile: pair.KeyFile}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if err == nil {
				s.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}

	cfg, err := TLSOptions{}.tlsConfig()
	if err != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("tlsConfig: MinVersion = %x, %v; want TLS 1.2 (%x)", cfg.MinVersion, err, tls.VersionTLS12)
	}
}

// Skipping verification is logged as a warning on every start.
func TestInsecureSkipVerifyWarns(t *testing.T) {
	for _, opts := range []Options{
		{URL: "rediss://localhost:1", TLS: TLSOptions{InsecureSkipVerify: true}},
		{URL: "rediss://localhost:1?skip_verify=true"},
	} {
		var logs bytes.Buffer
		opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		s, err := New(opts)
		if err != nil {
			t.Fatalf("New(%s): %v", opts.URL, err)
		}
		s.Close()
		if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "REDIS_TLS_INSECURE_SKIP_VERIFY") {
			t.Errorf("New(%s) with verification off logged %q, want a warning", opts.URL, logs.String())
		}
	}
}
