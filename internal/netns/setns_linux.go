package netns

import (
	"os"

	"golang.org/x/sys/unix"
)

// setns moves the calling OS thread into the network namespace ns.
func setns(ns *os.File) error { return unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET) }
