package broker

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/segment"
)

// sendfileChunk bounds one sendfile(2) call.
const sendfileChunk = 1 << 30

// sendView writes v's bytes to the connection with sendfile(2). The View
// keeps the file open until it is released, after this returns.
func (c *conn) sendView(v segment.View) error {
	f, pos := v.File()
	if f == nil || v.Len() == 0 {
		return nil
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return c.writeAll(v.Bytes())
	}
	sock, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	file, err := f.SyscallConn()
	if err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	off, remain := pos, v.Len()
	var serr error
	cerr := file.Control(func(ffd uintptr) {
		werr := sock.Write(func(sfd uintptr) bool {
			for remain > 0 {
				n, err := syscall.Sendfile(int(sfd), int(ffd), &off, min(remain, sendfileChunk))
				if n > 0 {
					remain -= n
				}
				switch {
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until the socket is writable
				case errors.Is(err, syscall.EINTR):
					continue
				case err != nil:
					serr = fmt.Errorf("sendfile: %w", err)
					return true
				case n == 0:
					serr = fmt.Errorf("sendfile: %w: file ended %d bytes early", io.ErrUnexpectedEOF, remain)
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr != nil {
		return serr
	}
	return cerr
}
