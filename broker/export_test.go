package broker

// DrainConns begins the drain of the connections on its own, without the
// controlled shutdown before it (drain.go), for the tests of package
// broker_test.
func (b *Broker) DrainConns() { b.drainConns() }

// DrainedBeforeBound is drainedBeforeBound, for the tests of package
// broker_test.
var DrainedBeforeBound = drainedBeforeBound
