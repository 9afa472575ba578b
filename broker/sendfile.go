package broker

import "time"

// fetchWriteMode is how record sets go from a segment to the socket.
type fetchWriteMode uint8

const (
	// writeMapped hands the mapped bytes (View.Bytes) to one writev with
	// the response head: the kernel copies from the page cache mapping.
	writeMapped fetchWriteMode = iota
	// writeSendfile calls sendfile(2) on the segment file at the View's
	// position (an explicit offset, never the shared file offset).
	writeSendfile
)

// writeAll writes b with the write deadline.
func (c *conn) writeAll(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// defaultFetchWrite is the mode that won BenchmarkFetchWrite on loopback
// (see docs/broker.md).
const defaultFetchWrite = writeMapped
