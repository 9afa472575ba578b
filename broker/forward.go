package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// forwarder carries controller writes to the controller leader over the
// sluice protocol (controller.Forwarder): one ControllerForward request
// each, to the leader broker's client address. The Raft server id is the
// broker id; the address comes from the registered brokers in the
// metadata, or, before this broker has any metadata (joining), from the
// brokers the cluster described at join.
//
// Forward reuses logged-in connections to the leader (leaderConns): a
// dial and a login (SCRAM with security on) per write made a burst of
// writes a burst of logins, which on a loaded machine timed out. The
// other calls (call, callVersion: joins, queue and handover requests to
// whichever broker, some of them long-polls) keep a connection each.
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

	conns leaderConns
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
	err := f.forward(ctx, to.ID, addr, &protocol.ControllerForwardRequest{Payload: req}, &resp)
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

// forward sends req to broker id at addr on one of the leader's
// connections and decodes the answer into resp, within ctx's deadline or
// else f.timeout. A failure before any byte of the request was written
// (to connect, to log in, or to get a connection in time) matches
// protocol.ErrNotSent. resp's byte slices are its own, not the
// connection's buffer.
func (f *forwarder) forward(ctx context.Context, id int32, addr string, req *protocol.ControllerForwardRequest, resp *protocol.ControllerForwardResponse) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(f.timeout)
	}
	lc, err := f.conns.get(ctx, id, addr, deadline, f.dial)
	if err != nil {
		return err
	}
	// The connection outlives ctx (it is the pool's); ctx's end still cuts
	// this round trip short, as it would a connection of its own.
	stop := context.AfterFunc(ctx, func() { lc.c.Close() })
	err = lc.c.RoundTrip(deadline, req, resp, 0)
	cut := !stop()
	if err != nil && cut {
		err = fmt.Errorf("%w: %w", err, ctx.Err())
	}
	resp.Payload = slices.Clone(resp.Payload) // it aliased the connection's frame buffer
	// A top-level error is the uniform refusal: nothing more of the
	// connection is served after it (drain.go), so it is not reused.
	f.conns.put(lc, err == nil && !cut && resp.ErrorCode == protocol.NoError)
	return err
}

// dial opens a connection to addr and logs in as a broker (nil login:
// none), within deadline. Every failure matches protocol.ErrNotSent.
func (f *forwarder) dial(ctx, connCtx context.Context, addr string, deadline time.Time) (net.Conn, *protocol.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := f.tls.Dial(ctx, &d, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w: %w", protocol.ErrNotSent, err)
	}
	c := protocol.NewConn(connCtx, nc, f.clientID, protocol.DefaultMaxFrameSize)
	if f.login != nil {
		if err := f.login(c, deadline); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("%w: %w", protocol.ErrNotSent, err)
		}
	}
	return nc, c, nil
}

// close closes the leader's connections; Forward dials afresh after it.
func (f *forwarder) close() { f.conns.close() }

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
	_, c, err := f.dial(ctx, ctx, addr, deadline)
	if err != nil {
		return err
	}
	defer c.Close()
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
