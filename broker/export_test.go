package broker

import "context"

// DrainConns begins the drain of the connections on its own, without the
// controlled shutdown before it (drain.go), for the tests of package
// broker_test.
func (b *Broker) DrainConns() { b.drainConns() }

// DrainedBeforeBound is drainedBeforeBound, for the tests of package
// broker_test.
var DrainedBeforeBound = drainedBeforeBound

// SetDeadLetterHook makes f run before each write of dead-letter copies
// (f may block them), for the tests of package broker_test.
func (b *Broker) SetDeadLetterHook(f func(context.Context)) { b.deadLetterHook.Store(&f) }
