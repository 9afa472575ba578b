package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// The command-version gate (finalized feature level), as Kafka's
// metadata.version (KIP-584, KIP-778). A rolling upgrade runs old and new
// builds side by side; a command written in a version an old replica
// cannot decode is refused there (an error result) and the replicas'
// metadata diverges. So:
//
//   - Every node supports a range of command versions, [MinCommandLevel,
//     its newest] (NodeConfig.MaxCommandVersion lowers the newest, for
//     tests standing in for an older build), and advertises it in its
//     serf tags (tagCommandVersions), beside its addresses.
//   - The metadata holds the finalized level (Metadata.CommandLevel):
//     every command is written at that version, in that version's layout
//     (appendCommandAt; since version 3 a version only added kinds, so a
//     layout is the version byte and the kinds it knows), and every
//     snapshot in the layout of that version (encodeSnapshot). A command
//     kind newer than the level is refused before it is proposed, with
//     ErrCommandVersion naming the level it needs and the nodes that lack
//     it.
//   - The level is raised by the operator (Node.FinalizeCommandVersion,
//     `sluice cluster features upgrade`), only when every Raft member
//     (voters and non-voters: each applies the log) and every alive
//     registered broker advertises a range that includes it; never
//     lowered. It is never raised automatically: a broker of an older
//     build that is stopped, or about to join, cannot say it would be
//     left behind, and a raise cannot be undone.
//   - A node whose newest version is below the level refuses to register
//     itself (the leader checks its newest against the level first,
//     opCheckLevel), and the leader never registers on its behalf a
//     member whose tags exclude the level.
//
// Where the level comes from, deterministically on every replica:
// FinalizeCommandVersion sets it; any applied command written at a
// version above it raises it to that version (the level "its log shows":
// builds before the gate wrote every command at their newest version); a
// snapshot restores it as its layout version (written at the level). The
// empty metadata of a fresh cluster has level 0, and the first command
// is written at the newest version of the node that leads, which becomes
// the level: a cluster bootstrapped fresh starts at the newest level.
//
// FinalizeCommandVersion is the one kind outside the level: every build
// with the gate decodes it at any version, so it is written at the level
// in force (nodes that cannot yet read the new level read the raise). A
// build before the gate refuses it as an unknown kind (an error result,
// nothing changed): it has no level to keep.

// MinCommandLevel is the lowest command version this build writes (and so
// the lowest level it runs at): the layouts of versions 1 and 2 lack
// fields every later command carries.
const MinCommandLevel = commandVersion3

// FinalizeCommandVersion raises Metadata.CommandLevel to Level. Refused
// when Level is below the level in force (no downgrade); the same level
// changes nothing. The leader checks, before proposing it, that every
// node supports Level (Node.FinalizeCommandVersion).
type FinalizeCommandVersion struct {
	Level uint8
}

// Kind implements Command.
func (FinalizeCommandVersion) Kind() CommandKind { return KindFinalizeCommandVersion }

func (c FinalizeCommandVersion) appendBody(b []byte) []byte { return append(b, c.Level) }

// kindVersions is the command version that introduced each kind (the
// decoder's checks say the same); FinalizeCommandVersion is in every one.
var kindVersions = map[CommandKind]uint8{
	KindRegisterBroker: 1, KindFenceBroker: 1, KindCreateTopic: 1, KindDeleteTopic: 1,
	KindAlterConfigs: 1, KindAlterPartition: 1, KindReportHighWatermarks: 2,
	KindReportOfflineReplicas: 4, KindReportOnlineReplicas: 4, KindAllocateProducerIDs: 5,
	KindUpsertCredential: 6, KindDeleteCredential: 6, KindCreateACLs: 6, KindDeleteACLs: 6,
	KindCreatePartitions: 7, KindAlterReassignment: 7, KindAlterClusterConfigs: 7,
	KindAlterGroupConfigs: 8, KindUnregisterBroker: 9, KindFinalizeCommandVersion: 1,
}

// KindVersion returns the command version that introduced kind k.
func KindVersion(k CommandKind) uint8 { return kindVersions[k] }

// clusterConfigVersions is the command version that introduced each
// cluster config key newer than AlterClusterConfigs itself: a build
// before it refuses the key when it applies the command, so the replicas
// would disagree on the command's outcome below that level.
var clusterConfigVersions = map[string]uint8{ConfigBrokersDraining: CommandVersion}

// commandNeeds is the command version c needs, and what needs it when
// that is more than its kind (for an error message): its kind's version,
// or a newer cluster config key's.
func commandNeeds(c Command) (uint8, string) {
	need, what := KindVersion(c.Kind()), ""
	if ac, ok := c.(AlterClusterConfigs); ok {
		check := func(key string) {
			if v := clusterConfigVersions[key]; v > need {
				need, what = v, "cluster config "+key
			}
		}
		for key := range ac.Set {
			check(key)
		}
		for _, key := range ac.Remove {
			check(key)
		}
	}
	return need, what
}

// VersionRange is the range of command versions a node supports.
type VersionRange struct {
	Min uint8 `json:"min"`
	Max uint8 `json:"max"`
}

// Includes says whether level is in r.
func (r VersionRange) Includes(level uint8) bool { return r.Min <= level && level <= r.Max }

func (r VersionRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ParseVersionRange parses "min-max", as String writes it.
func ParseVersionRange(s string) (VersionRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 8)
	b, err2 := strconv.ParseUint(hi, 10, 8)
	if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
		return VersionRange{}, fmt.Errorf("command version range %q: want min-max", s)
	}
	return VersionRange{Min: uint8(a), Max: uint8(b)}, nil
}

// errLevel is the refusal of a command whose kind, or content (what),
// is newer than level.
type errLevel struct {
	kind  CommandKind
	what  string
	need  uint8
	level uint8
}

// appendCommandAt appends c's encoding at command version level: the
// version byte, the kind, the body (one layout since version 3). A kind
// newer than level is refused (errLevel), as is a level this build does
// not write.
func appendCommandAt(dst []byte, c Command, level uint8) ([]byte, error) {
	if level < MinCommandLevel || level > CommandVersion {
		return nil, fmt.Errorf("%w: %v at command version %d: this build writes %d to %d", ErrCommandVersion, c.Kind(), level, MinCommandLevel, CommandVersion)
	}
	if need, what := commandNeeds(c); need > level {
		return nil, errLevel{kind: c.Kind(), what: what, need: need, level: level}
	}
	dst = append(dst, level, byte(c.Kind()))
	return c.appendBody(dst), nil
}

func (e errLevel) Error() string {
	what := e.kind.String()
	if e.what != "" {
		what += " of " + e.what
	}
	return fmt.Sprintf("%s needs command version %d; the cluster's finalized command version is %d", what, e.need, e.level)
}

func (e errLevel) Unwrap() error { return ErrCommandVersion }

func applyFinalizeCommandVersion(m *Metadata, c FinalizeCommandVersion) (*Metadata, error) {
	switch {
	case c.Level < MinCommandLevel:
		return nil, fmt.Errorf("%w: level %d below %d", ErrCommandVersion, c.Level, MinCommandLevel)
	case c.Level < m.CommandLevel:
		return nil, fmt.Errorf("%w: the finalized command version is %d and is never lowered (to %d)", ErrCommandVersion, m.CommandLevel, c.Level)
	case c.Level == m.CommandLevel:
		return m, nil
	}
	// Not edit: Metadata.Version counts changes every replica applies,
	// and a build before the gate refuses this command.
	n := *m
	n.CommandLevel = c.Level
	return &n, nil
}

// raiseLevel is the level rule for a command applied at version v: the
// log shows v, so the level is at least v.
func raiseLevel(m *Metadata, v uint8) *Metadata {
	if v <= m.CommandLevel {
		return m
	}
	n := *m
	n.CommandLevel = v
	return &n
}

// Features is the command-version gate as one node sees it.
type Features struct {
	// Finalized is the level commands are written at (0: none yet, a
	// fresh cluster).
	Finalized uint8 `json:"finalized"`
	// Nodes are the Raft members and registered brokers, by id.
	Nodes []NodeVersions `json:"nodes"`
}

// NodeVersions is one node's supported command versions.
type NodeVersions struct {
	ID int32 `json:"id"`
	// Known is false when the node's range is not in gossip (it is down,
	// or runs a build before the gate).
	Known     bool         `json:"known"`
	Supported VersionRange `json:"supported"`
	Voter     bool         `json:"voter"`
	// RaftMember: it applies the metadata log. Registered: it is a
	// broker in the registry (Alive says whether it is up).
	RaftMember bool `json:"raft_member"`
	Registered bool `json:"registered"`
	Alive      bool `json:"alive"`
}

// Lacks says whether the node stands in the way of level: a Raft member
// or an alive broker whose range is unknown or excludes it.
func (v NodeVersions) Lacks(level uint8) bool {
	if !v.RaftMember && !v.Alive {
		return false
	}
	return !v.Known || !v.Supported.Includes(level)
}

// SupportedCommandVersions is the range this node supports.
func (n *Node) SupportedCommandVersions() VersionRange {
	return VersionRange{Min: MinCommandLevel, Max: n.cfg.MaxCommandVersion}
}

// setVersionSource gives the node the supported ranges gossip carries
// (Membership does, when it starts).
func (n *Node) setVersionSource(f func() map[int32]VersionRange) { n.versions.Store(&f) }

// Features returns the gate as this node's metadata and gossip show it.
func (n *Node) Features() (Features, error) {
	m := n.Metadata()
	f := Features{Finalized: m.CommandLevel}
	servers, err := n.Servers()
	if err != nil {
		return f, err
	}
	ranges := map[int32]VersionRange{n.self.ID: n.SupportedCommandVersions()}
	if src := n.versions.Load(); src != nil {
		for id, r := range (*src)() {
			if id != n.self.ID {
				ranges[id] = r
			}
		}
	}
	byID := map[int32]*NodeVersions{}
	get := func(id int32) *NodeVersions {
		if v := byID[id]; v != nil {
			return v
		}
		v := &NodeVersions{ID: id}
		v.Supported, v.Known = ranges[id]
		byID[id] = v
		return v
	}
	for _, s := range servers {
		v := get(s.ID)
		v.RaftMember, v.Voter = true, s.Voter
	}
	for id, b := range m.Brokers {
		v := get(id)
		v.Registered, v.Alive = true, b.State == BrokerAlive
	}
	for _, v := range byID {
		f.Nodes = append(f.Nodes, *v)
	}
	slices.SortFunc(f.Nodes, func(a, b NodeVersions) int { return int(a.ID) - int(b.ID) })
	return f, nil
}

// checkOwnLevel refuses (ErrCommandVersion) when the finalized level, as
// this node's metadata or the leader's shows it, is above this node's
// newest version. A leader of a build before the gate does not know the
// check (ErrCorrupt): it has no level, so there is nothing to refuse.
func (n *Node) checkOwnLevel(ctx context.Context) error {
	if _, err := n.level(); err != nil {
		return err
	}
	_, _, err := n.write(ctx, request{op: opCheckLevel, broker: n.self.ID, level: n.cfg.MaxCommandVersion})
	if errors.Is(err, ErrCorrupt) {
		return nil
	}
	return err
}

// checkLevel runs opCheckLevel on the leader: broker's newest version is
// max.
func (n *Node) checkLevel(ctx context.Context, broker int32, max uint8) error {
	if err := n.barrier(ctx); err != nil {
		return fmt.Errorf("check command version: %w", err)
	}
	if l := n.Metadata().CommandLevel; l > max {
		return fmt.Errorf("%w: broker %d supports command versions %v; the cluster's finalized command version is %d: run a build that supports it",
			ErrCommandVersion, broker, VersionRange{Min: MinCommandLevel, Max: max}, l)
	}
	return nil
}

// level is the command version this node writes at: the finalized level,
// or its own newest on a fresh cluster. A node whose newest is below the
// level writes nothing (ErrCommandVersion).
func (n *Node) level() (uint8, error) {
	l := n.Metadata().CommandLevel
	if l == 0 {
		return n.cfg.MaxCommandVersion, nil
	}
	if l > n.cfg.MaxCommandVersion {
		return 0, fmt.Errorf("%w: broker %d supports command versions %v; the cluster's finalized command version is %d: run a build that supports it",
			ErrCommandVersion, n.self.ID, n.SupportedCommandVersions(), l)
	}
	return l, nil
}

// encode is c's encoding at this node's level; a refusal names the nodes
// that lack the version c needs.
func (n *Node) encode(dst []byte, c Command) ([]byte, error) {
	level, err := n.level()
	if err != nil {
		return nil, err
	}
	b, err := appendCommandAt(dst, c, level)
	return b, n.explain(err)
}

// explain adds to a refusal of a command newer than the level the nodes
// that lack the version it needs.
func (n *Node) explain(err error) error {
	var el errLevel
	if errors.As(err, &el) {
		return fmt.Errorf("%w (%s)", err, n.lackingNote(el.need))
	}
	return err
}

// appendRequest is r's encoding at this node's level, with the refusal
// of encode; a request that carries no command does not depend on it.
func (n *Node) appendRequest(r request) ([]byte, error) {
	if r.op != opCommand && r.op != opAlterPartitions {
		return appendRequestAt(nil, r, CommandVersion)
	}
	level, err := n.level()
	if err != nil {
		return nil, err
	}
	b, err := appendRequestAt(nil, r, level)
	return b, n.explain(err)
}

// lackingNote says which nodes lack level, for an error message.
func (n *Node) lackingNote(level uint8) string {
	f, err := n.Features()
	if err != nil {
		return fmt.Sprintf("nodes supporting it unknown: %v", err)
	}
	lack := lacking(f, level)
	if len(lack) == 0 {
		return fmt.Sprintf("every node supports it: raise it with sluice cluster features upgrade --level %d", level)
	}
	return "lacking it: " + strings.Join(lack, ", ")
}

// lacking names the nodes of f that stand in the way of level.
func lacking(f Features, level uint8) []string {
	var out []string
	for _, v := range f.Nodes {
		if !v.Lacks(level) {
			continue
		}
		if v.Known {
			out = append(out, fmt.Sprintf("broker %d (supports %v)", v.ID, v.Supported))
		} else {
			out = append(out, fmt.Sprintf("broker %d (supported versions unknown: down, or a build before the gate)", v.ID))
		}
	}
	return out
}

// FinalizeCommandVersion raises the cluster's finalized command version to
// level (0: this node's newest, not the leader's), through the leader,
// which refuses it (ErrCommandVersion, nothing changed) when it is below
// the level in force, or when a Raft member or alive broker (the leader
// included) does not support it. The level in force already: nothing to
// do.
func (n *Node) FinalizeCommandVersion(ctx context.Context, level uint8) error {
	if level == 0 {
		level = n.cfg.MaxCommandVersion
	}
	_, _, err := n.write(ctx, request{op: opFinalizeLevel, level: level})
	return err
}

// finalizeLevel runs FinalizeCommandVersion on the leader.
func (n *Node) finalizeLevel(ctx context.Context, level uint8) (Result, error) {
	if err := n.barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("finalize command version: %w", err)
	}
	cur := n.Metadata().CommandLevel
	switch {
	case level < cur:
		return Result{}, fmt.Errorf("%w: the finalized command version is %d and is never lowered (to %d)", ErrCommandVersion, cur, level)
	case level == cur:
		return Result{Index: n.fsm.AppliedIndex()}, nil
	case level < MinCommandLevel || level > CommandVersion: // 0 too
		return Result{}, fmt.Errorf("%w: command version %d: this build knows %d to %d", ErrCommandVersion, level, MinCommandLevel, CommandVersion)
	}
	f, err := n.Features()
	if err != nil {
		return Result{}, fmt.Errorf("finalize command version: %w", err)
	}
	// The leader is among the nodes (its own range).
	if lack := lacking(f, level); len(lack) > 0 {
		return Result{}, fmt.Errorf("%w: command version %d not supported by %s: upgrade (or remove) them first",
			ErrCommandVersion, level, strings.Join(lack, ", "))
	}
	res, err := n.apply(ctx, FinalizeCommandVersion{Level: level})
	if err == nil {
		n.log.Info("command version finalized", zap.Uint8("from", cur), zap.Uint8("to", level))
	}
	return res, err
}
