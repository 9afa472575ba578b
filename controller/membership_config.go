package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// MembershipConfig configures a Membership. Zero durations take the
// defaults named on each field.
type MembershipConfig struct {
	// ID is this broker's id; it is also its serf node name, so two
	// processes with one id conflict in serf as well.
	ID int32
	// BindAddr is the gossip address, host:port (UDP and TCP). Port 0
	// picks a free port (Addr reports it).
	BindAddr string
	// AdvertiseAddr is the gossip address others use; default BindAddr's.
	AdvertiseAddr string
	// Addr is the broker's client address, carried in its tags.
	Addr string
	// RaftAddr is the broker's Raft address, carried in its tags; the
	// leader adds a broker that is not yet in the Raft group as a
	// non-voter at this address. Empty: not added.
	RaftAddr string
	// Rack is the broker's rack, carried in its tags; may be empty.
	Rack string
	// KafkaAddr is the address of the broker's Kafka listener, carried in
	// its tags so the other brokers can name it in their Kafka Metadata
	// answers; empty when it has none.
	KafkaAddr string
	// Join lists seeds, host:port of other brokers' gossip addresses;
	// they are retried until one answers. Empty: wait to be joined.
	Join []string
	// Node is this broker's controller node. The Membership acts on serf's
	// events while the node leads.
	Node *Node
	// Logger receives the membership's, serf's and memberlist's logs;
	// default a no-op logger. Like NodeConfig.Logger it names this broker;
	// the broker a line is about is its `peer`.
	Logger *zap.Logger

	// ReconcileInterval is how often a leader reconciles the whole member
	// list, which retries what failed; default 5s.
	ReconcileInterval time.Duration
	// WriteTimeout bounds each metadata write; default 5s.
	WriteTimeout time.Duration
	// RetryJoinInterval is the wait between attempts to join the seeds;
	// default 1s.
	RetryJoinInterval time.Duration
	// Gossip holds memberlist's timings; zero fields keep memberlist's LAN
	// defaults (failure detected after roughly 5 s to 30 s).
	Gossip GossipTimings
	// Key, when set, encrypts and authenticates every gossip message, UDP
	// and TCP, with AES-GCM (memberlist's keyring, SecretKey): 16, 24 or
	// 32 bytes, the same on every broker. A member without it cannot join
	// or be heard. Default none: gossip in the clear.
	Key []byte
	// AcceptedKeys are gossip keys accepted besides Key, which encrypts
	// what this member sends: set during a rolling rotation of the key
	// (docs/operations.md), else empty.
	AcceptedKeys [][]byte
}

// GossipTimings are memberlist's failure-detection and gossip timings.
// Zero fields keep memberlist.DefaultLANConfig's value.
type GossipTimings struct {
	ProbeInterval    time.Duration // LAN default 1s
	ProbeTimeout     time.Duration // LAN default 500ms
	GossipInterval   time.Duration // LAN default 200ms
	PushPullInterval time.Duration // LAN default 30s
	TCPTimeout       time.Duration // LAN default 10s
	// SuspicionMult scales how long a suspected member has to refute
	// before it is declared failed; LAN default 4.
	SuspicionMult int
	// DeadNodeReclaimTime is how long a failed member's name stays bound
	// to its old gossip address; after it, a broker restarted on another
	// gossip address takes its name back. Zero: never (it must restart on
	// the same address, or leave first).
	DeadNodeReclaimTime time.Duration
	// LeavePropagateDelay is how long a graceful Leave waits for the
	// news to spread before serf stops; serf's default 1s.
	LeavePropagateDelay time.Duration
}

func (c *MembershipConfig) applyDefaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.ReconcileInterval, 5 * time.Second},
		{&c.WriteTimeout, 5 * time.Second},
		{&c.RetryJoinInterval, time.Second},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate names the first bad field.
func (c *MembershipConfig) Validate() error {
	switch {
	case c.ID < 0:
		return fmt.Errorf("membership: ID %d: want >= 0", c.ID)
	case c.Node == nil:
		return errors.New("membership: Node: nil")
	case c.Addr == "":
		return errors.New("membership: Addr: empty")
	case c.ReconcileInterval < 0 || c.WriteTimeout < 0 || c.RetryJoinInterval < 0:
		return errors.New("membership: negative interval")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("membership: BindAddr: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("membership: AdvertiseAddr: %w", err)
		}
	}
	for _, s := range c.Join {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("membership: Join %q: %w", s, err)
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, int(port), nil
}

// bindIP is host as memberlist binds it: an IP address. A host name (a
// compose service, a pod's DNS name) is resolved to its first address,
// which is also what the broker then advertises; memberlist would bind
// every address and advertise none for a name.
func bindIP(host string) (string, error) {
	if host == "" || net.ParseIP(host) != nil {
		return host, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve %s: no address", host)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil // memberlist prefers one family; IPv4 where there is one
		}
	}
	return ips[0].String(), nil
}

// serfConfig builds serf's configuration: node name and tags from the
// broker, memberlist's addresses and timings, logs to zap.
func (c *MembershipConfig) serfConfig() (*serf.Config, error) {
	host, port, err := splitHostPort(c.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: BindAddr: %w", err)
	}
	if host, err = bindIP(host); err != nil {
		return nil, fmt.Errorf("membership: BindAddr: %w", err)
	}
	mc := c.memberlistConfig()
	mc.BindAddr, mc.BindPort = host, port
	if c.AdvertiseAddr != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, _ = splitHostPort(c.AdvertiseAddr)
	}
	logger := newZapHclog(c.Logger.Named("serf"), "serf").StandardLogger(nil)
	mc.Logger = logger
	sc := serf.DefaultConfig()
	sc.NodeName = strconv.Itoa(int(c.ID))
	sc.Tags = map[string]string{tagID: sc.NodeName, tagAddr: c.Addr}
	if c.RaftAddr != "" {
		sc.Tags[tagRaftAddr] = c.RaftAddr
	}
	if c.Rack != "" {
		sc.Tags[tagRack] = c.Rack
	}
	if c.KafkaAddr != "" {
		sc.Tags[tagKafkaAddr] = c.KafkaAddr
	}
	if c.Node != nil {
		sc.Tags[tagCommandVersions] = c.Node.SupportedCommandVersions().String()
	}
	if len(c.Key) > 0 {
		mc.SecretKey = c.Key
		if len(c.AcceptedKeys) > 0 {
			kr, err := memberlist.NewKeyring(c.AcceptedKeys, c.Key)
			if err != nil {
				return nil, fmt.Errorf("controller: gossip keys: %w", err)
			}
			mc.Keyring = kr
		}
	}
	sc.MemberlistConfig = mc
	if c.Gossip.LeavePropagateDelay > 0 {
		sc.LeavePropagateDelay = c.Gossip.LeavePropagateDelay
	}
	sc.Logger = logger
	sc.LogOutput = nil
	return sc, nil
}

// memberlistConfig is memberlist's LAN configuration with the non-zero
// timings of c.Gossip.
func (c *MembershipConfig) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	t := c.Gossip
	for _, d := range []struct {
		v   *time.Duration
		set time.Duration
	}{
		{&mc.ProbeInterval, t.ProbeInterval},
		{&mc.ProbeTimeout, t.ProbeTimeout},
		{&mc.GossipInterval, t.GossipInterval},
		{&mc.PushPullInterval, t.PushPullInterval},
		{&mc.TCPTimeout, t.TCPTimeout},
	} {
		if d.set > 0 {
			*d.v = d.set
		}
	}
	if t.SuspicionMult > 0 {
		mc.SuspicionMult = t.SuspicionMult
	}
	mc.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	return mc
}
