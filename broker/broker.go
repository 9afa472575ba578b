// Package broker is sluice's broker: the broker core, the sluice-protocol
// front end over it, and the partition manager that keeps one log
// (package log) open per partition replica this broker holds.
//
// The core (core.go, core_admin.go, core_producer.go, partition.go) is the
// broker's protocol-free API: Append and LeaderAppend.Wait,
// StartFetch/WaitFetch, ListOffset, EpochEndOffset, Replicas, Metadata,
// topic admin and InitProducerID, with ErrorCode (errors.go) the one
// mapping from its errors to protocol codes.
// Every front end — the sluice protocol here (handlers*.go), the Kafka
// protocol and HTTP in packages of their own — only translates between its
// wire format and these calls; the order of the steps of an append or a
// read lives in the core, once.
//
// Request flow: each connection has a reader, a handler and a writer
// goroutine (conn.go). Requests on a connection are handled one at a time
// in arrival order and answered in that order; a long-poll Fetch completes
// its response later from its own goroutine without holding up the
// handler. Memory is bounded before it is used: a frame's length prefix is
// checked against MaxFrameBytes, then its bytes are taken from the
// connection's bound and the broker-wide MemoryBudget (waiting if need
// be), and only then read, into a buffer that grows as bytes arrive.
//
// Metadata comes from the controller: every broker runs a controller.Node,
// a voter or non-voter of the Raft group that replicates the cluster
// metadata (one voter alone when no voters are configured), and serves
// Metadata and the config APIs from its local copy. Metadata writes go to
// the Raft leader; a broker that does not lead forwards them to the
// leader broker over the protocol (ControllerForward, forward.go). The
// partition manager (partitions.go) follows the metadata: it opens the log
// of each partition this broker holds a replica of in
// <data-dir>/<topic>-<n>, makes it lead or follow (replication.go: a
// replica.Leader, or a replica.Fetcher per leader broker), closes those it
// no longer holds, deletes the data of deleted topics and applies altered
// configs. Clients produce to and consume from leaders only.
//
// Durability and visibility (R2, R3, R12): a produce is acknowledged once
// appended (acks=1; for fsync=always topics, synced) or once the high
// watermark covers it (acks=all); Fetch and ListOffsets never expose
// records above the high watermark, the minimum position over the ISR.
// docs/replication.md has the rules. Lifecycle details (controlled
// shutdown, the clean-shutdown record, serf) are in lifecycle.go; the
// kernel boot record, which tells a process crash from a machine crash
// (R11), in bootid.go.
//
// Lifecycle: Start listens and starts every goroutine; cancelling its
// context or calling Close stops accepting, lets each connection finish
// the requests it has read, writes their responses, closes the logs
// cleanly and returns. Every goroutine is owned and waited for.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/replica"
)

// Broker is a single sluice broker. Create it with New, run it with Start
// or Serve, stop it with Close or by cancelling the context.
type Broker struct {
	cfg        Config
	queueTurn  atomic.Uint64    // rotates the first partition of queue receives (queue.go)
	queueCfgs  queueConfigCache // the queue groups' settings (queue_config.go)
	logger     *zap.Logger
	obs        Observer // cfg.Observer; nil: no timed events (observe.go)
	budget     *budget
	fetchWrite fetchWriteMode
	// testHook, when set (tests only), runs before each request's handler.
	testHook func(protocol.APIKey)
	// deadLetterHook, when set (tests only), runs before each write of
	// dead-letter copies (produceDeadLetters).
	deadLetterHook atomic.Pointer[func(context.Context)]
	// panics counts handler panics recovered (the fuzz target asserts none).
	panics atomic.Int64
	// cleaner counts the log cleaner's work (cleaner_stats.go).
	cleaner cleanerCounters

	// authz is authentication and authorization (authz.go).
	authz *authzCore

	// producerIDs hands out producer ids from this broker's block
	// (InitProducerID).
	producerIDs *producerIDs
	// groups holds the group coordinators of the offsets partitions this
	// broker leads (group.go); groupLoop owns them.
	groups *coordinators

	// Set by Start.
	node       *controller.Node       // the controller; Start opens it, Close closes it
	members    *controller.Membership // serf; guarded by mu
	abandon    bool                   // Abandon: stop like a crash; guarded by mu
	store      MetadataStore          // the node, as the handlers use it
	fwd        *forwarder
	epoch      atomic.Int64  // broker epoch from the last registration
	ready      atomic.Bool   // registered and partitions reconciled: serve clients
	draining   atomic.Bool   // shutting down: produce refused, leaderships moving away
	refusedAt  atomic.Int64  // unix nanoseconds of the last produce refused while draining
	refusing   atomic.Bool   // Close drains the connections: every request refused (drain.go)
	reregister chan struct{} // capacity 1: the registration says offline while running
	catchUps   catchUpFlight // the catch-up read barrier for what is unknown here (core.go)
	dirID      string        // this data directory's id (dataDirID)
	appending  atomic.Int64  // produce partitions between the draining check and their append
	isrWrites  atomic.Int64  // controller writes of ISR changes (maintainISRs), for tests
	parts      *partitions
	ln         net.Listener
	addr       string // guarded by mu
	dirLock    *os.File
	connCtx    context.Context // cancelled at shutdown: connections stop reading
	connCancel context.CancelFunc
	bgCancel   context.CancelFunc
	stopAfter  func() bool // unregisters the Start context's hook; guarded by mu
	bg         sync.WaitGroup
	connWG     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closing bool
	// closed is closed when Close begins (Closing).
	closed chan struct{}
	conns  map[*conn]struct{}
	// connsPerIP counts conns by remote IP (connlimit.go); made by the
	// first admit.
	connsPerIP map[string]int
	refused    refusals

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg and returns a broker that Start will run.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	b := &Broker{
		cfg:        cfg,
		obs:        cfg.Observer,
		logger:     cfg.Logger.With(zap.Int32("broker", cfg.BrokerID)),
		budget:     newBudget(cfg.MemoryBudget),
		fetchWrite: defaultFetchWrite,
		reregister: make(chan struct{}, 1),
		conns:      map[*conn]struct{}{},
		groups:     newCoordinators(),
		closed:     make(chan struct{}),
	}
	b.authz = newAuthzCore(&b.cfg.Security)
	// Clients are served once the node is started and this broker
	// registered: the node and the epoch are there by the first call.
	b.producerIDs = newProducerIDs(cfg.ProducerIDBlockSize, func(ctx context.Context, count int32) (controller.ProducerIDBlock, error) {
		blk, err := b.node.AllocateProducerIDs(ctx, cfg.BrokerID, b.epoch.Load(), count)
		if err != nil {
			b.logger.Debug("producer id block not allocated", zap.Int32("count", count), zap.Error(err))
			return blk, err
		}
		b.logger.Debug("producer id block allocated", zap.Int64("first", blk.First), zap.Int32("count", blk.Count))
		return blk, nil
	})
	return b, nil
}

// ErrStarted is returned by Start on a broker already started (or closed).
var ErrStarted = errors.New("broker already started")

// Start opens the data directory, the metadata store and the partition
// logs, listens, and serves in the background until ctx is cancelled or
// Close is called.
func (b *Broker) Start(ctx context.Context) (err error) {
	b.mu.Lock()
	if b.started || b.closing {
		b.mu.Unlock()
		return ErrStarted
	}
	b.started = true
	b.mu.Unlock()
	defer func() {
		if err != nil {
			b.Close()
		}
	}()

	if err := os.MkdirAll(b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("broker: data dir: %w", err)
	}
	if b.dirLock, err = lockDir(b.cfg.DataDir); err != nil {
		return err
	}
	if err := checkLegacyMetadata(b.cfg.DataDir); err != nil {
		return err
	}
	prevEpoch, err := previousEpoch(b.cfg.FS, b.cfg.DataDir)
	if err != nil {
		return err
	}
	boot, err := readBoot(b.cfg.FS, b.cfg.DataDir, b.cfg.BootIDFile, b.logger)
	if err != nil {
		return err
	}
	if b.dirID, err = dataDirID(b.cfg.FS, b.cfg.DataDir); err != nil {
		return err
	}
	if b.ln, err = net.Listen("tcp", b.cfg.ListenAddr); err != nil {
		return fmt.Errorf("broker: listen: %w", err)
	}
	// With TLS, the broker accepts only connections that completed their
	// handshake (within its timeout, on the listener's goroutines).
	b.ln = b.cfg.TLS.Listen(b.ln, "client", b.logger)
	b.mu.Lock()
	b.addr = b.ln.Addr().String()
	b.mu.Unlock()
	advertised := b.cfg.AdvertisedAddr
	if advertised == "" {
		advertised = b.addr
	}
	regCtx, cancel := context.WithTimeout(ctx, b.cfg.RegisterTimeout)
	defer cancel()
	if err := b.startController(regCtx); err != nil {
		return err
	}
	b.parts = newPartitions(b.cfg.FS, b.cfg.DataDir, b.cfg.BrokerID, b.cfg.TopicDefaults, b.logger, &replication{
		addr:        b.brokerAddr,
		brokerEpoch: b.epoch.Load,
		maxLag:      b.cfg.ReplicaMaxLag,
		fetchWait:   b.cfg.ReplicaFetchWait,
		clientID:    "replica-" + strconv.Itoa(int(b.cfg.BrokerID)),
		dial:        b.peerDial(),
		login:       b.brokerLogin,
	})
	b.parts.producerLimit = replica.NewProducerLimit(b.cfg.ProducerIDMax, nil, b.logger)
	b.parts.throttle = newMoveThrottle(controller.NewMetadata().ReassignmentThrottle(), nil)
	if b.obs != nil {
		b.parts.onSync = b.obs.Sync
	}

	// Serve before registering: a leader broker must answer the forwarded
	// registrations of the others while it registers itself.
	b.connCtx, b.connCancel = context.WithCancel(context.Background())
	b.bg.Add(1)
	go func() { defer b.bg.Done(); b.acceptLoop() }()
	// Serf starts before the registration, which carries its address, but
	// joins the others only after it: the controller learns of this
	// incarnation from the broker itself, with what it knows of its data.
	if err := b.startMembership(advertised); err != nil {
		return err
	}
	if err := b.register(regCtx, advertised, prevEpoch, boot); err != nil {
		return err
	}
	b.joinGossip()

	// The node's FSM now holds every change up to our registration, so the
	// metadata is current enough to tell orphaned data from live data.
	md := b.store.Metadata()
	if err := b.parts.removeOrphans(md); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.parts.reconcile(md)
	checkLimits(b.logger, processLimits())
	b.ready.Store(true)
	bgCtx, bgCancel := context.WithCancel(context.Background())
	b.bgCancel = bgCancel
	// The broker's background loops, each counted on its own so that
	// adding one cannot get the count wrong.
	for _, loop := range []func(context.Context){b.watchMetadata, b.groupLoop, b.reregisterLoop, b.retentionLoop,
		b.cleanerLoop, b.isrLoop, b.rebalanceLoop, b.autoBalanceLoop} {
		b.bg.Add(1)
		go func() { defer b.bg.Done(); loop(bgCtx) }()
	}
	b.mu.Lock()
	b.stopAfter = context.AfterFunc(ctx, func() { b.Close() })
	b.mu.Unlock()
	b.logger.Info("broker listening", zap.String("addr", b.addr), zap.String("advertised", advertised),
		zap.String("raft_addr", b.node.RaftAddr()), zap.Int64("broker_epoch", b.epoch.Load()),
		zap.String("data_dir", b.cfg.DataDir), zap.Int("topics", len(md.Topics)))
	return nil
}

// Serve is Start, then waits for ctx to be cancelled and shuts down. It
// returns Start's error or Close's.
func (b *Broker) Serve(ctx context.Context) error {
	if err := b.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Epoch is this broker's epoch from its registration at Start (R10): a
// restarted broker gets a new one.
func (b *Broker) Epoch() int64 { return b.epoch.Load() }

// RaftAddr is the address of this broker's Raft transport, or "" before
// Start.
func (b *Broker) RaftAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.node == nil {
		return ""
	}
	return b.node.RaftAddr()
}

// Addr is the address the broker listens on (useful with port 0), or ""
// until Start has registered the broker and it serves clients.
func (b *Broker) Addr() string {
	if !b.ready.Load() {
		return ""
	}
	return b.listenAddr()
}

// listenAddr is the bound address as soon as the listener is open.
func (b *Broker) listenAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Close shuts the broker down: it stops accepting connections, drains
// them (drain.go: every request from then on is refused, definitely, until
// the client goes quiet, and each connection is closed without a reset),
// lets every connection finish the requests it has read and write their
// responses,
// stops the background goroutines, and closes every log cleanly (sync,
// recovery point, clean-shutdown marker). It is idempotent and returns
// once everything the broker started has stopped.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		close(b.closed)
		stopAfter, members, abandon := b.stopAfter, b.members, b.abandon
		b.mu.Unlock()
		if stopAfter != nil {
			stopAfter()
		}
		if b.ready.Load() && !abandon {
			b.controlledShutdown()
		}
		if members != nil {
			if !abandon && hasPeers(members) {
				if err := members.Leave(); err != nil {
					b.logger.Debug("leave gossip", zap.Error(err))
				}
			}
			members.Close()
		}
		if b.ln != nil {
			b.ln.Close()
		}
		if b.ready.Load() && !abandon {
			b.drainConns()
		}
		if b.connCancel != nil {
			b.connCancel()
		}
		b.connWG.Wait()
		if b.bgCancel != nil {
			b.bgCancel()
		}
		b.bg.Wait()
		var errs []error
		if b.parts != nil {
			b.parts.noSnapshots.Store(abandon)
			errs = append(errs, b.parts.closeAll())
		}
		if b.node != nil {
			errs = append(errs, b.node.Close())
		}
		if b.fwd != nil {
			b.fwd.close() // the connections to the controller leader
		}
		b.closeErr = errors.Join(errs...)
		if b.closeErr == nil && !abandon && b.ready.Load() {
			// Every log closed cleanly: the next start may lead again
			// what only this broker held.
			if err := writeCleanShutdown(b.cfg.FS, b.cfg.DataDir, b.epoch.Load()); err != nil {
				b.closeErr = err
			}
		}
		if b.dirLock != nil {
			b.closeErr = errors.Join(b.closeErr, b.dirLock.Close())
		}
		if b.ln != nil {
			b.logger.Info("broker stopped", zap.String("addr", b.addr), zap.NamedError("close_error", b.closeErr))
		}
	})
	return b.closeErr
}

// hasPeers reports whether serf knows another live broker: only then is a
// graceful leave (which waits for the news to spread) worth its wait.
func hasPeers(m *controller.Membership) bool {
	alive := 0
	for _, mb := range m.Members() {
		if mb.Status == "alive" {
			alive++
		}
	}
	return alive > 1 // this broker is one of them
}

// lockDir takes an exclusive lock on the data directory so two brokers
// never share it. The lock lives as long as the returned file is open.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("broker: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("broker: data dir %s is in use by another broker: %w", dir, err)
	}
	return f, nil
}

// acceptLoop accepts connections until the listener is closed.
func (b *Broker) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			b.logger.Warn("accept", zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
			case <-b.connCtx.Done():
				return
			}
			continue
		}
		backoff = 0
		b.mu.Lock()
		if b.closing {
			b.mu.Unlock()
			nc.Close()
			return
		}
		c, why := b.admit(nc, true)
		if c == nil {
			b.mu.Unlock()
			b.refused.add(b.logger, why, nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		b.connWG.Add(1)
		b.mu.Unlock()
		go func() {
			defer b.connWG.Done()
			c.serve()
		}()
	}
}

// watchMetadata applies every metadata change to the partitions.
func (b *Broker) watchMetadata(ctx context.Context) {
	for {
		ch := b.store.Changed() // before reading, so no change is missed
		md := b.store.Metadata()
		if me, ok := md.Brokers[b.cfg.BrokerID]; ok {
			if me.Epoch > b.epoch.Load() {
				// Registered again: fetches go out with the new epoch.
				b.epoch.Store(me.Epoch)
				b.advertiseEpoch(me.Epoch)
			}
			if me.State != controller.BrokerAlive && !b.draining.Load() {
				kick(b.reregister)
			}
		}
		b.parts.reconcile(md)
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// brokerAddr is the client address of an alive broker, from the metadata.
func (b *Broker) brokerAddr(id int32) (string, bool) {
	br, ok := b.store.Metadata().Brokers[id]
	if !ok || br.State != controller.BrokerAlive {
		return "", false
	}
	return br.Addr, true
}

// retentionLoop runs retention every RetentionCheckInterval, writes the
// high-watermark checkpoint every hwCheckpointInterval, checks the process
// limits every limitsCheckInterval and unmaps idle segments' indexes every
// indexIdleInterval.
func (b *Broker) retentionLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	hw := time.NewTicker(hwCheckpointInterval)
	defer hw.Stop()
	limits := time.NewTicker(limitsCheckInterval)
	defer limits.Stop()
	idle := time.NewTicker(indexIdleInterval)
	defer idle.Stop()
	for {
		select {
		case <-t.C:
			b.parts.enforceRetention()
		case <-idle.C:
			b.parts.unmapIdleIndexes()
		case <-hw.C:
			b.parts.checkpointHighWatermarks()
		case <-limits.C:
			checkLimits(b.logger, processLimits())
		case <-ctx.Done():
			return
		}
	}
}

// indexIdleInterval is how often the index files of inactive segments not
// read since the last time are unmapped (log.Log.UnmapIdleIndexes): an
// index unread for 5 to 10 minutes is unmapped, and mapped again by the
// next read.
const indexIdleInterval = 5 * time.Minute

// hwCheckpointInterval is how often the high watermarks are checkpointed.
const hwCheckpointInterval = 5 * time.Second

// limitsCheckInterval is how often the broker checks how close it is to
// its open-file and memory-map limits (checkLimits).
const limitsCheckInterval = time.Minute

// ISRWrites is how many controller writes this broker has made to change
// the ISRs of the partitions it leads: one per pass over its partitions
// that found changes (up to controller.MaxAlterPartitions changes each),
// not one per partition.
func (b *Broker) ISRWrites() int64 { return b.isrWrites.Load() }

// ProducerIDsEvicted is how many (producer id, partition) entries of
// idempotent producer state this broker evicted past ProducerIDMax since
// it started (0 before Start).
func (b *Broker) ProducerIDsEvicted() uint64 {
	if b.parts == nil || b.parts.producerLimit == nil {
		return 0
	}
	return b.parts.producerLimit.Evicted()
}
