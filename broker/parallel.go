package broker

import "sync"

// logWorkers bounds how many partition logs a broker opens or closes at
// once. Opening and closing a log is mostly waiting on fsyncs (a directory
// sync, a marker written durably); running many at once lets the file
// system commit them together, so a broker with thousands of partitions
// starts and stops in seconds.
const logWorkers = 32

// forEach runs f(0) … f(n-1) on up to logWorkers goroutines and returns
// when every call has. f must be safe to run concurrently with itself.
func forEach(n int, f func(i int)) {
	workers := min(n, logWorkers)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
