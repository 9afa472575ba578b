package broker

import (
	"testing"
	"time"
)

func TestFetchTimeoutStaysBelowTheLagLimit(t *testing.T) {
	for _, tc := range []struct{ maxLag, want time.Duration }{
		{10 * time.Second, 5 * time.Second},
		{30 * time.Second, 5 * time.Second},
		{3 * time.Second, 1500 * time.Millisecond},
		{time.Second, time.Second},
	} {
		if got := fetchTimeout(tc.maxLag); got != tc.want {
			t.Errorf("fetchTimeout(%v) = %v, want %v", tc.maxLag, got, tc.want)
		}
	}
}
