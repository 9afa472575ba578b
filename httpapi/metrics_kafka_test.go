package httpapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicemq/sluice/broker"
)

// TestCollectFetchSessions: the fetch-session series are read from the
// listener's stats at each scrape, one collector per Metrics. (The kafka
// package's TestFetchSessionMetrics drives a real listener.)
func TestCollectFetchSessions(t *testing.T) {
	m := NewMetrics(LevelInfo)
	st := broker.FetchSessionStats{Slots: 10, Sessions: 3, CacheFull: 2, NotFound: 4, BadEpoch: 5}
	if err := m.CollectFetchSessions(func() broker.FetchSessionStats { return st }); err != nil {
		t.Fatal(err)
	}
	if err := m.CollectFetchSessions(func() broker.FetchSessionStats { return st }); !errors.Is(err, errFetchSessions) {
		t.Fatalf("second CollectFetchSessions: %v, want errFetchSessions", err)
	}
	st.Sessions = 4 // read at the scrape, not at the registration
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP sluice_kafka_fetch_sessions Fetch sessions the Kafka listener holds now.
# TYPE sluice_kafka_fetch_sessions gauge
sluice_kafka_fetch_sessions 4
# HELP sluice_kafka_fetch_session_errors_total `+descHelp(t, m, "sluice_kafka_fetch_session_errors_total")+`
# TYPE sluice_kafka_fetch_session_errors_total counter
sluice_kafka_fetch_session_errors_total{code="FETCH_SESSION_ID_NOT_FOUND"} 4
sluice_kafka_fetch_session_errors_total{code="INVALID_FETCH_SESSION_EPOCH"} 5
`), "sluice_kafka_fetch_sessions", "sluice_kafka_fetch_session_errors_total"); err != nil {
		t.Fatal(err)
	}
}

// descHelp is the help text of family name in m's registry.
func descHelp(t *testing.T, m *Metrics, name string) string {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetHelp()
		}
	}
	t.Fatalf("no family %s", name)
	return ""
}
