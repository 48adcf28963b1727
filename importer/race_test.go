//go:build race

package importer

// raceEnabled slows everything ~10×; timing assertions account for it.
const raceEnabled = true
