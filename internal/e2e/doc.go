// Package e2e holds end-to-end tests of sluice: a real broker on loopback
// TCP, driven through the client library. It has no non-test code beyond
// this comment; the tests are the point.
package e2e
