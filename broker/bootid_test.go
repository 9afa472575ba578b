package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/vfs"
)

// TestBootRecord walks a data directory through starts under kernel boots:
// the same boot as the last registration is recognised, a new or unknown
// one is not, and a start that never registered leaves the record alone,
// so a later start of the same new boot still counts as after a reboot.
func TestBootRecord(t *testing.T) {
	dir, src := t.TempDir(), filepath.Join(t.TempDir(), "boot_id")
	logger := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	setBoot := func(id string) {
		if err := os.WriteFile(src, []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func(register bool) boot {
		t.Helper()
		b, err := readBoot(vfs.Default, dir, src, logger)
		if err != nil {
			t.Fatal(err)
		}
		if register {
			if err := b.record(); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	recorded := func() string {
		id, err := readBootRecord(vfs.Default, dir)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	setBoot("a")
	if b := start(true); b.same || recorded() != "a" {
		t.Fatalf("first start: same %v, recorded %q; want false, a", b.same, recorded())
	}
	if b := start(true); !b.same {
		t.Fatal("a restart under the same boot is not recognised")
	}
	setBoot("b")
	if b := start(false); b.same {
		t.Fatal("a start after a reboot counts as the same boot")
	}
	if b := start(true); b.same || recorded() != "b" {
		t.Fatalf("the start under boot b that registered: same %v, recorded %q; want false, b (the one before never registered)", b.same, recorded())
	}
	if b := start(true); !b.same {
		t.Fatal("a restart under boot b is not recognised")
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	if b := start(true); b.same || b.id != "" || recorded() != "b" {
		t.Fatalf("unknown boot: %+v, recorded %q; want not the same, nothing recorded", b, recorded())
	}
}

// A broker records the boot id once it has registered.
func TestStartRecordsBootID(t *testing.T) {
	dir, src := t.TempDir(), filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(src, []byte("3b8e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir, BootIDFile: src, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if id, err := readBootRecord(vfs.Default, dir); err != nil || id != "3b8e" {
		t.Fatalf("boot record %q, %v; want 3b8e", id, err)
	}
}
