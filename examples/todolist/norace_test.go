//go:build !race

package main

// raceEnabled: the tests run under the race detector, and so do the
// server processes they start.
const raceEnabled = false
