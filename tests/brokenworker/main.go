// Command brokenworker is a worker that can never become ready: the package
// tests build a release with it to check that an upgrade to a broken
// version stops and leaves the running instances serving.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "brokenworker: this build cannot start")
	os.Exit(1)
}
