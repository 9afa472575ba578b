package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
)

func TestRender(t *testing.T) {
	big := strings.Repeat("a", maxShown+1)
	for _, tc := range []struct {
		in         []byte
		format     string
		text       string
		truncated  bool
		wholeBytes bool
	}{
		{nil, "null", "", false, false},
		{[]byte{}, "text", "", false, true},
		{[]byte(`{"a":[1,2]}`), "json", "{\n  \"a\": [\n    1,\n    2\n  ]\n}", false, true},
		{[]byte(` [true] `), "json", "[\n  true\n]", false, true},
		{[]byte(`{"a":`), "text", `{"a":`, false, true}, // not JSON: shown as it is
		{[]byte("42"), "text", "42", false, true},       // JSON, but a scalar reads fine as text
		{[]byte("line 1\nline 2\tend"), "text", "line 1\nline 2\tend", false, true},
		{[]byte("héllo ☃"), "text", "héllo ☃", false, true},
		{[]byte{0x00, 'a'}, "hex", "00000000  00 61                                             |.a|\n", false, true},
		{[]byte("bell\a"), "hex", "", false, true},
		{[]byte{0xff, 0xfe}, "hex", "", false, true},
		{[]byte(big), "text", big[:maxShown], true, false},
		{append([]byte(big[:maxShown-1]), "☃"...), "text", big[:maxShown-1], true, false}, // a character cut at the limit
	} {
		got := render(tc.in)
		if got.Format != tc.format || (tc.text != "" && got.Text != tc.text) || got.Truncated != tc.truncated ||
			got.Size != len(tc.in) || (got.Base64 != "") != tc.wholeBytes && len(tc.in) > 0 {
			t.Errorf("render(%.20q) = %+v, want format %s text %.40q truncated %v", tc.in, got, tc.format, tc.text, tc.truncated)
		}
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{"", `{"a":1}`, "[1,", "text\n", "\x00\x01", "\xe2\x98", "héllo"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := render(b)
		if r.Size != len(b) {
			t.Fatalf("size %d of %d bytes", r.Size, len(b))
		}
		if len(b) <= maxShown {
			raw, err := base64.StdEncoding.DecodeString(r.Base64)
			if err != nil || string(raw) != string(b) {
				t.Fatalf("base64 %q does not give the bytes back", r.Base64)
			}
		}
		switch r.Format {
		case "json", "hex":
		case "text":
			if !utf8.ValidString(r.Text) {
				t.Fatalf("text %q is not UTF-8", r.Text)
			}
		default:
			t.Fatalf("format %q", r.Format)
		}
	})
}

// notServing is a broker core that does not serve clients yet, with
// metadata md (empty when nil).
type notServing struct{ md *controller.Metadata }

func (notServing) Addr() string { return "" }
func (n notServing) Metadata() *controller.Metadata {
	if n.md == nil {
		return controller.NewMetadata()
	}
	return n.md
}
func (notServing) CreateTopics(context.Context, []broker.NewTopic, bool) []error {
	return []error{nil}
}
func (notServing) DeleteTopics(context.Context, []string) []error { return []error{nil} }
func (notServing) DescribeTopicConfigs(string, []string) ([]broker.ConfigValue, error) {
	return nil, nil
}
func (notServing) AlterTopicConfigs(context.Context, []broker.ConfigAlteration, bool) []error {
	return []error{nil}
}

// TestConsoleBeforeServing checks that reads needing a client wait for the
// broker to serve clients, with 503, and that the pages are served.
func TestConsoleBeforeServing(t *testing.T) {
	c := newConsole(notServing{}, &fakeSource{st: broker.Stats{BrokerID: 1}}, NewMetrics(LevelInfo), nil, zap.NewNop())
	defer c.close()
	mux := http.NewServeMux()
	c.register(mux)
	for path, want := range map[string]int{
		"/api/groups":                     http.StatusServiceUnavailable,
		"/api/cluster":                    http.StatusOK,
		"/api/stats":                      http.StatusOK,
		"/":                               http.StatusOK,
		"/static/app.js":                  http.StatusOK,
		"/static/style.css":               http.StatusOK,
		"/static/missing.js":              http.StatusNotFound,
		"/api/topics/t/records/0/0/value": http.StatusServiceUnavailable,
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("GET %s: %d %s, want %d", path, w.Code, w.Body, want)
		}
		if path == "/" && !strings.Contains(w.Body.String(), "/static/app.js") {
			t.Errorf("GET /: %s", w.Body)
		}
	}
}

// TestClusterAlerts checks the overview's counts and alerts against
// metadata with each condition of the alert rules.
func TestClusterAlerts(t *testing.T) {
	healthy := controller.NewMetadata()
	healthy.ControllerID = 1
	sick := controller.NewMetadata()
	for _, md := range []*controller.Metadata{healthy, sick} {
		for id := int32(1); id <= 3; id++ {
			md.Brokers[id] = &controller.Broker{ID: id, State: controller.BrokerAlive}
		}
	}
	healthy.Topics["t"] = &controller.Topic{Name: "t", Partitions: []controller.Partition{
		{Index: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1},
		{Index: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}, Leader: 2},
	}}
	sick.Brokers[3].State = controller.BrokerOffline
	sick.Topics["t"] = &controller.Topic{Name: "t", Partitions: []controller.Partition{
		{Index: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1},    // under-replicated
		{Index: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{2}, Leader: 2},       // and under min ISR (2 for RF 3)
		{Index: 2, Replicas: []int32{3, 1, 2}, ISR: []int32{3}, Leader: -1},      // and offline
		{Index: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1}, // fine
	}}
	for _, tc := range []struct {
		md                                    *controller.Metadata
		underReplicated, underMinISR, offline int
		alerts                                []string
	}{
		{healthy, 0, 0, 0, nil},
		{sick, 3, 2, 1, []string{"no controller", "offline partitions", "under min ISR", "under-replicated", "offline brokers"}},
	} {
		c := newConsole(notServing{md: tc.md}, &fakeSource{st: broker.Stats{BrokerID: 1}}, NewMetrics(LevelInfo), nil, zap.NewNop())
		mux := http.NewServeMux()
		c.register(mux)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/cluster", nil))
		var got ClusterInfo
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range got.Alerts {
			names = append(names, a.Name)
		}
		if got.UnderReplicated != tc.underReplicated || got.UnderMinISR != tc.underMinISR || got.Offline != tc.offline ||
			!slices.Equal(names, tc.alerts) || got.Partitions != len(tc.md.Topics["t"].Partitions) || len(got.Brokers) != 3 {
			t.Errorf("cluster %s: %+v, alerts %q, want %d under-replicated, %d under min ISR, %d offline, alerts %q",
				w.Body, got, names, tc.underReplicated, tc.underMinISR, tc.offline, tc.alerts)
		}
		if tc.md == healthy && (got.Brokers[0].Leaders != 1 || got.Brokers[0].Replicas != 2 || !got.Brokers[0].Controller) {
			t.Errorf("broker 1: %+v", got.Brokers[0])
		}
		c.close()
	}
}
