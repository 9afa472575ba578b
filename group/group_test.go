package group

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// harness drives a Coordinator with a fake clock and keeps every record it
// returned, in order, as the offsets partition would.
type harness struct {
	t   *testing.T
	c   *Coordinator
	now time.Time
	log []Record
	ids int
}

func newHarness(t *testing.T, topics map[string]int32) *harness {
	t.Helper()
	h := &harness{t: t, now: time.Unix(1_700_000_000, 0)}
	c, err := New(Config{NewMemberID: func() string { h.ids++; return fmt.Sprintf("m%d", h.ids) }})
	if err != nil {
		t.Fatal(err)
	}
	c.SetTopics(topics)
	h.c = c
	return h
}

// client is a member as a consumer runs it: it holds what it was last
// given and reports it in every heartbeat.
type client struct {
	id    string
	epoch int32
	owned []TopicPartitions
	inst  string
	names []string
}

func (h *harness) beat(g string, cl *client) error {
	h.t.Helper()
	req := Heartbeat{GroupID: g, MemberID: cl.id, MemberEpoch: cl.epoch, InstanceID: cl.inst, OwnedPartitions: cl.owned}
	if cl.epoch == 0 {
		req.SubscribedTopicNames = cl.names
		req.OwnedPartitions = []TopicPartitions{}
	}
	res, recs, err := h.c.Heartbeat(h.now, req)
	if err != nil {
		return err
	}
	h.log = append(h.log, recs...)
	cl.id, cl.epoch, cl.owned = res.MemberID, res.MemberEpoch, res.Assignment
	if cl.owned == nil {
		cl.owned = []TopicPartitions{}
	}
	return nil
}

func (h *harness) mustBeat(g string, cls ...*client) {
	h.t.Helper()
	for _, cl := range cls {
		if err := h.beat(g, cl); err != nil {
			h.t.Fatalf("heartbeat of %q: %v", cl.id, err)
		}
	}
}

func (h *harness) tick(d time.Duration) {
	h.now = h.now.Add(d)
	h.log = append(h.log, h.c.Tick(h.now)...)
}

// settle heartbeats every client until the group is stable.
func (h *harness) settle(g string, cls ...*client) {
	h.t.Helper()
	for range 20 {
		h.mustBeat(g, cls...)
		if d, _ := h.c.DescribeGroup(g); d.State == StateStable {
			return
		}
	}
	d, _ := h.c.DescribeGroup(g)
	h.t.Fatalf("group %q not stable after 20 rounds: %+v", g, d)
}

func count(tps []TopicPartitions) int {
	n := 0
	for _, t := range tps {
		n += len(t.Partitions)
	}
	return n
}

// checkDisjoint fails if two clients hold the same partition.
func checkDisjoint(t *testing.T, cls ...*client) {
	t.Helper()
	seen := map[tp]string{}
	for _, cl := range cls {
		for k := range setOf(cl.owned) {
			if o, ok := seen[k]; ok {
				t.Fatalf("%v held by %s and %s", k, o, cl.id)
			}
			seen[k] = cl.id
		}
	}
}

func TestThreeMembersTwelvePartitionsFourthJoins(t *testing.T) {
	h := newHarness(t, map[string]int32{"orders": 12})
	cls := []*client{{names: []string{"orders"}}, {names: []string{"orders"}}, {names: []string{"orders"}}}
	h.settle("g", cls...)
	before := map[string]partSet{}
	for _, cl := range cls {
		if n := count(cl.owned); n != 4 {
			t.Fatalf("member %s has %d partitions, want 4: %v", cl.id, n, cl.owned)
		}
		before[cl.id] = setOf(cl.owned)
	}
	checkDisjoint(t, cls...)

	fourth := &client{names: []string{"orders"}}
	h.mustBeat("g", fourth)
	all := append(slices.Clone(cls), fourth)
	// Until stable: the first three never lose a partition they keep in
	// the end, and nobody holds a partition another still holds.
	for round := 0; ; round++ {
		h.mustBeat("g", all...)
		checkDisjoint(t, all...)
		if d, _ := h.c.DescribeGroup("g"); d.State == StateStable {
			break
		}
		if round > 10 {
			t.Fatal("not stable after 10 rounds")
		}
	}
	moved := 0
	for _, cl := range cls {
		after := setOf(cl.owned)
		if n := len(after); n != 3 {
			t.Errorf("member %s has %d partitions, want 3", cl.id, n)
		}
		if !subset(after, before[cl.id]) {
			t.Errorf("member %s got partitions it did not have: %v → %v", cl.id, before[cl.id].list(), cl.owned)
		}
		moved += len(before[cl.id]) - len(after)
	}
	if moved > 3 || count(fourth.owned) != 3 {
		t.Errorf("%d partitions moved, the 4th has %v", moved, fourth.owned)
	}
}

// A member that only heartbeats (and is not asked to give anything up)
// keeps its epoch moving and its partitions, round after round.
func TestUnaffectedMemberNotDisturbed(t *testing.T) {
	h := newHarness(t, map[string]int32{"a": 2, "b": 2})
	x := &client{names: []string{"a"}}
	h.settle("g", x)
	held := setOf(x.owned)
	y := &client{names: []string{"b"}}
	h.settle("g", x, y)
	if !setOf(x.owned).equal(held) {
		t.Fatalf("x's partitions changed from %v to %v", held.list(), x.owned)
	}
	if count(y.owned) != 2 {
		t.Fatalf("y has %v", y.owned)
	}
}

// A join sent again after its answer was lost, with the member's own id
// (KIP-1082, as the Go client sends it), is that member starting over:
// what the lost answer gave it is freed, the group has one member for it,
// and a member joining later gets its share. (With an id the coordinator
// issued, the join sent again was a second member, and the first held
// its partitions until its session timeout.)
func TestJoinSentAgainIsTheSameMember(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 4})
	join := Heartbeat{GroupID: "g", MemberID: "own-id", SubscribedTopicNames: []string{"t"}, OwnedPartitions: []TopicPartitions{}}
	res, recs, err := h.c.Heartbeat(h.now, join)
	if err != nil || count(res.Assignment) != 4 {
		t.Fatalf("first join: %v, %v", res, err)
	}
	h.log = append(h.log, recs...) // its answer is lost
	a := &client{id: "own-id", names: []string{"t"}}
	b := &client{names: []string{"t"}}
	h.mustBeat("g", a)
	h.settle("g", a, b)
	if d, _ := h.c.DescribeGroup("g"); len(d.Members) != 2 {
		t.Fatalf("members %+v: want a and b", d.Members)
	}
	if count(a.owned) != 2 || count(b.owned) != 2 {
		t.Fatalf("a owns %v, b %v: want 2 each", a.owned, b.owned)
	}
	checkDisjoint(t, a, b)
}

func TestRevocationBeforeReassignment(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 2})
	a := &client{names: []string{"t"}}
	h.settle("g", a)
	b := &client{names: []string{"t"}}
	res, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicNames: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	// b joins: its target has a partition a still holds, so it gets
	// nothing yet, and is told to come back soon.
	b.id, b.epoch, b.owned = res.MemberID, res.MemberEpoch, res.Assignment
	if count(b.owned) != 0 || res.HeartbeatInterval != DefaultReconcileInterval {
		t.Fatalf("b got %v while a holds it, heartbeat interval %v", b.owned, res.HeartbeatInterval)
	}
	// a is told to give one up but has not reported it yet.
	h.mustBeat("g", a)
	if count(a.owned) != 1 {
		t.Fatalf("a holds %v after the revocation", a.owned)
	}
	d, _ := h.c.DescribeGroup("g")
	if d.State != StateReconciling {
		t.Fatalf("state %s", d.State)
	}
	h.mustBeat("g", b) // still unreleased: a has not reported
	if count(b.owned) != 0 {
		t.Fatalf("b got %v before a reported the revocation", b.owned)
	}
	h.mustBeat("g", a, b) // a reports; then b gets it
	if count(b.owned) != 1 {
		t.Fatalf("b has %v", b.owned)
	}
	checkDisjoint(t, a, b)
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 6})
	a, b := &client{names: []string{"t"}}, &client{names: []string{"t"}}
	h.settle("g", a, b)
	for range 9 { // b stops; a heartbeats every 5 s for 45 s
		h.tick(5 * time.Second)
		h.mustBeat("g", a)
	}
	if d, _ := h.c.DescribeGroup("g"); len(d.Members) != 2 {
		t.Fatalf("b removed before its session timeout: %d members", len(d.Members))
	}
	h.tick(5 * time.Second)
	h.settle("g", a)
	d, _ := h.c.DescribeGroup("g")
	if len(d.Members) != 1 || count(a.owned) != 6 {
		t.Fatalf("members %d, a has %v", len(d.Members), a.owned)
	}
	if err := h.beat("g", b); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("removed member's heartbeat: %v", err)
	}
}

func TestRebalanceTimeoutFencesMemberThatDoesNotRevoke(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 2})
	a := &client{names: []string{"t"}}
	h.settle("g", a)
	b := &client{names: []string{"t"}}
	h.mustBeat("g", b)
	// a is asked to revoke but keeps reporting what it had.
	stuck := a.owned
	h.mustBeat("g", a)
	a.owned = stuck
	for range 70 { // 5 min 50 s of heartbeats that never revoke
		h.tick(5 * time.Second)
		if err := h.beat("g", a); err != nil {
			if !errors.Is(err, ErrUnknownMemberID) {
				t.Fatal(err)
			}
			break
		}
		a.owned = stuck
		h.mustBeat("g", b)
	}
	h.settle("g", b)
	if count(b.owned) != 2 {
		t.Fatalf("b has %v after a was fenced", b.owned)
	}
}

func TestStaticMemberRestartKeepsAssignment(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 4})
	a := &client{names: []string{"t"}, inst: "host-a"}
	b := &client{names: []string{"t"}, inst: "host-b"}
	h.settle("g", a, b)
	d0, _ := h.c.DescribeGroup("g")
	held := setOf(a.owned)
	// a restarts: a new process with the same instance id and no member id.
	h.tick(20 * time.Second)
	a2 := &client{names: []string{"t"}, inst: "host-a"}
	h.mustBeat("g", a2)
	if !setOf(a2.owned).equal(held) || a2.epoch != a.epoch {
		t.Fatalf("restarted static member got %v at epoch %d, had %v at %d", a2.owned, a2.epoch, held.list(), a.epoch)
	}
	d1, _ := h.c.DescribeGroup("g")
	if d1.Epoch != d0.Epoch {
		t.Fatalf("group epoch moved %d → %d on a static restart", d0.Epoch, d1.Epoch)
	}
	if err := h.beat("g", a); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("the old instance's member id: %v", err)
	}
	// A static member that leaves with -2 keeps its partitions until its
	// session ends.
	res, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: a2.id, MemberEpoch: EpochStaticLeave})
	if err != nil || res.MemberEpoch != EpochStaticLeave {
		t.Fatal(res, err)
	}
	h.tick(10 * time.Second)
	h.mustBeat("g", b)
	if count(b.owned) != 2 {
		t.Fatalf("b took partitions of a static member still in its session: %v", b.owned)
	}
	for range 8 {
		h.tick(5 * time.Second)
		h.mustBeat("g", b)
	}
	h.settle("g", b)
	if count(b.owned) != 4 {
		t.Fatalf("b has %v after the static member's session ended", b.owned)
	}
}

func TestHeartbeatRefusals(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 1})
	a := &client{names: []string{"t"}}
	h.settle("g", a)
	bad := "orders[("
	for _, tc := range []struct {
		name string
		req  Heartbeat
		want error
	}{
		{"bad regex", Heartbeat{GroupID: "g", SubscribedTopicRegex: &bad}, ErrInvalidRegularExpression},
		{"never issued", Heartbeat{GroupID: "g", MemberID: "nope", MemberEpoch: 3}, ErrUnknownMemberID},
		{"never issued leave", Heartbeat{GroupID: "g", MemberID: "nope", MemberEpoch: EpochLeave}, ErrUnknownMemberID},
		{"empty subscription", Heartbeat{GroupID: "g", SubscribedTopicNames: []string{}}, ErrInvalidRequest},
		{"fenced epoch", Heartbeat{GroupID: "g", MemberID: a.id, MemberEpoch: a.epoch + 5}, ErrFencedMemberEpoch},
		{"no group id", Heartbeat{SubscribedTopicNames: []string{"t"}}, ErrInvalidGroupID},
		{"no subscription", Heartbeat{GroupID: "g"}, ErrInvalidRequest},
		{"assignor", Heartbeat{GroupID: "g", SubscribedTopicNames: []string{"t"}, ServerAssignor: "sticky"}, ErrUnsupportedAssignor},
		{"epoch", Heartbeat{GroupID: "g", MemberID: a.id, MemberEpoch: -7}, ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, recs, err := h.c.Heartbeat(h.now, tc.req)
			if !errors.Is(err, tc.want) || recs != nil {
				t.Fatalf("got %v (%d records), want %v", err, len(recs), tc.want)
			}
		})
	}
}

func TestRegexSubscription(t *testing.T) {
	h := newHarness(t, map[string]int32{"orders.eu": 2, "orders.us": 2, "payments": 2, "__consumer_offsets": 3})
	re := "orders\\..*"
	res, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicRegex: &re})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(res.Assignment); got != 4 {
		t.Fatalf("assignment %v", res.Assignment)
	}
	// A new matching topic bumps the group epoch and is assigned.
	h.c.SetTopics(map[string]int32{"orders.eu": 2, "orders.us": 2, "orders.jp": 1, "payments": 2})
	res2, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res.MemberID, MemberEpoch: res.MemberEpoch})
	if err != nil || res2.MemberEpoch <= res.MemberEpoch || count(res2.Assignment) != 5 {
		t.Fatalf("after a new topic: %+v %v", res2, err)
	}
}

func TestRangeAssignor(t *testing.T) {
	got := assignRange([]assignMember{{id: "a", topics: map[string]bool{"t": true}}, {id: "b", topics: map[string]bool{"t": true}}, {id: "c", topics: map[string]bool{"t": true, "u": true}}},
		map[string]int32{"t": 7, "u": 2})
	want := map[string][]TopicPartitions{
		"a": {{"t", []int32{0, 1, 2}}},
		"b": {{"t", []int32{3, 4}}},
		"c": {{"t", []int32{5, 6}}, {"u", []int32{0, 1}}},
	}
	for id, w := range want {
		if g := got[id].list(); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: got %v want %v", id, g, w)
		}
	}
}

// The uniform assignor under random membership changes: every subscribed
// partition assigned once, to a subscriber, balanced within one for
// identical subscriptions, and each change moves no more than balance
// needs.
func TestUniformAssignorRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	topics := map[string]int32{"a": 7, "b": 13}
	var members []assignMember
	prev := map[string]partSet{}
	for step := range 300 {
		if len(members) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(members))
			members = slices.Delete(members, i, i+1)
		} else {
			members = append(members, assignMember{id: fmt.Sprintf("m%03d", step), topics: map[string]bool{"a": true, "b": true}})
		}
		slices.SortFunc(members, func(x, y assignMember) int {
			if x.id < y.id {
				return -1
			}
			return 1
		})
		for i := range members {
			members[i].prev = prev[members[i].id]
		}
		out := assignUniform(members, topics)
		seen, lo, hi := partSet{}, 1<<30, 0
		kept := 0
		for _, m := range members {
			s := out[m.id]
			lo, hi = min(lo, len(s)), max(hi, len(s))
			for k := range s {
				if _, dup := seen[k]; dup {
					t.Fatalf("step %d: %v twice", step, k)
				}
				seen[k] = struct{}{}
				if _, ok := m.prev[k]; ok {
					kept++
				}
			}
		}
		if len(members) > 0 && (len(seen) != 20 || hi-lo > 1) {
			t.Fatalf("step %d: %d partitions assigned, loads %d..%d", step, len(seen), lo, hi)
		}
		// What could be kept: each member keeps up to its new quota.
		canKeep := 0
		for _, m := range members {
			canKeep += min(len(m.prev), len(out[m.id]))
		}
		if kept < canKeep-len(members) {
			t.Fatalf("step %d: kept %d of a possible %d", step, kept, canKeep)
		}
		prev = out
	}
}

// Random joins, leaves, crashes and heartbeats: no partition is ever held
// by two members, and once everyone heartbeats the group settles with
// every partition held.
func TestReconciliationRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	h := newHarness(t, map[string]int32{"t": 10, "u": 5})
	var cls []*client
	for step := range 400 {
		switch r := rng.IntN(10); {
		case r == 0 || len(cls) == 0:
			cls = append(cls, &client{names: []string{"t", "u"}})
			h.mustBeat("g", cls[len(cls)-1])
		case r == 1 && len(cls) > 1:
			i := rng.IntN(len(cls))
			_, recs, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: cls[i].id, MemberEpoch: EpochLeave})
			if err != nil {
				t.Fatal(err)
			}
			h.log = append(h.log, recs...)
			cls = slices.Delete(cls, i, i+1)
		case r == 2:
			h.tick(time.Second)
		default:
			cl := cls[rng.IntN(len(cls))]
			if err := h.beat("g", cl); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		checkDisjoint(t, cls...)
	}
	h.settle("g", cls...)
	total := 0
	for _, cl := range cls {
		total += count(cl.owned)
	}
	if total != 15 {
		t.Fatalf("%d partitions held after settling", total)
	}
	// The log replays to the same state.
	r, _ := New(Config{})
	r.SetTopics(h.c.topics)
	for _, rec := range h.log {
		if err := r.Replay(h.now, rec.Key, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := h.c.DescribeGroup("g")
	got, _ := r.DescribeGroup("g")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replayed:\n%+v\nwant\n%+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // in the error; "" for valid
	}{
		{Config{}, ""},
		{Config{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond}, ""},
		{Config{SessionTimeout: time.Second}, "HeartbeatInterval 1s must be below SessionTimeout 1s"},
		{Config{RebalanceTimeout: -1}, "RebalanceTimeout"},
		{Config{MaxMetadataBytes: 1 << 16}, "MaxMetadataBytes"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if got := (Config{HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: time.Second}).WithDefaults().ReconcileInterval; got != 100*time.Millisecond {
		t.Errorf("ReconcileInterval %v above the heartbeat interval", got)
	}
}

// A member asking for the range assignor gets it for the group: two
// members over two topics of 3 partitions get, per topic, 2 then 1
// contiguous partitions in member id order (uniform would give 3 and 3).
func TestRangeAssignorThroughHeartbeat(t *testing.T) {
	h := newHarness(t, map[string]int32{"t": 3, "u": 3})
	a, b := &client{names: []string{"t", "u"}}, &client{names: []string{"t", "u"}}
	res, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicNames: []string{"t", "u"}, ServerAssignor: AssignorRange})
	if err != nil {
		t.Fatal(err)
	}
	a.id, a.epoch, a.owned = res.MemberID, res.MemberEpoch, res.Assignment
	h.settle("g", a, b)
	if fmt.Sprint(a.owned) != "[{t [0 1]} {u [0 1]}]" || fmt.Sprint(b.owned) != "[{t [2]} {u [2]}]" {
		t.Fatalf("range: %s has %v, %s has %v", a.id, a.owned, b.id, b.owned)
	}
	if d, _ := h.c.DescribeGroup("g"); d.Assignor != AssignorRange {
		t.Fatalf("described assignor %q", d.Assignor)
	}
}

// A regex member is given only the topics its RegexFilter allows (the
// broker's describe ACLs); a heartbeat whose filter allows more moves the
// group to a new epoch and assigns them, one that allows less takes them
// away; names the member subscribes to by name are not filtered (the
// broker checked them before the heartbeat).
func TestRegexSubscriptionFiltered(t *testing.T) {
	h := newHarness(t, map[string]int32{"orders.eu": 2, "orders.us": 2, "orders.jp": 1, "payments": 2})
	re := "orders\\..*"
	allow := map[string]bool{"orders.eu": true}
	filter := func(topic string) bool { return allow[topic] }
	res, recs, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicRegex: &re, RegexFilter: filter})
	if err != nil {
		t.Fatal(err)
	}
	h.log = append(h.log, recs...)
	if got := topicsOf(res.Assignment); !slices.Equal(got, []string{"orders.eu"}) {
		t.Fatalf("filtered to orders.eu, assigned %v", res.Assignment)
	}

	// More allowed (an ACL added): the next heartbeat assigns it.
	allow["orders.jp"] = true
	res2, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res.MemberID, MemberEpoch: res.MemberEpoch,
		OwnedPartitions: res.Assignment, RegexFilter: filter})
	if err != nil || res2.MemberEpoch <= res.MemberEpoch || !slices.Equal(topicsOf(res2.Assignment), []string{"orders.eu", "orders.jp"}) {
		t.Fatalf("after allowing orders.jp: %+v %v", res2, err)
	}

	// A second member by name gets payments, which the regex member's
	// filter does not allow and its regex does not match anyway; and
	// orders.us, named, though the regex member may not see it.
	res3, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicNames: []string{"orders.us"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		res3, _, err = h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res3.MemberID, MemberEpoch: res3.MemberEpoch, OwnedPartitions: res3.Assignment})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(topicsOf(res3.Assignment), []string{"orders.us"}) {
		t.Fatalf("the named member holds %v", res3.Assignment)
	}

	// Less allowed (an ACL removed): taken away at the next heartbeat.
	delete(allow, "orders.eu")
	res4, _, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res2.MemberID, MemberEpoch: res2.MemberEpoch,
		OwnedPartitions: res2.Assignment, RegexFilter: filter})
	if err != nil {
		t.Fatal(err)
	}
	res4, _, err = h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res4.MemberID, MemberEpoch: res4.MemberEpoch,
		OwnedPartitions: []TopicPartitions{{Topic: "orders.jp", Partitions: []int32{0}}}, RegexFilter: filter})
	if err != nil || !slices.Equal(topicsOf(res4.Assignment), []string{"orders.jp"}) {
		t.Fatalf("after removing orders.eu: %+v %v", res4, err)
	}
}

// With RegexNeedsFilter, a coordinator that loaded a regex member from
// the log gives it nothing by its regex until a heartbeat brings the
// filter: it never assigns past the ACLs between a failover and the
// member's next heartbeat.
func TestRegexNeedsFilterAfterReplay(t *testing.T) {
	h := newHarness(t, map[string]int32{"orders.eu": 2, "orders.us": 2})
	re := "orders\\..*"
	filter := func(topic string) bool { return topic == "orders.eu" }
	res, recs, err := h.c.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicRegex: &re, RegexFilter: filter})
	if err != nil {
		t.Fatal(err)
	}
	h.log = append(h.log, recs...)

	r, err := New(Config{RegexNeedsFilter: true})
	if err != nil {
		t.Fatal(err)
	}
	r.SetTopics(h.c.topics)
	for _, rec := range h.log {
		if err := r.Replay(h.now, rec.Key, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	// Another member joins first, by name, before the regex member's
	// heartbeat: the regex member's unfiltered matches are given to no one.
	other, _, err := r.Heartbeat(h.now, Heartbeat{GroupID: "g", SubscribedTopicNames: []string{"orders.eu"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := r.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: res.MemberID, MemberEpoch: res.MemberEpoch,
		OwnedPartitions: res.Assignment})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := r.DescribeGroup("g")
	for _, dm := range d.Members {
		if slices.Contains(topicsOf(dm.TargetAssignment), "orders.us") {
			t.Fatalf("orders.us in a target without a filter: %+v", d)
		}
	}
	// With the filter, the regex member is given orders.eu again (shared
	// with the named member) and never orders.us.
	m := got
	for range 6 {
		m, _, err = r.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch, OwnedPartitions: owned(m.Assignment), RegexFilter: filter})
		if err != nil {
			t.Fatal(err)
		}
		other, _, err = r.Heartbeat(h.now, Heartbeat{GroupID: "g", MemberID: other.MemberID, MemberEpoch: other.MemberEpoch, OwnedPartitions: owned(other.Assignment)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if d, _ = r.DescribeGroup("g"); d.State != StateStable {
		t.Fatalf("not stable: %+v", d)
	}
	if count(m.Assignment)+count(other.Assignment) != 2 || slices.Contains(topicsOf(m.Assignment), "orders.us") {
		t.Fatalf("regex member %v, other %v", m.Assignment, other.Assignment)
	}
}

// owned is what a member reports holding: its assignment, none as empty.
func owned(tps []TopicPartitions) []TopicPartitions {
	if tps == nil {
		return []TopicPartitions{}
	}
	return tps
}

func topicsOf(tps []TopicPartitions) []string {
	var out []string
	for _, t := range tps {
		if len(t.Partitions) > 0 {
			out = append(out, t.Topic)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
