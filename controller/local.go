package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors callers branch on.
var (
	ErrTopicExists  = errors.New("topic already exists")
	ErrUnknownTopic = errors.New("unknown topic")
	ErrClosed       = errors.New("metadata store closed")
)

// TopicSpec asks for a new topic.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// Validate checks the spec's name and configs (placement checks the counts).
func (s TopicSpec) Validate() error {
	if err := ValidateTopicName(s.Name); err != nil {
		return err
	}
	return ValidateConfigs(s.Configs)
}

// Local is the single-node metadata store: this broker is the whole cluster
// and its own controller. Changes are persisted to one file (written to a
// temp file, fsynced, renamed, directory fsynced) before they are published,
// so a change that returned nil survives a crash.
type Local struct {
	path string

	mu      sync.Mutex // serializes writers
	cur     atomic.Pointer[Metadata]
	changed chan struct{} // closed and replaced on every change; guarded by mu
	closed  bool
}

const metadataFile = "metadata.json"

// OpenLocal opens or creates the store in dir, registering self as the one
// broker (alive, with a new broker epoch) and the controller.
func OpenLocal(dir string, self Broker) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	l := &Local{path: filepath.Join(dir, metadataFile), changed: make(chan struct{})}
	m, err := readMetadata(l.path)
	if errors.Is(err, os.ErrNotExist) {
		m, err = NewMetadata(), nil
	}
	if err != nil {
		return nil, err
	}
	// This node is the whole cluster: forget other brokers, keep only the
	// epoch history of self.
	brokers := map[int32]*Broker{}
	if old, ok := m.Brokers[self.ID]; ok {
		brokers[self.ID] = old
	}
	m.Brokers = brokers
	m, _, err = Apply(m, RegisterBroker{ID: self.ID, Addr: self.Addr, Rack: self.Rack, RaftAddr: self.RaftAddr})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	m.ControllerID = self.ID
	if err := writeMetadata(l.path, m); err != nil {
		return nil, err
	}
	l.cur.Store(m)
	return l, nil
}

// Metadata returns the current snapshot. Do not modify it.
func (l *Local) Metadata() *Metadata { return l.cur.Load() }

// Changed returns a channel closed at the next change.
func (l *Local) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// update builds a command from the current metadata, applies it with the
// same Apply the Raft FSM uses, persists and publishes the result.
// It returns the metadata after the command.
func (l *Local) update(ctx context.Context, plan func(m *Metadata) (Command, error)) (*Metadata, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	cur := l.cur.Load()
	c, err := plan(cur)
	if err != nil {
		return nil, err
	}
	m, _, err := Apply(cur, c)
	if err != nil || m == cur {
		return m, err
	}
	if err := writeMetadata(l.path, m); err != nil {
		return nil, err
	}
	l.cur.Store(m)
	wake(&l.changed)
	return m, nil
}

// CreateTopic validates spec, places its replicas and adds it.
func (l *Local) CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	m, err := l.update(ctx, func(m *Metadata) (Command, error) { return PlanCreateTopic(m, spec) })
	if err != nil {
		return nil, err
	}
	return m.Topics[spec.Name].clone(), nil
}

// DeleteTopic removes a topic.
func (l *Local) DeleteTopic(ctx context.Context, name string) error {
	_, err := l.update(ctx, func(*Metadata) (Command, error) { return DeleteTopic{Name: name}, nil })
	return err
}

// AlterConfigs sets and removes (back to the default) topic config keys.
func (l *Local) AlterConfigs(ctx context.Context, name string, set map[string]string, remove []string) error {
	if err := validateAlter(set, remove); err != nil {
		return err
	}
	_, err := l.update(ctx, func(*Metadata) (Command, error) {
		return AlterConfigs{Name: name, Set: set, Remove: remove}, nil
	})
	return err
}

// Close stops further changes. Idempotent.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

// The file: one header line "sluice-metadata 1 <crc32c hex>\n", then JSON.
const metadataMagic = "sluice-metadata 1 "

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func readMetadata(path string) (*Metadata, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	head, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || !strings.HasPrefix(string(head), metadataMagic) {
		return nil, fmt.Errorf("metadata %s: bad header", path)
	}
	want, err := strconv.ParseUint(strings.TrimPrefix(string(head), metadataMagic), 16, 32)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: bad header: %w", path, err)
	}
	if got := crc32.Checksum(body, crcTable); got != uint32(want) {
		return nil, fmt.Errorf("metadata %s: crc %08x, header says %08x", path, got, want)
	}
	m := NewMetadata()
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", path, err)
	}
	return m, nil
}

func writeMetadata(path string, m *Metadata) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("metadata: encode: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s%08x\n", metadataMagic, crc32.Checksum(body, crcTable))
	buf.Write(body)
	return writeFileDurable(path, buf.Bytes())
}

// writeFileDurable replaces path atomically and durably (R4): temp file,
// fsync, rename, directory fsync.
func writeFileDurable(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("metadata: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("metadata: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("metadata: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("metadata: sync dir: %w", err)
	}
	return nil
}
