package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorTable(t *testing.T) {
	names := map[string]ErrorCode{}
	for c, ci := range codeTable {
		if ci.name == "" || ci.message == "" {
			t.Errorf("code %d: empty name or message", c)
		}
		if ci.name != strings.ToUpper(ci.name) || strings.ContainsAny(ci.name, " -") {
			t.Errorf("code %d: name %q is not UPPER_SNAKE", c, ci.name)
		}
		if prev, dup := names[ci.name]; dup {
			t.Errorf("name %s used by codes %d and %d", ci.name, prev, c)
		}
		names[ci.name] = c
		if c == NoError && (ci.retriable || ci.maybeWritten) {
			t.Error("NONE must be neither retriable nor indeterminate")
		}
	}
}

func TestErrorCodeProperties(t *testing.T) {
	tests := []struct {
		code          ErrorCode
		name          string
		retriable     bool
		indeterminate bool
	}{
		{ErrUnknownServerError, "UNKNOWN_SERVER_ERROR", false, true},
		{ErrNotLeaderOrFollower, "NOT_LEADER_OR_FOLLOWER", true, false},
		{ErrNotEnoughReplicas, "NOT_ENOUGH_REPLICAS", true, false},
		{ErrNotEnoughReplicasAfterAppend, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true, true},
		{ErrRequestTimedOut, "REQUEST_TIMED_OUT", true, true},
		{ErrStorageError, "STORAGE_ERROR", true, true},
		{ErrMessageTooLarge, "MESSAGE_TOO_LARGE", false, false},
		{ErrUnsupportedVersion, "UNSUPPORTED_VERSION", false, false},
		{ErrFencedLeaderEpoch, "FENCED_LEADER_EPOCH", true, false},
		{ErrorCode(31000), "UNKNOWN_CODE(31000)", false, true}, // unknown: assume maybe written
	}
	for _, tt := range tests {
		if got := tt.code.String(); got != tt.name {
			t.Errorf("%d: name %q, want %q", tt.code, got, tt.name)
		}
		if got := tt.code.Retriable(); got != tt.retriable {
			t.Errorf("%v: Retriable %v, want %v", tt.code, got, tt.retriable)
		}
		if got := tt.code.Indeterminate(); got != tt.indeterminate {
			t.Errorf("%v: Indeterminate %v, want %v", tt.code, got, tt.indeterminate)
		}
		err := tt.code.ErrWithDetail("p0")
		var pe *Error
		if !errors.As(fmt.Errorf("produce: %w", err), &pe) || pe.Retriable() != tt.retriable || pe.Indeterminate() != tt.indeterminate {
			t.Errorf("%v: *Error does not carry the code's properties", tt.code)
		}
	}
	// Wire numbers that clients in the field depend on: Kafka's.
	wire := map[ErrorCode]int16{ErrUnknownServerError: -1, ErrOffsetOutOfRange: 1, ErrNotLeaderOrFollower: 6,
		ErrNotEnoughReplicasAfterAppend: 20, ErrUnsupportedVersion: 35, ErrNotController: 41, ErrFencedLeaderEpoch: 74,
		ErrPreferredLeaderNotAvailable: 80, ErrEligibleLeadersNotAvailable: 83, ErrElectionNotNeeded: 84}
	for c, n := range wire {
		if int16(c) != n {
			t.Errorf("%v is %d, want %d", c, int16(c), n)
		}
	}
}

func TestErrorIs(t *testing.T) {
	if NoError.Err() != nil || NoError.ErrWithDetail("x") != nil {
		t.Fatal("NoError.Err() must be nil")
	}
	err := fmt.Errorf("partition 3: %w", ErrNotLeaderOrFollower.ErrWithDetail("leader is 2"))
	if !errors.Is(err, ErrNotLeaderOrFollower) {
		t.Error("errors.Is against the code sentinel failed")
	}
	if errors.Is(err, ErrNotController) {
		t.Error("errors.Is matched a different code")
	}
	want := "partition 3: NOT_LEADER_OR_FOLLOWER: this server is not the leader (or a follower) of the partition: leader is 2"
	if err.Error() != want {
		t.Errorf("message %q\nwant    %q", err.Error(), want)
	}
	if !errors.Is(&MalformedError{What: "x"}, ErrMalformed) || errors.Is(&MalformedError{}, ErrFrameSize) {
		t.Error("MalformedError.Is")
	}
	if !errors.Is(&FrameSizeError{Length: -1}, ErrFrameSize) {
		t.Error("FrameSizeError.Is")
	}
}
