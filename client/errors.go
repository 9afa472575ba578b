package client

import (
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/protocol"
)

// ErrClosed is returned (or given to a produce callback) for work refused
// or abandoned because the Client is closing. A record failed with it was
// not written.
var ErrClosed = errors.New("client: closed")

// ErrRecordTooLarge is given to the callback of a record that cannot fit a
// batch of BatchMaxBytes. It was not written.
var ErrRecordTooLarge = errors.New("client: record larger than BatchMaxBytes")

// ErrDeliveryTimeout is given to the callbacks of a batch whose
// DeliveryTimeout passed before it could be sent (again): it was not
// written.
var ErrDeliveryTimeout = errors.New("client: delivery timeout passed before the batch was sent")

// ErrConnectionLimit matches (errors.Is) a request that failed because a
// broker refused the connection: it holds as many connections as its
// limits allow (MaxConnections, or MaxConnectionsPerIP for this host). The
// broker answers the connection's first request with
// THROTTLING_QUOTA_EXCEEDED and closes it. The client retries such a
// broker until it has refused for DialTimeout, then fails the request
// (definite: nothing was sent) rather than retrying silently until the
// delivery timeout.
var ErrConnectionLimit = errors.New("connection refused: broker at its connection limit")

// ProduceError is the error a produce callback receives. R14: every produce
// failure is either definite — the record was not written, and will not be
// by this attempt — or indeterminate: it may have been written (and may yet
// become visible), as after a timeout or a connection lost once the request
// was sent. A caller that must not lose records treats an indeterminate
// failure as "maybe present", never as "absent".
//
// errors.Is(err, protocol.ErrNotLeaderOrFollower) and the like match Code;
// errors.Is(err, ErrClosed) and the like match Err.
type ProduceError struct {
	Topic     string
	Partition int32 // -1 if the record failed before a partition was chosen
	// Code is the broker's error code, or for failures seen only by the
	// client protocol.ErrNetwork (connection), protocol.ErrRequestTimedOut
	// (no response in time) or protocol.ErrUnknownServerError (undecodable
	// response); NoError when the failure has no code (ErrClosed, a
	// cancelled context, ErrRecordTooLarge).
	Code          protocol.ErrorCode
	Indeterminate bool
	Err           error
}

func (e *ProduceError) Error() string {
	what := "not written"
	if e.Indeterminate {
		what = "maybe written"
	}
	return fmt.Sprintf("produce %s[%d] (%s): %v", e.Topic, e.Partition, what, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProduceError) Unwrap() error { return e.Err }

// Is matches a protocol.ErrorCode target against Code.
func (e *ProduceError) Is(target error) bool {
	c, ok := target.(protocol.ErrorCode)
	return ok && c != protocol.NoError && c == e.Code
}

// IsIndeterminate reports whether err says a write may have happened
// (R14): an indeterminate *ProduceError, an indeterminate protocol code, a
// connection lost after the request was sent, or ErrOutcomeUnknown. nil is not indeterminate.
func IsIndeterminate(err error) bool {
	if errors.Is(err, ErrOutcomeUnknown) {
		return true // a queue outcome (queue.go)
	}
	var pe *ProduceError
	if errors.As(err, &pe) {
		return pe.Indeterminate
	}
	var ce *connError
	if errors.As(err, &ce) {
		return ce.sent
	}
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr.Indeterminate()
	}
	return false
}

// IsRetriable reports whether err is a failure that may pass when tried
// again: a retriable protocol code (a leader moving, a broker starting) or
// a lost connection. nil is not retriable.
func IsRetriable(err error) bool {
	var ce *connError
	if errors.As(err, &ce) {
		return !ce.final
	}
	var code protocol.ErrorCode
	if errors.As(err, &code) {
		return code.Retriable()
	}
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr.Code.Retriable()
	}
	return false
}

// FetchError is a partition's fetch failure reported by Poll. The partition
// is paused after it (no more fetches) until Seek or a new Assign.
type FetchError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns the underlying error.
func (e *FetchError) Unwrap() error { return e.Err }

// TopicError is one topic's failure in an admin call that names several
// (CreateTopics, DeleteTopics). Calls return them joined (errors.Join), so
// errors.Is against a protocol code works on the whole result.
type TopicError struct {
	Topic string
	Err   error
}

func (e *TopicError) Error() string { return fmt.Sprintf("topic %q: %v", e.Topic, e.Err) }

// Unwrap returns the underlying error.
func (e *TopicError) Unwrap() error { return e.Err }

// connError is a request that failed at the connection: it could not be
// sent, the connection broke, or no response came in time. sent says
// whether any of its bytes may have reached the broker — the line between
// definite and indeterminate.
type connError struct {
	addr    string
	sent    bool
	timeout bool
	// final: not worth retrying (a broker refusing connections past the
	// client's bound), though nothing was sent.
	final bool
	err   error
}

func (e *connError) Error() string {
	switch {
	case e.timeout:
		return fmt.Sprintf("broker %s: no response within the request timeout", e.addr)
	case e.sent:
		return fmt.Sprintf("broker %s: connection failed after sending the request: %v", e.addr, e.err)
	}
	return fmt.Sprintf("broker %s: request not sent: %v", e.addr, e.err)
}

func (e *connError) Unwrap() error { return e.err }

// Is makes a connection failure match protocol.ErrNetwork, and a timeout
// protocol.ErrRequestTimedOut, the codes a broker would use for the same.
func (e *connError) Is(target error) bool {
	if e.timeout {
		return target == protocol.ErrRequestTimedOut
	}
	return target == protocol.ErrNetwork
}

// classification is what a failed request means for the records or the
// operation it carried.
type classification struct {
	code          protocol.ErrorCode
	retry         bool // sending again may succeed and cannot duplicate
	indeterminate bool
	refresh       bool // metadata is probably stale
}

// classify sorts a request error. idempotent requests (reads, metadata) may
// be retried after any connection failure; writes only when they were
// definitely not sent, since without producer idempotence (R13) a resend
// of a maybe-written batch could duplicate it.
func classify(err error, idempotent bool) classification {
	var pe *protocol.Error
	var ce *connError
	var code protocol.ErrorCode
	switch {
	case errors.As(err, &pe):
		code = pe.Code
	case errors.As(err, &code):
	case errors.As(err, &ce):
		c := classification{code: protocol.ErrNetwork, indeterminate: ce.sent, refresh: true}
		if ce.timeout {
			c.code = protocol.ErrRequestTimedOut
		}
		c.retry = (idempotent || !ce.sent) && !ce.final
		return c
	case errors.Is(err, protocol.ErrMalformed):
		return classification{code: protocol.ErrUnknownServerError, indeterminate: true, retry: idempotent}
	default:
		return classification{}
	}
	c := classification{code: code, indeterminate: code.Indeterminate()}
	c.retry = code.Retriable() && (idempotent || !c.indeterminate)
	c.refresh = staleMetadata(code)
	return c
}

// staleMetadata reports codes that mean the client routed by stale
// metadata: the fix is to refresh it before retrying.
func staleMetadata(code protocol.ErrorCode) bool {
	switch code {
	case protocol.ErrNotLeaderOrFollower, protocol.ErrUnknownTopicOrPartition,
		protocol.ErrLeaderNotAvailable, protocol.ErrFencedLeaderEpoch,
		protocol.ErrUnknownLeaderEpoch, protocol.ErrReplicaNotAvailable,
		protocol.ErrBrokerNotAvailable, protocol.ErrNotController:
		return true
	}
	return false
}
