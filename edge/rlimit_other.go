//go:build !unix

package edge

// fileLimit is unknown here: max_connections is not clamped.
func fileLimit() uint64 { return 0 }
