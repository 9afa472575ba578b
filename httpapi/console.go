package httpapi

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
)

// The web console: static pages (static/, embedded, plain HTML, CSS and
// JavaScript: nothing is fetched from elsewhere at run time) served at /,
// over a JSON API under /api/ (api*.go). The API is a front end like the
// others: cluster metadata, topic configs and topic changes are calls of
// the broker core (Core); what the core answers only for the partitions
// this broker leads — offsets, records, consumer groups — is read with a
// client of the cluster, bootstrapped from this broker, so any broker's
// console shows the whole cluster. docs/console.md describes the pages and
// the API.

//go:embed static
var staticFiles embed.FS

// Core is the part of the broker core the console calls (a
// *broker.Broker).
type Core interface {
	// Addr is the broker's client address, "" until it serves clients.
	Addr() string
	Metadata() *controller.Metadata
	CreateTopics(ctx context.Context, topics []broker.NewTopic, validateOnly bool) []error
	DeleteTopics(ctx context.Context, names []string) []error
	DescribeTopicConfigs(topic string, keys []string) ([]broker.ConfigValue, error)
	AlterTopicConfigs(ctx context.Context, changes []broker.ConfigAlteration, validateOnly bool) []error
}

// console serves the pages and the API of one broker.
type console struct {
	core     Core
	src      Source   // the broker's counters (the overview's /api/stats)
	metrics  *Metrics // and its request histograms
	id       int32    // the broker's id
	opts     []client.Opt
	logger   *zap.Logger
	browsing chan struct{} // a slot per message browse in progress

	mu     sync.Mutex
	cl     *client.Client // made at the first read that needs it
	closed bool
}

// maxBrowses bounds the message browses served at once: each one has a
// client of its own, with its connections and fetch buffers.
const maxBrowses = 4

// apiTimeout bounds each API call.
const apiTimeout = 15 * time.Second

func newConsole(core Core, src Source, metrics *Metrics, opts []client.Opt, logger *zap.Logger) *console {
	return &console{core: core, src: src, metrics: metrics, id: src.Stats(false).BrokerID, opts: opts, logger: logger,
		browsing: make(chan struct{}, maxBrowses)}
}

// errNotServing answers console reads while the broker does not serve
// clients yet.
var errNotServing = errors.New("the broker does not serve clients yet")

// client returns the console's client of the cluster, bootstrapped from
// this broker, making it at the first call.
func (c *console) client(ctx context.Context) (*client.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, client.ErrClosed
	}
	if c.cl != nil {
		return c.cl, nil
	}
	cl, err := c.newClient(ctx)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	return cl, nil
}

// newClient makes a client bootstrapped from this broker.
func (c *console) newClient(ctx context.Context, opts ...client.Opt) (*client.Client, error) {
	addr := c.core.Addr()
	if addr == "" {
		return nil, errNotServing
	}
	all := append([]client.Opt{client.SeedBrokers(addr), client.ClientID("sluice-console")}, c.opts...)
	cl, err := client.New(ctx, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("console client: %w", err)
	}
	return cl, nil
}

// close closes the client, if one was made.
func (c *console) close() {
	c.mu.Lock()
	cl := c.cl
	c.cl, c.closed = nil, true
	c.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// register adds the pages and the API to mux.
func (c *console) register(mux *http.ServeMux) {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", noCache(files))
	mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(files)))
	c.registerAPI(mux)
}

// noCache makes browsers revalidate the pages, so a broker upgrade shows
// its own console at once.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
		h.ServeHTTP(w, r)
	})
}
