// Command noonctl is the operator's tool: list instances and routes, call any
// method with a JSON body.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		fmt.Fprintln(os.Stderr, "Usage: noonctl <command>\n\nCommands (not yet): instances, routes, call METHOD JSON")
		return
	}
	fmt.Fprintln(os.Stderr, "noonctl: not yet (instances and routes arrive with the broker issue, call with the login issue)")
	os.Exit(2)
}
