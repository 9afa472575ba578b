// Command gencerts writes a test CA and certificates for a local TLS
// cluster (scripts/cluster.sh --tls): dir/ca.crt, and dir/<name>.crt and
// dir/<name>.key for each name, valid for 127.0.0.1, ::1 and localhost
// for a day, as server and client certificates. For tests and local
// clusters only.
//
//	go run ./internal/testcerts/gencerts -dir /tmp/certs broker client
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluicemq/sluice/internal/testcerts"
)

func main() {
	dir := flag.String("dir", ".", "directory to write the files to")
	flag.Parse()
	if err := run(*dir, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "gencerts:", err)
		os.Exit(1)
	}
}

func run(dir string, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("name at least one certificate (e.g. broker client)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ca, err := testcerts.New("sluice test CA")
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := ca.Write(dir, n, testcerts.Valid); err != nil {
			return err
		}
	}
	return nil
}
