package group

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// joinReq is a classic JoinGroup of protocol "range" with metadata md.
func joinReq(member, instance, md string) JoinGroup {
	return JoinGroup{GroupID: "cg", MemberID: member, InstanceID: instance, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 5 * time.Second, ProtocolType: "consumer", RequireKnownMemberID: true,
		Protocols: []ClassicProtocol{{Name: "range", Metadata: []byte(md)}}}
}

func (h *harness) join(req JoinGroup) (JoinResult, bool, error) {
	h.t.Helper()
	res, done, recs, err := h.c.JoinGroup(h.now, req)
	h.log = append(h.log, recs...)
	return res, done, err
}

// joinNew joins a new member (the two steps of MEMBER_ID_REQUIRED).
func (h *harness) joinNew(instance, md string) (JoinResult, bool) {
	h.t.Helper()
	req := joinReq("", instance, md)
	res, done, err := h.join(req)
	if instance == "" {
		if !errors.Is(err, ErrMemberIDRequired) || res.MemberID == "" {
			h.t.Fatalf("first join: %+v %v, want ErrMemberIDRequired with an id", res, err)
		}
		req.MemberID = res.MemberID
		res, done, err = h.join(req)
	}
	if err != nil {
		h.t.Fatalf("join: %v", err)
	}
	return res, done
}

func (h *harness) sync(member string, gen int32, assign map[string]string) (SyncResult, bool, error) {
	h.t.Helper()
	req := SyncGroup{GroupID: "cg", MemberID: member, Generation: gen}
	for id, a := range assign {
		req.Assignments = append(req.Assignments, ClassicAssignment{MemberID: id, Assignment: []byte(a)})
	}
	res, done, recs, err := h.c.SyncGroup(h.now, req)
	h.log = append(h.log, recs...)
	return res, done, err
}

func (h *harness) classicBeat(member string, gen int32) error {
	return h.c.ClassicHeartbeat(h.now, ClassicHeartbeat{GroupID: "cg", MemberID: member, Generation: gen})
}

// The rebalance barrier: a join completes once every member joined; the
// leader gets every member's metadata, followers wait for its sync; a
// member that does not rejoin within the rebalance timeout is removed.
func TestClassicRebalance(t *testing.T) {
	h := newHarness(t, nil)
	a, done := h.joinNew("", "ma")
	if !done || a.Generation != 1 || a.LeaderID != a.MemberID || len(a.Members) != 1 || a.Protocol != "range" {
		t.Fatalf("single member join: %+v done %v", a, done)
	}
	if _, done, err := h.sync(a.MemberID, 1, map[string]string{a.MemberID: "A1"}); !done || err != nil {
		t.Fatalf("leader sync: %v %v", done, err)
	}
	b, done := h.joinNew("", "mb")
	if done {
		t.Fatalf("second member's join done before the first rejoined: %+v", b)
	}
	if err := h.classicBeat(a.MemberID, 1); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("heartbeat during the rebalance: %v", err)
	}
	if _, done, err := h.c.JoinGroupResult("cg", b.MemberID); done || err != nil {
		t.Fatalf("waiting join: done %v %v", done, err)
	}
	a2, done, err := h.join(joinReq(a.MemberID, "", "ma"))
	if err != nil || !done || a2.Generation != 2 || a2.LeaderID != a.MemberID || len(a2.Members) != 2 {
		t.Fatalf("leader rejoin: %+v %v %v", a2, done, err)
	}
	b2, done, err := h.c.JoinGroupResult("cg", b.MemberID)
	if err != nil || !done || b2.Generation != 2 || len(b2.Members) != 0 {
		t.Fatalf("follower's join: %+v %v %v", b2, done, err)
	}
	for _, m := range a2.Members {
		if want := map[string]string{a.MemberID: "ma", b.MemberID: "mb"}[m.MemberID]; string(m.Metadata) != want {
			t.Fatalf("metadata of %s: %q, want %q", m.MemberID, m.Metadata, want)
		}
	}
	if _, done, err := h.sync(b.MemberID, 2, nil); done || err != nil {
		t.Fatalf("follower sync before the leader's: done %v %v", done, err)
	}
	// The leader's join answer was lost: joining again with the same
	// metadata while the rebalance completes answers the same generation.
	if again, done, err := h.join(joinReq(a.MemberID, "", "ma")); err != nil || !done || again.Generation != 2 || len(again.Members) != 2 {
		t.Fatalf("leader's repeated join: %+v %v %v", again, done, err)
	}
	if err := h.classicBeat(b.MemberID, 2); err != nil {
		t.Fatalf("heartbeat while completing: %v", err)
	}
	if _, _, err := h.sync(a.MemberID, 1, nil); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("sync at an old generation: %v", err)
	}
	if r, done, err := h.sync(a.MemberID, 2, map[string]string{a.MemberID: "A2", b.MemberID: "B2"}); !done || err != nil || string(r.Assignment) != "A2" {
		t.Fatalf("leader sync: %+v %v %v", r, done, err)
	}
	if r, done, err := h.c.SyncGroupResult("cg", b.MemberID, 2); !done || err != nil || string(r.Assignment) != "B2" {
		t.Fatalf("follower's sync: %+v %v %v", r, done, err)
	}

	// b stops heartbeating; a keeps going: b's session ends, a rebalance
	// starts, and a alone makes generation 3.
	for range 12 {
		h.now = h.now.Add(time.Second)
		if err := h.classicBeat(a.MemberID, 2); err != nil && !errors.Is(err, ErrRebalanceInProgress) {
			t.Fatal(err)
		}
		h.tick(0)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicPreparingRebalance || len(d.Members) != 1 {
		t.Fatalf("after b's session: %+v", d)
	}
	if a3, done, err := h.join(joinReq(a.MemberID, "", "ma")); err != nil || !done || a3.Generation != 3 || len(a3.Members) != 1 {
		t.Fatalf("rejoin alone: %+v %v %v", a3, done, err)
	}

	// A member that does not rejoin within the rebalance timeout is
	// removed when it passes; the joined one's join completes.
	c, done := h.joinNew("", "mc")
	if done {
		t.Fatal("join done before a rejoined")
	}
	h.tick(6 * time.Second)
	r, done, err := h.c.JoinGroupResult("cg", c.MemberID)
	if err != nil || !done || r.Generation != 4 || r.LeaderID != c.MemberID {
		t.Fatalf("join after the rebalance timeout: %+v %v %v", r, done, err)
	}
	if _, _, err := h.c.JoinGroupResult("cg", a.MemberID); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("removed member: %v", err)
	}
}

// twoStatic makes group cg Stable at generation 2 with static members
// ia (the leader, assigned "A") and ib (assigned "B").
func (h *harness) twoStatic() (a, b JoinResult) {
	h.t.Helper()
	a, _ = h.joinNew("ia", "ma")
	h.sync(a.MemberID, 1, map[string]string{a.MemberID: "A"})
	b, _ = h.joinNew("ib", "mb")
	h.join(joinReq(a.MemberID, "ia", "ma"))
	if _, _, err := h.sync(a.MemberID, 2, map[string]string{a.MemberID: "A", b.MemberID: "B"}); err != nil {
		h.t.Fatal(err)
	}
	return a, b
}

// Static membership: a restarted instance takes its place and assignment
// without a rebalance (a follower), and the old member id is fenced.
func TestClassicStaticMember(t *testing.T) {
	h := newHarness(t, nil)
	_, b := h.twoStatic()
	b2, done := h.joinNew("ib", "mb")
	if !done || b2.MemberID == b.MemberID || b2.Generation != 2 {
		t.Fatalf("static rejoin: %+v done %v", b2, done)
	}
	if r, done, err := h.sync(b2.MemberID, 2, nil); !done || err != nil || string(r.Assignment) != "B" {
		t.Fatalf("static member's sync: %+v %v %v", r, done, err)
	}
	if err := h.classicBeat(b.MemberID, 2); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("old member id: %v", err)
	}
	if err := h.c.ClassicHeartbeat(h.now, ClassicHeartbeat{GroupID: "cg", MemberID: b.MemberID, InstanceID: "ib", Generation: 2}); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("old member id with the instance id: %v", err)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicStable {
		t.Fatalf("a static follower's restart rebalanced: %+v", d)
	}
	// Leaving by instance id.
	errs, recs, err := h.c.LeaveGroup(h.now, "cg", []LeavingMember{{InstanceID: "ib"}, {MemberID: "nobody"}})
	h.log = append(h.log, recs...)
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrUnknownMemberID) {
		t.Fatalf("leave: %v %v", errs, err)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicPreparingRebalance || len(d.Members) != 1 {
		t.Fatalf("after the leave: %+v", d)
	}
}

// A static leader that restarts keeps the generation when its client can
// be told to skip the assignment (JoinGroup v9+, KIP-814): its answer
// carries the members and SkipAssignment, and its sync returns its old
// assignment. A restarted member's metadata may differ (it owns
// nothing yet): the generation stands while the group's protocol does.
// An older client's leader rebalances.
func TestClassicStaticLeaderSkipsAssignment(t *testing.T) {
	h := newHarness(t, nil)
	a, _ := h.twoStatic()
	req := joinReq("", "ia", "ma, owning nothing")
	req.SkipAssignmentOK = true
	a2, done, err := h.join(req)
	if err != nil || !done || a2.MemberID == a.MemberID || a2.Generation != 2 || a2.LeaderID != a2.MemberID || !a2.SkipAssignment || len(a2.Members) != 2 {
		t.Fatalf("static leader's rejoin (v9): %+v done %v err %v", a2, done, err)
	}
	if r, done, err := h.sync(a2.MemberID, 2, nil); !done || err != nil || string(r.Assignment) != "A" {
		t.Fatalf("static leader's sync: %+v %v %v", r, done, err)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicStable || d.Generation != 2 {
		t.Fatalf("a static leader's restart rebalanced: %+v", d)
	}
	if err := h.classicBeat(a.MemberID, 2); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("old leader id: %v", err)
	}
	// A follower's answer never says skip.
	b2, done := h.joinNew("ib", "mb, owning nothing")
	if !done || b2.SkipAssignment || len(b2.Members) != 0 || b2.Generation != 2 {
		t.Fatalf("static follower's rejoin: %+v %v", b2, done)
	}
	// Without SkipAssignmentOK (JoinGroup v8 or older) the leader's
	// restart rebalances.
	a3, done, err := h.join(joinReq("", "ia", "ma"))
	if err != nil || done || a3.SkipAssignment {
		t.Fatalf("static leader's rejoin (v8): %+v done %v err %v", a3, done, err)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicPreparingRebalance {
		t.Fatalf("a v8 static leader's restart: %+v, want a rebalance", d)
	}
}

// Offset commits to a classic group are fenced by generation (Kafka's
// validateOffsetCommit); a group id is classic or consumer, not both.
func TestClassicCommitsAndGroupTypes(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 2})
	commit := func(member string, gen int32) error {
		_, recs, err := h.c.CommitOffsets(h.now, OffsetCommit{GroupID: "cg", MemberID: member, MemberEpoch: gen,
			Topics: []CommitTopic{{Topic: "t", Partitions: []CommitPartition{{Partition: 0, Offset: 5}}}}})
		h.log = append(h.log, recs...)
		return err
	}
	a, _ := h.joinNew("", "ma")
	if err := commit(a.MemberID, 1); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("commit while completing: %v", err)
	}
	h.sync(a.MemberID, 1, map[string]string{a.MemberID: "A"})
	for _, c := range []struct {
		member string
		gen    int32
		want   error
	}{{a.MemberID, 1, nil}, {a.MemberID, 0, ErrIllegalGeneration}, {"x", 1, ErrUnknownMemberID}, {"", -1, ErrUnknownMemberID}} {
		if err := commit(c.member, c.gen); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Fatalf("commit of %q at %d: %v, want %v", c.member, c.gen, err, c.want)
		}
	}
	// A heartbeat joining the classic group with members is refused;
	// a consumer group refuses classic joins.
	if _, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "cg", SubscribedTopicNames: []string{"t"}}); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("KIP-848 join of a classic group: %v", err)
	}
	if _, recs, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "new", SubscribedTopicNames: []string{"t"}}); err != nil {
		t.Fatal(err)
	} else {
		h.log = append(h.log, recs...)
	}
	if _, _, _, err := h.c.JoinGroup(h.now, JoinGroup{GroupID: "new", ProtocolType: "consumer", SessionTimeout: 10 * time.Second,
		Protocols: []ClassicProtocol{{Name: "range"}}}); !errors.Is(err, ErrInconsistentGroupProtocol) {
		t.Fatalf("classic join of a consumer group: %v", err)
	}
	// Replay resumes the Stable generation with its assignments.
	r := replayed(t, h, h.log)
	d, ok, err := r.DescribeClassic("cg")
	if err != nil || !ok || d.State != ClassicStable || d.Generation != 1 || len(d.Members) != 1 || string(d.Members[0].Assignment) != "A" || string(d.Members[0].Metadata) != "ma" {
		t.Fatalf("replayed: %+v %v %v", d, ok, err)
	}
	if off := fetchOne(t, &harness{t: t, c: r}, "cg", "t", 0); off != 5 {
		t.Fatalf("replayed offset %d", off)
	}
	if got := r.ListGroups(); len(got) != 2 || got[0].Type != TypeClassic || got[1].Type != TypeConsumer {
		t.Fatalf("replayed groups: %+v", got)
	}
	// The last member leaves: the group is Empty, takes commits without
	// a member, and becomes a consumer group on a KIP-848 join.
	if _, recs, err := h.c.LeaveGroup(h.now, "cg", []LeavingMember{{MemberID: a.MemberID}}); err != nil {
		t.Fatal(err)
	} else {
		h.log = append(h.log, recs...)
	}
	if err := commit("", -1); err != nil {
		t.Fatalf("commit without a member to the empty group: %v", err)
	}
	res, recs, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "cg", SubscribedTopicNames: []string{"t"}})
	h.log = append(h.log, recs...)
	if err != nil || res.MemberEpoch <= 0 {
		t.Fatalf("KIP-848 join of the empty classic group: %+v %v", res, err)
	}
	r = replayed(t, h, h.log)
	if d, _ := r.DescribeGroup("cg"); d.Type != TypeConsumer || len(d.Members) != 1 {
		t.Fatalf("replayed converted group: %+v", d)
	}
}

// Session timeouts outside the bounds and joins without a protocol are
// refused.
func TestClassicJoinRefusals(t *testing.T) {
	h := newHarness(t, nil)
	req := joinReq("", "", "m")
	req.SessionTimeout = time.Second
	if _, _, err := h.join(req); !errors.Is(err, ErrInvalidSessionTimeout) {
		t.Fatalf("1 s session: %v", err)
	}
	req = joinReq("", "", "m")
	req.Protocols = nil
	if _, _, err := h.join(req); !errors.Is(err, ErrInconsistentGroupProtocol) {
		t.Fatalf("no protocols: %v", err)
	}
	a, _ := h.joinNew("", "m")
	req = joinReq("", "", "m")
	req.Protocols[0].Name = "roundrobin"
	if _, _, err := h.join(req); !errors.Is(err, ErrInconsistentGroupProtocol) {
		t.Fatalf("a protocol no member has: %v", err)
	}
	if _, _, err := h.join(joinReq("unknown", "", "m")); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("unknown member id: %v", err)
	}
	_ = a
}

// A group's metadata and assignments are bounded (ClassicMaxGroupBytes):
// it is one record of the offsets topic.
func TestClassicGroupBytesBounded(t *testing.T) {
	h := newHarness(t, nil)
	c, err := New(Config{ClassicMaxGroupBytes: 1000, NewMemberID: h.c.cfg.NewMemberID})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	a, _ := h.joinNew("", strings.Repeat("a", 400))
	if _, _, err := h.join(joinReq("", "", strings.Repeat("b", 700))); !errors.Is(err, ErrGroupMaxSizeReached) {
		t.Fatalf("a join past the bound: %v", err)
	}
	if _, _, err := h.sync(a.MemberID, 1, map[string]string{a.MemberID: strings.Repeat("x", 800)}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("an assignment past the bound: %v", err)
	}
	if d, _, _ := h.c.DescribeClassic("cg"); d.State != ClassicCompletingRebalance {
		t.Fatalf("a refused sync changed the group: %+v", d)
	}
	if _, done, err := h.sync(a.MemberID, 1, map[string]string{a.MemberID: "x"}); !done || err != nil {
		t.Fatalf("sync within the bound: %v %v", done, err)
	}
}

// The first rebalance of an empty group waits the initial delay, each
// join during it extending it (up to the rebalance timeout), so members
// starting together share generation 1 (Kafka's
// group.initial.rebalance.delay.ms); later rebalances do not wait.
func TestClassicInitialRebalanceDelay(t *testing.T) {
	h := newHarness(t, nil)
	h.c.cfg.ClassicInitialRebalanceDelay = 3 * time.Second
	a, done := h.joinNew("ia", "ma")
	if done {
		t.Fatalf("the first join completed at once: %+v", a)
	}
	h.tick(2 * time.Second)
	b, done := h.joinNew("ib", "mb") // extends the delay to 5 s from a's join
	if done {
		t.Fatalf("the second join completed at once: %+v", b)
	}
	h.tick(2 * time.Second) // 3 s after a's join, 2 s after b's
	if _, done, _ := h.c.JoinGroupResult("cg", a.MemberID); done {
		t.Fatal("the rebalance completed before the delay b's join extended")
	}
	h.tick(1500 * time.Millisecond)
	ra, done, err := h.c.JoinGroupResult("cg", a.MemberID)
	if err != nil || !done || ra.Generation != 1 || len(ra.Members) != 2 {
		t.Fatalf("after the delay: %+v %v %v, want generation 1 with both members", ra, done, err)
	}
	h.sync(a.MemberID, 1, map[string]string{a.MemberID: "A", b.MemberID: "B"})
	// A later join rebalances without the delay once everyone rejoined.
	h.joinNew("ic", "mc")
	h.join(joinReq(a.MemberID, "ia", "ma"))
	if r, done, err := h.join(joinReq(b.MemberID, "ib", "mb")); err != nil || !done || r.Generation != 2 {
		t.Fatalf("second rebalance: %+v %v %v, want generation 2 at once", r, done, err)
	}
	// The delay is capped by the rebalance timeout (5 s in joinReq).
	h2 := newHarness(t, nil)
	h2.c.cfg.ClassicInitialRebalanceDelay = time.Minute
	x, _ := h2.joinNew("ix", "mx")
	h2.tick(5500 * time.Millisecond)
	if r, done, err := h2.c.JoinGroupResult("cg", x.MemberID); err != nil || !done || r.Generation != 1 {
		t.Fatalf("a delay past the rebalance timeout: %+v %v %v", r, done, err)
	}
}
