package client

import (
	"errors"
	"testing"

	"github.com/sluicemq/sluice/protocol"
)

func TestIsRetriable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&TopicError{Topic: "t", Err: protocol.ErrUnknownTopicOrPartition.Err()}, true},
		{&TopicError{Topic: "t", Err: protocol.ErrTopicAlreadyExists.Err()}, false},
		{protocol.ErrLeaderNotAvailable, true},
		{&connError{addr: "x", err: errors.New("refused")}, true},
		{errors.New("other"), false},
	} {
		if got := IsRetriable(tc.err); got != tc.want {
			t.Errorf("IsRetriable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
