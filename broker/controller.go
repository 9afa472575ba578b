package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// raftDir is the controller's directory under the data directory.
const raftDir = "raft"

// legacyMetadataFile is the single-node metadata store of earlier builds.
const legacyMetadataFile = "metadata.json"

// checkLegacyMetadata refuses a data directory written by the single-node
// metadata store of earlier builds: its topics are not in the Raft log, so
// starting would treat every partition directory as an orphan and delete
// it.
func checkLegacyMetadata(dataDir string) error {
	_, err := os.Stat(filepath.Join(dataDir, legacyMetadataFile))
	if err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dataDir, raftDir)); err == nil {
		return nil
	}
	return fmt.Errorf("broker: data dir %s was written by an earlier single-node build (%s, no %s/): its topics would be lost; start with an empty data dir",
		dataDir, legacyMetadataFile, raftDir)
}

// startController starts this broker's controller node: a voter when
// Voters names it or is empty (and no Join), else a non-voter that joins.
func (b *Broker) startController(ctx context.Context) error {
	voters, err := controller.ParseVoters(b.cfg.Voters)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.fwd = &forwarder{clientID: "broker-" + strconv.Itoa(int(b.cfg.BrokerID)), login: b.brokerLogin, timeout: defaultAdminTimeout, tls: b.cfg.TLS}
	if b.cfg.Join != "" {
		// Described every start: the cluster's brokers' addresses are
		// what this broker forwards to before it holds metadata.
		described, err := b.describeJoin(ctx)
		if err != nil {
			return err
		}
		if len(voters) == 0 {
			voters = described
		}
	}
	hb := b.cfg.RaftHeartbeatTimeout
	var onCommit func(time.Duration)
	if b.obs != nil {
		onCommit = b.obs.Commit
	}
	node, err := controller.StartNode(controller.NodeConfig{
		OnCommit:           onCommit,
		ID:                 b.cfg.BrokerID,
		Dir:                filepath.Join(b.cfg.DataDir, raftDir),
		RaftAddr:           b.cfg.RaftAddr,
		Listener:           b.cfg.RaftListener,
		TLS:                b.cfg.RaftTLS,
		Voters:             voters,
		Forwarder:          b.fwd,
		Logger:             b.logger.Named("controller"),
		HeartbeatTimeout:   hb,
		ElectionTimeout:    b.cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: hb / 2,
		CommitTimeout:      b.cfg.RaftCommitTimeout,
		MaxCommandVersion:  b.cfg.MaxCommandVersion,
	})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.mu.Lock()
	b.node = node
	b.mu.Unlock()
	b.store = node
	b.fwd.store = node
	return nil
}

// describeJoin asks the broker at Join for the cluster, retrying until ctx
// ends: it returns the voters and remembers every broker's client address
// so this broker can forward before it holds any metadata.
func (b *Broker) describeJoin(ctx context.Context) ([]controller.Server, error) {
	for {
		var resp protocol.DescribeClusterResponse
		err := b.fwd.call(ctx, b.cfg.Join, defaultAdminTimeout, &protocol.DescribeClusterRequest{}, &resp)
		if err == nil && resp.ErrorCode != protocol.NoError {
			err = resp.ErrorCode.Err()
		}
		var voters []controller.Server
		for _, s := range resp.Servers {
			if s.Voter {
				voters = append(voters, controller.Server{ID: s.ID, Addr: s.RaftAddr, Voter: true})
			}
		}
		if err == nil && len(voters) == 0 {
			err = errors.New("no voters reported")
		}
		if err == nil {
			for _, br := range resp.Brokers {
				b.fwd.hint(br.ID, br.Addr)
			}
			return voters, nil
		}
		b.logger.Warn("join: describe cluster", zap.String("join", b.cfg.Join), zap.Error(err))
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("broker: join %s: %w (last error: %w)", b.cfg.Join, ctx.Err(), err)
		}
	}
}

// register makes this broker a member of the Raft group (a joining
// non-voter asks the leader to add it), keeps its Raft address current in
// the group, and registers it as a broker with a new epoch (R10), with
// what it knows of its data: prevEpoch, whether its last registration was
// under the running kernel boot, and a report of each partition log
// (R11).
func (b *Broker) register(ctx context.Context, advertised string, prevEpoch int64, boot boot) error {
	if err := b.node.Join(ctx); err != nil {
		return fmt.Errorf("broker: join the controller group: %w", err)
	}
	// What the logs hold at this start decides, with prevEpoch, whether
	// this broker may lead again where it is the last in-sync replica
	// (R11).
	reg := controller.RegisterBroker{ID: b.cfg.BrokerID, Addr: advertised, Rack: b.cfg.Rack, RaftAddr: b.node.RaftAddr(),
		GossipAddr: b.GossipAddr(), DirID: b.dirID, PreviousEpoch: prevEpoch, SameBoot: boot.same,
		LogsReported: true, Logs: b.parts.replicaLogs(b.store.Metadata())}
	var epoch int64
	warned, warnedRetry := false, false
	// inUse is the controller's ErrBrokerIDInUse answer, once given: when
	// RegisterTimeout ends during a later try, the broker is refused for
	// that reason, not for the try the deadline cut short.
	var inUse error
	for {
		res, err := b.node.Propose(ctx, reg)
		if err == nil {
			epoch = res.BrokerEpoch
			break
		}
		wait := 500 * time.Millisecond
		switch {
		case errors.Is(err, controller.ErrLeadershipLost):
			// The controller changed while committing it: registering
			// again is safe (a registration only ever takes a new
			// epoch), so ask the new controller.
			b.logger.Debug("controller leadership lost during registration; registering again", zap.Error(err))
			wait = 50 * time.Millisecond
		case errors.Is(err, controller.ErrBrokerIDInUse):
			// Another data directory holds this id and is alive: a
			// second broker configured with this id, or this broker's
			// wiped directory before its old incarnation was noticed
			// gone. Wait for the controller to fence it, until
			// RegisterTimeout.
			if !warned {
				b.logger.Warn("broker id registered and alive from another data directory; waiting for it to be fenced", zap.Error(err))
				warned = true
			}
			inUse = err
		case errors.Is(err, controller.ErrInvalidBroker), errors.Is(err, controller.ErrBrokerRemoved),
			errors.Is(err, controller.ErrCommandVersion), errors.Is(err, controller.ErrCorrupt),
			errors.Is(err, controller.ErrClosed):
			// A refusal: registering again gets the same answer.
			return fmt.Errorf("broker: register with the controller: %w", err)
		default:
			// Raft's or the transport's (an enqueue timeout on a busy
			// leader, a forward that failed): nothing was registered, or
			// a registration whose epoch nobody will use. Registering
			// again is safe, until RegisterTimeout.
			if !warnedRetry {
				b.logger.Warn("registration failed; registering again", zap.Error(err))
				warnedRetry = true
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if inUse != nil && !errors.Is(err, controller.ErrBrokerIDInUse) {
				return fmt.Errorf("broker: register with the controller: %w (the last try: %v)", inUse, err)
			}
			return fmt.Errorf("broker: register with the controller: %w", err)
		}
	}
	b.epoch.Store(epoch)
	b.advertiseEpoch(epoch)
	b.parts.clearRecoveryTruncated(reg.Logs)
	if err := boot.record(); err != nil {
		// The next start then counts as after a reboot: safe.
		b.logger.Warn("record the kernel boot id", zap.Error(err))
	}
	if err := b.updateRaftAddr(ctx); err != nil {
		return err
	}
	return nil
}

// updateRaftAddr corrects this broker's Raft address in the group when it
// changed since the group last saw it (a broker on port 0 restarted).
func (b *Broker) updateRaftAddr(ctx context.Context) error {
	servers, err := b.node.Servers()
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	self := b.node.RaftAddr()
	for _, s := range servers {
		if s.ID != b.cfg.BrokerID || s.Addr == self {
			continue
		}
		b.logger.Info("controller: Raft address changed", zap.String("was", s.Addr), zap.String("raft_addr", self))
		if s.Voter {
			err = b.node.AddVoter(ctx, s.ID, self)
		} else {
			err = b.node.AddNonvoter(ctx, s.ID, self)
		}
		if err != nil {
			return fmt.Errorf("broker: update Raft address: %w", err)
		}
	}
	return nil
}

// advertiseEpoch puts the broker epoch this process runs under in its
// serf tags (controller.Membership.SetEpoch): the controller leader then
// registers it again on its behalf after a gossip flap, and leaves a
// restarted process, whose serf listens before it registers, to register
// itself with what it found in its logs (R11).
func (b *Broker) advertiseEpoch(epoch int64) {
	b.mu.Lock()
	m := b.members
	b.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.SetEpoch(epoch); err != nil {
		b.logger.Warn("advertise the broker epoch in gossip", zap.Int64("broker_epoch", epoch), zap.Error(err))
	}
}
