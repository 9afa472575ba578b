package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"a.b_c-D9", true},
		{strings.Repeat("x", MaxTopicNameLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"ü", false},
		{strings.Repeat("x", MaxTopicNameLen+1), false},
	} {
		err := ValidateTopicName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidateTopicName(%q) = %v, not ErrInvalidTopic", tc.name, err)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{ConfigRetentionMs, "-1", true},
		{ConfigRetentionMs, "-2", false},
		{ConfigRetentionMs, "1h", false},
		{ConfigSegmentBytes, "4096", true},
		{ConfigSegmentBytes, "100", false},
		{ConfigFsync, "always", true},
		{ConfigFsync, "sometimes", false},
		{ConfigUncleanElection, "true", true},
		{ConfigUncleanElection, "yes", false},
		{"no.such.key", "1", false},
	} {
		err := ValidateConfig(tc.key, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateConfig(%s=%s) = %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ValidateConfig(%s=%s) = %v, not ErrInvalidConfig", tc.key, tc.value, err)
		}
	}
	for _, d := range TopicConfigDefs() {
		if err := ValidateConfig(d.Key, d.Default); err != nil {
			t.Errorf("default of %s is invalid: %v", d.Key, err)
		}
	}
}

func TestPlace(t *testing.T) {
	brokers := []int32{1, 2, 3}
	placed, err := Place(brokers, 6, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	for _, r := range placed {
		if len(r) != 3 {
			t.Fatalf("replicas %v, want 3", r)
		}
		seen := map[int32]bool{}
		for _, b := range r {
			if seen[b] {
				t.Fatalf("broker %d twice in %v", b, r)
			}
			seen[b] = true
			replicas[b]++
		}
		leaders[r[0]]++
	}
	for _, b := range brokers {
		if leaders[b] != 2 || replicas[b] != 6 {
			t.Errorf("broker %d: %d leaders, %d replicas; want 2 and 6", b, leaders[b], replicas[b])
		}
	}
	for _, tc := range []struct {
		n   int32
		rf  int16
		err error
	}{
		{0, 1, ErrInvalidPartitions},
		{-1, 1, ErrInvalidPartitions},
		{1, 0, ErrInvalidReplicationFactor},
		{1, 4, ErrInvalidReplicationFactor},
	} {
		if _, err := Place(brokers, tc.n, tc.rf, 0); !errors.Is(err, tc.err) {
			t.Errorf("Place(n=%d, rf=%d) = %v, want %v", tc.n, tc.rf, err, tc.err)
		}
	}
}

func TestLocalPersistsAndBumpsEpoch(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	self := Broker{ID: 1, Addr: "127.0.0.1:7092"}
	l, err := OpenLocal(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Metadata().Brokers[1].Epoch; got != 1 {
		t.Fatalf("first epoch %d, want 1", got)
	}
	changed := l.Changed()
	if _, err := l.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{ConfigFsync: FsyncAlways}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by CreateTopic")
	}
	if err := l.AlterConfigs(ctx, "t", map[string]string{ConfigRetentionMs: "1000"}, []string{ConfigFsync}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l2, err := OpenLocal(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	m := l2.Metadata()
	if got := m.Brokers[1].Epoch; got != 2 {
		t.Errorf("epoch after restart %d, want 2", got)
	}
	top := m.Topics["t"]
	if top == nil || len(top.Partitions) != 3 {
		t.Fatalf("topic after restart: %+v", top)
	}
	if got := top.Config(ConfigRetentionMs); got != "1000" {
		t.Errorf("retention.ms %q, want 1000", got)
	}
	if got := top.Config(ConfigFsync); got != FsyncInterval {
		t.Errorf("fsync %q, want the default %q after removal", got, FsyncInterval)
	}
	if err := l2.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := l2.DeleteTopic(ctx, "t"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("second delete: %v, want ErrUnknownTopic", err)
	}
}

func TestLocalConcurrentCreateOneWins(t *testing.T) {
	l, err := OpenLocal(t.TempDir(), Broker{ID: 1, Addr: "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.CreateTopic(context.Background(), TopicSpec{Name: "same", Partitions: 1, ReplicationFactor: 1})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrTopicExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d creates succeeded, want 1", ok)
	}
}

func TestLocalRejectsBadInput(t *testing.T) {
	l, err := OpenLocal(t.TempDir(), Broker{ID: 1, Addr: "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		spec TopicSpec
		want error
	}{
		{TopicSpec{Name: "bad/name", Partitions: 1, ReplicationFactor: 1}, ErrInvalidTopic},
		{TopicSpec{Name: "t", Partitions: 0, ReplicationFactor: 1}, ErrInvalidPartitions},
		{TopicSpec{Name: "t", Partitions: -3, ReplicationFactor: 1}, ErrInvalidPartitions},
		{TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 2}, ErrInvalidReplicationFactor},
		{TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"nope": "1"}}, ErrInvalidConfig},
	} {
		if _, err := l.CreateTopic(ctx, tc.spec); !errors.Is(err, tc.want) {
			t.Errorf("CreateTopic(%+v) = %v, want %v", tc.spec, err, tc.want)
		}
	}
	if len(l.Metadata().Topics) != 0 {
		t.Errorf("bad creates left topics: %v", l.Metadata().TopicNames())
	}
}

func TestLocalDetectsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLocal(dir, Broker{ID: 1, Addr: "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateTopic(context.Background(), TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path := filepath.Join(dir, metadataFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocal(dir, Broker{ID: 1, Addr: "x:1"}); err == nil || !strings.Contains(err.Error(), "crc") {
		t.Fatalf("OpenLocal on a flipped byte: %v, want a crc error", err)
	}
}
