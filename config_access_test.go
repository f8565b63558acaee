package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/internal/logtest"
)

func TestTokensFileConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := file("good.json", tokensJSON("svc", staySecret))
	empty := file("empty.json", `{"tokens": []}`)
	bad := file("bad.json", `{"tokens": [{"name": "svc", "secret": "short"}]}`)

	tests := []struct {
		name    string
		env     map[string]string
		dev     bool
		wantErr []string // each must appear in the error; none: no error
	}{
		{name: "file alone", env: map[string]string{"GATEWAY_TOKENS_FILE": good}},
		{name: "file and GATEWAY_TOKENS", env: map[string]string{"GATEWAY_TOKENS_FILE": good, "GATEWAY_TOKENS": testToken}},
		{name: "bad file", env: map[string]string{"GATEWAY_TOKENS_FILE": bad, "GATEWAY_TOKENS": testToken},
			wantErr: []string{"GATEWAY_TOKENS_FILE", bad, "token 1 (svc): secret"}},
		{name: "missing file", env: map[string]string{"GATEWAY_TOKENS_FILE": dir + "/nope.json"},
			wantErr: []string{"GATEWAY_TOKENS_FILE", "no such file"}},
		{name: "a file of no tokens", env: map[string]string{"GATEWAY_TOKENS_FILE": empty},
			wantErr: []string{"GATEWAY_TOKENS_FILE", "accept nobody"}},
		{name: "-dev ignores the file", env: map[string]string{"GATEWAY_TOKENS_FILE": bad}, dev: true},
		{name: "GATEWAY_AUTH=none ignores the file", env: map[string]string{"GATEWAY_TOKENS_FILE": bad, "GATEWAY_AUTH": "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := withEnv(map[string]string{"REDIS_URL": "memory://"}, tt.env)
			_, err := loadConfig(envFunc(env), tt.dev)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig succeeded, want an error naming %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig: %v; want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), staySecret) {
				t.Errorf("the error echoes a secret: %v", err)
			}
		})
	}
}

// The tokens file of docs/security.md is a valid one, and means what it says.
func TestDocumentedTokensFile(t *testing.T) {
	readme, err := os.ReadFile("docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Tokens and scopes")
	_, block, ok2 := strings.Cut(after, "```json\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/security.md has no JSON block under Tokens and scopes")
	}
	set, err := access.NewSet(nil, []byte(block))
	if err != nil {
		t.Fatalf("the documented tokens file: %v", err)
	}
	for _, tt := range []struct {
		secret, name string
		route        access.Route
		level        access.Level
		key          string
		allowed      bool
	}{
		{"orders-example-secret-change-me", "orders", access.Cache, access.Write, "orders:42", true},
		{"orders-example-secret-change-me", "orders", access.Cache, access.Write, "sessions:42", false},
		{"orders-example-secret-change-me", "orders", access.PubSub, access.Write, "", false},
		{"reporting-example-secret-change-me", "reporting", access.Redis, access.Read, "invoices:7", true},
		{"reporting-example-secret-change-me", "reporting", access.Redis, access.Write, "invoices:7", false},
		{"ops-example-secret-change-me", "ops", access.Redis, access.Write, "anything", true},
	} {
		tok := set.Lookup(tt.secret)
		if tok == nil || tok.Name != tt.name {
			t.Errorf("the documented secret %s: token %v, want %s", tt.secret, tok, tt.name)
			continue
		}
		err := tok.Route(tt.route, tt.level)
		if err == nil && tt.key != "" {
			err = tok.Keys(tt.key)
		}
		if got := err == nil; got != tt.allowed {
			t.Errorf("%s: %s %s key %q: allowed = %v (%v), want %v", tt.name, tt.route, tt.level, tt.key, got, err, tt.allowed)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, _ := selfSigned(t, "gateway.test")
	_, otherKey, _ := selfSigned(t, "other.test")
	certFile, keyFile, otherKeyFile := filepath.Join(dir, "c"), filepath.Join(dir, "k"), filepath.Join(dir, "o")
	replaceFile(t, certFile, string(certPEM))
	replaceFile(t, keyFile, string(keyPEM))
	replaceFile(t, otherKeyFile, string(otherKey))
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{name: "both", env: map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}},
		{name: "certificate alone", env: map[string]string{"TLS_CERT_FILE": certFile}, wantErr: []string{"TLS_CERT_FILE", "needs TLS_KEY_FILE"}},
		{name: "key alone", env: map[string]string{"TLS_KEY_FILE": keyFile}, wantErr: []string{"TLS_KEY_FILE", "needs TLS_CERT_FILE"}},
		{name: "key of another certificate", env: map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": otherKeyFile},
			wantErr: []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "does not match"}},
		{name: "missing file", env: map[string]string{"TLS_CERT_FILE": dir + "/nope", "TLS_KEY_FILE": keyFile},
			wantErr: []string{"TLS_CERT_FILE", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := withEnv(map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken}, tt.env)
			cfg, err := loadConfig(envFunc(env), false)
			if len(tt.wantErr) == 0 {
				if err != nil || cfg.TLSCertFile != certFile || cfg.TLSKeyFile != keyFile {
					t.Fatalf("loadConfig: %v (%q, %q)", err, cfg.TLSCertFile, cfg.TLSKeyFile)
				}
				return
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig: err = %v; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCORSAndMetricsTokenConfig(t *testing.T) {
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{value: "", want: nil},
		{value: "https://app.example.com", want: []string{"https://app.example.com"}},
		{value: " https://App.Example.com , http://localhost:3000", want: []string{"https://app.example.com", "http://localhost:3000"}},
		{value: "*", want: []string{"*"}},
		{value: "*, https://app.example.com", wantErr: "give it alone"},
		{value: "app.example.com", wantErr: `"app.example.com" is not an origin`},
		{value: "https://app.example.com/", wantErr: "is not an origin"},
		{value: "https://app.example.com/path", wantErr: "is not an origin"},
		{value: "ftp://app.example.com", wantErr: "is not an origin"},
	}
	for _, tt := range tests {
		env := map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken, "CORS_ALLOWED_ORIGINS": tt.value}
		cfg, err := loadConfig(envFunc(env), false)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "CORS_ALLOWED_ORIGINS") || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CORS_ALLOWED_ORIGINS=%q: err = %v, want one naming the variable and %q", tt.value, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("CORS_ALLOWED_ORIGINS=%q: %v", tt.value, err)
		case tt.wantErr == "" && strings.Join(cfg.CORSOrigins, " ") != strings.Join(tt.want, " "):
			t.Errorf("CORS_ALLOWED_ORIGINS=%q: origins %q, want %q", tt.value, cfg.CORSOrigins, tt.want)
		}
	}

	env := map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken, "METRICS_TOKEN": "scrape-me-4f9c2e7b1d6a"}
	if cfg, err := loadConfig(envFunc(env), false); err != nil || cfg.MetricsToken != "scrape-me-4f9c2e7b1d6a" {
		t.Errorf("METRICS_TOKEN: %q, %v", cfg.MetricsToken, err)
	}
	if cfg, err := loadConfig(envFunc(env), true); err != nil || cfg.MetricsToken != "" {
		t.Errorf("METRICS_TOKEN with -dev: %q, %v; want it off with the rest of auth", cfg.MetricsToken, err)
	}
}

// A full-access token anyone could guess, or a template's placeholder, stops
// start-up with a message that names the variable and never the secret.
func TestWeakTokensRefused(t *testing.T) {
	tests := []struct {
		name, variable, value string
		want                  []string
	}{
		{"short", "GATEWAY_TOKENS", "Zq9", []string{"GATEWAY_TOKENS", "token 1", "3 bytes", "at least 16"}},
		{"15 bytes", "GATEWAY_TOKENS", testToken + ",4f9c2e7b1d6a8e0", []string{"GATEWAY_TOKENS", "token 2 (GATEWAY_TOKENS#2)", "15 bytes"}},
		{"change-me", "GATEWAY_TOKENS", "my-token-CHANGE-ME-0000", []string{"GATEWAY_TOKENS", "placeholder", `"changeme"`}},
		{"example", "GATEWAY_TOKENS", "example-4f9c2e7b1d6a8e0c", []string{"GATEWAY_TOKENS", "placeholder", `"example"`}},
		{"short metrics token", "METRICS_TOKEN", "scrape-me", []string{"METRICS_TOKEN", "9 bytes"}},
		{"placeholder metrics token", "METRICS_TOKEN", "replace-me-with-a-token", []string{"METRICS_TOKEN", "placeholder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"REDIS_URL": "memory://", "GATEWAY_TOKENS": testToken, tt.variable: tt.value}
			_, err := loadConfig(envFunc(env), false)
			if err == nil {
				t.Fatalf("%s=%s started the gateway", tt.variable, tt.value)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig: %v; want it to contain %q", err, w)
				}
			}
			for _, secret := range strings.Split(tt.value, ",") {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error echoes a secret: %v", err)
				}
			}
			// -dev and GATEWAY_AUTH=none ignore the tokens.
			if tt.variable == "GATEWAY_TOKENS" {
				if _, err := loadConfig(envFunc(withEnv(env, map[string]string{"GATEWAY_AUTH": "none"})), false); err != nil {
					t.Errorf("GATEWAY_AUTH=none: %v", err)
				}
			}
			if _, err := loadConfig(envFunc(env), true); err != nil {
				t.Errorf("-dev: %v", err)
			}
		})
	}
}

// The tokens file is read once at start: the gateway serves the tokens
// loadConfig checked, even when the file turns bad before serve begins, and
// the watcher refuses the new contents rather than failing start-up late.
func TestTokensFileReadOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, []byte(tokensJSON("svc", staySecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(envFunc(map[string]string{
		"REDIS_URL": "memory://", "GATEWAY_TOKENS_FILE": path, "HTTP_ADDR": "127.0.0.1:0", "SHUTDOWN_DELAY": "0s",
	}), false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"tokens": [`), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, false, slog.New(slog.NewJSONHandler(logs, nil)), io.Discard) }()
	var addr string
	for addr == "" {
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v", err)
		case <-time.After(10 * time.Millisecond):
			addr, _ = listenAddr(logs.String())
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/cache/k", nil)
	req.Header.Set("Authorization", "Bearer "+staySecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /cache/k with the checked file's token: status = %d, want 404", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
