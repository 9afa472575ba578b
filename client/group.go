package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// A group member (ConsumerGroup) speaks KIP-848's protocol: one goroutine
// of its own finds the group's coordinator, joins (member epoch 0),
// heartbeats at the interval the coordinator gives with its whole state
// (subscription, owned partitions), and reconciles what each answer
// assigns. The assign-mode machinery does the fetching: the member only
// assigns and unassigns partitions of the Client's consumer.
//
// Reconciliation, for each answer, revokes first:
//   - a partition no longer assigned stops being fetched at once (its
//     buffered records are dropped: no Poll returns them now); the
//     application's next Poll finishes its revocation on the
//     application's goroutine, as Kafka's poll: it commits everything
//     Poll returned (AutoCommit), runs OnRevoked (which may commit), and
//     the next heartbeat — sent at once — reports it released, so the
//     coordinator can give it to its new owner. Until then the member
//     still owns it; a Poll not called for RebalanceTimeout ends the
//     wait (below);
//   - then a newly assigned partition's committed offset is looked up
//     (OffsetFetch), OnAssigned runs, and fetching starts at the
//     committed offset, or, with no commit, at GroupResetOffset; the next
//     heartbeat reports it owned.
//
// UNKNOWN_MEMBER_ID and FENCED_MEMBER_EPOCH drop every partition without
// committing (OnLost) and join again. A member whose application has not
// called Poll for RebalanceTimeout leaves the group (revoking its
// partitions on the member's goroutine, committing what was consumed, so
// they move at once) and joins again on the next Poll. Close revokes
// every partition (committing what Poll returned, with AutoCommit) and
// leaves; a static member (GroupInstanceID) leaves with epoch -2, keeping
// its place for the session timeout.
//
// Delivery is at least once. Commits name the next offset to read. What a
// commit covers:
//   - consumed offsets: a record returned by Poll is consumed once Poll is
//     called again (or Commit, Close). AutoCommit commits consumed offsets
//     every interval and on revoke, so a record is committed only after the
//     application came back for more; a record being processed when its
//     partition moves, or when the process dies, is read again by the next
//     owner (a duplicate, never a loss).
//   - Close and Commit commit everything Poll returned: call them once
//     the records are processed.
//   - partitions lost (fenced, poll timeout) are not committed: their next
//     owner starts at the last commit.
//
// Commits are fenced by the member epoch: one that meets
// STALE_MEMBER_EPOCH is retried after the next heartbeat. A commit names
// only partitions the member owns when it is sent (NotOwnedError).

// group is a Client's membership in a consumer group.
type group struct {
	c   *Client
	cfg *groupConfig

	ctx  context.Context // the loop's: cancelled by close
	stop context.CancelFunc
	wake chan struct{} // capacity 1: heartbeat now
	done chan struct{} // closed when the loop has returned

	// joinID is the member id the member joins with, its own (KIP-1082),
	// for the Client's lifetime: a join whose answer was lost and that is
	// sent again is the same member, not a second one that would hold
	// partitions until its session timeout.
	joinID string

	mu       sync.Mutex
	memberID string // the id the coordinator answered with; "" while joining
	epoch    int32  // 0: not a member (joining)
	interval time.Duration
	owned    map[TopicPartition]bool
	lastPoll time.Time // when Poll last started or returned
	polling  int       // Polls running now
	left     bool      // left after RebalanceTimeout without Poll; joins again on the next Poll
	err      error     // the group refused the member for good
	changed  notifier  // member id, epoch or err changed

	// revoking holds the partitions being given up, from the moment
	// fetching them stopped until they are forgotten (after OnRevoked),
	// with their positions as they were then. g.mu guards it. The ones
	// the coordinator took away wait here for the application's next
	// Poll, which finishes their revocation (finishRevoke).
	revoking map[TopicPartition]cpart

	// revokeMu serializes finishing revocations (Poll's, Close's, the
	// poll timeout's, a fence's): each partition's OnRevoked or OnLost
	// runs once.
	revokeMu sync.Mutex

	// commitMu is held by each commit request, and by a revocation while
	// it commits and while it forgets the partitions: a commit of a
	// revoked partition cannot land after the coordinator heard it
	// released, and so after its next owner read the committed offset
	// (which would move it backwards).
	commitMu sync.Mutex
}

// GroupError is a consumer group's refusal of the member that retrying
// cannot cure (an unknown assignor, a regular expression the coordinator
// does not accept, a cluster that does not serve consumer groups). Poll
// returns it; the member stops heartbeating.
type GroupError struct {
	Group string
	Err   error
}

func (e *GroupError) Error() string { return fmt.Sprintf("consumer group %q: %v", e.Group, e.Err) }

// Unwrap returns the underlying error.
func (e *GroupError) Unwrap() error { return e.Err }

// ErrNotMember is returned by a commit while the member has no place in
// the group (joining, or fenced and joining again): nothing was committed.
var ErrNotMember = errors.New("client: not a member of the consumer group now")

func newGroup(c *Client, cfg *groupConfig) *group {
	var id [16]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand since Go 1.24)
	g := &group{c: c, cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}),
		joinID: base64.RawURLEncoding.EncodeToString(id[:]), owned: map[TopicPartition]bool{}, revoking: map[TopicPartition]cpart{},
		lastPoll: time.Now()}
	g.ctx, g.stop = context.WithCancel(c.ctx)
	return g
}

func (g *group) start() {
	g.c.wg.Add(1)
	go g.run()
}

// close ends the loop, which revokes every partition and leaves the group
// first; it returns when the loop has.
func (g *group) close() {
	g.stop()
	<-g.done
}

// run is the member's goroutine: heartbeats, reconciliation, auto-commit
// and the poll timeout, until close.
func (g *group) run() {
	defer g.c.wg.Done()
	defer close(g.done)
	failures := 0
	now := time.Now()
	nextBeat, nextCommit := now, now.Add(g.cfg.autoCommitInterval)
	for {
		if g.ctx.Err() != nil {
			g.shutdown()
			return
		}
		now = time.Now()
		g.mu.Lock()
		idle := g.left || g.err != nil
		timedOut := !idle && g.epoch > 0 && g.polling == 0 && now.Sub(g.lastPoll) > g.cfg.rebalanceTimeout
		g.mu.Unlock()
		if timedOut {
			g.leave(g.ctx, false)
			g.mu.Lock()
			g.left = g.polling == 0 // a Poll that started meanwhile wants us back
			g.mu.Unlock()
			nextBeat = now
			continue
		}
		if idle {
			select {
			case <-g.wake:
			case <-g.ctx.Done():
			}
			nextBeat = time.Now()
			continue
		}
		if !now.Before(nextBeat) {
			again, err := g.heartbeat(g.ctx)
			switch {
			case err != nil:
				failures++
				nextBeat = time.Now().Add(g.c.backoff(failures))
			case again:
				failures = 0
				nextBeat = time.Now()
				continue
			default:
				failures = 0
				g.mu.Lock()
				nextBeat = time.Now().Add(g.interval)
				g.mu.Unlock()
			}
		}
		if g.cfg.autoCommit && !now.Before(nextCommit) {
			_ = g.commitConsumed(g.ctx, false) // failed: the next tick commits, or the next owner re-reads
			nextCommit = time.Now().Add(g.cfg.autoCommitInterval)
		}
		wakeAt := nextBeat
		if g.cfg.autoCommit && nextCommit.Before(wakeAt) {
			wakeAt = nextCommit
		}
		g.mu.Lock()
		if g.polling == 0 && g.epoch > 0 {
			if pt := g.lastPoll.Add(g.cfg.rebalanceTimeout + time.Millisecond); pt.Before(wakeAt) {
				wakeAt = pt
			}
		}
		g.mu.Unlock()
		t := time.NewTimer(time.Until(wakeAt))
		select {
		case <-t.C:
		case <-g.wake:
			nextBeat = time.Now()
		case <-g.ctx.Done():
		}
		t.Stop()
	}
}

// shutdown revokes every partition (committing what Poll returned, with
// AutoCommit) and leaves the group, within RequestTimeout.
func (g *group) shutdown() {
	ctx, cancel := context.WithTimeout(g.c.ctx, g.c.cfg.requestTimeout)
	defer cancel()
	g.leave(ctx, true)
}

// leave revokes every partition and sends the leave heartbeat (epoch -1,
// or -2 for a static member on Close). closing commits everything Poll
// returned rather than what was consumed.
func (g *group) leave(ctx context.Context, closing bool) {
	g.revoke(ctx, g.ownedList(), closing)
	g.mu.Lock()
	req := g.request()
	g.memberID, g.epoch = "", 0
	g.mu.Unlock()
	g.changed.notify()
	if req.MemberEpoch <= 0 {
		return // never joined, or fenced: nothing to leave
	}
	req.MemberEpoch = protocol.MemberEpochLeave
	if closing && g.cfg.instanceID != "" {
		req.MemberEpoch = protocol.MemberEpochLeaveStatic
	}
	req.OwnedPartitions = nil
	_, _ = g.c.coordinated(ctx, g.cfg.id, req, func() protocol.Message { return new(protocol.ConsumerGroupHeartbeatResponse) }, 1)
}

// request is the member's state as a heartbeat. g.mu is held.
func (g *group) request() *protocol.ConsumerGroupHeartbeatRequest {
	id := g.memberID
	if id == "" {
		id = g.joinID
	}
	return &protocol.ConsumerGroupHeartbeatRequest{
		GroupID: g.cfg.id, MemberID: id, MemberEpoch: g.epoch,
		InstanceID: g.cfg.instanceID, RackID: g.cfg.rackID,
		RebalanceTimeoutMs: int32(g.cfg.rebalanceTimeout.Milliseconds()),
		SubscribedTopics:   g.cfg.topics, SubscribedTopicRegex: g.cfg.regex, Assignor: g.cfg.assignor,
		OwnedPartitions: byTopic(g.owned),
	}
}

// heartbeat sends one heartbeat and reconciles its answer. again says
// the member's state changed (or it must join again) and the next
// heartbeat should go at once.
func (g *group) heartbeat(ctx context.Context) (again bool, err error) {
	g.mu.Lock()
	req := g.request()
	g.mu.Unlock()
	m, err := g.c.coordinated(ctx, g.cfg.id, req, func() protocol.Message { return new(protocol.ConsumerGroupHeartbeatResponse) }, 0)
	if err != nil {
		if errors.Is(err, protocol.ErrUnsupportedVersion) {
			g.fail(fmt.Errorf("the cluster does not serve consumer groups: %w", err))
		}
		return false, err
	}
	resp := m.(*protocol.ConsumerGroupHeartbeatResponse)
	switch code := resp.ErrorCode; code {
	case protocol.NoError:
	case protocol.ErrUnknownMemberID, protocol.ErrFencedMemberEpoch:
		// Drop everything without committing (another member may own
		// the partitions by now) and join again, with the member's own
		// id (an id the coordinator issued is forgotten once unknown).
		// Not a member first: a commit waiting for a heartbeat (in an
		// OnRevoked that Poll runs, which lose waits for) ends now.
		g.mu.Lock()
		if code == protocol.ErrUnknownMemberID {
			g.memberID = ""
		}
		g.epoch = 0
		g.mu.Unlock()
		g.changed.notify()
		g.lose(g.ownedList())
		return true, nil
	default:
		err := fmt.Errorf("heartbeat: %w", code.ErrWithDetail(resp.ErrorMessage))
		if !code.Retriable() {
			g.fail(err)
		}
		return false, err
	}
	g.mu.Lock()
	g.memberID, g.epoch = resp.MemberID, resp.MemberEpoch
	g.interval = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
	if g.interval <= 0 {
		g.interval = time.Second
	}
	g.mu.Unlock()
	g.changed.notify()
	return g.reconcile(ctx, resp.Assignment)
}

// reconcile moves the member to the assignment: revoked partitions first,
// then the new ones. changed says whether the owned set changed (the
// coordinator must hear it at once).
func (g *group) reconcile(ctx context.Context, assignment []protocol.TopicPartitions) (changed bool, err error) {
	target := map[TopicPartition]bool{}
	for _, t := range assignment {
		for _, p := range t.Partitions {
			target[TopicPartition{t.Topic, p}] = true
		}
	}
	var revoked, added []TopicPartition
	g.mu.Lock()
	for tp := range g.owned {
		if _, pending := g.revoking[tp]; !target[tp] && !pending {
			revoked = append(revoked, tp)
		}
	}
	for tp := range target {
		if !g.owned[tp] {
			added = append(added, tp)
		}
	}
	memberID, epoch := g.memberID, g.epoch
	g.mu.Unlock()
	if len(revoked) > 0 {
		// Released by the application's next Poll, which reports them
		// gone (a heartbeat at once): until then the member still owns
		// them, and the coordinator keeps them from their next owner.
		g.stopFetching(revoked)
	}
	if len(added) == 0 {
		return changed, nil
	}
	sortPartitions(added)
	committed, err := g.c.fetchCommitted(ctx, g.cfg.id, memberID, epoch, added, 0)
	if err != nil {
		return changed, fmt.Errorf("committed offsets of the new partitions: %w", err)
	}
	start := make(map[TopicPartition]Offset, len(added))
	for _, tp := range added {
		start[tp] = g.cfg.reset
		if off, ok := committed[tp]; ok && off >= 0 {
			start[tp] = At(off)
		}
	}
	g.mu.Lock()
	for _, tp := range added {
		g.owned[tp] = true
	}
	g.mu.Unlock()
	// OnAssigned returns before fetching starts, so no Poll returns a
	// record of the partitions before it (Kafka's order): an application
	// that sets up a partition's state there sees none of its records
	// first.
	if g.cfg.onAssigned != nil {
		g.cfg.onAssigned(added)
	}
	g.c.cons.assign(start)
	g.c.cons.mu.Lock()
	for tp, off := range committed {
		if p := g.c.cons.parts[tp]; p != nil {
			p.committed = off
		}
	}
	g.c.cons.mu.Unlock()
	return true, nil
}

// stopFetching starts the revocation of parts the coordinator took away:
// they are no longer fetched, their buffered records are dropped (no
// Poll returns them now), and the next Poll finishes their revocation.
func (g *group) stopFetching(parts []TopicPartition) {
	positions := make(map[TopicPartition]cpart, len(parts))
	g.c.cons.unassign(parts, positions)
	g.mu.Lock()
	for _, tp := range parts {
		g.revoking[tp] = positionsOf(positions, tp)
	}
	g.mu.Unlock()
	g.c.cons.ready.notify()
}

// positionsOf is tp's positions in positions, or none known.
func positionsOf(positions map[TopicPartition]cpart, tp TopicPartition) cpart {
	if p, ok := positions[tp]; ok {
		return p
	}
	return cpart{tp: tp, polled: -1, consumed: -1, committed: -1}
}

// revokePending says whether partitions wait for Poll to finish their
// revocation.
func (g *group) revokePending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.revoking) > 0
}

// finishRevoke, called by Poll, finishes the revocation of the
// partitions the coordinator took away (stopFetching) on the
// application's goroutine, as Kafka's poll runs onPartitionsRevoked:
// everything earlier Polls returned is consumed now, so AutoCommit
// commits it; OnRevoked runs (and may commit); then the next heartbeat,
// sent at once, reports the partitions released.
func (g *group) finishRevoke() {
	if !g.revokePending() {
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.c.cfg.requestTimeout)
	defer cancel()
	g.mu.Lock()
	parts := slices.Collect(maps.Keys(g.revoking))
	g.mu.Unlock()
	sortPartitions(parts)
	if g.revoke(ctx, parts, true) {
		kick(g.wake)
	}
}

// revoke gives up parts, those of them the member still owns: stops
// fetching them (if that was not done yet), commits their consumed
// offsets (all that Poll returned if all) with AutoCommit, runs OnRevoked
// and forgets them. A failed commit is not retried: the next owner reads
// those records again. It says whether it gave up any.
func (g *group) revoke(ctx context.Context, parts []TopicPartition, all bool) bool {
	g.revokeMu.Lock()
	defer g.revokeMu.Unlock()
	parts = g.stillOwned(parts)
	if len(parts) == 0 {
		return false
	}
	positions := make(map[TopicPartition]cpart, len(parts))
	g.commitMu.Lock()
	g.c.cons.unassign(parts, positions)
	g.mu.Lock()
	for _, tp := range parts {
		if p, ok := g.revoking[tp]; ok {
			positions[tp] = p
		} else {
			g.revoking[tp] = positionsOf(positions, tp) // for a Commit in OnRevoked
		}
	}
	g.mu.Unlock()
	if g.cfg.autoCommit {
		offs := map[TopicPartition]int64{}
		for tp, p := range positions {
			at := p.consumed
			if all {
				at = p.polled
			}
			if at >= 0 && at != p.committed {
				offs[tp] = at
			}
		}
		if len(offs) > 0 {
			_ = g.commitLocked(ctx, offs, 0, nil)
		}
	}
	g.commitMu.Unlock()
	if g.cfg.onRevoked != nil {
		g.cfg.onRevoked(parts)
	}
	g.commitMu.Lock()
	g.forget(parts)
	g.commitMu.Unlock()
	return true
}

// stillOwned is parts less those the member no longer owns.
func (g *group) stillOwned(parts []TopicPartition) []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(parts), func(tp TopicPartition) bool { return !g.owned[tp] })
}

// lose drops parts without committing and runs OnLost.
func (g *group) lose(parts []TopicPartition) {
	g.revokeMu.Lock()
	defer g.revokeMu.Unlock()
	parts = g.stillOwned(parts)
	if len(parts) == 0 {
		return
	}
	g.c.cons.unassign(parts, nil)
	if g.cfg.onLost != nil {
		g.cfg.onLost(parts)
	}
	g.forget(parts)
}

func (g *group) forget(parts []TopicPartition) {
	g.mu.Lock()
	for _, tp := range parts {
		delete(g.owned, tp)
		delete(g.revoking, tp)
	}
	g.mu.Unlock()
}

func (g *group) ownedList() []TopicPartition {
	g.mu.Lock()
	out := make([]TopicPartition, 0, len(g.owned))
	for tp := range g.owned {
		out = append(out, tp)
	}
	g.mu.Unlock()
	sortPartitions(out)
	return out
}

// fail records a refusal retrying cannot cure and wakes Poll.
func (g *group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = &GroupError{Group: g.cfg.id, Err: err}
	}
	g.mu.Unlock()
	g.changed.notify()
	g.c.cons.ready.notify()
}

func (g *group) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// pollStart marks the records of earlier Polls consumed and the
// application alive; a member that left for want of Polls joins again.
func (g *group) pollStart() error {
	cs := &g.c.cons
	cs.mu.Lock()
	for _, p := range cs.parts {
		p.consumed = p.polled
	}
	cs.mu.Unlock()
	g.mu.Lock()
	g.polling++
	g.lastPoll = time.Now()
	rejoin := g.left
	g.left = false
	err := g.err
	g.mu.Unlock()
	if rejoin {
		kick(g.wake)
	}
	return err
}

func (g *group) pollEnd() {
	g.mu.Lock()
	g.polling--
	g.lastPoll = time.Now()
	g.mu.Unlock()
}

// commitConsumed commits the consumed offsets of the owned partitions
// that moved since their last commit (all that Poll returned if all).
func (g *group) commitConsumed(ctx context.Context, all bool) error {
	offs := map[TopicPartition]int64{}
	cs := &g.c.cons
	cs.mu.Lock()
	for tp, p := range cs.parts {
		at := p.consumed
		if all {
			at = p.polled
		}
		if at >= 0 && at != p.committed {
			offs[tp] = at
		}
	}
	cs.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	return g.commit(ctx, offs, true)
}

// commit commits offs as the member; nil offs means, for every owned
// partition, the offset after the last record Poll returned (taken when
// the request goes, so a partition revoked meanwhile is left out). inLoop
// says the caller is the member's goroutine, which cannot wait for a
// heartbeat: a STALE_MEMBER_EPOCH is then returned, and otherwise retried
// once the member's epoch changed. Partitions of offs the member does not
// own when a request goes are left out of it and named by a
// *NotOwnedError (joined with the error of the rest, if any).
func (g *group) commit(ctx context.Context, offs map[TopicPartition]int64, inLoop bool) error {
	retries := g.c.cfg.requestRetries
	if inLoop {
		retries = 0
	}
	dropped := map[TopicPartition]bool{}
	for attempt := 0; ; attempt++ {
		ch := g.changed.wait()
		g.commitMu.Lock()
		err := g.commitLocked(ctx, offs, retries, dropped)
		g.commitMu.Unlock()
		if err == nil || inLoop || !errors.Is(err, protocol.ErrStaleMemberEpoch) || attempt >= g.c.cfg.requestRetries {
			return g.notOwned(dropped, err)
		}
		// Our epoch is behind the coordinator's: the next heartbeat
		// brings it; commit again after it, without the partitions
		// it took away.
		kick(g.wake)
		select {
		case <-ch:
		case <-ctx.Done():
			return g.notOwned(dropped, fmt.Errorf("commit to group %q: %w (waiting for a heartbeat after %v)", g.cfg.id, ctx.Err(), err))
		case <-g.ctx.Done():
			return g.notOwned(dropped, ErrClosed)
		}
	}
}

// notOwned joins err with a *NotOwnedError naming dropped, if any.
func (g *group) notOwned(dropped map[TopicPartition]bool, err error) error {
	if len(dropped) == 0 {
		return err
	}
	e := &NotOwnedError{Group: g.cfg.id, Partitions: slices.Collect(maps.Keys(dropped))}
	sortPartitions(e.Partitions)
	return errors.Join(e, err)
}

// NotOwnedError names the partitions of a CommitOffsets or CommitRecords
// that the member does not own now — revoked (another member may have
// committed further since), lost, or never assigned. Nothing was sent
// for them: a commit of a partition given up could move its next owner's
// committed offset backwards, and the records since would be read twice.
// The other partitions of the commit were committed, unless the commit
// also returned another error (joined with this one: branch with
// errors.As). It is definite.
type NotOwnedError struct {
	Group      string
	Partitions []TopicPartition // sorted
}

func (e *NotOwnedError) Error() string {
	names := make([]string, len(e.Partitions))
	for i, tp := range e.Partitions {
		names[i] = fmt.Sprintf("%s[%d]", tp.Topic, tp.Partition)
	}
	return fmt.Sprintf("client: commit to group %q: %s not owned by the member now: not committed", e.Group, strings.Join(names, ", "))
}

// commitLocked sends one commit of offs (nil: the polled offsets) as the
// member is now, without the partitions it does not own, which it adds to
// dropped. g.commitMu is held.
func (g *group) commitLocked(ctx context.Context, offs map[TopicPartition]int64, retries int, dropped map[TopicPartition]bool) error {
	cs := &g.c.cons
	if offs == nil {
		offs = map[TopicPartition]int64{}
		cs.mu.Lock()
		for tp, p := range cs.parts {
			if p.polled >= 0 && p.polled != p.committed {
				offs[tp] = p.polled
			}
		}
		cs.mu.Unlock()
		g.mu.Lock()
		for tp, p := range g.revoking { // a Commit in OnRevoked
			if p.polled >= 0 && p.polled != p.committed {
				offs[tp] = p.polled
			}
		}
		g.mu.Unlock()
		if len(offs) == 0 {
			return nil
		}
	}
	g.mu.Lock()
	memberID, epoch := g.memberID, g.epoch
	var send map[TopicPartition]int64
	for tp := range offs {
		if !g.owned[tp] {
			if send == nil {
				send = maps.Clone(offs)
			}
			delete(send, tp)
			if dropped != nil {
				dropped[tp] = true
			}
		}
	}
	g.mu.Unlock()
	if send != nil {
		offs = send
	}
	if epoch <= 0 {
		return fmt.Errorf("commit to group %q: %w", g.cfg.id, ErrNotMember)
	}
	if len(offs) == 0 {
		return nil
	}
	if err := g.c.commitOffsets(ctx, g.cfg.id, memberID, epoch, offs, retries); err != nil {
		return err
	}
	cs.mu.Lock()
	for tp, off := range offs {
		if p := cs.parts[tp]; p != nil {
			p.committed = off
		}
	}
	cs.mu.Unlock()
	return nil
}

// Commit commits, for every partition the member owns, the offset after
// the last record Poll returned: call it once those records are processed.
// Without ConsumerGroup it fails.
func (c *Client) Commit(ctx context.Context) error {
	g := c.group
	if g == nil {
		return errors.New("client: Commit: not in a consumer group (ConsumerGroup)")
	}
	return g.commit(ctx, nil, false)
}

// CommitRecords commits, per partition, the offset after the last of recs.
// Partitions the member does not own now are left out and named by a
// *NotOwnedError (see CommitOffsets).
func (c *Client) CommitRecords(ctx context.Context, recs ...*Record) error {
	offs := map[TopicPartition]int64{}
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		if off, ok := offs[tp]; !ok || r.Offset+1 > off {
			offs[tp] = r.Offset + 1
		}
	}
	return c.CommitOffsets(ctx, offs)
}

// CommitOffsets commits offsets (the next offset to read, per partition)
// as the group member. Only partitions the member owns when the request
// goes are sent — those assigned to it, and those being revoked until
// OnRevoked returned — as Kafka's coordinator requires (KIP-1251); the
// others are left out and named by a *NotOwnedError, joined with the
// error of the rest if it failed too:
//
//	var no *client.NotOwnedError
//	if errors.As(err, &no) { /* no.Partitions moved to another member */ }
func (c *Client) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	g := c.group
	if g == nil {
		return errors.New("client: CommitOffsets: not in a consumer group (ConsumerGroup)")
	}
	if len(offsets) == 0 {
		return nil
	}
	return g.commit(ctx, offsets, false)
}

// GroupMember returns the member's id and epoch in its consumer group
// ("" and 0 while it joins, or without ConsumerGroup).
func (c *Client) GroupMember() (memberID string, epoch int32) {
	if c.group == nil {
		return "", 0
	}
	c.group.mu.Lock()
	defer c.group.mu.Unlock()
	return c.group.memberID, c.group.epoch
}

// Assignment returns the partitions the member owns now, sorted (none
// without ConsumerGroup).
func (c *Client) Assignment() []TopicPartition {
	if c.group == nil {
		return nil
	}
	return c.group.ownedList()
}

// byTopic lists a set of partitions by topic, topics and partitions
// sorted; an empty, non-nil slice for none.
func byTopic(set map[TopicPartition]bool) []protocol.TopicPartitions {
	out := []protocol.TopicPartitions{}
	for tp := range set {
		t := topicEntry(&out, tp.Topic, func(t *protocol.TopicPartitions) *string { return &t.Topic })
		t.Partitions = append(t.Partitions, tp.Partition)
	}
	slices.SortFunc(out, func(a, b protocol.TopicPartitions) int {
		if a.Topic < b.Topic {
			return -1
		}
		if a.Topic > b.Topic {
			return 1
		}
		return 0
	})
	for i := range out {
		slices.Sort(out[i].Partitions)
	}
	return out
}

func sortPartitions(tps []TopicPartition) {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		switch {
		case a.Topic < b.Topic:
			return -1
		case a.Topic > b.Topic:
			return 1
		}
		return int(a.Partition - b.Partition)
	})
}
