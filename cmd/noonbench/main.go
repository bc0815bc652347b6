// Command noonbench is noon's load generator: it measures the platform
// against baselines measured in the same run.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "noonbench: not yet (arrives with the edge broker issue); `make bench` runs the Go benchmarks")
}
