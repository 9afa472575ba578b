package auth

// SetPaceWrites turns the pacing of gathered writes on or off (pacer) and
// returns the setting it replaced.
func SetPaceWrites(on bool) (was bool) {
	was, paceWrites = paceWrites, on
	return was
}
