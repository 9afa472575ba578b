package controller

import (
	"errors"
	"testing"
)

func TestValidateCompactionConfigs(t *testing.T) {
	good := map[string]string{
		ConfigCleanupPolicy: "compact", ConfigMinCompactionLag: "0", ConfigMaxCompactionLag: "-1",
		ConfigMinCleanableRatio: "0.5", ConfigDeleteRetentionMs: "86400000",
	}
	if err := ValidateConfigs(good); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"delete", "compact", "compact,delete", "delete,compact"} {
		if err := ValidateConfig(ConfigCleanupPolicy, v); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	for _, kv := range [][2]string{
		{ConfigCleanupPolicy, "compacted"},
		{ConfigCleanupPolicy, ""},
		{ConfigMinCompactionLag, "-1"},
		{ConfigMaxCompactionLag, "-2"},
		{ConfigMinCleanableRatio, "1.01"},
		{ConfigMinCleanableRatio, "-0.1"},
		{ConfigMinCleanableRatio, "NaN"},
		{ConfigMinCleanableRatio, "half"},
		{ConfigDeleteRetentionMs, "-5"},
	} {
		if err := ValidateConfig(kv[0], kv[1]); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%s=%s: %v, want ErrInvalidConfig", kv[0], kv[1], err)
		}
	}
}
