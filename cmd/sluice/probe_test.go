package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not registered")) //nolint:errcheck
			return
		}
		w.Write([]byte("ok")) //nolint:errcheck
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := probe(ctx, srv.URL+"/healthz", time.Second, nil); err != nil {
		t.Errorf("healthz: %v", err)
	}
	err := probe(ctx, srv.URL+"/readyz", time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("readyz: %v, want the 503 and its reason", err)
	}
	srv.Close()
	if err := probe(ctx, srv.URL+"/healthz", time.Second, nil); err == nil {
		t.Error("a closed server passed")
	}
}
