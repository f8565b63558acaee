package main

import (
	"strings"
	"testing"
)

func TestRateLimitFailOpenConfig(t *testing.T) {
	tests := []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"", false, false},
		{"true", true, false},
		{"false", false, false},
		{"1", true, false},
		{"yes", false, true},
	}
	for _, tt := range tests {
		env := map[string]string{"REDIS_URL": "memory://", "GATEWAY_AUTH": "none", "RATELIMIT_FAIL_OPEN": tt.value}
		cfg, err := loadConfig(func(k string) string { return env[k] }, false)
		switch {
		case tt.wantErr && (err == nil || !strings.Contains(err.Error(), "RATELIMIT_FAIL_OPEN")):
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: error %v, want one naming the variable", tt.value, err)
		case !tt.wantErr && err != nil:
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: %v", tt.value, err)
		case !tt.wantErr && cfg.RateLimitFailOpen != tt.want:
			t.Errorf("RATELIMIT_FAIL_OPEN=%q: RateLimitFailOpen = %v, want %v", tt.value, cfg.RateLimitFailOpen, tt.want)
		}
	}
}
