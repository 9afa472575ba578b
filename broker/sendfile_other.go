//go:build !linux

package broker

import "github.com/sluicemq/sluice/segment"

// sendView writes v's bytes to the connection from the segment's mapping:
// the portable copy where sendfile(2) is not Linux's (macOS's sendfile
// has another contract: it does not advance the offset it is given).
// The View keeps the mapping valid until it is released, after this
// returns.
func (c *conn) sendView(v segment.View) error {
	if v.Len() == 0 {
		return nil
	}
	return c.writeAll(v.Bytes())
}
