package log

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero is defaults", Config{}, ""},
		{"small segments", Config{SegmentBytes: 64 << 10, MaxBatchBytes: 32 << 10}, ""},
		{"unlimited", Config{SegmentAge: -1, RetentionAge: -1, RetentionBytes: -1}, ""},
		{"tiny segment", Config{SegmentBytes: 10}, "SegmentBytes"},
		{"huge segment", Config{SegmentBytes: 1 << 33}, "SegmentBytes"},
		{"negative segment age", Config{SegmentAge: -2}, "SegmentAge"},
		{"retention bytes", Config{RetentionBytes: -5}, "RetentionBytes"},
		{"retention age", Config{RetentionAge: -time.Second}, "RetentionAge"},
		{"fsync", Config{Fsync: 7}, "Fsync"},
		{"flush interval", Config{FlushInterval: time.Microsecond}, "FlushInterval"},
		{"flush bytes", Config{FlushBytes: -1}, "FlushBytes"},
		{"batch below header", Config{MaxBatchBytes: 10}, "MaxBatchBytes"},
		{"batch over segment", Config{SegmentBytes: 4096, MaxBatchBytes: 8192}, "MaxBatchBytes"},
		{"index interval", Config{IndexIntervalBytes: -1}, "IndexIntervalBytes"},
		{"index bytes", Config{MaxIndexBytes: 4}, "MaxIndexBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field+" =") {
				t.Fatalf("Validate = %v, want an ErrConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestParseFsyncPolicy(t *testing.T) {
	for _, p := range []FsyncPolicy{FsyncAlways, FsyncInterval} {
		got, err := ParseFsyncPolicy(p.String())
		if err != nil || got != p {
			t.Fatalf("ParseFsyncPolicy(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseFsyncPolicy("sometimes"); err == nil {
		t.Fatal("ParseFsyncPolicy accepted garbage")
	}
}
