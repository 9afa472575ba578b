package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// forwarder carries controller writes to the controller leader over the
// sluice protocol (controller.Forwarder): it dials the leader broker's
// client address and sends one ControllerForward request. The Raft server
// id is the broker id; the address comes from the registered brokers in
// the metadata, or, before this broker has any metadata (joining), from
// the brokers the cluster described at join.
//
// A connection per write: metadata writes are rare, and a fresh dial
// makes "not sent" exact — a dial failure proves the request was never
// written, which is what lets the controller retry it safely.
type forwarder struct {
	store interface{ Metadata() *controller.Metadata }
	// clientID names this broker in the leader's request logs.
	clientID string
	// login authenticates each connection as a broker (authz.go).
	login   loginFunc
	timeout time.Duration // dial and exchange bound when ctx has none
	// tls is TLS on the dials to other brokers (Config.TLS); nil: plain.
	tls *auth.Transport

	mu    sync.Mutex
	hints map[int32]string // broker id → client address, from Join
}

var _ controller.Forwarder = (*forwarder)(nil)

// hint records a broker's client address learned outside the metadata.
func (f *forwarder) hint(id int32, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hints == nil {
		f.hints = map[int32]string{}
	}
	f.hints[id] = addr
}

func (f *forwarder) addr(id int32) string {
	if f.store != nil {
		if md := f.store.Metadata(); md != nil {
			if b, ok := md.Brokers[id]; ok && b.Addr != "" {
				return b.Addr
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hints[id]
}

// Forward sends req to broker to.ID and returns the controller's answer.
func (f *forwarder) Forward(ctx context.Context, to controller.Server, req []byte) ([]byte, error) {
	addr := f.addr(to.ID)
	if addr == "" {
		return nil, fmt.Errorf("broker %d: client address unknown: %w", to.ID, controller.ErrLeaderUnreachable)
	}
	var resp protocol.ControllerForwardResponse
	err := f.call(ctx, addr, f.timeout, &protocol.ControllerForwardRequest{Payload: req}, &resp)
	switch {
	case errors.Is(err, protocol.ErrNotSent):
		return nil, fmt.Errorf("broker %d at %s: %w: %w", to.ID, addr, controller.ErrLeaderUnreachable, err)
	case err != nil:
		return nil, fmt.Errorf("broker %d at %s: %w", to.ID, addr, err)
	case resp.ErrorCode != protocol.NoError:
		// By the uniform error rule the broker did not run the request
		// (it cannot serve the API): nothing was proposed.
		return nil, fmt.Errorf("broker %d at %s: %w: %w", to.ID, addr, controller.ErrLeaderUnreachable, resp.ErrorCode.Err())
	}
	return resp.Payload, nil
}

// call sends one request to addr on a new connection, after logging in
// as a broker (nil login: none), and decodes the answer into resp, within
// ctx's deadline or else timeout. A failure before any byte of the
// request was written (a failure to connect or to log in included)
// matches protocol.ErrNotSent.
func (f *forwarder) call(ctx context.Context, addr string, timeout time.Duration, req, resp protocol.Message) error {
	return f.callVersion(ctx, addr, timeout, req, resp, 0)
}

// callVersion is call at the given API version.
func (f *forwarder) callVersion(ctx context.Context, addr string, timeout time.Duration, req, resp protocol.Message, version int16) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(timeout)
	}
	d := net.Dialer{Deadline: deadline}
	nc, err := f.tls.Dial(ctx, &d, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w: %w", protocol.ErrNotSent, err)
	}
	c := protocol.NewConn(ctx, nc, f.clientID, protocol.DefaultMaxFrameSize)
	defer c.Close()
	if f.login != nil {
		if err := f.login(c, deadline); err != nil {
			return fmt.Errorf("%w: %w", protocol.ErrNotSent, err)
		}
	}
	return c.RoundTrip(deadline, req, resp, version)
}

// peerDial opens connections to other brokers' client listeners (replica
// fetches): TLS with Config.TLS, plain TCP without.
func (b *Broker) peerDial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	t := b.cfg.TLS
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return t.Dial(ctx, &d, network, addr)
	}
}
